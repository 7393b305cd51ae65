"""What the server's threads hand each other: one small record per kind.

Each stage of server/pipeline.py takes its own family of records, and a
stage dispatches on the record's type, never on a tag inside it.
"""

from typing import NamedTuple

# -- into the ZAB stage (server/replication.py), from any thread --------------


class Start(NamedTuple):
    """The server has started: look for a leader."""


class Tick(NamedTuple):
    """tick_ms has passed (100 ms while looking for a leader)."""


class PeerMessage(NamedTuple):
    """A message read from the link to server sid; more: the reader already
    holds further input from that link (a burst is arriving)."""

    sid: int
    message: object
    more: bool = False


class LinkDown(NamedTuple):
    """The link to server sid broke; nothing sent on it before is delivered after."""

    sid: int


class Logged(NamedTuple):
    """The log writer has everything up to zxid of this generation on disk."""

    zxid: int
    generation: int


class Snapshotted(NamedTuple):
    """A snapshot at zxid is durable; generation tells a stale one apart."""

    zxid: int
    generation: int


class ClientWrite(NamedTuple):
    """A txn one of this server's clients sent, encoded but not stamped."""

    payload: bytes


class ClientSync(NamedTuple):
    """done() once this server has applied all a confirmed leader had."""

    done: object


class SessionTouched(NamedTuple):
    """A client of this follower showed its session alive; told to the leader on a ping."""

    session: int


class Deferred(NamedTuple):
    """Actions the log writer stepped but cannot carry out itself (they wait
    for the log writer); the zab thread carries them out, before anything else."""

    actions: tuple


# -- into the commit stage (server/commit.py), in ZAB's order ------------------


class Committed(NamedTuple):
    """These (zxid, payload) entries are committed: apply them in order."""

    entries: tuple


class SyncReached(NamedTuple):
    """A sync may be answered once everything up to zxid is applied."""

    zxid: int
    done: object


class TreeInstalled(NamedTuple):
    """A leader's snapshot (chunks) at zxid replaces the applied tree."""

    zxid: int
    chunks: tuple


class ServingChanged(NamedTuple):
    """Clients may (or may no longer) be served; leader says in which role."""

    serving: bool
    leader: bool
    epoch: int


class ReadOnlyChanged(NamedTuple):
    """With read_only_mode: looking for a leader for longer than the grace
    period, so read-only clients are served from the tree as applied (True);
    or a leader is found and they no longer are (False)."""

    read_only: bool


# -- into the log writer (server/logwriter.py) ---------------------------------


class Append(NamedTuple):
    """Entries to append, then report Logged(upto, generation); empty: a barrier."""

    entries: tuple
    generation: int
    upto: int


class DiskTask(NamedTuple):
    """operation(wal), run after everything queued before it; the caller waits on done."""

    operation: object
    done: object
    box: dict
