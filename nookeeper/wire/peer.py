"""The binary frames servers of an ensemble exchange, as construct definitions.

Every frame is a fixed 10-byte header, then a body of `length` bytes::

    magic    4 bytes  b"NKZB"   a foreign speaker is rejected on its first bytes
    version  uint8    2         bumped on any incompatible change to a body
    type     uint8              which record the body is (table below)
    length   uint32             body size, at most MAX_BODY

so a reader reads HEADER_SIZE bytes, passes them to decode_header, reads
`length` more and passes those to decode_body. Integers are big-endian;
zxids, epochs, rounds and ids are signed int64 like ZooKeeper's longs, only
server ids (uint32) and the election state (int32) are narrower. Payloads
are uint32-length-prefixed bytes, lists are a uint32 count then the items;
nothing is nullable. Peers are ours, so a body must parse exactly: short,
trailing or malformed bytes are a PeerFrameError.

The first frame each side sends on a new peer connection is a Hello, an
ordinary frame with its own type, so the magic and version are checked
before anything else and a peer from another cluster is refused by name.
It is read like any frame, the whole of it (header and body) then going to
decode_hello; decode_body refuses a Hello anywhere else.

====  ============  ===============================================
type  message       body
====  ============  ===============================================
0     Hello         server_id u32, cluster (uint32-prefixed UTF-8)
1     Vote          round, leader u32, zxid, epoch, state i32
2     FollowerInfo  accepted_epoch, last_zxid
3     LeaderInfo    epoch
4     AckEpoch      epoch, current_epoch, last_zxid
5     Diff          epoch, entries
6     Trunc         epoch, zxid
7     Snap          epoch, zxid, snapshot (chunks), entries
8     NewLeader     epoch, zxid
9     AckNewLeader  epoch, zxid
10    UpToDate      epoch, commit_zxid
11    Proposal      epoch, zxid, payload
12    Ack           epoch, zxid
13    Commit        epoch, zxid
14    Ping          epoch, commit_zxid, round
15    PingReply     epoch, logged_zxid, sessions (int64 list), round
16    Request       epoch, payload
17    SyncRequest   epoch, id, confirm (uint8 0/1)
18    SyncReply     epoch, id, zxid
====  ============  ===============================================

Entries are a list of {zxid, payload}; snapshot chunks a list of
uint32-prefixed byte strings. A Snap may be as large as SNAP_MAX_BODY, every
other frame at most MAX_BODY. The numbers are part of the wire
format: never reuse or renumber one.
"""

import dataclasses
import struct

from construct import (
    Bytes,
    Construct,
    ConstructError,
    ExprAdapter,
    GreedyBytes,
    Flag,
    Int8ub,
    Int32ub,
    PascalString,
    Prefixed,
    PrefixedArray,
    SizeofError,
    Struct,
    Terminated,
)
from construct.core import stream_read, stream_write

from nookeeper.wire.jute import Int, Long
from nookeeper.zab.messages import (
    Ack,
    AckEpoch,
    AckNewLeader,
    Commit,
    Diff,
    FollowerInfo,
    LeaderInfo,
    NewLeader,
    Ping,
    PingReply,
    Proposal,
    Request,
    Snap,
    SyncReply,
    SyncRequest,
    Trunc,
    UpToDate,
    Vote,
)

MAGIC = b"NKZB"
VERSION = 2
MAX_BODY = 64 * 1024 * 1024
SNAP_MAX_BODY = 1 << 30
HELLO = 0


class PeerFrameError(Exception):
    """A frame that is not ours, not this version, or not well formed."""


Header = Struct("magic" / Bytes(4), "version" / Int8ub, "type" / Int8ub, "length" / Int32ub)
HEADER_SIZE = Header.sizeof()

ServerId = Int32ub
Payload = Prefixed(Int32ub, GreedyBytes)
Sessions = ExprAdapter(
    PrefixedArray(Int32ub, Long),
    decoder=lambda obj, ctx: tuple(obj),
    encoder=lambda obj, ctx: list(obj),
)
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">qI")


class _Entries(Construct):
    """(zxid, payload) pairs: a uint32 count, then an int64 zxid and a
    uint32-prefixed payload each.

    Hand-written because a Snap carries a whole log, and construct's generic
    arrays cost several microseconds an entry; stream_read keeps it strict.
    """

    def _parse(self, stream, context, path):
        (count,) = _COUNT.unpack(stream_read(stream, _COUNT.size, path))
        entries = []
        for _ in range(count):
            zxid, length = _ENTRY.unpack(stream_read(stream, _ENTRY.size, path))
            entries.append((zxid, stream_read(stream, length, path)))
        return tuple(entries)

    def _build(self, obj, stream, context, path):
        parts = [_COUNT.pack(len(obj))]
        for zxid, payload in obj:
            parts.append(_ENTRY.pack(zxid, len(payload)))
            parts.append(bytes(payload))
        data = b"".join(parts)
        stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context, path):
        raise SizeofError("entries have no fixed size", path=path)


Entries = _Entries()
Chunks = ExprAdapter(
    PrefixedArray(Int32ub, Prefixed(Int32ub, GreedyBytes)),
    decoder=lambda obj, ctx: tuple(obj),
    encoder=lambda obj, ctx: list(obj),
)


def _body(*fields):
    """A body record that must consume its bytes exactly."""
    return Struct(*fields, Terminated)


HelloBody = _body("server_id" / ServerId, "cluster" / PascalString(Int32ub, "utf8"))

BODIES = {
    1: (Vote, _body("round" / Long, "leader" / ServerId, "zxid" / Long, "epoch" / Long,
                    "state" / Int)),
    2: (FollowerInfo, _body("accepted_epoch" / Long, "last_zxid" / Long)),
    3: (LeaderInfo, _body("epoch" / Long)),
    4: (AckEpoch, _body("epoch" / Long, "current_epoch" / Long, "last_zxid" / Long)),
    5: (Diff, _body("epoch" / Long, "entries" / Entries)),
    6: (Trunc, _body("epoch" / Long, "zxid" / Long)),
    7: (Snap, _body("epoch" / Long, "zxid" / Long, "snapshot" / Chunks, "entries" / Entries)),
    8: (NewLeader, _body("epoch" / Long, "zxid" / Long)),
    9: (AckNewLeader, _body("epoch" / Long, "zxid" / Long)),
    10: (UpToDate, _body("epoch" / Long, "commit_zxid" / Long)),
    11: (Proposal, _body("epoch" / Long, "zxid" / Long, "payload" / Payload)),
    12: (Ack, _body("epoch" / Long, "zxid" / Long)),
    13: (Commit, _body("epoch" / Long, "zxid" / Long)),
    14: (Ping, _body("epoch" / Long, "commit_zxid" / Long, "round" / Long)),
    15: (PingReply, _body("epoch" / Long, "logged_zxid" / Long, "sessions" / Sessions,
                          "round" / Long)),
    16: (Request, _body("epoch" / Long, "payload" / Payload)),
    17: (SyncRequest, _body("epoch" / Long, "id" / Long, "confirm" / Flag)),
    18: (SyncReply, _body("epoch" / Long, "id" / Long, "zxid" / Long)),
}
TAGS = {cls: tag for tag, (cls, _) in BODIES.items()}

# Broadcast sends a Proposal, an Ack and a Commit per write, and a follower a
# Request per write its clients make, so these four are packed with struct;
# the construct records above stay their definition and tests hold the two
# to the same bytes.
_HEADER = struct.Struct(">4sBBI")
_PAIR = struct.Struct(">qq")  # Ack, Commit
# The fixed fields before a payload, the payload's length last.
_PROPOSAL = struct.Struct(">qqI")
_REQUEST = struct.Struct(">qI")
_PAYLOAD_HEADS = {Proposal: _PROPOSAL, Request: _REQUEST}
_FAST = {cls: TAGS[cls] for cls in (Proposal, Ack, Commit, Request)}
_FAST_CLASSES = {tag: cls for cls, tag in _FAST.items()}


def _encode_broadcast(message):
    kind = type(message)
    try:
        if kind is Proposal:
            body = _with_payload(_PROPOSAL, message.payload, message.epoch, message.zxid)
        elif kind is Request:
            body = _with_payload(_REQUEST, message.payload, message.epoch)
        else:
            body = _PAIR.pack(message.epoch, message.zxid)
    except (struct.error, TypeError) as exc:
        raise ValueError(f"cannot encode {kind.__name__}: {exc}") from exc
    return _frame(_FAST[kind], body)


def _with_payload(head, payload, *fields):
    return head.pack(*fields, len(payload)) + payload


def _decode_broadcast(tag, body):
    cls = _FAST_CLASSES[tag]
    head = _PAYLOAD_HEADS.get(cls)
    if head is None:
        if len(body) != _PAIR.size:
            raise PeerFrameError(f"malformed body: {cls.__name__} of {len(body)} bytes")
        return cls(*_PAIR.unpack(body))
    if len(body) < head.size:
        raise PeerFrameError(f"malformed body: {cls.__name__} of {len(body)} bytes")
    *fields, length = head.unpack_from(body)
    if len(body) != head.size + length:
        raise PeerFrameError(f"malformed body: {cls.__name__} payload of {length} bytes "
                             f"in a body of {len(body)}")
    return cls(*fields, bytes(body[head.size:]))


def _build(record, values, name):
    try:
        return record.build(values)
    except (ConstructError, struct.error, TypeError, ValueError) as exc:
        raise ValueError(f"cannot encode {name}: {exc}") from exc


def _max_body(tag):
    """A snapshot is a whole tree; everything else is small."""
    return SNAP_MAX_BODY if tag == TAGS[Snap] else MAX_BODY


def _frame(tag, body):
    """Header + body; a body the receiver would refuse is refused here."""
    if len(body) > _max_body(tag):
        raise PeerFrameError(f"body of {len(body)} bytes exceeds {_max_body(tag)}")
    return _HEADER.pack(MAGIC, VERSION, tag, len(body)) + body


def encode(message) -> bytes:
    """The whole frame for a zab message.

    A field that does not fit its wire type is a ValueError: a bug on this
    side, not something a peer did.
    """
    if type(message) in _FAST:
        return _encode_broadcast(message)
    tag = TAGS.get(type(message))
    if tag is None:
        raise TypeError(f"not a peer message: {type(message).__name__}")
    values = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    return _frame(tag, _build(BODIES[tag][1], values, type(message).__name__))


def decode_header(data: bytes):
    """(type tag, body length) from exactly HEADER_SIZE bytes."""
    if len(data) != HEADER_SIZE:
        raise PeerFrameError(f"header needs {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, tag, length = _HEADER.unpack(data)
    if magic != MAGIC:
        raise PeerFrameError(f"bad magic {magic!r}: not a nookeeper peer")
    if version != VERSION:
        raise PeerFrameError(f"peer protocol version {version}, expected {VERSION}")
    if tag != HELLO and tag not in BODIES:
        raise PeerFrameError(f"unknown frame type {tag}")
    if length > _max_body(tag):
        raise PeerFrameError(f"body of {length} bytes exceeds {_max_body(tag)}")
    return tag, length


def _parse(record, body):
    try:
        return record.parse(bytes(body))
    except (ConstructError, struct.error, UnicodeDecodeError) as exc:
        raise PeerFrameError(f"malformed body: {exc}") from exc


def decode_body(type_tag: int, body: bytes):
    """The message dataclass; entries and sessions come back as tuples."""
    if type_tag == HELLO:
        raise PeerFrameError("Hello is only valid as a connection's first frame")
    if type_tag in _FAST_CLASSES:
        return _decode_broadcast(type_tag, body)
    if type_tag not in BODIES:
        raise PeerFrameError(f"unknown frame type {type_tag}")
    cls, record = BODIES[type_tag]
    parsed = _parse(record, body)
    return cls(**{f.name: parsed[f.name] for f in dataclasses.fields(cls)})


def encode_hello(server_id: int, cluster: str) -> bytes:
    """The whole Hello frame a server sends first on a peer connection."""
    values = {"server_id": server_id, "cluster": cluster}
    return _frame(HELLO, _build(HelloBody, values, "Hello"))


def decode_hello(data: bytes):
    """(server_id, cluster) from a whole frame; any other first frame is an error."""
    type_tag, length = decode_header(bytes(data[:HEADER_SIZE]))
    if type_tag != HELLO:
        raise PeerFrameError(f"expected Hello, got frame type {type_tag}")
    body = data[HEADER_SIZE:]
    if len(body) != length:
        raise PeerFrameError(f"Hello body is {len(body)} bytes, header says {length}")
    hello = _parse(HelloBody, body)
    return hello.server_id, hello.cluster
