"""Rebuilding the tree the way a server does: a snapshot, then the log after it.

Applying a txn is deterministic (nookeeper/tree.py), so replaying the log
from a snapshot gives exactly the results and the tree the server had: the
result of every txn, and the tree as it was at any zxid the log still covers.
Where the log no longer reaches (purged behind a snapshot), or a row is bad,
replay stops rather than guess.
"""

from typing import NamedTuple

from nookeeper import snapshot
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.tools.dump_txns import describe, read_txn
from nookeeper.tools.dump_zxid import follows, show
from nookeeper.tree import DataTree
from nookeeper.wire.ops import CLOSE_SESSION


class LogDoesNotReach(Exception):
    """The tree at the zxid asked for cannot be rebuilt from what is stored."""


def check_chunks(info, chunks) -> None:
    """Raises CorruptSnapshot unless the chunks are the ones the snapshot's row describes."""
    if chunks is None:
        raise CorruptSnapshot("purged while it was being read")
    if len(chunks) != info.chunks or not chunks:
        raise CorruptSnapshot(f"{len(chunks)} of {info.chunks} chunks present")
    crc = snapshot.crc_of(chunks)
    if crc != info.crc:
        raise CorruptSnapshot(f"fails its crc check (crc 0x{crc:08x}, row says 0x{info.crc:08x})")
    size = sum(map(len, chunks))
    if size != info.size:
        raise CorruptSnapshot(f"holds {size} bytes, its row says {info.size}")
    header = snapshot.read_header(chunks[0])
    if header.zxid != info.zxid or header.nodes != info.nodes:
        raise CorruptSnapshot(f"its header says zxid {show(header.zxid)} with {header.nodes} "
                              f"nodes, its row zxid {show(info.zxid)} with {info.nodes}")


def snapshot_tree(info, chunks) -> DataTree:
    """The snapshot's tree, every check passed (CorruptSnapshot otherwise).

    check_chunks holds the header to the row's zxid and node count, and decode
    holds the nodes to the header, so the tree is at the row's zxid with its nodes.
    """
    check_chunks(info, chunks)
    return snapshot.decode(chunks)


def earliest_base(infos, first) -> int:
    """The oldest zxid whose tree can be rebuilt, 0 when the log reaches back to
    the empty tree. `first` is the log's first zxid (None: the log is empty).

    Purging (and a leader's SNAP) leave the log starting right after a snapshot;
    a purge deletes old snapshots before the rows behind them, so for a moment
    (or after a crash, until the next purge) the log may start before its oldest
    snapshot, and then that snapshot is where rebuilding can start.
    """
    zxids = sorted(info.zxid for info in infos)
    if first is None:
        return zxids[-1] if zxids else 0
    if follows(0, first) and not any(z < first for z in zxids):
        return 0
    for zxid in zxids:
        if first <= zxid or follows(zxid, first):
            return zxid
    before = [z for z in zxids if z < first]
    raise LogDoesNotReach(f"the log starts at {show(first)}, which does not follow "
                          + (f"the snapshot at {show(before[-1])}" if before else "the empty tree"))


class Base(NamedTuple):
    zxid: int
    tree: DataTree
    snapshot: object        # the SnapshotInfo it came from; None for the empty tree
    skipped: tuple          # (zxid, reason) of newer snapshots that could not be read


def choose_base(infos, first, target, load) -> Base:
    """The newest readable snapshot at or below `target` that the log continues
    from, or the empty tree where the log reaches back to it.
    `load(info)` gives a snapshot's tree or raises CorruptSnapshot."""
    earliest = earliest_base(infos, first)
    if target < earliest:
        raise LogDoesNotReach(f"zxid {show(target)} is older than the log reaches: it was purged "
                              f"up to the snapshot at {show(earliest)}")
    skipped = []
    for info in sorted(infos, key=lambda i: i.zxid, reverse=True):
        if not earliest <= info.zxid <= target:
            continue
        try:
            return Base(info.zxid, load(info), info, tuple(skipped))
        except CorruptSnapshot as e:
            skipped.append((info.zxid, str(e)))
    if earliest == 0:
        return Base(0, DataTree(), None, tuple(skipped))
    reasons = "; ".join(f"{show(z)}: {why}" for z, why in skipped)
    raise LogDoesNotReach(f"no readable snapshot between {show(earliest)} and {show(target)} "
                          f"to replay from ({reasons})")


class Timeline:
    """A tree stepping forward one row at a time; each step gives the row's entry.

    After a row that cannot be applied (bad crc, undecodable, or a gap before
    it), `stopped` says why and later entries carry no result: the server cuts
    its log at such a row, and a guess would be worse than nothing.
    """

    def __init__(self, zxid: int, tree: DataTree | None, stopped: str | None = None):
        self.zxid = zxid
        self.tree = tree
        self.applied = 0
        self.stopped = stopped or (None if tree is not None else "no tree to replay on")

    def skips_to(self, row) -> bool:
        """Whether rows are missing between the last one applied and `row`."""
        return row.zxid > self.zxid and not follows(self.zxid, row.zxid)

    def stop(self, reason: str) -> None:
        self.stopped = reason

    def restart(self, zxid: int, tree: DataTree) -> None:
        """Go on from another snapshot: the rows between are gone (purged)."""
        self.zxid, self.tree, self.stopped = zxid, tree, None

    def step(self, row):
        txn, problem = read_txn(row)
        if self.stopped is not None or row.zxid <= self.zxid:
            return describe(row, txn, problem)
        if problem is not None:
            self.stopped = f"the row at {show(row.zxid)} is bad: {problem}"
            return describe(row, txn, problem)
        if self.skips_to(row):
            self.stopped = (f"the log skips from {show(self.zxid)} to {show(row.zxid)} "
                            f"(damaged, or purged while it was read)")
            return describe(row, txn, problem)
        removed = self.tree.ephemerals(txn.session) if txn.type == CLOSE_SESSION else ()
        outcome = self.tree.apply(txn)
        self.zxid = row.zxid
        self.applied += 1
        return describe(row, txn, None, outcome, removed)
