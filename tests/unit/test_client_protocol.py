"""The client's protocol state (nookeeper/client/protocol.py): bytes in, events out.

Frames from the server are built with the wire module's own encoders, and
frames the protocol sends are read back with its request decoders, so these
tests hold the protocol to the same codec the server uses.
"""

import pytest

from nookeeper.client.exceptions import ProtocolError
from nookeeper.client.protocol import (
    SET_WATCHES_BATCH,
    AuthAnswered,
    ClientProtocol,
    Notification,
    Pong,
    Reply,
    SetWatchesAnswered,
    UnreadableReply,
    encode_body,
)
from nookeeper.errors import MarshallingError, NoAuthError, NoNodeError
from nookeeper.wire.client import (
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    OpCode,
    decode_request,
    decode_request_header,
    encode_event,
    encode_reply,
)

STAT = dict(czxid=1, mzxid=2, ctime=3, mtime=4, version=5, cversion=6, aversion=7,
            ephemeralOwner=0, dataLength=2, numChildren=0, pzxid=8)


class Call:
    """What the protocol needs of a request: its opcode and encoded record."""

    def __init__(self, opcode, body=None):
        self.opcode = opcode
        self.payload = encode_body(opcode, body)


def get_data(path):
    return Call(OpCode.GET_DATA, {"path": path, "watch": False})


def sent(data):
    """(xid, opcode, record) of one frame the protocol produced."""
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    xid, opcode, body = decode_request_header(data[4:])
    return xid, opcode, decode_request(opcode, body)


def events(protocol, data):
    protocol.receive_data(data)
    out = []
    while (event := protocol.next_event()) is not None:
        out.append(event)
    return out


def xid_of(data):
    return sent(data)[0]


def test_requests_get_consecutive_xids_and_their_own_frames():
    protocol = ClientProtocol()
    first, second = get_data("/a"), Call(OpCode.DELETE, {"path": "/b", "version": -1})
    assert sent(protocol.send_request(first)) == (1, OpCode.GET_DATA, {"path": "/a", "watch": False})
    assert sent(protocol.send_request(second)) == (2, OpCode.DELETE, {"path": "/b", "version": -1})


def test_replies_are_matched_to_requests_in_order():
    protocol = ClientProtocol()
    first, second = get_data("/a"), Call(OpCode.EXISTS, {"path": "/b", "watch": False})
    xid1 = xid_of(protocol.send_request(first))
    xid2 = xid_of(protocol.send_request(second))
    stream = (encode_reply(xid1, 10, 0, OpCode.GET_DATA, {"data": b"hi", "stat": STAT})
              + encode_reply(xid2, 11, NoNodeError.code, OpCode.EXISTS))

    got = events(protocol, stream)

    assert [type(e) for e in got] == [Reply, Reply]
    assert got[0].request is first and got[0].err == 0
    assert got[0].body.data == b"hi" and got[0].body.stat.version == 5
    assert got[1].request is second and got[1].err == NoNodeError.code and got[1].body is None
    assert protocol.connection_lost() == []


def test_frames_split_anywhere_give_the_same_events():
    protocol = ClientProtocol()
    requests = [get_data(f"/n{i}") for i in range(3)]
    stream = b"".join(
        encode_reply(xid_of(protocol.send_request(r)), 20 + i, 0, OpCode.GET_DATA,
                     {"data": bytes([i]), "stat": STAT})
        for i, r in enumerate(requests))

    got = []
    for i in range(len(stream)):
        got += events(protocol, stream[i:i + 1])

    assert [(e.request, e.body.data) for e in got] == [(r, bytes([i])) for i, r in enumerate(requests)]
    assert protocol.last_zxid == 22


def test_a_reply_out_of_order_is_a_protocol_error_and_loses_no_request():
    protocol = ClientProtocol()
    first, second = get_data("/a"), get_data("/b")
    xid1 = xid_of(protocol.send_request(first))
    xid2 = xid_of(protocol.send_request(second))
    assert xid2 != xid1

    protocol.receive_data(encode_reply(xid2, 5, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT}))
    with pytest.raises(ProtocolError, match="out of order"):
        protocol.next_event()

    assert protocol.connection_lost() == [first, second]


def test_a_reply_with_nothing_in_flight_is_a_protocol_error():
    protocol = ClientProtocol()
    protocol.receive_data(encode_reply(1, 5, 0))
    with pytest.raises(ProtocolError, match="nothing in flight"):
        protocol.next_event()


@pytest.mark.parametrize("length", [15, -1, 64 * 1024 * 1024 + 1])
def test_a_frame_length_no_server_sends_is_a_protocol_error(length):
    protocol = ClientProtocol()
    protocol.receive_data(length.to_bytes(4, "big", signed=True) + b"\x00" * 16)
    with pytest.raises(ProtocolError, match="bad frame length"):
        protocol.next_event()


def test_events_before_a_bad_frame_come_out_first():
    protocol = ClientProtocol()
    request = get_data("/a")
    xid = xid_of(protocol.send_request(request))
    protocol.receive_data(encode_reply(xid, 3, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT})
                          + encode_reply(xid + 5, 4, 0))
    assert protocol.next_event().request is request
    with pytest.raises(ProtocolError):
        protocol.next_event()


def test_notifications_are_delivered_between_replies_without_taking_one():
    protocol = ClientProtocol()
    request = get_data("/w")
    xid = xid_of(protocol.send_request(request))
    stream = (encode_event(3, "/w", zxid=40)
              + encode_event(4, "/w/kids", zxid=41)
              + encode_reply(xid, 42, 0, OpCode.GET_DATA, {"data": b"v", "stat": STAT}))

    changed, child, reply = events(protocol, stream)

    assert isinstance(changed, Notification) and isinstance(child, Notification)
    assert (changed.event.type, changed.event.path) == (3, "/w")
    assert (child.event.type, child.event.path) == (4, "/w/kids")
    assert reply.request is request and reply.body.data == b"v"


def test_pings_are_answered_by_pongs_outside_the_request_order():
    protocol = ClientProtocol()
    assert sent(protocol.ping()) == (XID_PING, OpCode.PING, None)
    request = get_data("/a")
    xid = xid_of(protocol.send_request(request))

    got = events(protocol, encode_reply(XID_PING, 7, 0)
                 + encode_reply(xid, 8, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT}))

    assert got[0] == Pong()
    assert got[1].request is request


def test_the_last_zxid_seen_only_moves_forward():
    protocol = ClientProtocol()
    assert protocol.last_zxid == 0
    calls = [get_data(f"/{i}") for i in range(3)]
    xids = [xid_of(protocol.send_request(c)) for c in calls]

    events(protocol, encode_reply(xids[0], 0x100000005, 0, OpCode.GET_DATA,
                                  {"data": b"", "stat": STAT}))
    assert protocol.last_zxid == 0x100000005
    events(protocol, encode_reply(xids[1], 0x100000003, NoNodeError.code, OpCode.GET_DATA))
    assert protocol.last_zxid == 0x100000005
    events(protocol, encode_reply(XID_SET_WATCHES, 0x100000009, 0))
    assert protocol.last_zxid == 0x100000009
    events(protocol, encode_reply(xids[2], 0x10000000A, 0, OpCode.GET_DATA,
                                  {"data": b"", "stat": STAT}))
    assert protocol.last_zxid == 0x10000000A

    # A reconnect's SetWatches starts from there; a new session from nothing.
    (frame,) = protocol.set_watches_frames(["/a"], [], [])
    assert sent(frame)[2].relativeZxid == 0x10000000A
    protocol.session_expired()
    assert protocol.last_zxid == 0


def test_set_watches_answer_reports_its_error():
    protocol = ClientProtocol()
    assert events(protocol, encode_reply(XID_SET_WATCHES, 0, -4)) == [SetWatchesAnswered(-4)]


def test_auth_answers_come_in_order_on_their_own_xid():
    protocol = ClientProtocol()
    first = Call(OpCode.AUTH, {"type": 0, "scheme": "digest", "auth": b"a:a"})
    second = Call(OpCode.AUTH, {"type": 0, "scheme": "digest", "auth": b"b:b"})
    read = get_data("/a")
    xid, opcode, record = sent(protocol.send_request(first))
    assert (xid, opcode, record.scheme, record.auth) == (XID_AUTH, OpCode.AUTH, "digest", b"a:a")
    protocol.send_request(second)
    read_xid = xid_of(protocol.send_request(read))
    assert read_xid == 1, "auths take no xid from the sequence"

    got = events(protocol, encode_reply(XID_AUTH, 0, 0)
                 + encode_reply(read_xid, 3, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT})
                 + encode_reply(XID_AUTH, 0, NoAuthError.code)
                 + encode_reply(XID_AUTH, 0, 0))

    assert got[0] == AuthAnswered(first, 0)
    assert got[1].request is read
    assert got[2] == AuthAnswered(second, NoAuthError.code)
    assert got[3] == AuthAnswered(None, 0)


def test_an_unreadable_reply_fails_its_request_only():
    protocol = ClientProtocol()
    broken, fine = get_data("/a"), get_data("/b")
    xid1 = xid_of(protocol.send_request(broken))
    xid2 = xid_of(protocol.send_request(fine))
    good = encode_reply(xid1, 5, 0, OpCode.GET_DATA, {"data": b"abc", "stat": STAT})
    truncated = (len(good) - 4 - 10).to_bytes(4, "big") + good[4:-10]

    first, second = events(protocol, truncated + encode_reply(
        xid2, 6, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT}))

    assert isinstance(first, UnreadableReply) and first.request is broken
    assert isinstance(first.error, MarshallingError)
    assert isinstance(second, Reply) and second.request is fine


def test_nothing_is_read_after_the_close_session_reply():
    protocol = ClientProtocol()
    close = Call(OpCode.CLOSE_SESSION)
    xid = xid_of(protocol.send_request(close))

    got = events(protocol, encode_reply(xid, 9, 0) + encode_event(2, "/late"))

    assert got == [Reply(close, 0, None)]
    assert protocol.session_closed
    assert events(protocol, encode_event(2, "/later")) == []


def test_a_lost_connection_hands_back_what_was_in_flight_and_its_partial_frame_is_dropped():
    protocol = ClientProtocol()
    auth = Call(OpCode.AUTH, {"type": 0, "scheme": "digest", "auth": b"a:a"})
    first, second = get_data("/a"), get_data("/b")
    xid1 = xid_of(protocol.send_request(first))
    protocol.send_request(auth)
    xid2 = xid_of(protocol.send_request(second))
    reply = encode_reply(xid1, 5, 0, OpCode.GET_DATA, {"data": b"", "stat": STAT})
    assert events(protocol, reply[:10]) == []

    assert protocol.connection_lost() == [first, second, auth]
    assert protocol.connection_lost() == []

    # The next connection starts on a frame boundary, and xids keep counting.
    third = get_data("/c")
    xid3 = xid_of(protocol.send_request(third))
    assert xid3 == xid2 + 1
    (event,) = events(protocol, encode_reply(xid3, 6, 0, OpCode.GET_DATA,
                                             {"data": b"", "stat": STAT}))
    assert event.request is third


def decoded_set_watches(frames):
    records = []
    for data in frames:
        xid, opcode, record = sent(data)
        assert (xid, opcode) == (XID_SET_WATCHES, OpCode.SET_WATCHES)
        records.append(record)
    return records


def test_set_watches_fit_one_frame_when_small():
    protocol = ClientProtocol()
    (record,) = decoded_set_watches(protocol.set_watches_frames(["/d"], ["/e"], ["/c", "/c2"]))
    assert (record.dataWatches, record.existWatches, record.childWatches) == (
        ["/d"], ["/e"], ["/c", "/c2"])
    assert protocol.set_watches_frames([], [], []) == []


def test_set_watches_are_split_under_the_size_limit_in_order():
    protocol = ClientProtocol()
    long_name = "x" * 1000
    data = [f"/data/{i:04d}/{long_name}" for i in range(150)]
    exist = [f"/exist/{i:04d}/{long_name}" for i in range(100)]
    child = [f"/child/{i:04d}/{long_name}" for i in range(120)]

    records = decoded_set_watches(protocol.set_watches_frames(data, exist, child))

    sizes = [sum(len(p) for p in r.dataWatches + r.existWatches + r.childWatches)
             for r in records]
    assert len(records) > 1
    assert all(0 < size <= SET_WATCHES_BATCH for size in sizes), sizes
    # Frames are consecutive slices of data, then exist, then child watches:
    # every watch once, none reordered, each frame as full as the limit allows.
    flat = [p for r in records for p in r.dataWatches + r.existWatches + r.childWatches]
    assert flat == data + exist + child
    for size, following in zip(sizes, records[1:]):
        first_of_next = (following.dataWatches + following.existWatches
                         + following.childWatches)[0]
        assert size + len(first_of_next) > SET_WATCHES_BATCH
    assert [p for r in records for p in r.dataWatches] == data
    assert [p for r in records for p in r.existWatches] == exist
    assert [p for r in records for p in r.childWatches] == child


def test_set_watches_splits_exactly_at_the_limit():
    protocol = ClientProtocol()
    half = "/" + "h" * (SET_WATCHES_BATCH // 2 - 1)
    records = decoded_set_watches(protocol.set_watches_frames([half, half], [half], []))
    assert [(len(r.dataWatches), len(r.existWatches)) for r in records] == [(2, 0), (0, 1)]


def decoded_watch_frames(frames):
    """(opcode, record) of each SetWatches/SetWatches2 frame, all on the -8 xid."""
    out = []
    for data in frames:
        xid, opcode, record = sent(data)
        assert xid == XID_SET_WATCHES
        out.append((opcode, record))
    return out


def all_paths(record):
    return [p for name in ("dataWatches", "existWatches", "childWatches", "persistentWatches",
                           "persistentRecursiveWatches")
            for p in (getattr(record, name, None) or [])]


def test_persistent_watches_are_restored_with_set_watches2():
    protocol = ClientProtocol()
    events(protocol, encode_reply(XID_SET_WATCHES, 0x200000007, 0))

    ((opcode, record),) = decoded_watch_frames(
        protocol.set_watches_frames(["/d"], ["/e"], ["/c"], ["/p"], ["/r", "/r2"]))

    assert opcode == OpCode.SET_WATCHES2
    assert record.relativeZxid == 0x200000007
    assert (record.dataWatches, record.existWatches, record.childWatches,
            record.persistentWatches, record.persistentRecursiveWatches) == (
        ["/d"], ["/e"], ["/c"], ["/p"], ["/r", "/r2"])


@pytest.mark.parametrize("persistent, recursive", [(["/p"], []), ([], ["/r"])])
def test_either_persistent_kind_alone_makes_a_set_watches2(persistent, recursive):
    protocol = ClientProtocol()
    ((opcode, record),) = decoded_watch_frames(
        protocol.set_watches_frames([], [], [], persistent, recursive))
    assert opcode == OpCode.SET_WATCHES2
    assert (record.persistentWatches, record.persistentRecursiveWatches) == (persistent, recursive)


def test_without_persistent_watches_the_frames_stay_set_watches():
    protocol = ClientProtocol()
    ((opcode, record),) = decoded_watch_frames(protocol.set_watches_frames(["/d"], [], [], [], []))
    assert opcode == OpCode.SET_WATCHES
    assert not hasattr(record, "persistentWatches")


def test_set_watches2_are_split_under_the_size_limit_and_only_batches_with_persistent_ones_are_v2():
    protocol = ClientProtocol()
    long_name = "x" * 1000
    data = [f"/data/{i:04d}/{long_name}" for i in range(200)]
    persistent = [f"/persistent/{i:04d}/{long_name}" for i in range(90)]
    recursive = [f"/recursive/{i:04d}/{long_name}" for i in range(90)]

    frames = decoded_watch_frames(protocol.set_watches_frames(data, [], [], persistent, recursive))

    assert len(frames) >= 3
    sizes = [sum(len(p) for p in all_paths(record)) for _, record in frames]
    assert all(0 < size <= SET_WATCHES_BATCH for size in sizes), sizes
    # Every watch once, in order: data, then persistent, then recursive.
    assert [p for _, record in frames for p in all_paths(record)] == data + persistent + recursive
    for opcode, record in frames:
        has_persistent = bool(getattr(record, "persistentWatches", None)
                              or getattr(record, "persistentRecursiveWatches", None))
        assert opcode == (OpCode.SET_WATCHES2 if has_persistent else OpCode.SET_WATCHES)
    assert frames[0][0] == OpCode.SET_WATCHES, "the first batch holds data watches only"
    assert frames[-1][0] == OpCode.SET_WATCHES2
    assert [p for _, r in frames for p in (getattr(r, "persistentRecursiveWatches", None) or [])] \
        == recursive
