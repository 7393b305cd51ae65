"""One client connection after its handshake: requests in, replies and events out.

The connection decodes each request, asks its RequestOrder (server/ordering.py)
what may happen now, and talks to the rest of the server only through its
Pipeline (server/pipeline.py): a write, a sync or a closeSession is submitted
there and completed() when applied here; a read is answered from the
applied tree.

Everything sent leaves in the order it was handed to send(). It goes through
an outbound queue drained by a sender thread, so the apply thread never
blocks on a slow client's socket, and a watch event queued while a change is
applied precedes every reply that can see it. While the apply thread applies
a batch of txns it holds what it sends (replies_held), and at the end of the
batch writes each connection's share with one non-blocking send when nothing
is queued before it: one write per connection per batch and, on a quiet
server, no hand-off to the sender thread on a write's critical path.
"""

import contextlib
import functools
import logging
import queue
import socket
import threading
import time

from nookeeper import acl, sasl
from nookeeper.errors import (
    AuthFailedError,
    NotReadOnlyCallError,
    QuotaExceededError,
    SessionClosedRequireSaslError,
    SessionExpiredError,
    UnimplementedError,
    ZooKeeperError,
)
from nookeeper.server.ordering import OutOfOrder, Request, RequestOrder, Submit
from nookeeper.tree import creates_ttl, multi_failure
from nookeeper.wire import ops
from nookeeper.wire.client import (
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    decode_request,
    encode_event,
    encode_reply,
    frame,
)
from nookeeper.wire.jute import java_string
from nookeeper.wire.ops import OpCode
from nookeeper.wire.records import ReplyHeader, SetSASLResponse
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.connection")

_CLOSE = object()


class _Holding(threading.local):
    conns = None  # inside replies_held(): the connections this thread holds output for


_holding = _Holding()


@contextlib.contextmanager
def replies_held():
    """What this thread sends inside is held per connection and written at the end."""
    held = _holding.conns = {}
    try:
        yield
    finally:
        _holding.conns = None
        for conn in held:
            conn._release_held()


_NO_SASL = SessionClosedRequireSaslError.code


def _sasl_reply(xid, err, token):
    """A SASL step's reply, zxid 0. As ZooKeeper sends it, a SetSASLResponse
    follows the header even on failure (a null token): the Java client reads
    that token whatever the error (and turns the null into AuthFailed); a
    header alone would make it drop the connection and try again, forever."""
    return frame(ReplyHeader.build({"xid": xid, "zxid": 0, "err": err})
                 + SetSASLResponse.build({"token": token}))


def _first_ttl_create(opcode, request):
    """The place of a multi's first TTL create (None for a lone create)."""
    if opcode != OpCode.MULTI:
        return None
    return next(place for place, sub in enumerate(request)
                if creates_ttl(sub.type, sub.request))


# What a read-only session is answered NOTREADONLY (ZooKeeper's ReadOnlyRequestProcessor).
_NOT_READ_ONLY = frozenset(ops.codes_of(ops.WRITE)) | frozenset(ops.codes_of(ops.SYNC)) | {
    OpCode.RECONFIG, OpCode.DELETE_CONTAINER, OpCode.CHECK}


class Connection:
    def __init__(self, pipeline, sock, address, throttle=None):
        self.pipeline = pipeline
        self.throttle = throttle if throttle is not None else pipeline.throttle
        # A TlsSocket cannot take a non-blocking send: its replies all go through the sender.
        self._inline_ok = isinstance(sock, socket.socket)
        self.sock = sock
        self.address = address
        self.session_id = 0
        self.timeout_ms = 0
        self.ids = [("ip", address[0])]
        self.closed = False
        self.closing_session = False
        self._sasl = None  # this connection's DIGEST-MD5 exchange (nookeeper/sasl.py)
        self.read_only = False  # a session of read-only mode (ServerNode._attach_read_only)
        self._outbound = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._queued = 0     # items handed to the sender thread and not yet written
        self.unanswered = 0  # requests admitted by the throttle and not answered yet
        self._held = None    # sent inside replies_held() and not yet released
        self._order_lock = threading.Lock()
        self._order = RequestOrder()
        self._sender = threading.Thread(
            target=self._send_loop, name=f"send-{address[0]}:{address[1]}", daemon=True
        )
        self.established_ms = int(time.time() * 1000)
        self.received = 0
        self.sent = 0
        self.last_op = "NA"
        self.last_cxid = 0
        self.last_zxid = 0
        self.last_latency = 0
        self.last_response_ms = 0
        self.min_latency = None
        self.max_latency = 0
        self.total_latency = 0
        self.replies = 0

    def __repr__(self):
        return f"<conn {self.address[0]}:{self.address[1]} session {self.session_id:#x}>"

    def start_sending(self):
        self._sender.start()

    def wait_sent(self, timeout):
        """Let queued replies (a closeSession answer) reach the wire before the socket goes."""
        if self._sender.is_alive():
            self._sender.join(timeout)

    @property
    def queued(self):
        return len(self._order)

    @property
    def unwritten(self):
        return self._queued

    def send(self, data):
        if self.closed:
            return
        holder = _holding.conns
        with self._send_lock:
            if self._held is not None:
                # Held by the apply thread: whatever comes next waits behind it.
                self._held.append(data)
            elif holder is not None:
                self._held = [data]
                holder[self] = None
            else:
                self._to_sender(data)

    def _to_sender(self, data):
        """With _send_lock held."""
        self._queued += 1
        self._outbound.put(data)

    def _release_held(self):
        with self._send_lock:
            held, self._held = self._held, None
            if not held:
                return  # closed meanwhile: close() queued it
            data = b"".join(held)
            if self._queued == 0 and self._inline_ok:
                try:
                    written = self.sock.send(data, socket.MSG_DONTWAIT)
                except OSError:
                    written = 0  # full or broken: the sender thread writes or finds out
                if written == len(data):
                    self.sent += len(held)
                    return
                data = data[written:]
            self._to_sender(data)

    def send_event(self, event_type, path):
        self.send(encode_event(event_type, path))

    def close(self, flush=True):
        """Close after what is queued (flush) or at once, as an expired session is."""
        if self.closed:
            return
        self.closed = True
        self.throttle.written()  # a reader waiting at the limits sees the close at once
        with self._send_lock:
            held, self._held = self._held, None
            if held:
                self._to_sender(b"".join(held))
        if flush:
            self._outbound.put(_CLOSE)
        else:
            self._outbound.put(_CLOSE)
            self._shutdown()

    def _shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_loop(self):
        while True:
            item = self._outbound.get()
            chunks = []
            done = False
            while True:
                if item is _CLOSE:
                    done = True
                    break
                chunks.append(item)
                try:
                    item = self._outbound.get_nowait()
                except queue.Empty:
                    break
            if chunks:
                try:
                    self.sock.sendall(b"".join(chunks))
                    self.sent += len(chunks)
                    with self._send_lock:
                        self._queued -= len(chunks)
                    self.throttle.written()
                except OSError:
                    self.closed = True
                    done = True
            if done:
                self._shutdown()
                try:
                    self.sock.close()
                except OSError:
                    pass
                return

    # -- requests ---------------------------------------------------------

    def handle(self, xid, opcode, body):
        """One request frame; replies are queued in arrival order."""
        self.received += 1
        self.pipeline.stats.packet_received()
        self.last_op = ops.TAGS.get(opcode, "UNKN")
        if xid > 0:
            self.last_cxid = xid
        self.throttle.admit(self)
        request = self._request(xid, opcode, body, time.perf_counter())
        if request is None:
            self.throttle.answered(self)
            return
        with self._order_lock:
            for step in self._order.add(request):
                if type(step) is Submit:
                    self._submit(step.request)
                else:
                    self._finish(step.request, self._answer(step.request))

    def _request(self, xid, opcode, body, received):
        """The Request to order, or None when the connection is closed instead."""
        kind = ops.kind_of(opcode)
        if kind != ops.AUTH and self.pipeline.config.sasl_required and not self._sasl_done():
            return self._refuse_without_sasl(xid, opcode, kind, body, received)
        if kind == ops.PING:
            return Request(XID_PING, opcode, kind, None, body, received)
        if self.read_only:
            if opcode in _NOT_READ_ONLY:
                # ZooKeeper's ReadOnlyRequestProcessor: before the body is even read.
                return Request(xid, opcode, kind, None, body, received,
                               error=NotReadOnlyCallError.code)
            if kind == ops.SESSION:
                # A local session's close: nothing to log, answered at once.
                self.closing_session = True
                return Request(xid, opcode, kind, None, body, received, close_after=True)
        if opcode == OpCode.SASL:
            return self._sasl_step(xid, body, received)
        if kind == ops.AUTH:
            return self._auth(opcode, body, received)
        if kind == ops.SESSION:
            self.closing_session = True
            return Request(xid, opcode, kind, None, body, received, is_write=True,
                           close_after=True)
        if kind == ops.REFUSED:
            return Request(xid, opcode, kind, None, body, received,
                           error=ops.BY_CODE[opcode].refusal)
        if kind == ops.UNSUPPORTED:
            log.warning("%r: unknown or unsupported opcode %d (xid %d); closing", self, opcode, xid)
            self.send(encode_reply(xid, -1, UnimplementedError.code))
            self.close()
            return None
        if kind == ops.WATCHES:
            xid = XID_SET_WATCHES
        try:
            decoded = decode_request(opcode, body)
        except ZooKeeperError as exc:
            log.warning("%r: %s in request xid %d opcode %d", self, exc.__class__.__name__,
                        xid, opcode)
            return Request(xid, opcode, kind, None, body, received, error=exc.code)
        if kind == ops.WRITE:
            if not self.pipeline.state.session_is_live(self.session_id):
                return Request(xid, opcode, kind, decoded, body, received,
                               error=SessionExpiredError.code)
            if not self.pipeline.config.ttl_nodes and creates_ttl(opcode, decoded):
                return Request(xid, opcode, kind, decoded, body, received,
                               error=UnimplementedError.code,
                               failed_op=_first_ttl_create(opcode, decoded))
            refusal = self.pipeline.quota_refusal(opcode, decoded)
            if refusal is not None:
                place, overrun = refusal
                log.warning("%r: %s: xid %d refused", self, overrun, xid)
                return Request(xid, opcode, kind, decoded, body, received,
                               error=QuotaExceededError.code, failed_op=place)
            return Request(xid, opcode, kind, decoded, body, received, is_write=True)
        return Request(xid, opcode, kind, decoded, body, received, is_write=kind == ops.SYNC)

    def _submit(self, request):
        """With _order_lock held, so writes reach ZAB in the connection's order."""
        done = functools.partial(self.completed, request)
        kind = request.kind
        if kind == ops.WRITE:
            self.pipeline.submit_write(self.session_id, request.xid, request.opcode,
                                       tuple(self.ids), request.request, done, request.body)
        elif kind == ops.SESSION:
            self.pipeline.close_session(self.session_id, done, request.xid)
        else:
            self.pipeline.submit_sync(functools.partial(done, None, None))

    def completed(self, request, txn, outcome):
        """A submitted request is applied here (txn None for a sync): its reply,
        then the reads that waited behind it."""
        with self._order_lock:
            try:
                ready = self._order.completed(request)
            except OutOfOrder as exc:
                log.error("%r: reply for xid %d (zxid %s) out of order (%s); closing", self,
                          request.xid, "none" if txn is None else fmt(txn.zxid), exc)
                self.close(flush=False)
                return
            if txn is None:
                reply = self._answer(request)
            else:
                self.last_zxid = txn.zxid
                if request.kind == ops.SESSION:
                    reply = encode_reply(request.xid, txn.zxid, 0)
                else:
                    reply = encode_reply(request.xid, txn.zxid, outcome.err, request.opcode,
                                         outcome.body)
            self._finish(request, reply)
            for step in ready:
                self._finish(step.request, self._answer(step.request))

    def _answer(self, request):
        """The reply to a request answered from this server's applied state."""
        pipeline = self.pipeline
        if request.error is not None:
            if request.opcode == OpCode.SASL:
                return _sasl_reply(request.xid, request.error, None)
            zxid = 0 if request.kind == ops.AUTH or request.error == _NO_SASL else \
                pipeline.last_zxid
            if request.failed_op is not None and request.opcode == OpCode.MULTI:
                # A multi fails as a whole with one result per op, as ZooKeeper answers it.
                return encode_reply(request.xid, zxid, 0, OpCode.MULTI, multi_failure(
                    len(request.request), request.failed_op, request.error))
            return encode_reply(request.xid, zxid, request.error)
        kind = request.kind
        if kind == ops.READ:
            zxid, err, result = pipeline.read(self, request.opcode, request.request)
            return encode_reply(request.xid, zxid, err, request.opcode, result)
        if kind == ops.PING:
            return encode_reply(XID_PING, pipeline.last_zxid, 0)
        if kind == ops.SYNC:
            return encode_reply(request.xid, pipeline.last_zxid, 0, OpCode.SYNC,
                                {"path": request.request.path})
        if kind == ops.SESSION:  # a read-only session's, never logged
            pipeline.state.close_local_session(self.session_id)
            return encode_reply(request.xid, pipeline.last_zxid, 0)
        if kind == ops.WATCHES:
            fired, zxid = pipeline.set_watches(self, request.request,
                                               persistent=request.opcode == OpCode.SET_WATCHES2)
            frames = [encode_event(event_type, path) for event_type, path in fired]
            frames.append(encode_reply(XID_SET_WATCHES, zxid, 0))
            return b"".join(frames)
        if request.opcode == OpCode.SASL:
            return _sasl_reply(request.xid, 0, request.request)
        return encode_reply(XID_AUTH, 0, 0)

    def _auth(self, opcode, body, received):
        """Identities change at once (later writes carry them); the reply keeps its place."""
        try:
            packet = decode_request(opcode, body)
        except ZooKeeperError:
            packet = None
        if packet is None or packet.scheme not in ("digest", "ip"):
            scheme = None if packet is None else packet.scheme
            log.warning("%r: auth with unsupported scheme %r; closing", self, scheme)
            self.pipeline.stats.failed_auth()
            return Request(XID_AUTH, opcode, ops.AUTH, None, body, received,
                           error=AuthFailedError.code, close_after=True)
        if packet.scheme == "digest":
            # Any bytes authenticate: ZooKeeper reads them as Java does, bad UTF-8 and all.
            ident = acl.digest_id(java_string(packet.auth or b""))
            new = [("digest", ident)]
            super_digest = self.pipeline.config.super_digest
            if super_digest and ident == super_digest:
                new.append(("super", ident.split(":", 1)[0]))
        else:
            new = [("ip", self.address[0])]
        for entry in new:
            if entry not in self.ids:
                self.ids.append(entry)
        return Request(XID_AUTH, opcode, ops.AUTH, packet, body, received)

    def _sasl_done(self):
        return any(scheme == "sasl" for scheme, _ in self.ids)

    def _refuse_without_sasl(self, xid, opcode, kind, body, received):
        """sasl_required (ZooKeeper's sessionRequireClientSASLAuth): any request
        but auth and sasl from a connection not yet SASL-authenticated is
        answered SESSIONCLOSEDREQUIRESASLAUTH, zxid 0, and the connection closed
        (the session itself lives until it expires), as ZooKeeper's
        AuthenticationHelper.enforceAuthentication does."""
        config = self.pipeline.config
        log.warning("server %d: session %#x from %s: %s (xid %d) refused: sasl_required and "
                    "the session has not authenticated with SASL (identities: %s); closing "
                    "the connection", config.server_id, self.session_id, self.address[0],
                    ops.NAMES.get(opcode, f"opcode {opcode}"), xid,
                    ", ".join(scheme for scheme, _ in self.ids))
        return Request(xid, opcode, kind, None, body, received, error=_NO_SASL, close_after=True)

    def _sasl_step(self, xid, body, received):
        """One SASL token in, one out (DIGEST-MD5, nookeeper/sasl.py), answered in
        its place with the request's xid and zxid 0. Success adds ("sasl", user)
        to the identities at once (and "super" for a sasl_super_user), as auth
        does; failure answers AUTHFAILED (SESSIONCLOSEDREQUIRESASLAUTH under
        sasl_required) and closes the connection, as ZooKeeper's processSasl."""
        config = self.pipeline.config
        try:
            try:
                token = decode_request(OpCode.SASL, body).token
            except ZooKeeperError:
                raise sasl.SaslFailure("the SASL request could not be decoded") from None
            if config.sasl_users is None:
                raise sasl.SaslFailure("SASL is not configured on this server "
                                       "(no sasl_users_file)")
            if self._sasl is None:
                self._sasl = sasl.DigestMD5Server(config.sasl_users, config.sasl_super_users)
            answer = self._sasl.step(token)
        except sasl.SaslFailure as failure:
            self.pipeline.stats.failed_auth()
            user = "(none given)" if failure.user is None else repr(failure.user)
            log.warning("server %d: session %#x from %s: SASL authentication of user %s failed: "
                        "%s; closing the connection", config.server_id, self.session_id,
                        self.address[0], user, failure.reason)
            error = _NO_SASL if config.sasl_required else AuthFailedError.code
            return Request(xid, OpCode.SASL, ops.AUTH, None, body, received, error=error,
                           close_after=True)
        exchange = self._sasl
        if exchange.complete:
            new = [("sasl", exchange.authorization_id)]
            if exchange.is_super:
                new.append(("super", ""))
            for entry in new:
                if entry not in self.ids:
                    self.ids.append(entry)
            log.info("server %d: session %#x from %s: SASL (DIGEST-MD5) authenticated user %r%s",
                     config.server_id, self.session_id, self.address[0], exchange.user,
                     " (a super user)" if exchange.is_super else "")
            if exchange.requested_authzid not in (None, exchange.user):
                log.warning("server %d: session %#x: user %r asked to act as %r; as in "
                            "ZooKeeper, the session is sasl:%s", config.server_id,
                            self.session_id, exchange.user, exchange.requested_authzid,
                            exchange.authorization_id)
        return Request(xid, OpCode.SASL, ops.AUTH, answer, body, received)

    def _finish(self, request, reply):
        """Counted before it is queued, so a client that has its reply sees it counted."""
        seconds = time.perf_counter() - request.received
        latency = int(seconds * 1000)
        self.last_latency = latency
        self.last_response_ms = int(time.time() * 1000)
        self.replies += 1
        self.total_latency += latency
        self.max_latency = max(self.max_latency, latency)
        self.min_latency = latency if self.min_latency is None else min(self.min_latency, latency)
        self.pipeline.stats.record(ops.NAMES.get(request.opcode, "unknown"), seconds, len(reply))
        self.send(reply)
        self.throttle.answered(self)
        if request.close_after:
            self.close()

    def teardown(self):
        """The reader is gone: forget watches; the session lives on until it expires."""
        self.pipeline.disconnected(self)
        self.throttle.forget(self)
        self.close()
