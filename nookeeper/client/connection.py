"""The I/O thread: the only code that touches a socket.

One thread per client owns the connection. It connects (trying hosts in
turn), resumes the session, re-sends credentials and watches, writes the
requests other threads queue, pings when idle, reads replies and matches
them to a FIFO of requests in flight, and turns notifications into watch
callbacks for the watcher thread. It never runs user code, so a slow
callback cannot starve pings or replies.

Failure model (spec §12): a dropped connection fails the requests in flight
with ConnectionLoss and leaves the session SUSPENDED; requests queued while
disconnected wait for the next connection (for at most one session timeout).
A ConnectResponse with timeOut 0 means the session expired: LOST, queued
requests fail with SessionExpiredError, watches get a NONE event and are
forgotten, and the next handshake starts a new session.
"""

import collections
import logging
import random
import selectors
import socket
import struct
import threading
import time

from construct import ConstructError

from nookeeper.client.asyncresult import AsyncResult
from nookeeper.client.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    ProtocolError,
    SessionExpiredError,
    error_from_code,
)
from nookeeper.client.states import EVENT_TYPES, EventType, KeeperState, WatchedEvent
from nookeeper.client.watchers import EXIST
from nookeeper.errors import MarshallingError
from nookeeper.wire.client import (
    REQUEST_RECORDS,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    OpCode,
    SetWatches,
    decode_connect_response,
    decode_reply,
    encode_connect_request,
    frame,
)

log = logging.getLogger("nookeeper.client")

_HEADER = struct.Struct(">ii")
_INT = struct.Struct(">i")
_MAX_XID = 2**31 - 1
# Far above jute.maxbuffer; only a broken stream sends more.
_MAX_FRAME = 64 * 1024 * 1024
# Java splits SetWatches so no frame carries more than ~128 KiB of paths.
_SET_WATCHES_BATCH = 128 * 1024
_NO_PASSWORD = b"\x00" * 16
_PING_FRAME = frame(_HEADER.pack(XID_PING, OpCode.PING))


def encode_body(opcode, body):
    """A request record's bytes, built on the caller's thread (errors surface there)."""
    if body is None:
        return b""
    try:
        return REQUEST_RECORDS[opcode].build(body)
    except ConstructError as exc:
        raise ValueError(f"cannot encode request: {exc}") from None


class Request:
    """One call on its way: what to send, how to read the answer, where to put it.

    `watch` is (table, full path, callback), registered when a successful
    reply arrives (an exists() that finds nothing registers in EXIST).
    """

    __slots__ = ("opcode", "payload", "result", "convert", "watch", "credential",
                 "xid", "queued_at")

    def __init__(self, opcode, payload, result, convert=None, watch=None):
        self.opcode = opcode
        self.payload = payload
        self.result = result
        self.convert = convert
        self.watch = watch
        self.credential = None
        self.xid = None
        self.queued_at = 0.0


class _Dropped(Exception):
    """This connection is unusable; reconnect."""


class _SessionExpired(Exception):
    """The server says the session we tried to resume is gone."""


def four_letter_word(host, port, word, timeout=5.0):
    """Send a four-letter word on a fresh connection and read until the server closes."""
    if isinstance(word, str):
        word = word.encode("ascii")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)


class Connection:
    """The session's connection, run by one I/O thread."""

    def __init__(self, hosts, chroot, timeout, registry, callbacks, on_state,
                 auth_data=(), read_only=False, randomize_hosts=True):
        self._hosts = list(hosts)
        self._chroot = chroot
        self._timeout = float(timeout)
        self._registry = registry
        self._callbacks = callbacks
        self._on_state = on_state
        self._read_only = read_only
        self._randomize = randomize_hosts

        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._auth_data = list(dict.fromkeys(auth_data))
        self._closing = False
        self._terminal = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False

        # Everything below belongs to the I/O thread.
        self._pending = collections.deque()
        self._auth_pending = collections.deque()
        self._out = bytearray()
        self._in = bytearray()
        self._xid = 0
        self._sock = None
        self._close_request = None
        self._close_done = False
        self._close_deadline = None
        self._last_send = 0.0
        self._last_recv = 0.0

        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self.last_zxid = 0
        self.negotiated_timeout = None
        self.current_host = None
        self._server_read_only = False
        # A session a read-only server started exists on that server alone.
        self._session_known_to_quorum = False
        self.state = KeeperState.LOST
        self.started = threading.Event()
        self.failure = None
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nookeeper-io", daemon=True)

    # -- called from other threads -------------------------------------

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

    def pause(self):
        """Test hook: stop all I/O (no pings, no reads) as if the process froze."""
        self._paused.set()

    def resume(self):
        self._paused.clear()
        self._wake()

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
            self._hold_while_paused()
            self._fail_stale_queue()
            if index >= len(hosts):
                hosts, index = self._host_order(), 0
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
            except (OSError, EOFError, _Dropped, MarshallingError) as exc:
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

    def _hold_while_paused(self):
        while self._paused.is_set() and not self._closing:
            time.sleep(0.01)

    def _sleep(self, seconds):
        """Wait, but wake early for close() or pause changes."""
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
            # A read-write server would only call a read-only server's session
            # expired; until one has accepted us, ask for a new session (as Java does).
            resume = self._session_known_to_quorum
            sock.sendall(encode_connect_request(
                int(self._timeout * 1000), self.session_id if resume else 0,
                self.passwd if resume else _NO_PASSWORD, self.last_zxid, self._read_only,
            ))
            payload = _read_frame(sock)
            if payload is None:
                # A server behind our last zxid, or not serving, just hangs up.
                log.info("session 0x%x: %s:%d closed the connection during the handshake",
                         self.session_id, host, port)
                sock.close()
                return None
            response = decode_connect_response(payload)
            if response.timeOut <= 0:
                sock.close()
                raise _SessionExpired()
            resumed = resume and self.session_id != 0
            self.session_id = response.sessionId
            self.passwd = response.passwd
            self.negotiated_timeout = response.timeOut / 1000.0
            self._server_read_only = bool(response.readOnly)
            self._session_known_to_quorum |= not self._server_read_only
            self._authenticate(sock)
            log.info("session 0x%x: %s on %s:%d, timeout %d ms%s",
                     self.session_id, "resumed" if resumed else "started",
                     host, port, response.timeOut,
                     " (read-only server)" if self._server_read_only else "")
            return sock
        except BaseException:
            sock.close()
            raise

    def _authenticate(self, sock):
        """Replay the credentials and wait for every answer before going CONNECTED."""
        with self._lock:
            credentials = list(self._auth_data)
        if not credentials:
            return
        for scheme, credential in credentials:
            sock.sendall(frame(_HEADER.pack(XID_AUTH, OpCode.AUTH) + encode_body(
                OpCode.AUTH, {"type": 0, "scheme": scheme, "auth": credential})))
        answered = 0
        while answered < len(credentials):
            payload = _read_frame(sock)
            if payload is None:
                raise _Dropped("connection closed during authentication")
            header, _ = decode_reply(payload)
            if header.xid != XID_AUTH:
                continue
            if header.err != 0:
                scheme = credentials[answered][0]
                raise AuthFailedError(f"credential for scheme {scheme!r} refused")
            answered += 1

    def _lose_session(self):
        log.warning("session 0x%x: expired", self.session_id)
        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self.last_zxid = 0
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
        self._in.clear()
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
        try:
            self._queue_set_watches()
            self._flush_queue()
            while not self._close_done:
                if self._paused.is_set() and not self._closing:
                    time.sleep(0.01)
                    continue
                now = time.monotonic()
                if now - self._last_recv >= read_timeout:
                    raise _Dropped(f"nothing from the server for {now - self._last_recv:.2f}s")
                if self._closing and now > (self._close_deadline or now):
                    raise _Dropped("closeSession not answered in time")
                if now - self._last_send >= ping_interval:
                    self._write(_PING_FRAME)
                if bool(self._out) != writing:
                    writing = bool(self._out)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    sel.modify(sock, events)
                wait = min(self._last_send + ping_interval, self._last_recv + read_timeout) - now
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

    def _connection_gone(self):
        """Fail what was in flight; the session lives on, SUSPENDED."""
        in_flight = list(self._pending) + list(self._auth_pending)
        self._pending.clear()
        self._auth_pending.clear()
        for request in in_flight:
            if request is self._close_request:
                request.result.set(True)
            else:
                request.result.set_exception(ConnectionLoss("connection lost"))
        if not self._closing:
            self._set_state(KeeperState.SUSPENDED)

    def _next_xid(self):
        self._xid = self._xid + 1 if self._xid < _MAX_XID else 1
        return self._xid

    def _flush_queue(self):
        """Move queued requests onto the wire, and closeSession after them when closing."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
            # Cleared with the queue taken: a later submit must send a new wake byte.
            self._wake_pending = False
            closing = self._closing
        for request in batch:
            if request.opcode == OpCode.AUTH:
                xid = XID_AUTH
                self._auth_pending.append(request)
            else:
                xid = request.xid = self._next_xid()
                self._pending.append(request)
            self._out += frame(_HEADER.pack(xid, request.opcode) + request.payload)
        if closing and self._close_request is None:
            self._close_request = Request(
                OpCode.CLOSE_SESSION, b"", AsyncResult(self._callbacks.post))
            self._close_request.xid = self._next_xid()
            self._pending.append(self._close_request)
            self._out += frame(_HEADER.pack(self._close_request.xid, OpCode.CLOSE_SESSION))
        if self._out:
            self._last_send = time.monotonic()
            self._send()

    def _queue_set_watches(self):
        """Re-register every client-side watch on the new connection (spec §9.5)."""
        lists = self._registry.paths()
        if not any(lists):
            return
        batches, current, size = [], ([], [], []), 0
        for kind, paths in enumerate(lists):
            for path in paths:
                if size and size + len(path) > _SET_WATCHES_BATCH:
                    batches.append(current)
                    current, size = ([], [], []), 0
                current[kind].append(path)
                size += len(path)
        batches.append(current)
        for data, exist, child in batches:
            body = SetWatches.build({
                "relativeZxid": self.last_zxid, "dataWatches": data,
                "existWatches": exist, "childWatches": child,
            })
            self._out += frame(_HEADER.pack(XID_SET_WATCHES, OpCode.SET_WATCHES) + body)
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
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        del self._out[:sent]

    def _read(self):
        try:
            data = self._sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            raise _Dropped("the server closed the connection")
        self._last_recv = time.monotonic()
        buf = self._in
        buf += data
        offset, available = 0, len(buf)
        while available - offset >= 4:
            (length,) = _INT.unpack_from(buf, offset)
            if length < 16 or length > _MAX_FRAME:
                raise ProtocolError(f"bad frame length {length}")
            end = offset + 4 + length
            if end > available:
                break
            payload = bytes(buf[offset + 4:end])
            offset = end
            self._handle_frame(payload)
            if self._close_done:
                break
        del buf[:offset]

    def _handle_frame(self, payload):
        (xid,) = _INT.unpack_from(payload)
        if xid == XID_NOTIFICATION:
            self._deliver_event(decode_reply(payload)[1])
        elif xid == XID_PING:
            return
        elif xid == XID_AUTH:
            self._auth_answered(decode_reply(payload)[0].err)
        elif xid == XID_SET_WATCHES:
            header, _ = decode_reply(payload)
            if header.err:
                log.warning("session 0x%x: SetWatches failed with %d", self.session_id, header.err)
            self._seen_zxid(header.zxid)
        else:
            if not self._pending:
                raise ProtocolError(f"reply with xid {xid} but nothing in flight")
            request = self._pending[0]
            if request.xid != xid:
                raise ProtocolError(f"reply xid {xid} out of order (expected {request.xid})")
            self._pending.popleft()
            try:
                header, body = decode_reply(payload, request.opcode)
            except MarshallingError as exc:
                request.result.set_exception(exc)
                return
            self._seen_zxid(header.zxid)
            self._complete(request, header.err, body)
            if request is self._close_request:
                self._close_done = True
                log.info("session 0x%x: closed", self.session_id)

    def _seen_zxid(self, zxid):
        if zxid > self.last_zxid:
            self.last_zxid = zxid

    def _complete(self, request, err, body):
        if err == 0:
            try:
                value = request.convert(body) if request.convert else body
            except Exception as exc:
                request.result.set_exception(exc)
                return
            if request.watch is not None:
                self._registry.add(*request.watch)
            request.result.set(value)
        elif err == NoNodeError.code and request.opcode == OpCode.EXISTS:
            if request.watch is not None:
                self._registry.add(EXIST, request.watch[1], request.watch[2])
            request.result.set(None)
        else:
            request.result.set_exception(error_from_code(err))

    def _auth_answered(self, err):
        if not self._auth_pending:
            log.warning("session 0x%x: auth reply with no auth in flight", self.session_id)
            return
        request = self._auth_pending.popleft()
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
        callbacks = self._registry.pop(event_type, event.path)
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
        for request in queued + list(self._pending) + list(self._auth_pending):
            request.result.set_exception(type(terminal)(str(terminal)))
        self._pending.clear()
        self._auth_pending.clear()
        self.failure = terminal if not isinstance(terminal, ConnectionClosedError) else None
        self.session_id = 0
        self.passwd = _NO_PASSWORD
        self._set_state(KeeperState.LOST)
        self._forget_watches()
        self.started.set()


def _read_frame(sock):
    """One frame's payload from a blocking socket; None if closed before it starts."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    (length,) = _INT.unpack(head)
    if length < 0 or length > _MAX_FRAME:
        raise _Dropped(f"bad frame length {length}")
    payload = _recv_exact(sock, length)
    if payload is None:
        raise _Dropped("connection closed inside a frame")
    return payload


def _recv_exact(sock, count):
    chunks, got = [], 0
    while got < count:
        chunk = sock.recv(count - got)
        if not chunk:
            if got == 0:
                return None
            raise _Dropped("connection closed inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
