"""The client's side of the ZooKeeper protocol, without I/O (as h11 is for HTTP).

Bytes to send come back from calls; bytes received go in through
`receive_data` and come out of `next_event` as typed events. Which reply
answers which request is decided here: the server answers in request order,
so replies are matched to a FIFO of requests in flight by xid, and anything
else is a broken stream. Special xids carry the rest: notifications (-1),
ping replies (-2), auth answers (-4, also in order) and SetWatches(2)
answers (-8). The I/O thread (connection.py) owns the socket, the clock and the
results; this module owns the order and the last zxid seen, so it can be
tested with bytes in and events out.

A request is any object with `opcode` and `payload` (its record's bytes,
from `encode_body`); events hand the same object back.
"""

import collections
import struct
from typing import Any, NamedTuple, Optional

from construct import ConstructError

from nookeeper.client.exceptions import ProtocolError
from nookeeper.errors import MarshallingError
from nookeeper.wire.client import (
    REQUEST_RECORDS,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    OpCode,
    decode_reply,
    frame,
)

_HEADER = struct.Struct(">ii")
_INT = struct.Struct(">i")
_REPLY_HEADER_SIZE = 16
_MAX_XID = 2**31 - 1
# Far above jute.maxbuffer; only a broken stream sends more.
MAX_FRAME = 64 * 1024 * 1024
# Java splits SetWatches so no frame carries more than ~128 KiB of paths.
SET_WATCHES_BATCH = 128 * 1024
_PING_FRAME = frame(_HEADER.pack(XID_PING, OpCode.PING))


def encode_body(opcode, body):
    """A request record's bytes, built on the caller's thread (errors surface there)."""
    if body is None:
        return b""
    try:
        return REQUEST_RECORDS[opcode].build(body)
    except ConstructError as exc:
        raise ValueError(f"cannot encode request: {exc}") from None


class Reply(NamedTuple):
    """The answer to `request`: err 0 and its decoded body, or an error code."""

    request: Any
    err: int
    body: Any


class UnreadableReply(NamedTuple):
    """The answer to `request` arrived but its body does not decode."""

    request: Any
    error: MarshallingError


class Notification(NamedTuple):
    """A watch fired on the server: the WatcherEvent record (type, state, path)."""

    event: Any


class AuthAnswered(NamedTuple):
    """The answer to the oldest auth in flight; request is None if none was."""

    request: Optional[Any]
    err: int


class SetWatchesAnswered(NamedTuple):
    """A reconnect's SetWatches was taken (err 0) or refused; replies carry no body."""

    err: int


class Pong(NamedTuple):
    """A ping was answered; nothing else to do but note the server is alive."""


class ClientProtocol:
    """One session's protocol state: xids, requests in flight, the last zxid seen.

    It outlives connections: xids keep counting and last_zxid is what a
    reconnect tells the server; `connection_lost` forgets only what was on
    the wire.
    """

    def __init__(self):
        self.last_zxid = 0
        # Set by the closeSession reply: the server says nothing after it.
        self.session_closed = False
        self._xid = 0
        self._in_flight = collections.deque()
        self._auth_in_flight = collections.deque()
        self._buffer = bytearray()
        self._offset = 0

    # -- what to send --------------------------------------------------

    def send_request(self, request):
        """The frame for `request`, now in flight; auths share one xid and their own FIFO."""
        if request.opcode == OpCode.AUTH:
            xid = XID_AUTH
            self._auth_in_flight.append(request)
        else:
            xid = self._next_xid()
            self._in_flight.append((xid, request))
        return frame(_HEADER.pack(xid, request.opcode) + request.payload)

    @staticmethod
    def ping():
        return _PING_FRAME

    def set_watches_frames(self, data_paths, exist_paths, child_paths,
                           persistent_paths=(), recursive_paths=()):
        """SetWatches frames re-registering these watches from last_zxid on.

        Paths keep their order (data, exist, child, persistent, recursive)
        and are split so no frame carries more than SET_WATCHES_BATCH
        characters of paths, as ZooKeeper's client does: one huge frame
        could pass jute.maxbuffer. A frame with persistent watches is a
        SetWatches2; one without stays a SetWatches, which servers older
        than persistent watches understand too.
        """
        lists = (data_paths, exist_paths, child_paths, persistent_paths, recursive_paths)
        batches, current, size = [], tuple([] for _ in lists), 0
        for kind, paths in enumerate(lists):
            for path in paths:
                if size and size + len(path) > SET_WATCHES_BATCH:
                    batches.append(current)
                    current, size = tuple([] for _ in lists), 0
                current[kind].append(path)
                size += len(path)
        if any(current):
            batches.append(current)
        return [self._set_watches_frame(*batch) for batch in batches]

    def _set_watches_frame(self, data, exist, child, persistent, recursive):
        body = {"relativeZxid": self.last_zxid, "dataWatches": data,
                "existWatches": exist, "childWatches": child}
        opcode = OpCode.SET_WATCHES
        if persistent or recursive:
            opcode = OpCode.SET_WATCHES2
            body.update(persistentWatches=persistent, persistentRecursiveWatches=recursive)
        record = REQUEST_RECORDS[opcode].build(body)
        return frame(_HEADER.pack(XID_SET_WATCHES, opcode) + record)

    # -- what arrived --------------------------------------------------

    def receive_data(self, data):
        """Bytes from the server, split anywhere; events come out of next_event."""
        if self._offset:
            del self._buffer[:self._offset]
            self._offset = 0
        self._buffer += data

    def next_event(self):
        """The next complete frame as an event; None until more data arrives.

        Raises ProtocolError for a stream no server sends: a frame length out
        of bounds, or a reply that is not to the oldest request in flight.
        """
        if self.session_closed:
            return None
        payload = self._next_frame()
        if payload is None:
            return None
        return self._event_of(payload)

    def connection_lost(self):
        """The requests that were in flight (oldest first, auths last), now forgotten."""
        lost = [request for _, request in self._in_flight] + list(self._auth_in_flight)
        self._in_flight.clear()
        self._auth_in_flight.clear()
        self._buffer.clear()
        self._offset = 0
        return lost

    def session_expired(self):
        """A new session starts from nothing: no zxid seen yet."""
        self.last_zxid = 0

    # -- internals -----------------------------------------------------

    def _next_xid(self):
        self._xid = self._xid + 1 if self._xid < _MAX_XID else 1
        return self._xid

    def _next_frame(self):
        buf, offset = self._buffer, self._offset
        if len(buf) - offset < 4:
            return None
        (length,) = _INT.unpack_from(buf, offset)
        if length < _REPLY_HEADER_SIZE or length > MAX_FRAME:
            raise ProtocolError(f"bad frame length {length}")
        end = offset + 4 + length
        if end > len(buf):
            return None
        self._offset = end
        return bytes(buf[offset + 4:end])

    def _event_of(self, payload):
        (xid,) = _INT.unpack_from(payload)
        if xid == XID_NOTIFICATION:
            return Notification(decode_reply(payload)[1])
        if xid == XID_PING:
            return Pong()
        if xid == XID_AUTH:
            header, _ = decode_reply(payload)
            request = self._auth_in_flight.popleft() if self._auth_in_flight else None
            return AuthAnswered(request, header.err)
        if xid == XID_SET_WATCHES:
            header, _ = decode_reply(payload)
            self._seen_zxid(header.zxid)
            return SetWatchesAnswered(header.err)
        if not self._in_flight:
            raise ProtocolError(f"reply with xid {xid} but nothing in flight")
        expected, request = self._in_flight[0]
        if xid != expected:
            raise ProtocolError(f"reply xid {xid} out of order (expected {expected})")
        self._in_flight.popleft()
        if request.opcode == OpCode.CLOSE_SESSION:
            self.session_closed = True
        try:
            header, body = decode_reply(payload, request.opcode)
        except MarshallingError as exc:
            return UnreadableReply(request, exc)
        self._seen_zxid(header.zxid)
        return Reply(request, header.err, body)

    def _seen_zxid(self, zxid):
        if zxid > self.last_zxid:
            self.last_zxid = zxid
