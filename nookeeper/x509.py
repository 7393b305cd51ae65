"""X.509 certificates read without I/O: the subject as Java prints it, the
validity period and the names a certificate is issued for.

A TLS client's x509 identity is its certificate's subject exactly as
ZooKeeper's X509AuthenticationProvider takes it, X500Principal.getName()
(RFC 2253: the most specific RDN first, CN=bob,OU=dev,O=acme), so an ACL
`x509:CN=bob,OU=dev,O=acme` means the same certificate on both servers. Only
the little DER that needs is read here; the ssl module has verified the
certificate before any of this runs.
"""

import ipaddress
import re
from datetime import datetime, timezone
from typing import NamedTuple


class CertificateError(ValueError):
    """DER that is not the certificate structure this module reads."""


class Certificate(NamedTuple):
    subject: str            # RFC 2253, as Java's X500Principal.getName()
    not_before: datetime    # UTC
    not_after: datetime
    dns_names: tuple        # subjectAltName dNSName entries
    ip_addresses: tuple     # subjectAltName iPAddress entries (ipaddress objects)
    common_names: tuple     # the subject's CN values


# The attribute types X500Principal's RFC 2253 output names by keyword; every
# other type is printed as its OID with the value as #hex of its DER.
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# The keywords X500Principal(String) accepts (RFC 1779, 2253 and its own).
_PARSE_KEYWORDS = frozenset({
    "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
    "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
    "SERIALNUMBER",
})
# DER string types Java prints as text (AVA.isDerString, non-canonical).
_UTF8, _PRINTABLE, _T61, _IA5, _GENERAL, _BMP = 0x0C, 0x13, 0x14, 0x16, 0x1B, 0x1E
_STRING_TAGS = frozenset({_UTF8, _PRINTABLE, _T61, _IA5, _GENERAL, _BMP})
_ESCAPED = ',=+<>#;"\\'
_SAN_OID = "2.5.29.17"


def parse_certificate(der: bytes) -> Certificate:
    """The fields of one DER certificate this server uses."""
    try:
        return _parse(bytes(der))
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, CertificateError):
            raise
        raise CertificateError(f"not a DER certificate: {exc}") from None


def subject_name(der: bytes) -> str:
    """The subject of a DER certificate as X500Principal.getName() prints it."""
    return parse_certificate(der).subject


def valid_name(text: str) -> bool:
    """Whether Java's X500Principal(text) accepts it, as ZooKeeper's
    X509AuthenticationProvider.isValid asks of an x509 ACL id: attribute=value
    pairs separated by ',' or ';' ('+' within one RDN), the attribute a known
    keyword or an OID, values quoted, escaped or #hex. The empty name is valid."""
    if not text.strip():
        return True
    for ava in _split_unescaped(text, ",;+"):
        if ava is None:
            return False
        kind, sep, value = ava.partition("=")
        kind = kind.strip()
        if not sep:
            return False
        if kind.upper().startswith("OID."):
            kind = kind[4:]
        if not (kind.upper() in _PARSE_KEYWORDS or re.fullmatch(r"\d+(\.\d+)+", kind)):
            return False
        value = value.strip()
        if value.startswith("#") and not re.fullmatch(r"#([0-9A-Fa-f]{2})+", value):
            return False
    return True


def _split_unescaped(text, separators):
    """Parts between unescaped, unquoted separators; None for a bad quote or a
    trailing backslash."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 == len(text):
                return [None]
            current.append(text[i:i + 2])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char in separators and not quoted:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if quoted:
        return [None]
    parts.append("".join(current))
    return parts


# -- DER -----------------------------------------------------------------------

def _tlv(data, pos):
    """(tag, start of contents, end of contents) of the element at pos."""
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateError("multi-byte tags are not used in certificates")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4:
            raise CertificateError(f"bad length of {count} bytes")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise CertificateError("element runs past the end")
    return tag, pos, end


def _children(data, start, end):
    """(tag, start, end, element start) of each element in data[start:end]."""
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        yield tag, cstart, cend, pos
        pos = cend


def _oid(raw):
    first = raw[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = value << 7 | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, 1950..2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:
        raise CertificateError(f"validity time with tag {tag:#x}")
    return datetime.strptime(text.rstrip("Z")[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def _parse(der):
    tag, start, end = _tlv(der, 0)
    if tag != 0x30:
        raise CertificateError("a certificate is a SEQUENCE")
    tag, tstart, tend = _tlv(der, start)
    if tag != 0x30:
        raise CertificateError("tbsCertificate is a SEQUENCE")
    fields = list(_children(der, tstart, tend))
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    if len(fields) < 6:
        raise CertificateError("tbsCertificate has too few fields")
    _serial, _signature, _issuer, validity, subject, _key = fields[:6]
    times = list(_children(der, validity[1], validity[2]))
    not_before = _time(times[0][0], der[times[0][1]:times[0][2]])
    not_after = _time(times[1][0], der[times[1][1]:times[1][2]])
    rdns = []
    common_names = []
    for _tag, rstart, rend, _pos in _children(der, subject[1], subject[2]):
        avas = []
        for _t, astart, aend, _p in _children(der, rstart, rend):
            (otag, ostart, oend, _), (vtag, vstart, vend, vpos) = list(
                _children(der, astart, aend))[:2]
            oid = _oid(der[ostart:oend])
            avas.append(_ava(oid, vtag, der[vstart:vend], der[vpos:vend]))
            if oid == "2.5.4.3" and vtag in _STRING_TAGS:
                common_names.append(_decode(vtag, der[vstart:vend]))
        rdns.append("+".join(avas))
    dns_names, ips = [], []
    for tag, estart, eend, _pos in fields[6:]:
        if tag == 0xA3:  # [3] extensions
            seq = list(_children(der, estart, eend))[0]
            for _t, xstart, xend, _p in _children(der, seq[1], seq[2]):
                parts = list(_children(der, xstart, xend))
                if _oid(der[parts[0][1]:parts[0][2]]) == _SAN_OID:
                    _alt_names(der, parts[-1], dns_names, ips)
    return Certificate(",".join(reversed(rdns)), not_before, not_after,
                       tuple(dns_names), tuple(ips), tuple(common_names))


def _alt_names(der, octets, dns_names, ips):
    _tag, start, end, _pos = octets
    seq_tag, sstart, send = _tlv(der, start)
    for tag, nstart, nend, _p in _children(der, sstart, send):
        if tag == 0x82:
            dns_names.append(der[nstart:nend].decode("ascii", "replace"))
        elif tag == 0x87 and nend - nstart in (4, 16):
            ips.append(ipaddress.ip_address(der[nstart:nend]))


def _decode(tag, raw):
    if tag == _BMP:
        return raw.decode("utf-16-be", "replace")
    return raw.decode("utf-8", "replace")


def _ava(oid, tag, raw, whole):
    """One attribute as sun.security.x509.AVA.toRFC2253String prints it."""
    keyword = _RFC2253_KEYWORDS.get(oid)
    if keyword is None or tag not in _STRING_TAGS:
        return f"{keyword or oid}=#{whole.hex()}"
    value = _decode(tag, raw)
    out = []
    for char in value:
        if char in _ESCAPED:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    chars = out
    # Leading and trailing spaces (and CRs) are escaped too.
    lead = 0
    while lead < len(chars) and chars[lead] in (" ", "\r"):
        lead += 1
    trail = len(chars) - 1
    while trail >= 0 and chars[trail] in (" ", "\r"):
        trail -= 1
    text = "".join("\\" + c if i < lead or i > trail else c for i, c in enumerate(chars))
    return f"{keyword}={text}"
