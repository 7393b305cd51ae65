"""Access control lists: what a create/setACL may store and who passes a check.

A connection's identities are (scheme, id) pairs; an ACL entry grants
permission bits to one id. The rules follow ZooKeeper's built-in providers
(world, auth, digest, ip) so that ACLs written by existing clients mean the
same thing here (spec §7).
"""

import base64
import hashlib
import ipaddress
import re
from typing import NamedTuple

from nookeeper.errors import InvalidACLError, NoAuthError

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


def _valid_digest(ident):
    # Java's split(":") drops trailing empty parts: "user:" has one part.
    parts = ident.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


def _matches(scheme, ident, acl_id):
    if scheme != "ip":
        return ident == acl_id
    network = _parse_ip_acl(acl_id)
    address = _parse_address(ident)
    if network is None or address is None:
        return False
    acl_bytes, bits = network
    return len(address) == len(acl_bytes) and _prefix(address, bits) == _prefix(acl_bytes, bits)


def _parse_ip_acl(acl_id):
    """(address bytes, prefix bits) of 'addr' or 'addr/bits'; None if invalid."""
    text, _, bits_text = acl_id.partition("/")
    address = _parse_address(text)
    if address is None:
        return None
    bits = len(address) * 8
    if "/" in acl_id:
        if not re.fullmatch(r"[+-]?[0-9]+", bits_text):
            return None
        bits = int(bits_text)
        if not 0 <= bits <= len(address) * 8:
            return None
    return address, bits


def _parse_address(text):
    """Packed bytes of a dotted IPv4 or an IPv6 address; an IPv4-mapped IPv6
    peer (a dual-stack socket) counts as its IPv4 address."""
    parts = text.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts):
        values = [int(p) for p in parts]
        return bytes(values) if all(v <= 255 for v in values) else None
    if ":" not in text:
        return None
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    mapped = address.ipv4_mapped
    return mapped.packed if mapped else address.packed


def _prefix(address, bits):
    value = int.from_bytes(address, "big")
    width = len(address) * 8
    return value >> (width - bits) if bits else 0
