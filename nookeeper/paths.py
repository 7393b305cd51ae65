"""Znode path syntax, as ZooKeeper's server judges it.

Clients such as kazoo send paths unchecked, so the server must reject exactly
what ZooKeeper rejects (spec §6.3) and nothing more: a stricter rule would
break clients that work against the reference server.
"""

import re

from nookeeper.errors import BadArgumentsError

# Java validates UTF-16 units, so every code point above U+FFFF (a surrogate
# pair there) is refused along with controls, surrogates, private use and the
# U+FFF0 block.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def validate_path(path):
    """Raise BadArgumentsError unless ``path`` is a well-formed absolute path."""
    if not path:
        raise BadArgumentsError("path must not be empty")
    if path[0] != "/":
        raise BadArgumentsError(f"path must start with /: {path!r}")
    if path == "/":
        return
    if path[-1] == "/":
        raise BadArgumentsError(f"path must not end with /: {path!r}")
    bad = _BAD_CHAR.search(path)
    if bad:
        raise BadArgumentsError(
            f"invalid character U+{ord(bad.group()):04X} in path {path!r}")
    for name in path[1:].split("/"):
        if name in ("", ".", ".."):
            raise BadArgumentsError(f"empty or relative component in path {path!r}")


def parent_of(path):
    """The text before the last '/', with '' read as the root (ZooKeeper keys
    the root under both). ``path`` must contain a '/'; '/' is its own parent."""
    return path[:path.rindex("/")] or "/"


def name_of(path):
    """The last component: what getChildren lists for this node."""
    return path[path.rindex("/") + 1:]
