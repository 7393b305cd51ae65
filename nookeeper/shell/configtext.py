"""`config -c`: the client connect string in /zookeeper/config, as zkCli.sh 3.8 prints it.

/zookeeper/config holds an ensemble's membership in ZooKeeper's dynamic
config format, one `server.<id>=host:peerport:electionport[:role][;[clienthost:]clientport]`
line a member and a `version=<hex>` line. zkCli's `config -c`
(ConfigUtils.getClientConfigStr) prints "<version> <client addresses>":
it loads the text into java.util.Properties and goes through its entries
in the order the Properties' hash table holds them, not in the order of
the lines. That order is reproduced here (Java's String.hashCode and
ConcurrentHashMap's bins), so the line is the one zkCli prints, member
order included.
"""

import ipaddress
import re

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_SEPARATORS = "=: \t\f"
_WHITESPACE = " \t\f"


def client_config_string(text):
    """"<version> host:port,host:port,..." for the config text `text`."""
    entries = _properties(text)
    version = ""
    addresses = []
    for key in _hash_order(list(entries)):
        name, value = key.strip(), entries[key].strip()
        if name == "version":
            version = value
        if not name.startswith("server."):
            continue
        try:
            address = _client_address(value)
        except ValueError:
            continue                          # zkCli prints a stack trace and skips it
        addresses.append(address or "")
    return f"{version} {','.join(addresses)}"


def _properties(text):
    """{key: value} in insertion order, as Properties.load reads simple lines."""
    entries = {}
    for line in text.splitlines():
        line = line.lstrip(_WHITESPACE)
        if not line or line[0] in "#!":
            continue
        end = 0
        while end < len(line) and line[end] not in _SEPARATORS:
            end += 1
        key, rest = line[:end], line[end:].lstrip(_WHITESPACE)
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(_WHITESPACE)
        entries[key] = rest
    return entries


def _java_split(text, separator):
    """str.split as Java's String.split does it: trailing empty strings dropped."""
    parts = text.split(separator)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""] and text:
        return []
    return parts


def _host_and_port(text):
    """ConfigUtils.getHostAndPort: "host:port..." split at colons, IPv6 in brackets."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 2 == len(text):
            raise ValueError(text)
        if end + 2 < len(text):
            return [text[1:end]] + _java_split(text[end + 2:], ":")
        return [text.replace("[", "").replace("]", "")]
    return _java_split(text, ":")


def _java_int(text):
    """Integer.parseInt: an optional sign and ASCII digits, within 32 bits."""
    if not _INTEGER.match(text):
        raise ValueError(text)
    value = int(text)
    if not -2 ** 31 <= value < 2 ** 31:
        raise ValueError(text)
    return value


def _client_address(value):
    """A server line's client address "host:port", None if it has none; ValueError
    where ZooKeeper's QuorumServer refuses the line."""
    parts = _java_split(value, ";")
    if len(parts) > 2 or not parts:
        raise ValueError(value)
    for server in _java_split(parts[0], "|"):
        fields = _host_and_port(server)
        if not 3 <= len(fields) <= 4:
            raise ValueError(value)
        _java_int(fields[1])
        _java_int(fields[2])
        if len(fields) == 4 and fields[3].lower() not in ("participant", "observer"):
            raise ValueError(value)
    if len(parts) < 2:
        return None
    client = _host_and_port(parts[1])
    if not 1 <= len(client) <= 2:
        raise ValueError(value)
    host = client[0] if len(client) == 2 else "0.0.0.0"
    return f"{_host_string(host)}:{_java_int(client[-1])}"


def _host_string(host):
    """InetSocketAddress.getHostString: a name as written, an IPv6 literal as Java
    writes addresses (eight groups, no zero compression)."""
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    return ":".join(f"{int(group, 16):x}" for group in address.exploded.split(":"))


# -- java.util.Properties' order -------------------------------------------------


def _java_hash(text):
    """String.hashCode: over UTF-16 code units, in 32-bit signed arithmetic."""
    value = 0
    data = text.encode("utf-16-be")
    for index in range(0, len(data), 2):
        value = (31 * value + (data[index] << 8 | data[index + 1])) & 0xFFFFFFFF
    return value


def _spread(hash_code):
    return (hash_code ^ (hash_code >> 16)) & 0x7FFFFFFF


def _hash_order(keys):
    """The keys in the order a ConcurrentHashMap(8) iterates them after inserting
    them in this order (Properties keeps its entries in one since Java 9): bins in
    index order, each bin's list as insertion and resizing left it."""
    size = 16
    table = [[] for _ in range(size)]
    count = 0
    for key in keys:
        table[_spread(_java_hash(key)) & (size - 1)].append(key)
        count += 1
        if count >= size - (size >> 2):
            table = _resize(table)
            size = len(table)
    return [key for bin_ in table for key in bin_]


def _resize(table):
    """ConcurrentHashMap.transfer: each bin splits into a low and a high list; the
    nodes before the last run of one kind come out reversed."""
    size = len(table)
    bigger = [[] for _ in range(2 * size)]
    for index, bin_ in enumerate(table):
        if not bin_:
            continue
        bits = [_spread(_java_hash(key)) & size for key in bin_]
        last_run = len(bin_) - 1
        while last_run > 0 and bits[last_run - 1] == bits[-1]:
            last_run -= 1
        low, high = [], []
        (high if bits[-1] else low).extend(bin_[last_run:])
        for key, bit in zip(bin_[:last_run], bits[:last_run]):
            (high if bit else low).insert(0, key)
        bigger[index] = low
        bigger[index + size] = high
    return bigger
