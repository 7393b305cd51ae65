"""Session liveness: when each session expires if nothing more is heard from it.

What a session *is* (its id, timeout, password, ephemerals) is replicated
state in the DataTree, created and ended by txns. Whether a session has
ended is never read from this table: a server knows it only from its tree
after a confirmed sync with the leader (ServerNode._resume_session). This
table only keeps time:
deadlines, rounded up to the next tick as ZooKeeper's expiry buckets do, so a
session expires between T and T+tick after its last frame. The clock is passed
in, which keeps the table deterministic under test.
"""


class SessionTable:
    def __init__(self, tick_ms):
        self.tick_ms = tick_ms
        self._deadline = {}
        self._timeout = {}
        self._closing = set()

    def _round_up(self, ms):
        return (ms // self.tick_ms + 1) * self.tick_ms

    def track(self, session_id, timeout_ms, now_ms):
        self._timeout[session_id] = timeout_ms
        self._closing.discard(session_id)
        self._deadline[session_id] = self._round_up(now_ms + timeout_ms)

    def touch(self, session_id, now_ms):
        """Renew a session; False if it is unknown or already closing."""
        timeout = self._timeout.get(session_id)
        if timeout is None or session_id in self._closing:
            return False
        self._deadline[session_id] = self._round_up(now_ms + timeout)
        return True

    def is_closing(self, session_id):
        return session_id in self._closing

    def is_live(self, session_id):
        return session_id in self._timeout and session_id not in self._closing

    def mark_closing(self, session_id):
        """Refuse further requests while the closeSession txn is in flight."""
        if session_id in self._timeout:
            self._closing.add(session_id)

    def forget(self, session_id):
        self._deadline.pop(session_id, None)
        self._timeout.pop(session_id, None)
        self._closing.discard(session_id)

    def expired(self, now_ms):
        """Sessions past their deadline that are not already closing."""
        return [
            sid for sid, deadline in self._deadline.items()
            if deadline <= now_ms and sid not in self._closing
        ]

    def timeout_of(self, session_id):
        return self._timeout.get(session_id)

    def __len__(self):
        return len(self._timeout)

    def __contains__(self, session_id):
        return session_id in self._timeout
