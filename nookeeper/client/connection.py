"""The I/O thread: the only code that touches a socket.

One thread per client owns the connection. It connects (trying hosts in
turn), resumes the session, re-sends credentials and watches, writes the
requests other threads queue, pings when idle, and turns what the protocol
(protocol.py: which reply answers which request) makes of the bytes it reads
into results and watch callbacks for the watcher thread. It never runs user
code, so a slow callback cannot starve pings or replies.

Failure model (spec §12): a dropped connection fails the requests in flight
with ConnectionLoss and leaves the session SUSPENDED; requests queued while
disconnected wait for the next connection (for at most one session timeout).
A ConnectResponse with timeOut 0 means the session expired: LOST, queued
requests fail with SessionExpiredError, watches get a NONE event and are
forgotten, and the next handshake starts a new session.

On a read-only server (read_only=True; CONNECTED_RO) a short-lived thread
asks the other hosts `isro`, one at a time with a growing pause, as Java's
pingRwServer; the first "rw" ends this connection and the next goes there,
with a new session (the read-only server's is known to it alone).
"""

import collections
import logging
import random
import selectors
import socket
import ssl
import struct
import threading
import time

from nookeeper.client.asyncresult import AsyncResult
from nookeeper.client.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    NoWatcherError,
    ProtocolError,
    SessionExpiredError,
    error_from_code,
)
from nookeeper.client.fourletter import four_letter_word
from nookeeper.client.protocol import (
    MAX_FRAME,
    AuthAnswered,
    ClientProtocol,
    Notification,
    Pong,
    Reply,
    SetWatchesAnswered,
    UnreadableReply,
    encode_body,
)
from nookeeper.client.sasl import DigestMD5Client, SaslError
from nookeeper.client.states import EVENT_TYPES, EventType, KeeperState, WatchedEvent
from nookeeper.client.watchers import EXIST
from nookeeper.errors import MarshallingError
from nookeeper.sockio import PeerClosed, read_exact
from nookeeper.wire.client import OpCode, decode_connect_response, encode_connect_request

log = logging.getLogger("nookeeper.client")

_INT = struct.Struct(">i")
_NO_PASSWORD = b"\x00" * 16
# While on a read-only server, the other hosts are asked `isro`, one per
# probe, first after this long, then twice as long each time up to the max
# (Java's ClientCnxn minPingRwTimeout and maxPingRwTimeout).
RW_PROBE_MIN_S = 0.1
RW_PROBE_MAX_S = 60.0
RW_PROBE_TIMEOUT_S = 1.0


class Request:
    """One call on its way: what to send, how to read the answer, where to put it.

    `watch` is (table, full path, callback), registered when a successful
    reply arrives (an exists() that finds nothing registers in EXIST).
    `unwatch` is (tables, full path), emptied when a successful reply
    arrives: a removeWatches that finds nothing to remove here fails with
    NOWATCHER, as Java's client fails it.
    """

    __slots__ = ("opcode", "payload", "result", "convert", "watch", "unwatch", "credential",
                 "queued_at")

    def __init__(self, opcode, payload, result, convert=None, watch=None, unwatch=None):
        self.opcode = opcode
        self.payload = payload
        self.result = result
        self.convert = convert
        self.watch = watch
        self.unwatch = unwatch
        self.credential = None
        self.queued_at = 0.0


class _Dropped(Exception):
    """This connection is unusable; reconnect."""


class _SessionExpired(Exception):
    """The server says the session we tried to resume is gone."""


class Connection:
    """The session's connection, run by one I/O thread."""

    def __init__(self, hosts, chroot, timeout, registry, callbacks, on_state,
                 auth_data=(), read_only=False, randomize_hosts=True, sasl_options=None,
                 ssl_context=None):
        self._hosts = list(hosts)
        self._chroot = chroot
        self._timeout = float(timeout)
        self._registry = registry
        self._callbacks = callbacks
        self._on_state = on_state
        self._read_only = read_only
        self._randomize = randomize_hosts
        self._ssl_context = ssl_context  # TLS on every connection (client/tls.py); None: plain

        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._auth_data = list(dict.fromkeys(auth_data))
        self._sasl_options = sasl_options  # checked by client/sasl.py's check_options
        self._closing = False
        self._terminal = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False

        # Everything below belongs to the I/O thread.
        self._protocol = ClientProtocol()
        self._out = bytearray()
        self._sock = None
        self._close_request = None
        self._close_deadline = None
        self._last_send = 0.0
        self._last_recv = 0.0

        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self.negotiated_timeout = None
        self.current_host = None
        self._server_read_only = False
        # A session a read-only server started exists on that server alone.
        self._session_known_to_quorum = False
        # A read-write server a probe found while we were on a read-only one
        # (set by the probe's thread, taken by the I/O thread), and the probing.
        self._rw_found = None
        self._rw_probe = None
        self._rw_probe_next = 0
        self._rw_probe_delay = RW_PROBE_MIN_S
        self.state = KeeperState.LOST
        self.started = threading.Event()
        self.failure = None
        self._thread = threading.Thread(target=self._run, name="nookeeper-io", daemon=True)

    # -- called from other threads -------------------------------------

    @property
    def last_zxid(self):
        """The newest zxid the session has seen; a reconnect never goes back before it."""
        return self._protocol.last_zxid

    def start(self):
        self._thread.start()

    def submit(self, request):
        """Queue a request; it fails at once if the client is closing or closed."""
        with self._lock:
            refusal = self._refusal()
            if refusal is None:
                request.queued_at = time.monotonic()
                self._queue.append(request)
                wake = not self._wake_pending
                self._wake_pending = True
        if refusal is not None:
            request.result.set_exception(refusal)
        elif wake:
            self._wake()

    def add_auth(self, scheme, credential, result):
        """Authenticate now; the credential is replayed on reconnects once accepted."""
        payload = encode_body(
            OpCode.AUTH, {"type": 0, "scheme": scheme, "auth": credential}
        )
        request = Request(OpCode.AUTH, payload, result)
        request.credential = (scheme, credential)
        self.submit(request)

    def close(self, timeout):
        """End the session (closeSession if connected) and wait for the thread."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout + 1.0)
        self._wake_r.close()
        self._wake_w.close()

    def _refusal(self):
        if self._terminal is not None:
            return type(self._terminal)(str(self._terminal))
        if self._closing:
            return ConnectionClosedError("the client is closing")
        return None

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the I/O thread ------------------------------------------------

    def _run(self):
        terminal = ConnectionClosedError("the client was stopped")
        try:
            terminal = self._connect_loop() or terminal
        except Exception:
            log.exception("session 0x%x: I/O thread failed", self.session_id)
        finally:
            self._shut_down(terminal)

    def _connect_loop(self):
        """Connect, serve, reconnect until closed; returns a terminal error, if any."""
        backoff = 0.05
        failures = 0
        hosts, index = [], 0
        while not self._closing:
            self._fail_stale_queue()
            if index >= len(hosts):
                hosts, index = self._host_order(), 0
            if self._rw_found is not None:
                # A probe found it while we were on a read-only server: go there first.
                (host, port), self._rw_found = self._rw_found, None
            else:
                host, port = hosts[index]
                index += 1
            try:
                sock = self._handshake(host, port)
            except _SessionExpired:
                self._lose_session()
                index -= 1
                continue
            except AuthFailedError as exc:
                log.error("session 0x%x: authentication failed: %s", self.session_id, exc)
                return exc
            except (OSError, EOFError, _Dropped, MarshallingError, ProtocolError) as exc:
                log.info("session 0x%x: cannot connect to %s:%d: %s",
                         self.session_id, host, port, exc)
                sock = None
            if sock is None:
                failures += 1
                if failures >= len(self._hosts):
                    self._sleep(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, 1.0)
                    failures = 0
                continue
            failures, backoff = 0, 0.05
            self._serve(sock, host, port)
        return None

    def _host_order(self):
        hosts = list(self._hosts)
        if self._randomize:
            random.shuffle(hosts)
        return hosts

    def _sleep(self, seconds):
        """Wait, but wake early for close()."""
        deadline = time.monotonic() + seconds
        while not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with selectors.DefaultSelector() as sel:
                sel.register(self._wake_r, selectors.EVENT_READ)
                if sel.select(min(left, 0.1)):
                    self._drain_wake()
            self._fail_stale_queue()

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _fail_stale_queue(self):
        """While disconnected, a request waits at most one session timeout."""
        cutoff = time.monotonic() - self._timeout
        stale = []
        with self._lock:
            while self._queue and self._queue[0].queued_at < cutoff:
                stale.append(self._queue.popleft())
        for request in stale:
            request.result.set_exception(ConnectionLoss("no server reachable"))

    # handshake

    def _handshake(self, host, port):
        """A connected, authenticated socket; None if the server turned us away.

        An attempt gets at most a third of the session timeout, so a server
        that accepts and never answers (ZooKeeper does that while it starts)
        leaves time to try again before the session expires."""
        session_timeout = self.negotiated_timeout or self._timeout
        connect_timeout = max(min(session_timeout / len(self._hosts), session_timeout / 3), 0.5)
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                # The TLS handshake, within the same timeout; a certificate
                # refused either way is an OSError (ssl.SSLError): next server.
                sock = self._ssl_context.wrap_socket(sock, server_hostname=host)
            # A read-write server would only call a read-only server's session
            # expired; until one has accepted us, ask for a new session (as Java does).
            resume = self._session_known_to_quorum
            sock.sendall(encode_connect_request(
                int(self._timeout * 1000), self.session_id if resume else 0,
                self.passwd if resume else _NO_PASSWORD, self._protocol.last_zxid,
                self._read_only,
            ))
            data = _read_frame(sock)
            if data is None:
                # A server behind our last zxid, or not serving, just hangs up.
                log.info("session 0x%x: %s:%d closed the connection during the handshake",
                         self.session_id, host, port)
                sock.close()
                return None
            response = decode_connect_response(data[4:])
            if response.timeOut <= 0:
                sock.close()
                raise _SessionExpired()
            resumed = resume and self.session_id != 0
            self.session_id = response.sessionId
            self.passwd = response.passwd
            self.negotiated_timeout = response.timeOut / 1000.0
            self._server_read_only = bool(response.readOnly)
            self._session_known_to_quorum |= not self._server_read_only
            self._sasl_authenticate(sock)
            self._authenticate(sock)
            log.info("session 0x%x: %s on %s:%d, timeout %d ms%s",
                     self.session_id, "resumed" if resumed else "started",
                     host, port, response.timeOut,
                     " (read-only server)" if self._server_read_only else "")
            return sock
        except BaseException:
            sock.close()
            self._protocol.connection_lost()
            raise

    def _sasl_authenticate(self, sock):
        """SASL (DIGEST-MD5, client/sasl.py) on this connection before anything
        else is sent, kazoo's order, so a server with SASL required sees no
        request first. A refusal is AuthFailedError, which ends the client as an
        auth refusal does; a server that hangs up mid-way is one to try again."""
        if self._sasl_options is None:
            return
        exchange = DigestMD5Client(self._sasl_options)
        user = exchange.username
        challenge = None
        while True:
            try:
                token = exchange.step(challenge)
            except SaslError as exc:
                raise AuthFailedError(f"SASL authentication as {user!r} failed: {exc}") from None
            if token is None:
                log.info("session 0x%x: SASL (DIGEST-MD5) authenticated as %r",
                         self.session_id, user)
                return
            request = Request(OpCode.SASL, encode_body(OpCode.SASL, {"token": token}), None)
            sock.sendall(self._protocol.send_request(request))
            event = None
            while not isinstance(event, (Reply, UnreadableReply)):
                data = _read_frame(sock)
                if data is None:
                    raise _Dropped("connection closed during SASL authentication")
                self._protocol.receive_data(data)
                event = self._protocol.next_event()
            if isinstance(event, UnreadableReply):
                raise ProtocolError(f"unreadable SASL reply: {event.error}")
            if event.err != 0:
                refusal = error_from_code(event.err)
                raise AuthFailedError(f"SASL authentication as {user!r} failed: the server "
                                      f"answered {type(refusal).__name__} ({event.err})")
            challenge = event.body.token if event.body is not None else None
            if challenge is None:
                raise AuthFailedError(f"SASL authentication as {user!r} failed: the server "
                                      "sent no token (is SASL configured on it?)")

    def _authenticate(self, sock):
        """Replay the credentials and wait for every answer before going CONNECTED."""
        with self._lock:
            credentials = list(self._auth_data)
        if not credentials:
            return
        for scheme, credential in credentials:
            replay = Request(OpCode.AUTH, encode_body(
                OpCode.AUTH, {"type": 0, "scheme": scheme, "auth": credential}), None)
            replay.credential = (scheme, credential)
            sock.sendall(self._protocol.send_request(replay))
        answered = 0
        while answered < len(credentials):
            data = _read_frame(sock)
            if data is None:
                raise _Dropped("connection closed during authentication")
            self._protocol.receive_data(data)
            event = self._protocol.next_event()
            if not isinstance(event, AuthAnswered):
                continue
            if event.err != 0:
                scheme = event.request.credential[0]
                raise AuthFailedError(f"credential for scheme {scheme!r} refused")
            answered += 1

    def _lose_session(self):
        log.warning("session 0x%x: expired", self.session_id)
        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self._protocol.session_expired()
        self._session_known_to_quorum = False
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for request in queued:
            request.result.set_exception(SessionExpiredError("the session expired"))
        self._set_state(KeeperState.LOST)
        self._forget_watches()

    def _forget_watches(self):
        for path, callback in self._registry.drain():
            event = WatchedEvent(EventType.NONE, KeeperState.LOST, self._chroot.strip(path))
            self._callbacks.post(callback, event)

    # serving one connection

    def _serve(self, sock, host, port):
        sock.setblocking(False)
        self._sock = sock
        self.current_host = (host, port)
        self._out.clear()
        self._last_send = self._last_recv = time.monotonic()
        ping_interval = self.negotiated_timeout / 3.0
        read_timeout = self.negotiated_timeout * 2.0 / 3.0
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        writing = False
        self._set_state(
            KeeperState.CONNECTED_RO if self._server_read_only else KeeperState.CONNECTED
        )
        self.started.set()
        self._rw_found = None
        self._rw_probe_delay = RW_PROBE_MIN_S
        self._rw_probe_next = time.monotonic() + RW_PROBE_MIN_S
        others = [h for h in self._host_order() if h != (host, port)]
        try:
            self._queue_set_watches()
            self._flush_queue()
            while not self._protocol.session_closed:
                now = time.monotonic()
                if now - self._last_recv >= read_timeout:
                    raise _Dropped(f"nothing from the server for {now - self._last_recv:.2f}s")
                if self._closing and now > (self._close_deadline or now):
                    raise _Dropped("closeSession not answered in time")
                if now - self._last_send >= ping_interval:
                    self._write(self._protocol.ping())
                wait_more = None
                if self._server_read_only and others and not self._closing:
                    if self._rw_found is not None:
                        found = self._rw_found
                        raise _Dropped(f"{found[0]}:{found[1]} is a read-write server; "
                                       f"moving there")
                    if now >= self._rw_probe_next:
                        self._probe_next_host(others)
                    wait_more = self._rw_probe_next
                if bool(self._out) != writing:
                    writing = bool(self._out)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    sel.modify(sock, events)
                wait = min(self._last_send + ping_interval, self._last_recv + read_timeout,
                           wait_more if wait_more is not None else float("inf")) - now
                for key, mask in sel.select(max(wait, 0.0)):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                        self._flush_queue()
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read()
                    if mask & selectors.EVENT_WRITE:
                        self._send()
        except (_Dropped, ProtocolError, MarshallingError, OSError) as exc:
            log.warning("session 0x%x: connection to %s:%d lost: %s",
                        self.session_id, host, port, exc)
        finally:
            sel.close()
            sock.close()
            self._sock = None
            self.current_host = None
            self._connection_gone()

    def _probe_next_host(self, others):
        """Java's pingRwServer, off the I/O thread: ask the next of the other
        hosts `isro`; a "rw" sets _rw_found and wakes the I/O thread, which
        then drops the read-only server for it."""
        now = time.monotonic()
        self._rw_probe_next = now + self._rw_probe_delay
        self._rw_probe_delay = min(self._rw_probe_delay * 2, RW_PROBE_MAX_S)
        if self._rw_probe is not None and self._rw_probe.is_alive():
            return
        host, port = others[0]
        others.append(others.pop(0))
        self._rw_probe = threading.Thread(target=self._probe, args=(host, port),
                                          name="nookeeper-rw-probe", daemon=True)
        self._rw_probe.start()

    def _probe(self, host, port):
        try:
            answer = four_letter_word(host, port, "isro", RW_PROBE_TIMEOUT_S,
                                      self._ssl_context)
        except OSError:
            return
        if answer.strip() == "rw":
            log.info("session 0x%x: %s:%d is a read-write server", self.session_id, host, port)
            self._rw_found = (host, port)
            self._wake()

    def _connection_gone(self):
        """Fail what was in flight; the session lives on, SUSPENDED."""
        for request in self._protocol.connection_lost():
            if request is self._close_request:
                request.result.set(True)
            else:
                request.result.set_exception(ConnectionLoss("connection lost"))
        if not self._closing:
            self._set_state(KeeperState.SUSPENDED)

    def _flush_queue(self):
        """Move queued requests onto the wire, and closeSession after them when closing."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
            # Cleared with the queue taken: a later submit must send a new wake byte.
            self._wake_pending = False
            closing = self._closing
        for request in batch:
            self._out += self._protocol.send_request(request)
        if closing and self._close_request is None:
            self._close_request = Request(
                OpCode.CLOSE_SESSION, b"", AsyncResult(self._callbacks.post))
            self._out += self._protocol.send_request(self._close_request)
        if self._out:
            self._last_send = time.monotonic()
            self._send()

    def _queue_set_watches(self):
        """Re-register every client-side watch on the new connection (spec §9.5),
        persistent ones included (SetWatches2)."""
        lists = self._registry.paths()
        if not any(lists):
            return
        for data in self._protocol.set_watches_frames(*lists):
            self._out += data
        log.debug("session 0x%x: re-registering %d watches", self.session_id,
                  sum(len(paths) for paths in lists))

    def _write(self, data):
        self._out += data
        self._last_send = time.monotonic()
        self._send()

    def _send(self):
        if not self._out:
            return
        try:
            # Over TLS a send that would block must be retried with the same
            # bytes first, which _out keeps until they are sent.
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        del self._out[:sent]

    def _read(self):
        try:
            data = self._sock.recv(262144)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if self._ssl_context is not None:
            # Decrypted bytes TLS has already taken off the socket: select does not see them.
            while data and self._sock.pending():
                data += self._sock.recv(262144)
        if not data:
            raise _Dropped("the server closed the connection")
        self._last_recv = time.monotonic()
        protocol = self._protocol
        protocol.receive_data(data)
        while (event := protocol.next_event()) is not None:
            self._handle_event(event)
        if protocol.session_closed:
            log.info("session 0x%x: closed", self.session_id)

    def _handle_event(self, event):
        kind = type(event)
        if kind is Reply:
            self._complete(event.request, event.err, event.body)
        elif kind is Notification:
            self._deliver_event(event.event)
        elif kind is Pong:
            return
        elif kind is AuthAnswered:
            self._auth_answered(event.request, event.err)
        elif kind is SetWatchesAnswered:
            if event.err:
                log.warning("session 0x%x: SetWatches failed with %d", self.session_id, event.err)
        elif kind is UnreadableReply:
            event.request.result.set_exception(event.error)

    def _complete(self, request, err, body):
        if err == 0:
            try:
                value = request.convert(body) if request.convert else body
            except Exception as exc:
                request.result.set_exception(exc)
                return
            if request.watch is not None:
                self._registry.add(*request.watch)
            if request.unwatch is not None and not self._registry.remove(*request.unwatch):
                request.result.set_exception(NoWatcherError(request.unwatch[1]))
                return
            request.result.set(value)
        elif err == NoNodeError.code and request.opcode == OpCode.EXISTS:
            if request.watch is not None:
                self._registry.add(EXIST, request.watch[1], request.watch[2])
            request.result.set(None)
        else:
            request.result.set_exception(error_from_code(err))

    def _auth_answered(self, request, err):
        if request is None:
            log.warning("session 0x%x: auth reply with no auth in flight", self.session_id)
            return
        credential = request.credential
        if err == 0:
            with self._lock:
                if credential not in self._auth_data:
                    self._auth_data.append(credential)
            request.result.set(True)
        else:
            # The server hangs up after refusing; the credential is not kept.
            log.warning("session 0x%x: credential for scheme %r refused",
                        self.session_id, credential[0])
            request.result.set_exception(error_from_code(err))

    def _deliver_event(self, event):
        event_type = EVENT_TYPES.get(event.type)
        if event_type is None:
            log.info("session 0x%x: ignoring event type %d on %s",
                     self.session_id, event.type, event.path)
            return
        callbacks = self._registry.fired(event_type, event.path)
        if not callbacks:
            return
        watched = WatchedEvent(event_type, KeeperState.CONNECTED, self._chroot.strip(event.path))
        for callback in callbacks:
            self._callbacks.post(callback, watched)

    def _set_state(self, state):
        if state != self.state:
            log.info("session 0x%x: %s -> %s", self.session_id, self.state, state)
            self.state = state
            self._on_state(state)

    def _shut_down(self, terminal):
        """Terminal: every waiting request fails, watches are told, state LOST."""
        with self._lock:
            self._terminal = terminal
            queued = list(self._queue)
            self._queue.clear()
        for request in queued + self._protocol.connection_lost():
            request.result.set_exception(type(terminal)(str(terminal)))
        self.failure = terminal if not isinstance(terminal, ConnectionClosedError) else None
        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self._set_state(KeeperState.LOST)
        self._forget_watches()
        self.started.set()


def _read_frame(sock):
    """One whole frame, length prefix included, from a blocking socket.

    None if the server closed before the frame started."""
    try:
        head = read_exact(sock, 4)
    except PeerClosed as exc:
        if exc.received == 0:
            return None
        raise _Dropped("connection closed inside a frame") from None
    (length,) = _INT.unpack(head)
    if length < 0 or length > MAX_FRAME:
        raise _Dropped(f"bad frame length {length}")
    try:
        return head + read_exact(sock, length)
    except PeerClosed:
        raise _Dropped("connection closed inside a frame") from None
