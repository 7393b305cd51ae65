"""ServerNode: wiring and the lifetime of one server process.

Every server, a one-member ensemble included, runs ZAB (server/replication.py):
the tree is rebuilt by applying the committed log once the server has
synchronised with its leader, sessions included, so a client reconnecting
within its timeout finds its session and its ephemerals. Clients are served
only while ZAB says so; a server that loses its leader or its quorum closes
its client connections so that clients move to the majority.
"""

import logging
import os
import threading
import time

from construct import Container

from nookeeper.server.clientport import make_client_port
from nookeeper.server.connection import replies_held
from nookeeper.server.replication import Replication
from nookeeper.server.sessions import SessionTable
from nookeeper.server.stats import ServerStats
from nookeeper.server.watches import WatchTable
from nookeeper.tree import DataTree
from nookeeper.txn import CLOSE_SESSION, CREATE_SESSION
from nookeeper.wal import WriteAheadLog
from nookeeper.wire.client import encode_connect_response

log = logging.getLogger("nookeeper.node")

DB_NAME = "nookeeper.db"
_U64 = (1 << 64) - 1
_EXPIRED_PASSWD = b"\x00" * 16


def _signed64(value):
    value &= _U64
    return value - (1 << 64) if value >= 1 << 63 else value


def _now_ms():
    return int(time.time() * 1000)


def _handshake_wait_s(requested_timeout_ms):
    """How long a reconnect may wait for the leader's word: a third of the
    session timeout the client asked for (our client's own handshake budget),
    so that it can still try another server in time."""
    return min(max(requested_timeout_ms / 3000.0, 0.5), 10.0)


class ServerNode:
    def __init__(self, config):
        self.config = config
        self.serving = False
        self.is_leader = False
        self.tree = DataTree()
        self.tree_lock = threading.RLock()
        self.watches = WatchTable()
        self.stats = ServerStats()
        self.sessions = SessionTable(config.tick_ms)
        self._lock = threading.Lock()
        self._bound = {}
        self._stopping = threading.Event()
        self.started_at = time.time()
        self.wal = WriteAheadLog(str(config.data_dir / DB_NAME))
        self._last_session_id = _signed64(
            ((_now_ms() << 24) & _U64) >> 8 | (config.server_id << 56)
        )
        self.replication = Replication(self, self.wal)
        self.replication.writer.on_batch = self.stats.wal_batch
        self.client_port = make_client_port(self, config.client_host, config.client_port)
        self._threads = []

    # -- lifetime -------------------------------------------------------------

    @property
    def client_address(self):
        return self.client_port.server_address[:2]

    @property
    def mode(self):
        return self.replication.mode

    @property
    def epoch(self):
        return self.replication.epoch

    def start(self):
        self.replication.start()
        for target, name in ((self.client_port.serve_forever, "client-port"),
                             (self._expire_loop, "session-expirer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        host, port = self.client_address
        log.info("client port %s:%d open; clients are served once ZAB has a leader", host, port)

    def stop(self):
        self._stopping.set()
        self.client_port.shutdown()
        self.client_port.server_close()
        for conn in self.connections():
            conn.close(flush=False)
        self.replication.stop()
        self.wal.close()

    def fatal(self, message):
        """A write that cannot be logged must never be acknowledged: stop the process."""
        log.critical("%s; stopping the server", message)
        logging.shutdown()
        os._exit(1)

    # -- applying committed txns ------------------------------------------

    def apply_txn(self, txn):
        with self.tree_lock:
            outcome = self.tree.apply(txn)
            for event_type, path in outcome.events:
                for conn in self.watches.trigger(event_type, path):
                    conn.send_event(event_type, path)
        self.stats.applied(txn.zxid)
        if txn.type == CREATE_SESSION and outcome.err == 0:
            with self._lock:
                self.sessions.track(txn.session, txn.request.timeOut, _now_ms())
        elif txn.type == CLOSE_SESSION:
            with self._lock:
                self.sessions.forget(txn.session)
                conn = self._bound.get(txn.session)
            if conn is not None and not conn.closing_session:
                # Expired by the leader: the client hears nothing, as with ZooKeeper.
                conn.close(flush=False)
            log.info("session %#x closed at zxid %#x", txn.session, txn.zxid)
        return outcome

    def replies_held(self):
        """Around a batch of applied txns: each connection's replies and events leave together."""
        return replies_held()

    def reset_tree(self, tree):
        """The applied state becomes a snapshot's (at start-up, or a leader's SNAP)."""
        with self.tree_lock:
            self.tree = tree
            self.watches = WatchTable()
        with self._lock:
            self.sessions = SessionTable(self.config.tick_ms)

    def start_serving(self, leader):
        """The local session table restarts from the tree, on every server: on
        a leader each session gets a full timeout from now (its old deadlines
        were the previous leader's, which this server never saw), and a
        follower keeps no closing mark from a leadership it has lost."""
        now = _now_ms()
        with self.tree_lock:
            sessions = dict(self.tree.sessions)
        with self._lock:
            self.sessions = SessionTable(self.config.tick_ms)
            for session_id, info in sessions.items():
                self.sessions.track(session_id, info.timeout, now)
            self.is_leader = leader
            self.serving = True
        log.info("serving clients at zxid %#x (epoch %d), %d sessions",
                 self.tree.last_zxid, self.epoch, len(sessions))

    def stop_serving(self):
        with self._lock:
            self.serving = False
            self.is_leader = False
        conns = self.connections()
        for conn in conns:
            conn.close(flush=False)
        log.warning("not serving clients: no leader; closed %d client connections", len(conns))

    def submit_write(self, session, cxid, txn_type, ids, request, done=None, request_bytes=None):
        self.replication.submit(session, cxid, txn_type, ids, request, done, request_bytes)

    def submit_sync(self, done):
        """A client's sync: confirmed, so a leader cut off from its quorum, which
        still takes itself for the leader until its sync limit, cannot answer
        it with a history that a newer leader has already moved past."""
        self.replication.sync(done)

    def sessions_alive(self, session_ids):
        now = _now_ms()
        with self._lock:
            for session_id in session_ids:
                self.sessions.touch(session_id, now)

    # -- sessions -----------------------------------------------------------

    def _negotiate(self, requested):
        return min(max(requested, self.config.min_session_timeout_ms),
                   self.config.max_session_timeout_ms)

    def _new_session_id(self):
        with self._lock:
            while True:
                self._last_session_id = _signed64(self._last_session_id + 1)
                candidate = self._last_session_id
                if candidate not in (0, -(1 << 63)) and candidate not in self.sessions:
                    return candidate

    def attach(self, conn, request):
        """The handshake: a new session, a resumed one, or the expired answer."""
        read_only = None if request.readOnly is None else False
        peer = f"{conn.address[0]}:{conn.address[1]}"
        if not self.serving:
            log.info("session %#x from %s: not serving (no leader yet); closing without an "
                     "answer", request.sessionId, peer)
            return False
        if request.lastZxidSeen > self.tree.last_zxid:
            log.warning("session %#x from %s has seen zxid %#x, beyond ours (%#x); closing so "
                        "it tries another server", request.sessionId, peer,
                        request.lastZxidSeen, self.tree.last_zxid)
            return False
        if request.sessionId == 0:
            return self._create_session(conn, request, read_only)
        return self._resume_session(conn, request, read_only)

    def _create_session(self, conn, request, read_only):
        timeout = self._negotiate(request.timeOut)
        session_id = self._new_session_id()
        passwd = os.urandom(16)
        created = threading.Event()
        self.submit_write(
            session_id, 0, CREATE_SESSION, (), Container(timeOut=timeout, passwd=passwd),
            done=lambda txn, outcome: created.set(),
        )
        wait_s = max(timeout / 1000.0, 2.0)
        if not created.wait(wait_s):
            log.error("session %#x was not committed within %.1fs; dropping %r",
                      session_id, wait_s, conn)
            return False
        with self._lock:
            self._bind(conn, session_id, timeout)
        conn.sock.sendall(encode_connect_response(timeout, session_id, passwd, read_only))
        log.info("session %#x established for %s:%d, timeout %dms",
                 session_id, conn.address[0], conn.address[1], timeout)
        return True

    def _resume_session(self, conn, request, read_only):
        """Only the leader may end a session, so "expired" is said only when a
        confirmed sync shows its closeSession committed: that answer is final
        for the client (kazoo's Lock adopts its old node on a new session only
        because of it). Anything short of that gets no answer at all, and the
        client tries another server."""
        session_id = request.sessionId
        peer = f"{conn.address[0]}:{conn.address[1]}"
        with self._lock:
            previous = self._bound.pop(session_id, None)
        if previous is not None:
            log.info("session %#x moves from %r to a new connection", session_id, previous)
            previous.close(flush=False)
        wait_s = _handshake_wait_s(request.timeOut)
        if not self._confirmed_sync(wait_s):
            log.info("session %#x from %s: no leader confirmed within %.1fs; "
                     "closing without an answer", session_id, peer, wait_s)
            return False
        with self._lock:
            # Checked and bound under one lock: applying its closeSession looks
            # up the bound connection under this lock too, and closes it.
            info = self.tree.sessions.get(session_id)
            if info is None or info.passwd != request.passwd:
                expired = True
            elif self.sessions.is_closing(session_id):
                log.info("session %#x from %s: its close is in flight; closing without "
                         "an answer", session_id, peer)
                return False
            else:
                expired = False
                now = _now_ms()
                if not self.sessions.touch(session_id, now):
                    self.sessions.track(session_id, info.timeout, now)
                self._bind(conn, session_id, info.timeout)
        if expired:
            why = "closed" if info is None else "alive, but the password does not match"
            log.info("session %#x is %s at zxid %#x (confirmed with the leader); "
                     "telling %s it expired", session_id, why, self.tree.last_zxid, peer)
            conn.sock.sendall(encode_connect_response(0, 0, _EXPIRED_PASSWD, read_only))
            return False
        if not self.is_leader:
            self.replication.touch(session_id)
        conn.sock.sendall(encode_connect_response(info.timeout, session_id, info.passwd, read_only))
        log.info("session %#x resumed from %s", session_id, peer)
        return True

    def _confirmed_sync(self, wait_s):
        """Whether this server has applied all the current leader had when asked."""
        done = threading.Event()
        self.replication.sync(done.set)
        return done.wait(wait_s)

    def _bind(self, conn, session_id, timeout):
        """With _lock held."""
        conn.session_id = session_id
        conn.timeout_ms = timeout
        self._bound[session_id] = conn

    def unbind(self, conn):
        with self._lock:
            if self._bound.get(conn.session_id) is conn:
                del self._bound[conn.session_id]

    def connections(self):
        with self._lock:
            return list(self._bound.values())

    def outstanding(self):
        return sum(conn.queued for conn in self.connections())

    def touch_session(self, session_id):
        with self._lock:
            self.sessions.touch(session_id, _now_ms())
            report = not self.is_leader
        if report:
            self.replication.touch(session_id)

    def session_is_live(self, session_id):
        with self._lock:
            return self.sessions.is_live(session_id)

    def session_timeout(self, session_id):
        with self._lock:
            return self.sessions.timeout_of(session_id)

    def begin_close(self, session_id):
        with self._lock:
            self.sessions.mark_closing(session_id)

    def _expire_loop(self):
        interval = max(self.config.tick_ms / 4000.0, 0.01)
        while not self._stopping.wait(interval):
            with self._lock:
                if not (self.serving and self.is_leader):
                    continue
                expired = self.sessions.expired(_now_ms())
                for session_id in expired:
                    self.sessions.mark_closing(session_id)
            for session_id in expired:
                log.info("session %#x expired (timeout %sms)", session_id,
                         self.session_timeout(session_id))
                self.submit_write(session_id, 0, CLOSE_SESSION, (), None)
