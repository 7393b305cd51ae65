"""Messages between servers of an ensemble.

Every message of the broadcast and sync phases carries the epoch it belongs
to, so a late or duplicated message from an older epoch is recognised and
dropped instead of corrupting the current one. Log entries travel as
(zxid, payload) pairs; the payload is opaque to ZAB (the encoded txn).
"""

from dataclasses import dataclass

LOOKING = 0
FOLLOWING = 1
LEADING = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """Fast leader election notification: whom the sender backs, and its state."""

    round: int
    leader: int
    zxid: int
    epoch: int
    state: int


@dataclass(frozen=True, slots=True)
class FollowerInfo:
    accepted_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    epoch: int


@dataclass(frozen=True, slots=True)
class AckEpoch:
    epoch: int
    current_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class Diff:
    """Entries the follower lacks, to append after its last zxid."""

    epoch: int
    entries: tuple


@dataclass(frozen=True, slots=True)
class Trunc:
    """Cut the follower's log after zxid (an uncommitted tail of an old leader), then Diff."""

    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Snap:
    """Replace the follower's state with the leader's snapshot at zxid (its
    chunks, opaque to ZAB; none for the empty tree at zxid 0) and its log
    with the entries after it."""

    epoch: int
    zxid: int
    snapshot: tuple
    entries: tuple


@dataclass(frozen=True, slots=True)
class NewLeader:
    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class AckNewLeader:
    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class UpToDate:
    epoch: int
    commit_zxid: int


@dataclass(frozen=True, slots=True)
class Proposal:
    epoch: int
    zxid: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """Cumulative: the follower has logged every entry up to zxid."""

    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Cumulative: every entry up to zxid is committed."""

    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Leader heartbeat; carries the commit point so a lost Commit is repaired.
    Its round comes back in the PingReply: a reply to round r proves the
    follower still followed this leader after the leader sent round r."""

    epoch: int
    commit_zxid: int
    round: int = 0


@dataclass(frozen=True, slots=True)
class PingReply:
    """Follower heartbeat: its logged zxid (a cumulative ack) and the sessions
    its clients kept alive since the last reply."""

    epoch: int
    logged_zxid: int
    sessions: tuple
    round: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    """A client write forwarded by a follower to the leader (payload opaque)."""

    epoch: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """confirm: answer only once a quorum has shown this is still the leader
    (a Ping round answered after the request came), so that the answer
    holds everything any leader committed before the request."""

    epoch: int
    id: int
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class SyncReply:
    """The leader's last proposed zxid when the sync reached it."""

    epoch: int
    id: int
    zxid: int


MESSAGE_TYPES = (
    Vote, FollowerInfo, LeaderInfo, AckEpoch, Diff, Trunc, Snap, NewLeader,
    AckNewLeader, UpToDate, Proposal, Ack, Commit, Ping, PingReply, Request,
    SyncRequest, SyncReply,
)
