"""Quotas as ZooKeeper keeps them: limits and usage stored as znodes.

A quota on /a/b is the pair of nodes /zookeeper/quota/a/b/zookeeper_limits
(what a client set with setquota) and .../zookeeper_stats (the usage: the
number of nodes of the subtree, its root included, and their data bytes).
Clients write both; the tree keeps the stats node's data up to date on every
create, delete and setData under the quota root, in place (no new version,
as ZooKeeper does), so every replica that applies the same txns counts the
same. A write is counted against the deepest quota root above it only.

Limits and stats are ZooKeeper's StatsTrack text: ``key=value`` pairs
separated by ``,`` or ``;``, with ``count`` and ``bytes`` first and any other
key after a ``=`` that old parsers skip (``count=2,bytes=-1=;byteHardLimit=-1;
countHardLimit=-1``). A missing key reads as -1, meaning no limit.
"""

import re
from typing import NamedTuple

from nookeeper.wire.ops import CREATES, OpCode

QUOTA_ROOT = "/zookeeper/quota"
LIMITS_NODE = "zookeeper_limits"
STATS_NODE = "zookeeper_stats"
_PAIR_SEPARATORS = re.compile(r"[,;]+")
_FIRST_KEYS = ("count", "bytes")


def parse_stats(data):
    """A StatsTrack's {key: int}; what does not parse is left out, so a
    client's garbage in a quota node reads as 'no limit' instead of failing
    a write that every replica must apply alike."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    stats = {}
    for pair in _PAIR_SEPARATORS.split(text):
        key, equals, value = pair.partition("=")
        value = value.split("=", 1)[0]
        if not key or not equals:
            continue
        try:
            stats[key] = int(value) if value else -1
        except ValueError:
            continue
    return stats


def format_stats(stats):
    """The StatsTrack text ZooKeeper writes for ``stats``."""
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(key for key in stats if key not in _FIRST_KEYS)
    if extra:
        text += "=" + "".join(f";{key}={stats[key]}" for key in extra)
    return text.encode()


def quota_root_of(node_path):
    """The quota root a /zookeeper/quota/.../zookeeper_limits or _stats path
    belongs to, else None."""
    if not node_path.startswith(QUOTA_ROOT + "/"):
        return None
    parent, _, name = node_path.rpartition("/")
    if name not in (LIMITS_NODE, STATS_NODE) or parent == QUOTA_ROOT:
        return None
    return parent[len(QUOTA_ROOT):]


def limits_path(root):
    return f"{QUOTA_ROOT}{root}/{LIMITS_NODE}"


def stats_path(root):
    return f"{QUOTA_ROOT}{root}/{STATS_NODE}"


class Overrun(NamedTuple):
    """A write that takes a quota root over one of its limits."""

    root: str
    what: str       # "count" or "bytes"
    usage: int      # the usage the write leads to
    limit: int
    hard: bool

    def __str__(self):
        kind = "hard" if self.hard else "soft"
        return (f"Quota exceeded: {self.root} [current {self.what}={self.usage}, "
                f"{kind}{'Count' if self.what == 'count' else 'Byte'}Limit={self.limit}]")


def overruns(root, limits, usage, count_diff, bytes_diff):
    """The limits of ``root`` that a write changing its usage by these
    diffs goes over, as ZooKeeper's checkQuota judges: a hard limit, when
    set, is the one that counts; else the soft one (which only warns)."""
    found = []
    for what, diff, soft_key, hard_key in (("count", count_diff, "count", "countHardLimit"),
                                           ("bytes", bytes_diff, "bytes", "byteHardLimit")):
        if diff == 0:
            continue
        hard = limits.get(hard_key, -1)
        soft = limits.get(soft_key, -1)
        if hard < 0 and soft < 0:
            continue
        limit = hard if hard > -1 else soft
        new_usage = usage.get(what, -1) + diff
        if new_usage > limit:
            found.append(Overrun(root, what, new_usage, limit, hard > -1))
    return found


class QuotaTable:
    """The quota roots of a tree: which paths have a zookeeper_limits node.

    Kept by the tree as it applies creates and deletes of limits nodes, and
    rebuilt from the nodes after a snapshot is restored."""

    def __init__(self):
        self.roots = set()

    def root_for(self, path):
        """The deepest quota root at or above ``path``, or None."""
        roots = self.roots
        if not roots:
            return None
        while path:
            if path in roots:
                return path
            path = path[:path.rfind("/")]
        return None

    def refusal(self, tree, opcode, request):
        """(index of the op, Overrun) for the first change of a write request
        that goes over a hard limit, judged against the tree as applied so
        far, as ZooKeeper's checkQuota judges before a txn; else None."""
        for index, path, count_diff, bytes_diff in _changes(tree, opcode, request):
            root = self.root_for(path)
            if root is None:
                continue
            limits_node = tree.node(limits_path(root))
            stats_node = tree.node(stats_path(root))
            if limits_node is None or stats_node is None:
                continue
            for overrun in overruns(root, parse_stats(limits_node.data),
                                    parse_stats(stats_node.data), count_diff, bytes_diff):
                if overrun.hard:
                    return index, overrun
        return None


def _changes(tree, opcode, request, index=0):
    """(index, path, count diff, bytes diff) of each create and setData in a
    write (each sub-op of a multi, by its place)."""
    if opcode == OpCode.MULTI:
        for place, sub in enumerate(request or ()):
            yield from _changes(tree, sub.type, sub.request, place)
    elif opcode in CREATES:
        yield index, request.path or "", 1, len(request.data or b"")
    elif opcode == OpCode.SET_DATA:
        node = tree.node(request.path)
        if node is not None:
            old = len(node.data) if node.data else 0
            yield index, request.path, 0, len(request.data or b"") - old
