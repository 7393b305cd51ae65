"""The values a client hands to user code: session states, watch events, Stat.

They are plain strings and named tuples so they compare, print and pickle
the way kazoo's do; code written for kazoo's KazooState and EventType reads
the same against these.
"""

from collections import namedtuple


class KeeperState:
    """The session as the application sees it."""

    CONNECTED = "CONNECTED"
    # Connected to a server that serves reads only (it lost its quorum).
    CONNECTED_RO = "CONNECTED_RO"
    # The connection is gone but the session may still be alive: keep state.
    SUSPENDED = "SUSPENDED"
    # The session is over (expired, closed, or never started): ephemerals
    # and watches are gone.
    LOST = "LOST"


class EventType:
    """What happened to a watched node; NONE means the session changed."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    NONE = "NONE"


# Wire event codes (spec §9.2) for the types a server sends.
EVENT_TYPES = {
    1: EventType.CREATED,
    2: EventType.DELETED,
    3: EventType.CHANGED,
    4: EventType.CHILD,
}


class WatchedEvent(namedtuple("WatchedEvent", "type state path")):
    """One watch firing: `type` is an EventType, `state` a KeeperState."""

    __slots__ = ()


_STAT_FIELDS = (
    "czxid mzxid ctime mtime version cversion aversion "
    "ephemeralOwner dataLength numChildren pzxid"
)


class ZnodeStat(namedtuple("ZnodeStat", _STAT_FIELDS)):
    """A node's Stat record, with kazoo's friendlier aliases."""

    __slots__ = ()

    @classmethod
    def from_record(cls, record):
        """From the wire codec's Stat container."""
        return cls(
            record.czxid, record.mzxid, record.ctime, record.mtime,
            record.version, record.cversion, record.aversion,
            record.ephemeralOwner, record.dataLength, record.numChildren,
            record.pzxid,
        )

    @property
    def acl_version(self):
        return self.aversion

    @property
    def children_version(self):
        return self.cversion

    @property
    def created(self):
        """Creation time in seconds since the epoch."""
        return self.ctime / 1000.0

    @property
    def last_modified(self):
        """Last data change in seconds since the epoch."""
        return self.mtime / 1000.0

    @property
    def children_count(self):
        return self.numChildren

    @property
    def data_length(self):
        return self.dataLength

    @property
    def owner_session_id(self):
        """The owning session of an ephemeral node, None for a persistent one."""
        return self.ephemeralOwner or None

    @property
    def creation_transaction_id(self):
        return self.czxid

    @property
    def last_modified_transaction_id(self):
        return self.mzxid
