"""One client connection after its handshake: ordering, replies, events.

Replies leave in request order. A read with no write of this connection
still in flight is served at once by the reader thread; otherwise it waits in
`pending` behind that write and is served by the apply thread right after the
write's reply, so a session always reads its own writes (FIFO client order).

Everything sent leaves in the order it was handed to send(). It goes through
an outbound queue drained by a sender thread, so the apply thread never
blocks on a slow client's socket, and a watch event queued while a change is
applied precedes every reply that can see it. While the apply thread applies
a batch of txns it holds what it sends (replies_held), and at the end of the
batch writes each connection's share with one non-blocking send when nothing
is queued before it: one write per connection per batch and, on a quiet
server, no hand-off to the sender thread on a write's critical path.
"""

import collections
import contextlib
import functools
import logging
import queue
import socket
import threading
import time

from nookeeper import acl
from nookeeper.errors import (
    AuthFailedError,
    ReconfigDisabledError,
    SessionExpiredError,
    UnimplementedError,
    ZooKeeperError,
)
from nookeeper.server import readops
from nookeeper.txn import CLOSE_SESSION
from nookeeper.wire.client import (
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    OpCode,
    decode_request,
    encode_event,
    encode_reply,
)
from nookeeper.wire.jute import java_string
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.connection")

WRITES = frozenset({
    OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL,
    OpCode.DELETE, OpCode.SET_DATA, OpCode.SET_ACL, OpCode.MULTI,
})

OP_TAGS = {
    OpCode.CREATE: "CREA", OpCode.CREATE2: "CREA", OpCode.CREATE_CONTAINER: "CREA",
    OpCode.CREATE_TTL: "CREA", OpCode.DELETE: "DELE", OpCode.EXISTS: "EXIS",
    OpCode.GET_DATA: "GETD", OpCode.SET_DATA: "SETD", OpCode.GET_ACL: "GETA",
    OpCode.SET_ACL: "SETA", OpCode.GET_CHILDREN: "GETC", OpCode.GET_CHILDREN2: "GETC",
    OpCode.SYNC: "SYNC", OpCode.PING: "PING", OpCode.MULTI: "MULT",
    OpCode.MULTI_READ: "MLTR", OpCode.AUTH: "AUTH", OpCode.SET_WATCHES: "SETW",
    OpCode.SET_WATCHES2: "SETW", CLOSE_SESSION: "CLOS",
}

# ZooKeeper's names for request types (Request.op2String), the op label of the metrics.
OP_NAMES = {
    OpCode.CREATE: "create", OpCode.CREATE2: "create2", OpCode.CREATE_CONTAINER: "createContainer",
    OpCode.CREATE_TTL: "createTTL", OpCode.DELETE: "delete", OpCode.EXISTS: "exists",
    OpCode.GET_DATA: "getData", OpCode.SET_DATA: "setData", OpCode.GET_ACL: "getACL",
    OpCode.SET_ACL: "setACL", OpCode.GET_CHILDREN: "getChildren",
    OpCode.GET_CHILDREN2: "getChildren2", OpCode.SYNC: "sync", OpCode.PING: "ping",
    OpCode.MULTI: "multi", OpCode.MULTI_READ: "multiRead", OpCode.CHECK: "check",
    OpCode.RECONFIG: "reconfig", OpCode.CHECK_WATCHES: "checkWatches",
    OpCode.REMOVE_WATCHES: "removeWatches", OpCode.GET_EPHEMERALS: "getEphemerals",
    OpCode.GET_ALL_CHILDREN_NUMBER: "getAllChildrenNumber", OpCode.WHO_AM_I: "whoAmI",
    OpCode.ADD_WATCH: "addWatch", OpCode.AUTH: "auth", OpCode.SET_WATCHES: "setWatches",
    OpCode.SET_WATCHES2: "setWatches2", OpCode.SASL: "sasl", CLOSE_SESSION: "closeSession",
}

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


class _Pending:
    """One request awaiting its reply. A read has `run` (serve it now); a
    write or sync has `start`, called with the item (hand it on; its reply
    comes back later). Nothing an item holds refers back to it, so a
    finished request is freed by reference counting, not left to the
    cycle collector, which on a busy server had cost a third of its CPU."""

    __slots__ = ("xid", "opcode", "is_write", "run", "received", "close_after", "start",
                 "request", "request_bytes")

    def __init__(self, xid, opcode, is_write, run, received, close_after=False, start=None,
                 request=None, request_bytes=None):
        self.xid = xid
        self.opcode = opcode
        self.is_write = is_write
        self.run = run
        self.received = received
        self.close_after = close_after
        self.start = start
        self.request = request
        self.request_bytes = request_bytes


class Connection:
    def __init__(self, node, sock, address):
        self.node = node
        self.sock = sock
        self.address = address
        self.session_id = 0
        self.timeout_ms = 0
        self.ids = [("ip", address[0])]
        self.closed = False
        self.closing_session = False
        self._outbound = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._queued = 0     # items handed to the sender thread and not yet written
        self._held = None    # sent inside replies_held() and not yet released
        self._order_lock = threading.Lock()
        self._pending = collections.deque()
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
        return len(self._pending)

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
            if self._queued == 0:
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
        """Route one request; replies are queued in arrival order."""
        self.received += 1
        self.node.stats.packet_received()
        self.last_op = OP_TAGS.get(opcode, "UNKN")
        if xid > 0:
            self.last_cxid = xid
        received = time.perf_counter()
        if opcode == OpCode.PING:
            self._ordered(_Pending(XID_PING, opcode, False, self._ping, received))
        elif opcode == OpCode.AUTH:
            self._auth(body, received)
        elif opcode in WRITES:
            self._write(xid, opcode, body, received)
        elif opcode == CLOSE_SESSION:
            self.closing_session = True
            self.node.begin_close(self.session_id)
            self._ordered(self._write_item(xid, opcode, None, received, close_after=True))
        elif opcode == OpCode.SYNC:
            self._sync(xid, body, received)
        elif opcode in readops.READS:
            self._read(xid, opcode, body, received)
        elif opcode in (OpCode.SET_WATCHES, OpCode.SET_WATCHES2):
            self._set_watches(opcode, body, received)
        elif opcode == OpCode.RECONFIG:
            self._error(xid, opcode, ReconfigDisabledError(), received)
        else:
            log.warning("%r: unknown or unsupported opcode %d (xid %d); closing", self, opcode, xid)
            self.send(encode_reply(xid, -1, UnimplementedError.code))
            self.close()

    def _decode(self, xid, opcode, body, received):
        try:
            return True, decode_request(opcode, body)
        except ZooKeeperError as exc:
            log.warning("%r: %s in request xid %d opcode %d", self, exc.__class__.__name__, xid, opcode)
            self._error(xid, opcode, exc, received)
            return False, None

    def _error(self, xid, opcode, exc, received):
        err = exc.code
        self._ordered(_Pending(
            xid, opcode, False,
            lambda: encode_reply(xid, self.node.tree.last_zxid, err), received,
        ))

    def _write(self, xid, opcode, body, received):
        ok, request = self._decode(xid, opcode, body, received)
        if not ok:
            return
        if not self.node.session_is_live(self.session_id):
            self._error(xid, opcode, SessionExpiredError(), received)
            return
        self._ordered(self._write_item(xid, opcode, request, received, request_bytes=body))

    def _write_item(self, xid, opcode, request, received, close_after=False, request_bytes=None):
        return _Pending(xid, opcode, True, None, received, close_after=close_after,
                        start=self._start_write, request=request, request_bytes=request_bytes)

    def _start_write(self, item):
        self.node.submit_write(
            self.session_id, item.xid, item.opcode, tuple(self.ids), item.request,
            done=functools.partial(self._write_done, item), request_bytes=item.request_bytes,
        )

    def _start_sync(self, item):
        self.node.submit_sync(functools.partial(self._write_done, item, None, None))

    def _sync(self, xid, body, received):
        """Answered once this server has applied all the leader had when the sync reached it."""
        ok, request = self._decode(xid, OpCode.SYNC, body, received)
        if not ok:
            return
        item = _Pending(xid, OpCode.SYNC, True, None, received, start=self._start_sync)
        item.run = lambda: encode_reply(xid, self.node.tree.last_zxid, 0, OpCode.SYNC,
                                        {"path": request.path})
        self._ordered(item)

    def _read(self, xid, opcode, body, received):
        ok, request = self._decode(xid, opcode, body, received)
        if not ok:
            return

        def run():
            with self.node.tree_lock:
                try:
                    result = readops.serve(self.node, self, opcode, request)
                    err = 0
                except ZooKeeperError as exc:
                    result, err = None, exc.code
                zxid = self.node.tree.last_zxid
            return encode_reply(xid, zxid, err, opcode, result)

        self._ordered(_Pending(xid, opcode, False, run, received))

    def _set_watches(self, opcode, body, received):
        ok, request = self._decode(XID_SET_WATCHES, opcode, body, received)
        if not ok:
            return

        def run():
            with self.node.tree_lock:
                fired = readops.set_watches(
                    self.node, self, request, persistent=opcode == OpCode.SET_WATCHES2
                )
                zxid = self.node.tree.last_zxid
            frames = [encode_event(event_type, path) for event_type, path in fired]
            frames.append(encode_reply(XID_SET_WATCHES, zxid, 0))
            return b"".join(frames)

        self._ordered(_Pending(XID_SET_WATCHES, opcode, False, run, received))

    def _ping(self):
        return encode_reply(XID_PING, self.node.tree.last_zxid, 0)

    def _auth(self, body, received):
        """Identities change at once (later writes carry them); the reply keeps its place."""
        try:
            packet = decode_request(OpCode.AUTH, body)
        except ZooKeeperError:
            packet = None
        if packet is None or packet.scheme not in ("digest", "ip"):
            scheme = None if packet is None else packet.scheme
            log.warning("%r: auth with unsupported scheme %r; closing", self, scheme)
            self.node.stats.failed_auth()
            self._ordered(_Pending(
                XID_AUTH, OpCode.AUTH, False,
                lambda: encode_reply(XID_AUTH, 0, AuthFailedError.code), received,
                close_after=True,
            ))
            return
        if packet.scheme == "digest":
            # Any bytes authenticate: ZooKeeper reads them as Java does, bad UTF-8 and all.
            ident = acl.digest_id(java_string(packet.auth or b""))
            new = [("digest", ident)]
            if self.node.config.super_digest and ident == self.node.config.super_digest:
                new.append(("super", ident.split(":", 1)[0]))
        else:
            new = [("ip", self.address[0])]
        for entry in new:
            if entry not in self.ids:
                self.ids.append(entry)
        self._ordered(_Pending(
            XID_AUTH, OpCode.AUTH, False, lambda: encode_reply(XID_AUTH, 0, 0), received
        ))

    # -- ordering -----------------------------------------------------------

    def _ordered(self, item):
        with self._order_lock:
            if item.is_write:
                self._pending.append(item)
                item.start(item)
            elif self._pending:
                self._pending.append(item)
            else:
                self._finish(item, item.run())

    def _write_done(self, item, txn, outcome):
        with self._order_lock:
            if not self._pending or self._pending[0] is not item:
                log.error("%r: reply for xid %d (zxid %s) out of order; closing", self, item.xid,
                          "none" if txn is None else fmt(txn.zxid))
                self.close(flush=False)
                return
            self._pending.popleft()
            if txn is None:
                reply = item.run()
            elif item.opcode == CLOSE_SESSION:
                reply = encode_reply(item.xid, txn.zxid, 0)
            else:
                reply = encode_reply(item.xid, txn.zxid, outcome.err, item.opcode, outcome.body)
            if txn is not None:
                self.last_zxid = txn.zxid
            self._finish(item, reply)
            while self._pending and not self._pending[0].is_write:
                read = self._pending.popleft()
                self._finish(read, read.run())

    def _finish(self, item, reply):
        """Counted before it is queued, so a client that has its reply sees it counted."""
        seconds = time.perf_counter() - item.received
        latency = int(seconds * 1000)
        self.last_latency = latency
        self.last_response_ms = int(time.time() * 1000)
        self.replies += 1
        self.total_latency += latency
        self.max_latency = max(self.max_latency, latency)
        self.min_latency = latency if self.min_latency is None else min(self.min_latency, latency)
        self.node.stats.record(OP_NAMES.get(item.opcode, "unknown"), seconds, len(reply))
        self.send(reply)
        if item.close_after:
            self.close()

    def teardown(self):
        """The reader is gone: forget watches; the session lives on until it expires."""
        with self.node.tree_lock:
            self.node.watches.drop_watcher(self)
        self.node.unbind(self)
        self.close()
