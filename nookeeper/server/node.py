"""ServerNode: the lifetime of one server process, and the handshake.

Every server, a one-member ensemble included, runs ZAB: the tree is rebuilt
by applying the committed log once the server has synchronised with its
leader, sessions included, so a client reconnecting within its timeout
finds its session and its ephemerals. Clients are served only while ZAB says
so; a server that loses its leader or its quorum closes its client
connections so that clients move to the majority. The request path itself
is server/pipeline.py.
"""

import logging
import os
import threading
import time

from construct import Container

from nookeeper.server.clientport import make_client_port
from nookeeper.server.pipeline import Pipeline
from nookeeper.server.reaper import ContainerReaper
from nookeeper.server.state import now_ms
from nookeeper.server.stats import ServerStats
from nookeeper.wire.ops import CREATE_SESSION
from nookeeper.wal import DB_NAME, WriteAheadLog
from nookeeper.wire.client import encode_connect_response

log = logging.getLogger("nookeeper.node")

_U64 = (1 << 64) - 1
_EXPIRED_PASSWD = b"\x00" * 16


def _signed64(value):
    value &= _U64
    return value - (1 << 64) if value >= 1 << 63 else value


def _handshake_wait_s(requested_timeout_ms):
    """How long a reconnect may wait for the leader's word: a third of the
    session timeout the client asked for (our client's own handshake budget),
    so that it can still try another server in time."""
    return min(max(requested_timeout_ms / 3000.0, 0.5), 10.0)


class ServerNode:
    def __init__(self, config):
        self.config = config
        self.stats = ServerStats()
        self._stopping = threading.Event()
        self.started_at = time.time()
        self.wal = WriteAheadLog(str(config.data_dir / DB_NAME))
        self._last_session_id = _signed64(
            ((now_ms() << 24) & _U64) >> 8 | (config.server_id << 56)
        )
        self.pipeline = Pipeline(config, self.wal, self.stats, self.fatal)
        self.state = self.pipeline.state
        self.replication = self.pipeline.zab
        self.reaper = ContainerReaper(self.pipeline, config.container_check_interval_ms,
                                      config.container_max_per_minute,
                                      config.container_max_never_used_ms)
        self.client_port = make_client_port(self, config.client_host, config.client_port)
        self._threads = []

    # -- lifetime -------------------------------------------------------------

    @property
    def client_address(self):
        return self.client_port.server_address[:2]

    def start(self):
        self.pipeline.start()
        for target, name, args in ((self.client_port.serve_forever, "client-port", ()),
                                   (self._expire_loop, "session-expirer", ()),
                                   (self.reaper.run, "container-reaper", (self._stopping,))):
            thread = threading.Thread(target=target, name=name, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)
        host, port = self.client_address
        log.info("client port %s:%d open; clients are served once ZAB has a leader", host, port)

    def stop(self):
        self._stopping.set()
        self.client_port.shutdown()
        self.client_port.server_close()
        for conn in self.state.connections():
            conn.close(flush=False)
        self.pipeline.stop()
        self.wal.close()

    def fatal(self, message):
        """A write that cannot be logged must never be acknowledged: stop the process."""
        log.critical("%s; stopping the server", message)
        logging.shutdown()
        os._exit(1)

    # -- sessions -----------------------------------------------------------

    def _negotiate(self, requested):
        return min(max(requested, self.config.min_session_timeout_ms),
                   self.config.max_session_timeout_ms)

    def _new_session_id(self):
        state = self.state
        with state.lock:
            while True:
                self._last_session_id = _signed64(self._last_session_id + 1)
                candidate = self._last_session_id
                if candidate not in (0, -(1 << 63)) and candidate not in state.sessions:
                    return candidate

    def attach(self, conn, request):
        """The handshake: a new session, a resumed one, or the expired answer."""
        read_only = None if request.readOnly is None else False
        peer = f"{conn.address[0]}:{conn.address[1]}"
        last_zxid = self.pipeline.last_zxid
        if not self.state.serving:
            log.info("session %#x from %s: not serving (no leader yet); closing without an "
                     "answer", request.sessionId, peer)
            return False
        if request.lastZxidSeen > last_zxid:
            log.warning("session %#x from %s has seen zxid %#x, beyond ours (%#x); closing so "
                        "it tries another server", request.sessionId, peer,
                        request.lastZxidSeen, last_zxid)
            return False
        if request.sessionId == 0:
            return self._create_session(conn, request, read_only)
        return self._resume_session(conn, request, read_only)

    def _create_session(self, conn, request, read_only):
        timeout = self._negotiate(request.timeOut)
        session_id = self._new_session_id()
        passwd = os.urandom(16)
        created = threading.Event()
        self.pipeline.submit_write(
            session_id, 0, CREATE_SESSION, (), Container(timeOut=timeout, passwd=passwd),
            done=lambda txn, outcome: created.set(),
        )
        wait_s = max(timeout / 1000.0, 2.0)
        if not created.wait(wait_s):
            log.error("session %#x was not committed within %.1fs; dropping %r",
                      session_id, wait_s, conn)
            return False
        with self.state.lock:
            self.state.bind(conn, session_id, timeout)
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
        state = self.state
        session_id = request.sessionId
        peer = f"{conn.address[0]}:{conn.address[1]}"
        with state.lock:
            previous = state.bound.pop(session_id, None)
        if previous is not None:
            log.info("session %#x moves from %r to a new connection", session_id, previous)
            previous.close(flush=False)
        wait_s = _handshake_wait_s(request.timeOut)
        if not self._confirmed_sync(wait_s):
            log.info("session %#x from %s: no leader confirmed within %.1fs; "
                     "closing without an answer", session_id, peer, wait_s)
            return False
        with state.lock:
            # Checked and bound under one lock: applying its closeSession looks
            # up the bound connection under this lock too, and closes it.
            info = state.tree.sessions.get(session_id)
            if info is None or info.passwd != request.passwd:
                expired = True
            elif state.sessions.is_closing(session_id):
                log.info("session %#x from %s: its close is in flight; closing without "
                         "an answer", session_id, peer)
                return False
            else:
                expired = False
                now = now_ms()
                if not state.sessions.touch(session_id, now):
                    state.sessions.track(session_id, info.timeout, now)
                state.bind(conn, session_id, info.timeout)
        if expired:
            why = "closed" if info is None else "alive, but the password does not match"
            log.info("session %#x is %s at zxid %#x (confirmed with the leader); "
                     "telling %s it expired", session_id, why, self.pipeline.last_zxid, peer)
            conn.sock.sendall(encode_connect_response(0, 0, _EXPIRED_PASSWD, read_only))
            return False
        self.pipeline.touch(session_id)
        conn.sock.sendall(encode_connect_response(info.timeout, session_id, info.passwd, read_only))
        log.info("session %#x resumed from %s", session_id, peer)
        return True

    def _confirmed_sync(self, wait_s):
        """Whether this server has applied all the current leader had when asked."""
        done = threading.Event()
        self.pipeline.submit_sync(done.set)
        return done.wait(wait_s)

    def _expire_loop(self):
        interval = max(self.config.tick_ms / 4000.0, 0.01)
        while not self._stopping.wait(interval):
            for session_id in self.state.expired_sessions():
                log.info("session %#x expired (timeout %sms)", session_id,
                         self.state.session_timeout(session_id))
                self.pipeline.close_session(session_id)
