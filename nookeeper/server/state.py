"""ServerState: what one server holds in memory between its stages.

The applied tree and its watches (guarded by `tree_lock`, which every read
takes too), the local view of sessions and which connection each is bound
to (guarded by `lock`). The commit stage changes them, the client stages
read them; nothing here does I/O or knows about ZAB.
"""

import threading
import time

from nookeeper.server.sessions import SessionTable
from nookeeper.server.watches import WatchTable
from nookeeper.tree import DataTree


def now_ms():
    return int(time.time() * 1000)


class ServerState:
    def __init__(self, tick_ms):
        self.tick_ms = tick_ms
        self.tree = DataTree()
        self.tree_lock = threading.RLock()
        self.watches = WatchTable()
        self.lock = threading.Lock()
        self.sessions = SessionTable(tick_ms)
        self.bound = {}
        self.serving = False
        self.is_leader = False
        # read_only_mode without a leader: read-only clients served, their
        # sessions local to this server (id -> (timeout, passwd)), never logged.
        self.read_only = False
        self.read_only_generation = 0
        self.local_sessions = {}

    def reset_tree(self, tree):
        """The applied state becomes a snapshot's (at start-up, or a leader's SNAP)."""
        with self.tree_lock:
            self.tree = tree
            self.watches = WatchTable()
        with self.lock:
            self.sessions = SessionTable(self.tick_ms)

    def start_serving(self, leader):
        """The local session table restarts from the tree, on every server: on
        a leader each session gets a full timeout from now (its old deadlines
        were the previous leader's, which this server never saw), and a
        follower keeps no closing mark from a leadership it has lost.
        Returns how many sessions there are."""
        now = now_ms()
        with self.tree_lock:
            sessions = dict(self.tree.sessions)
        with self.lock:
            self.sessions = SessionTable(self.tick_ms)
            for session_id, info in sessions.items():
                self.sessions.track(session_id, info.timeout, now)
            self.is_leader = leader
            self.serving = True
        return len(sessions)

    def stop_serving(self):
        """Returns the connections bound, for the caller to close."""
        with self.lock:
            self.serving = False
            self.is_leader = False
            return list(self.bound.values())

    def start_read_only(self):
        """Read-only mode: the session table keeps the local sessions' deadlines
        only (a global session is never resumed here)."""
        with self.lock:
            self.read_only = True
            self.read_only_generation += 1
            self.local_sessions = {}
            self.sessions = SessionTable(self.tick_ms)

    def stop_read_only(self):
        """Returns the read-only connections, for the caller to close; their
        local sessions end with them."""
        with self.lock:
            self.read_only = False
            self.local_sessions = {}
            self.sessions = SessionTable(self.tick_ms)
            return list(self.bound.values())

    def expired_local_sessions(self):
        """In read-only mode: (session, its connection or None) for the local
        sessions past their deadline, now forgotten."""
        with self.lock:
            if not self.read_only:
                return []
            expired = []
            for session_id in self.sessions.expired(now_ms()):
                self.sessions.forget(session_id)
                self.local_sessions.pop(session_id, None)
                expired.append((session_id, self.bound.get(session_id)))
            return expired

    def close_local_session(self, session_id):
        """A read-only session's closeSession: forgotten here, nothing logged."""
        with self.lock:
            if self.local_sessions.pop(session_id, None) is not None:
                self.sessions.forget(session_id)

    # -- sessions --------------------------------------------------------------

    def bind(self, conn, session_id, timeout):
        """With lock held."""
        conn.session_id = session_id
        conn.timeout_ms = timeout
        self.bound[session_id] = conn

    def unbind(self, conn):
        with self.lock:
            if self.bound.get(conn.session_id) is conn:
                del self.bound[conn.session_id]

    def connections(self):
        with self.lock:
            return list(self.bound.values())

    def outstanding(self):
        return sum(conn.queued for conn in self.connections())

    def touch(self, session_id):
        """Returns whether the leader must hear of it (this server follows)."""
        with self.lock:
            self.sessions.touch(session_id, now_ms())
            return not (self.is_leader or self.read_only)

    def sessions_alive(self, session_ids):
        now = now_ms()
        with self.lock:
            for session_id in session_ids:
                self.sessions.touch(session_id, now)

    def session_is_live(self, session_id):
        with self.lock:
            return self.sessions.is_live(session_id)

    def session_timeout(self, session_id):
        with self.lock:
            return self.sessions.timeout_of(session_id)

    def begin_close(self, session_id):
        with self.lock:
            self.sessions.mark_closing(session_id)

    def expired_sessions(self):
        """On the serving leader: sessions past their deadline, now marked closing."""
        with self.lock:
            if not (self.serving and self.is_leader):
                return []
            expired = self.sessions.expired(now_ms())
            for session_id in expired:
                self.sessions.mark_closing(session_id)
            return expired
