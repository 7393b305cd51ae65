"""The peer codec: every zab message survives a frame unchanged, and any
frame that is foreign, of another version, or damaged is refused."""

import dataclasses
import struct

import pytest

from nookeeper.wire import peer
from nookeeper.wire.peer import (
    HEADER_SIZE,
    MAX_BODY,
    PeerFrameError,
    VERSION,
    decode_body,
    decode_header,
    decode_hello,
    encode,
    encode_hello,
)
from nookeeper.zab.messages import (
    FOLLOWING,
    LEADING,
    LOOKING,
    MESSAGE_TYPES,
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

MAX64 = 2**63 - 1
MIN64 = -(2**63)
ALL_BYTES = bytes(range(256))
ENTRIES = ((0x1_0000_0001, b"a"), (0x1_0000_0002, b""), (MAX64, ALL_BYTES))
LARGE_ENTRIES = tuple(((7 << 32) | i, bytes([i % 256]) * (i % 50)) for i in range(20_000))

MESSAGES = [
    Vote(1, 3, 0x2_0000_0005, 2, LOOKING),
    Vote(MAX64, 254, MAX64, MAX64, LEADING),
    Vote(0, 1, 0, 0, FOLLOWING),
    FollowerInfo(5, 0x5_0000_0003),
    FollowerInfo(0, 0),
    LeaderInfo(6),
    AckEpoch(6, 5, 0x5_0000_0003),
    AckEpoch(MAX64, MIN64, -1),
    Diff(6, ENTRIES),
    Diff(6, ()),
    Diff(6, LARGE_ENTRIES),
    Trunc(6, 0x5_0000_0002),
    Snap(6, 0x500000007, (b"chunk-1", b"", b"chunk-3"), ENTRIES),
    Snap(6, 0, (), ()),
    Snap(6, 0x600000001, (bytes(range(256)) * 40,), LARGE_ENTRIES),
    NewLeader(6, 0x6_0000_0000),
    AckNewLeader(6, 0x6_0000_0000),
    UpToDate(6, 0x5_0000_0003),
    Proposal(6, 0x6_0000_0001, b"txn"),
    Proposal(6, MAX64, ALL_BYTES * 1000),
    Proposal(6, 0x6_0000_0002, b""),
    Ack(6, 0x6_0000_0001),
    Commit(6, MAX64 - 1),
    Ping(6, 0x6_0000_0001),
    Ping(6, 0x6_0000_0001, MAX64),
    PingReply(6, 0x6_0000_0001, (0x1234_5678_9ABC_DEF0, 1, MAX64, MIN64, -1)),
    PingReply(6, 0, ()),
    PingReply(6, 0, (), 17),
    Request(6, ALL_BYTES),
    Request(6, b""),
    SyncRequest(6, 42),
    SyncRequest(6, 42, True),
    SyncReply(6, 42, 0x6_0000_0007),
]


def _split(frame):
    tag, length = decode_header(frame[:HEADER_SIZE])
    body = frame[HEADER_SIZE:]
    assert len(body) == length
    return tag, body


def _header(magic=b"NKZB", version=VERSION, tag=11, length=0):
    return magic + struct.pack(">BBI", version, tag, length)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message):
    decoded = decode_body(*_split(encode(message)))
    assert decoded == message
    assert type(decoded) is type(message)


def test_every_message_type_is_covered_and_tagged_once():
    assert {type(m) for m in MESSAGES} == set(MESSAGE_TYPES)
    tags = [peer.TAGS[cls] for cls in MESSAGE_TYPES]
    assert len(set(tags)) == len(tags)
    assert peer.HELLO not in tags


def test_tags_are_stable():
    """The numbers are the wire format; this pins them."""
    assert [peer.TAGS[cls] for cls in MESSAGE_TYPES] == list(range(1, 19))
    assert peer.HELLO == 0


def test_decoded_collections_are_tuples_of_bytes():
    snap = decode_body(*_split(encode(Snap(1, 5, (b"a", b"b"), ENTRIES))))
    assert isinstance(snap.snapshot, tuple) and all(isinstance(c, bytes) for c in snap.snapshot)
    assert isinstance(snap.entries, tuple)
    assert all(isinstance(e, tuple) and isinstance(e[1], bytes) for e in snap.entries)
    reply = decode_body(*_split(encode(PingReply(1, 2, (3, 4)))))
    assert isinstance(reply.sessions, tuple)


def test_a_snap_may_exceed_the_limit_of_other_frames(monkeypatch):
    monkeypatch.setattr(peer, "MAX_BODY", 100)
    big = (b"x" * 500,)
    assert decode_body(*_split(encode(Snap(1, 5, big, ())))).snapshot == big
    with pytest.raises(PeerFrameError):
        encode(Diff(1, ((1, b"x" * 500),)))


def test_frame_layout():
    frame = encode(Ack(1, 2))
    assert frame == _header(tag=12, length=16) + struct.pack(">qq", 1, 2)
    assert HEADER_SIZE == 10


def test_negative_64_bit_values_round_trip_signed():
    frame = encode(Commit(-1, MIN64))
    assert frame[HEADER_SIZE:] == b"\xff" * 8 + b"\x80" + b"\x00" * 7
    assert decode_body(*_split(frame)) == Commit(-1, MIN64)


def test_bad_magic():
    with pytest.raises(PeerFrameError, match="magic"):
        decode_header(_header(magic=b"ZKZB"))
    with pytest.raises(PeerFrameError):
        decode_header(b"\x00\x00\x00\x2c" + b"\x00" * 6)


def test_wrong_version():
    with pytest.raises(PeerFrameError, match="version"):
        decode_header(_header(version=VERSION + 1))
    with pytest.raises(PeerFrameError, match="version"):
        decode_header(_header(version=1))  # before Ping rounds and confirmed syncs
    with pytest.raises(PeerFrameError, match="version"):
        decode_header(_header(version=0))


@pytest.mark.parametrize("tag", [19, 100, 255])
def test_unknown_type(tag):
    with pytest.raises(PeerFrameError, match="type"):
        decode_header(_header(tag=tag))
    with pytest.raises(PeerFrameError, match="type"):
        decode_body(tag, b"")


def test_oversize_length():
    assert decode_header(_header(length=MAX_BODY)) == (11, MAX_BODY)
    with pytest.raises(PeerFrameError, match="exceeds"):
        decode_header(_header(length=MAX_BODY + 1))
    with pytest.raises(PeerFrameError, match="exceeds"):
        decode_header(_header(length=0xFFFFFFFF))


@pytest.mark.parametrize("size", [0, HEADER_SIZE - 1, HEADER_SIZE + 1])
def test_header_must_be_exact(size):
    with pytest.raises(PeerFrameError):
        decode_header((_header() + b"\x00")[:size])


@pytest.mark.parametrize(
    "message",
    [
        Vote(1, 3, 5, 2, LOOKING),
        Diff(6, ENTRIES),
        Snap(6, 0x500000007, (b"chunk-1", b"", b"chunk-3"), ENTRIES),
        Proposal(6, 1, b"payload"),
        PingReply(6, 1, (1, 2)),
        Request(6, b"req"),
        SyncReply(6, 42, 7),
    ],
    ids=lambda m: type(m).__name__,
)
def test_truncated_body(message):
    tag, body = _split(encode(message))
    for cut in range(len(body)):
        with pytest.raises(PeerFrameError):
            decode_body(tag, body[:cut])


@pytest.mark.parametrize(
    "message",
    [LeaderInfo(1), Diff(6, ()), Snap(6, 0, (), ENTRIES), Proposal(6, 1, b"p"), PingReply(6, 1, ())],
    ids=lambda m: type(m).__name__,
)
def test_trailing_bytes(message):
    tag, body = _split(encode(message))
    with pytest.raises(PeerFrameError):
        decode_body(tag, body + b"\x00")


def test_oversize_frame_is_refused_on_encode(monkeypatch):
    monkeypatch.setattr(peer, "MAX_BODY", 100)
    encode(Request(1, b"x" * 88))
    with pytest.raises(PeerFrameError, match="exceeds"):
        encode(Request(1, b"x" * 89))


def test_hostile_counts_fail_without_allocating():
    huge = struct.pack(">I", 0xFFFFFFFF)
    with pytest.raises(PeerFrameError):
        decode_body(peer.TAGS[Snap], struct.pack(">q", 1) + huge)
    with pytest.raises(PeerFrameError):
        decode_body(peer.TAGS[Proposal], struct.pack(">qq", 1, 2) + huge + b"abc")
    with pytest.raises(PeerFrameError):
        decode_body(peer.TAGS[Request], struct.pack(">q", 1) + huge + b"abc")


def test_unencodable_fields():
    with pytest.raises(ValueError):
        encode(Proposal(1, 2, None))
    with pytest.raises(ValueError):
        encode(Commit(1, 2**63))
    with pytest.raises(ValueError):
        encode(Vote(1, -1, 0, 0, LOOKING))
    with pytest.raises(ValueError):
        encode(Diff(1, ((1, None),)))
    with pytest.raises(ValueError):
        encode(Snap(1, 0, (), ((2**63, b""),)))
    with pytest.raises(ValueError):
        encode(Snap(1, 0, (None,), ()))
    with pytest.raises(ValueError):
        encode(PingReply(1, 2, (2**64,)))
    with pytest.raises(TypeError):
        encode(("not", "a", "message"))


def test_hello_round_trip():
    frame = encode_hello(3, "prod-east")
    assert frame[:4] == b"NKZB"
    assert decode_header(frame[:HEADER_SIZE]) == (peer.HELLO, len(frame) - HEADER_SIZE)
    assert decode_hello(frame) == (3, "prod-east")
    assert decode_hello(encode_hello(254, "")) == (254, "")
    assert decode_hello(encode_hello(2**32 - 1, "集群-é")) == (2**32 - 1, "集群-é")


def test_hello_rejects_other_frames():
    with pytest.raises(PeerFrameError, match="Hello"):
        decode_hello(encode(Ping(1, 2)))
    with pytest.raises(PeerFrameError, match="Hello"):
        decode_body(*_split(encode_hello(1, "c")))


def test_hello_rejects_foreign_and_damaged():
    frame = encode_hello(1, "cluster")
    with pytest.raises(PeerFrameError, match="magic"):
        decode_hello(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(PeerFrameError, match="version"):
        decode_hello(frame[:4] + bytes([VERSION + 1]) + frame[5:])
    for cut in range(len(frame)):
        with pytest.raises(PeerFrameError):
            decode_hello(frame[:cut])
    with pytest.raises(PeerFrameError):
        decode_hello(frame + b"\x00")
    bad_utf8 = struct.pack(">II", 1, 2) + b"\xff\xfe"
    with pytest.raises(PeerFrameError):
        decode_hello(_header(tag=peer.HELLO, length=len(bad_utf8)) + bad_utf8)
    with pytest.raises(ValueError):
        encode_hello(-1, "cluster")


@pytest.mark.parametrize(
    "message",
    [m for m in MESSAGES if type(m) in (Proposal, Ack, Commit, Request)]
    + [Ack(MIN64, -1), Commit(0, 0), Request(MIN64, b"x"), Request(MAX64, ALL_BYTES * 1000)],
    ids=lambda m: type(m).__name__,
)
def test_broadcast_fast_path_matches_the_schema(message):
    """Proposal, Ack, Commit and Request are packed by hand; the construct record stays the truth."""
    tag = peer.TAGS[type(message)]
    record = peer.BODIES[tag][1]
    body = record.build(dataclasses.asdict(message))
    assert encode(message) == peer.Header.build(
        {"magic": b"NKZB", "version": VERSION, "type": tag, "length": len(body)}) + body
    assert decode_body(tag, body) == message
    assert decode_body(tag, bytearray(body)) == message
