"""--verify: is every stored row and snapshot one the server would accept?

A row must match its crc, decode, agree with its own columns, and follow
the row before it (dump_zxid.follows). A snapshot must match its row's crc,
chunk count and size, decode, and hold the tree at its own zxid. The log is
checked up to its first bad row only: the server cuts everything from there.
"""

from typing import NamedTuple

from nookeeper.snapshot import CorruptSnapshot
from nookeeper.tools.dump_replay import snapshot_tree
from nookeeper.tools.dump_txns import read_txn
from nookeeper.tools.dump_zxid import follows, show
from nookeeper.zab.zxid import counter_of, epoch_of, fmt


class Problem(NamedTuple):
    what: str              # "row" or "snapshot"
    zxid: int
    rowid: int | None
    message: str

    def __str__(self):
        if self.what == "row":
            return f"BAD row zxid {show(self.zxid)} rowid {self.rowid}: {self.message}"
        return f"BAD snapshot zxid {show(self.zxid)}: {self.message}"


def succession_problem(previous: int, zxid: int) -> str | None:
    """Why `zxid` cannot follow `previous`, or None when it can."""
    if follows(previous, zxid):
        return None
    if epoch_of(zxid) == epoch_of(previous):
        missing = counter_of(zxid) - counter_of(previous) - 1
        if missing == 1:
            return f"does not follow {fmt(previous)}: {fmt(previous + 1)} is missing"
        if missing > 1:
            return (f"does not follow {fmt(previous)}: {missing} txns are missing "
                    f"({fmt(previous + 1)} to {fmt(zxid - 1)})")
        return f"does not follow {fmt(previous)}: zxids must increase"
    if epoch_of(zxid) < epoch_of(previous):
        return f"does not follow {fmt(previous)}: its epoch is older"
    return (f"does not follow {fmt(previous)}: a new epoch starts at counter 1, "
            f"this one at {counter_of(zxid)}")


def first_row_follows(infos, first) -> int | None:
    """What the log's first row must follow: the newest snapshot before it
    (purging and a leader's SNAP cut the log right after a snapshot), else the
    empty tree (0) when there are no snapshots or the row could be the first
    txn ever. None when neither holds but snapshots exist at or after it: the
    server starts from one of those, and a purge deletes snapshots before the
    rows behind them, so the head of the log may be left over from one."""
    if first is None:
        return None if infos else 0
    before = [info.zxid for info in infos if info.zxid < first]
    if before:
        return max(before)
    return 0 if not infos or follows(0, first) else None


class LogCheck:
    """Feeds on rows in zxid order; `start` is what the first row must follow
    (None: anything).

    `purged_after(zxid)` says whether a purge removed the rows after `zxid`
    since the check began: on a running server a purge may delete rows ahead
    of the check, and the gap that leaves is not damage.
    """

    def __init__(self, start: int | None, purged_after):
        self.start = start
        self.previous = start
        self.purged_after = purged_after
        self.count = 0
        self.first = None
        self.last = None

    def check(self, row) -> Problem | None:
        _txn, problem = read_txn(row)
        if problem is None and self.previous is not None:
            problem = succession_problem(self.previous, row.zxid)
            if problem is not None and self.purged_after(self.previous):
                problem = None
        if problem is not None:
            return Problem("row", row.zxid, row.rowid, problem)
        self.previous = self.last = row.zxid
        if self.first is None:
            self.first = row.zxid
        self.count += 1
        return None


def snapshot_problem(info, chunks) -> Problem | None:
    try:
        snapshot_tree(info, chunks)
    except CorruptSnapshot as e:
        return Problem("snapshot", info.zxid, None, str(e))
    return None


def summary(check: LogCheck, snapshots: int) -> str:
    if not check.count:
        log = "no txns"
    elif check.start is None:
        log = f"{check.count} txns from {show(check.first)} to {show(check.last)} " \
              "(starting before the oldest snapshot)"
    else:
        where = "from the empty tree" if check.start == 0 else \
            f"after the snapshot at {fmt(check.start)}"
        log = f"{check.count} txns from {show(check.first)} to {show(check.last)} ({where})"
    return (f"ok: {log}, {snapshots} snapshots: "
            f"crcs, bodies, zxid succession and snapshot trees all good")
