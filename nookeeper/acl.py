"""Access control lists: what a create/setACL may store and who passes a check.

A connection's identities are (scheme, id) pairs; an ACL entry grants
permission bits to one id. The rules follow ZooKeeper's built-in providers
(world, auth, digest, ip, and sasl as ZooKeeper's SASLAuthenticationProvider)
so that ACLs written by existing clients mean the same thing here (spec §7).
"""

import base64
import hashlib
import ipaddress
import re
import unicodedata
from typing import NamedTuple

from nookeeper.errors import InvalidACLError, NoAuthError
from nookeeper.x509 import valid_name as valid_x509_id

READ = 1
WRITE = 2
CREATE = 4
DELETE = 8
ADMIN = 16
ALL = 31

# Identities that prove who the caller is; an 'auth' ACL expands to these.
# ip is not among them: it names a machine, not a user.
AUTHENTICATED_SCHEMES = ("digest", "sasl", "x509")


class ACL(NamedTuple):
    """One entry, hashable so duplicates can be dropped and lists shared."""

    perms: int
    scheme: str
    id: str


OPEN_ACL_UNSAFE = (ACL(ALL, "world", "anyone"),)
READ_ACL_UNSAFE = (ACL(READ, "world", "anyone"),)


def from_wire(entries):
    """ACLs from decoded records; a null id reads as '' because kazoo sends
    every empty string (the usual 'auth' id) as null. Fields are read as
    items: a Container's attribute access costs ten times as much, on every create."""
    if entries is None:
        return ()
    acls = []
    for entry in entries:
        ident = entry["id"]
        acls.append(ACL(entry["perms"], ident["scheme"], ident["id"] or ""))
    return tuple(acls)


def to_wire(acls):
    """Records ready to encode, in stored order."""
    return [{"perms": a.perms, "id": {"scheme": a.scheme, "id": a.id}} for a in acls]


def digest_id(credential):
    """The id a digest credential 'user:password' authenticates as.

    The hash covers the whole credential; the user part is whatever precedes
    the first ':' (all of it when there is none, which still succeeds).
    """
    if isinstance(credential, bytes):
        credential = credential.decode("utf-8", errors="replace")
    user = credential.split(":", 1)[0]
    sha1 = hashlib.sha1(credential.encode("utf-8", errors="surrogatepass")).digest()
    return f"{user}:{base64.b64encode(sha1).decode('ascii')}"


def fixup(acls, ids):
    """The ACL list to store for a create/setACL by a caller holding ``ids``.

    Raises InvalidACLError when the list is empty, names an unknown scheme or
    an id its scheme cannot parse, or asks for 'auth' from a caller that has
    no authenticated identity.
    """
    unique = tuple(dict.fromkeys(acls or ()))
    if not unique:
        raise InvalidACLError("empty ACL list")
    fixed = []
    for entry in unique:
        if entry.scheme == "world":
            if entry.id != "anyone":
                raise InvalidACLError(f"world ACL id must be 'anyone', not {entry.id!r}")
            fixed.append(entry)
        elif entry.scheme == "auth":
            mine = [ACL(entry.perms, s, i) for s, i in ids if s in AUTHENTICATED_SCHEMES]
            if not mine:
                raise InvalidACLError("'auth' ACL but the caller is not authenticated")
            fixed.extend(mine)
        elif entry.scheme == "digest" and _valid_digest(entry.id):
            fixed.append(entry)
        elif entry.scheme == "ip" and _parse_ip_acl(entry.id) is not None:
            fixed.append(entry)
        elif entry.scheme == "sasl" and valid_sasl_id(entry.id):
            fixed.append(entry)
        elif entry.scheme == "x509" and valid_x509_id(entry.id):
            # X509AuthenticationProvider: a TLS client's certificate subject
            # (RFC 2253, CN=bob,OU=dev,O=acme), compared as a string.
            fixed.append(entry)
        else:
            raise InvalidACLError(f"invalid ACL {entry.scheme}:{entry.id}")
    return tuple(fixed)


def permits(acls, ids, perm):
    """Whether a caller holding ``ids`` has any of the bits in ``perm``."""
    if any(scheme == "super" for scheme, _ in ids):
        return True
    if not acls:
        return True
    for entry in acls:
        if not entry.perms & perm:
            continue
        if entry.scheme == "world" and entry.id == "anyone":
            return True
        for scheme, ident in ids:
            if scheme == entry.scheme and _matches(scheme, ident, entry.id):
                return True
    return False


def check(acls, ids, perm):
    """Raise NoAuthError unless the caller has one of the bits in ``perm``."""
    if not permits(acls, ids, perm):
        raise NoAuthError("insufficient permission")


def mask_digests(acls):
    """ACLs as shown to a reader without ADMIN: digest hashes are secrets
    (a short password falls to a dictionary attack), so only the user shows."""
    return tuple(
        ACL(a.perms, a.scheme, a.id.split(":", 1)[0] + ":x")
        if a.scheme == "digest" and ":" in a.id else a
        for a in acls
    )


def zookeeper_order(ids):
    """(scheme, id) pairs in the order a ZooKeeper 3.8 connection lists them
    (whoami): it keeps them in a set backed by a ConcurrentHashMap, which
    iterates bucket by bucket of Id.hashCode() (16 buckets, doubled each time
    it is three quarters full), in order of arrival within a bucket (exact
    up to 12 identities; beyond, a resize may reorder a shared bucket)."""
    ids = list(ids)
    buckets = 16
    while len(ids) >= buckets - (buckets >> 2):
        buckets <<= 1

    def bucket(entry):
        scheme, ident = entry
        h = _int32(37 * _int32(37 * 17 + _java_hash(scheme)) + _java_hash(ident))
        h &= 0xFFFFFFFF
        return ((h ^ (h >> 16)) & 0x7FFFFFFF) & (buckets - 1)

    return [entry for _, entry in sorted(enumerate(ids), key=lambda ie: (bucket(ie[1]), ie[0]))]


def _java_hash(text):
    """Java's String.hashCode: over UTF-16 units, in int arithmetic."""
    raw = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(raw), 2):
        h = (31 * h + (raw[i] << 8 | raw[i + 1])) & 0xFFFFFFFF
    return h


def _int32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _valid_digest(ident):
    # Java's split(":") drops trailing empty parts: "user:" has one part.
    parts = ident.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


# ZooKeeper's KerberosName: a principal service[/host]@realm, or a plain name.
_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def valid_sasl_id(ident):
    """SASLAuthenticationProvider.isValid: what KerberosName parses, so any
    name without '@', or one that is a well-formed principal."""
    return "@" not in ident or _KERBEROS_NAME.fullmatch(ident) is not None


def _matches(scheme, ident, acl_id):
    if scheme == "sasl":
        # SASLAuthenticationProvider.matches: a SASL user named "super" passes
        # every sasl ACL (whether or not it is a configured super user).
        return ident == "super" or ident == acl_id
    if scheme != "ip":
        return ident == acl_id
    network = _parse_ip_acl(acl_id)
    address = _parse_peer(ident)
    if network is None or address is None:
        return False
    acl_bytes, bits = network
    return _prefix(address, bits) == _prefix(acl_bytes, bits)


def _parse_ip_acl(acl_id):
    """(address bytes, prefix bits) of 'addr' or 'addr/bits', None where
    ZooKeeper 3.8's IPAuthenticationProvider.isValid says no: IPv4 only (its
    addr2Bytes has no IPv6 branch; that came with ZOOKEEPER-4240, after 3.8),
    each number read as Java's Integer.parseInt reads it."""
    text, slash, bits_text = acl_id.partition("/")
    address = _ipv4(text)
    if address is None:
        return None
    bits = 32
    if slash:
        bits = _java_int(bits_text)
        if bits is None or not 0 <= bits <= 32:
            return None
    return address, bits


def _ipv4(text):
    """The 4 bytes of a dotted IPv4 address as ZooKeeper parses one: exactly
    four parts, each a Java int from 0 to 255 (so '010', '+1' and '-0' pass)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    values = [_java_int(part) for part in parts]
    if any(v is None or not 0 <= v <= 255 for v in values):
        return None
    return bytes(values)


def _java_int(text):
    """Java's Integer.parseInt(text), or None where it throws: an optional
    sign, then one or more decimal digits of any script (Character.digit),
    each a single UTF-16 unit, the value within an int."""
    negative = text[:1] == "-"
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits:
        return None
    value = 0
    for char in digits:
        digit = unicodedata.decimal(char, -1) if ord(char) <= 0xFFFF else -1
        if digit < 0:
            return None
        value = value * 10 + digit
    value = -value if negative else value
    return value if -(1 << 31) <= value < (1 << 31) else None


def _parse_peer(ident):
    """The 4 bytes of a client's address, as its ip identity names it. Java
    shows an IPv4-mapped IPv6 peer (a dual-stack socket) as its IPv4 address;
    any other IPv6 peer matches no ip ACL in ZooKeeper 3.8."""
    address = _ipv4(ident)
    if address is not None or ":" not in ident:
        return address
    try:
        mapped = ipaddress.IPv6Address(ident).ipv4_mapped
    except ValueError:
        return None
    return mapped.packed if mapped else None


def _prefix(address, bits):
    value = int.from_bytes(address, "big")
    width = len(address) * 8
    return value >> (width - bits) if bits else 0
