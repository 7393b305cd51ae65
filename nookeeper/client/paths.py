"""The connect string and the chroot: what the user writes vs. what the server sees.

Paths given to the client are relative to the chroot; the server only ever
sees full paths, and every path coming back (create, sync, events) has the
chroot taken off again.
"""

DEFAULT_PORT = 2181


def parse_hosts(hosts):
    """"h1:p1,h2:p2/chroot" -> ([(host, port), ...], chroot or "").

    IPv6 addresses go in brackets: "[::1]:2181".
    """
    if not isinstance(hosts, str) or not hosts.strip():
        raise ValueError("hosts must be a non-empty string")
    hosts = hosts.strip()
    chroot = ""
    slash = hosts.find("/")
    if slash >= 0:
        hosts, chroot = hosts[:slash], hosts[slash:]
        chroot = normalize(chroot)
        if chroot == "/":
            chroot = ""
    addresses = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        addresses.append(_parse_address(item))
    if not addresses:
        raise ValueError(f"no host in {hosts!r}")
    return addresses, chroot


def _parse_address(item):
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"unclosed bracket in {item!r}")
        host, rest = item[1:end], item[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {item!r}")
        port = rest[1:]
    elif item.count(":") == 1:
        host, port = item.split(":")
    elif ":" in item:
        host, port = item, ""
    else:
        host, port = item, ""
    try:
        port = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in {item!r}") from None
    return host, port


def normalize(path, trailing=False):
    """Leading "/" added, repeated and trailing "/" dropped (kept if `trailing`).

    "." and ".." are left alone: the server rejects them, as it should.
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, not {type(path).__name__}")
    parts = [part for part in path.split("/") if part]
    result = "/" + "/".join(parts)
    if trailing and parts and path.endswith("/"):
        result += "/"
    return result


class Chroot:
    """Adds and strips the chroot prefix."""

    def __init__(self, root):
        self.root = root

    def full(self, path, trailing=False):
        path = normalize(path, trailing)
        if not self.root:
            return path
        return self.root if path == "/" else self.root + path

    def strip(self, path):
        if not self.root or path is None:
            return path
        if path == self.root:
            return "/"
        if path.startswith(self.root + "/"):
            return path[len(self.root):]
        return path
