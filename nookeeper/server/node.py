"""ServerNode: the lifetime of one server process, and the handshake.

Every server, a one-member ensemble included, runs ZAB: the tree is rebuilt
by applying the committed log once the server has synchronised with its
leader, sessions included, so a client reconnecting within its timeout
finds its session and its ephemerals. Clients are served only while ZAB says
so; a server that loses its leader or its quorum closes its client
connections so that clients move to the majority. With read_only_mode, one
that has looked for a leader for the grace period serves clients that asked
for read-only from the tree as applied, on sessions local to it, until a
leader is found (_attach_read_only). The request path itself is
server/pipeline.py.
"""

import logging
import os
import threading
import time

from construct import Container

from nookeeper.server.clientport import ConnectionCounts, make_client_port
from nookeeper.server.pipeline import Pipeline
from nookeeper.server.reaper import ContainerReaper
from nookeeper.server.state import now_ms
from nookeeper.server.stats import ServerStats
from nookeeper.server.tls import ReloadingContext, server_context
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
        # The plain client port and the secure one (TLS), each optional; their
        # connections count against one set of caps.
        counts = ConnectionCounts()
        self.client_port = self.secure_client_port = None
        if config.client_port is not None:
            self.client_port = make_client_port(self, config.client_host, config.client_port,
                                                counts=counts)
        if config.secure_client_port is not None:
            files = config.tls_files
            context = ReloadingContext(files, lambda: server_context(files, config.client_auth),
                                       "secure client port")
            self.secure_client_port = make_client_port(
                self, config.secure_client_host, config.secure_client_port, context, counts)
        self.client_ports = [p for p in (self.client_port, self.secure_client_port) if p]
        self.admin_port = self._admin_port(config)
        self._threads = []

    # -- lifetime -------------------------------------------------------------

    @property
    def client_address(self):
        """The plain client port's (host, port), or the secure one's without it."""
        return self.client_ports[0].server_address[:2]

    @property
    def secure_client_address(self):
        port = self.secure_client_port
        return None if port is None else port.server_address[:2]

    def _admin_port(self, config):
        """The admin HTTP port (server/admin.py) on admin_address, or None."""
        if config.admin_port is None:
            return None
        from nookeeper.server.admin import AdminPort
        from nookeeper.server.metrics import make_registry

        host, port = config.admin_host, config.admin_port
        try:
            return AdminPort(host, port, self, make_registry(self))
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise OSError(exc.errno, f"admin_address {shown}: cannot listen: "
                                     f"{exc.strerror or exc}") from None

    def start(self):
        self.pipeline.start()
        if self.admin_port is not None:
            self.admin_port.start()
        ports = [(port.serve_forever, "secure-client-port" if port.tls else "client-port", ())
                 for port in self.client_ports]
        for target, name, args in (*ports,
                                   (self._expire_loop, "session-expirer", ()),
                                   (self.reaper.run, "container-reaper", (self._stopping,))):
            thread = threading.Thread(target=target, name=name, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)
        for port in self.client_ports:
            host, port_number = port.server_address[:2]
            log.info("%s %s:%d open; clients are served once ZAB has a leader",
                     "secure client port (TLS, client_auth %s)" % self.config.client_auth
                     if port.tls else "client port", host, port_number)

    def stop(self):
        self._stopping.set()
        if self.admin_port is not None:
            self.admin_port.stop()
        for port in self.client_ports:
            port.shutdown()
            port.server_close()
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
        if self.state.read_only:
            return self._attach_read_only(conn, request)
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

    # -- read-only mode (read_only_mode, no leader) -----------------------------

    def _attach_read_only(self, conn, request):
        """The handshake as ZooKeeper's ReadOnlyZooKeeperServer answers it (with
        local sessions, which ZooKeeper 3.8 needs to admit new sessions in this
        mode): only a client that said it can be read-only; a new session is
        local to this server (never logged, so every read-write server answers
        it "expired"); a global session is refused without an answer, since
        this server cannot tell whether it still lives; any other id is told
        it expired, with the readOnly byte set."""
        state = self.state
        generation = state.read_only_generation
        peer = f"{conn.address[0]}:{conn.address[1]}"
        session_id = request.sessionId
        if not request.readOnly:
            log.info("session %#x from %s: read-only mode, and the client did not ask for it; "
                     "closing without an answer", session_id, peer)
            return False
        last_zxid = self.pipeline.last_zxid
        if request.lastZxidSeen > last_zxid:
            log.warning("session %#x from %s has seen zxid %#x, beyond ours (%#x); closing so "
                        "it tries another server", session_id, peer, request.lastZxidSeen,
                        last_zxid)
            return False
        if session_id == 0:
            timeout = self._negotiate(request.timeOut)
            passwd = os.urandom(16)
            session_id = self._new_session_id()
            with state.tree_lock:
                while session_id in state.tree.sessions:
                    session_id = self._new_session_id()
        else:
            with state.tree_lock:
                global_session = session_id in state.tree.sessions
            if global_session:
                log.info("session %#x from %s: a global session, not resumed in read-only "
                         "mode; closing without an answer", session_id, peer)
                return False
            with state.lock:
                previous = state.bound.pop(session_id, None)
            if previous is not None:
                previous.close(flush=False)
            timeout, passwd = state.local_sessions.get(session_id, (0, None))
            if passwd != request.passwd:
                log.info("session %#x from %s is no read-only session of this server; "
                         "telling it it expired", session_id, peer)
                conn.sock.sendall(encode_connect_response(0, 0, _EXPIRED_PASSWD, True))
                return False
        with state.lock:
            if not state.read_only or state.read_only_generation != generation:
                return False  # read-only mode ended meanwhile
            if request.sessionId == 0:
                state.local_sessions[session_id] = (timeout, passwd)
                state.sessions.track(session_id, timeout, now_ms())
            elif not state.sessions.touch(session_id, now_ms()):
                return False  # expired meanwhile
            conn.read_only = True
            state.bind(conn, session_id, timeout)
        conn.sock.sendall(encode_connect_response(timeout, session_id, passwd, True))
        log.info("read-only session %#x %s for %s, timeout %dms", session_id,
                 "established" if request.sessionId == 0 else "resumed", peer, timeout)
        return True

    def _confirmed_sync(self, wait_s):
        """Whether this server has applied all the current leader had when asked."""
        done = threading.Event()
        self.pipeline.submit_sync(done.set)
        return done.wait(wait_s)

    def _expire_loop(self):
        interval = max(self.config.tick_ms / 4000.0, 0.01)
        while not self._stopping.wait(interval):
            for session_id, conn in self.state.expired_local_sessions():
                log.info("read-only session %#x expired", session_id)
                if conn is not None:
                    conn.close(flush=False)
            for session_id in self.state.expired_sessions():
                log.info("session %#x expired (timeout %sms)", session_id,
                         self.state.session_timeout(session_id))
                self.pipeline.close_session(session_id)
