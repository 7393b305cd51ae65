"""What the ZAB state machine asks its shell to do, in the order given.

The shell carries actions out in order. Persisting is asynchronous (group
commit): after a Persist the shell calls `logged(zxid)` once the entries are
on disk; Truncate, InstallSnapshot and SaveEpochs must be done before the
next action is carried out. Snapshots are the shell's business: it takes
them when it likes, tells the core with `snapshotted(zxid)`, and turns a
SendSnapshot into a Snap carrying that snapshot's chunks.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    message: object


@dataclass(frozen=True, slots=True)
class Persist:
    """Append entries ((zxid, payload), ...) to the log; report with
    logged(upto, generation). An empty Persist is a barrier: report it once
    everything before it is done. The generation lets the core ignore a
    report that a Truncate or InstallSnapshot issued since has made stale."""

    entries: tuple
    generation: int
    upto: int


@dataclass(frozen=True, slots=True)
class Truncate:
    """Drop every log entry after zxid (never an applied one)."""

    zxid: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """The leader's snapshot at zxid (chunks; empty for the empty tree) becomes
    this server's applied state and only snapshot, and these entries its whole
    log, durably and at once."""

    zxid: int
    snapshot: tuple
    entries: tuple


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Send `to` a Snap of this server's snapshot at zxid and these entries."""

    to: int
    epoch: int
    zxid: int
    entries: tuple


@dataclass(frozen=True, slots=True)
class SaveEpochs:
    accepted_epoch: int
    current_epoch: int


@dataclass(frozen=True, slots=True)
class Apply:
    """These entries ((zxid, payload), ...) are committed: apply them in order."""

    entries: tuple


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """role is LOOKING, FOLLOWING or LEADING; serving says whether clients may be served."""

    role: int
    leader: int
    epoch: int
    serving: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncDone:
    """A sync with this id may answer once everything up to zxid is applied."""

    id: int
    zxid: int


@dataclass(frozen=True, slots=True)
class SessionsAlive:
    """On the leader: sessions that a follower's clients kept alive."""

    sessions: tuple
