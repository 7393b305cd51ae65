"""The client wire codec: byte-exact against the spec, round-trips, and kazoo."""

import struct

import pytest
from construct import Construct, ConstructError, Container
from kazoo.exceptions import NoNodeError as KazooNoNode
from kazoo.exceptions import RolledBackError as KazooRolledBack
from kazoo.exceptions import RuntimeInconsistency as KazooRuntimeInconsistency
from kazoo.protocol import serialization as kz
from kazoo.security import ACL as KazooACL
from kazoo.security import Id as KazooId

from nookeeper.errors import MarshallingError, UnimplementedError
from nookeeper.wire import client as w
from nookeeper.wire import ops
from nookeeper.wire import records as r
from nookeeper.wire.jute import (
    Bool,
    Buffer,
    Int,
    Long,
    MAX_ELEMENTS,
    MAX_LENGTH,
    OptionalBool,
    UString,
    Vector,
)

STAT = dict(
    czxid=0x100000002,
    mzxid=0x100000003,
    ctime=1_700_000_000_123,
    mtime=1_700_000_000_456,
    version=3,
    cversion=-1,
    aversion=2,
    ephemeralOwner=0x0123456789ABCDEF,
    dataLength=2,
    numChildren=7,
    pzxid=0x100000004,
)
STAT_BYTES = struct.pack(">qqqqiiiqiiq", *STAT.values())
WORLD = {"perms": 31, "id": {"scheme": "world", "id": "anyone"}}
DIGEST = {"perms": 1, "id": {"scheme": "digest", "id": "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="}}


def i32(value):
    return struct.pack(">i", value)


def ustr(text):
    data = text.encode()
    return i32(len(data)) + data


def unframe(data):
    (length,) = struct.unpack(">i", data[:4])
    assert length == len(data) - 4
    return data[4:]


# --- primitives ------------------------------------------------------------


def test_int_and_long_are_big_endian_twos_complement():
    assert Int.build(-2) == b"\xff\xff\xff\xfe"
    assert Long.build(1) == b"\x00" * 7 + b"\x01"
    assert Long.parse(b"\x80" + b"\x00" * 7) == -(2**63)


def test_bool_reads_any_nonzero_as_true_and_writes_0_or_1():
    assert Bool.parse(b"\x00") is False
    assert Bool.parse(b"\x07") is True
    assert Bool.build(True) == b"\x01"
    assert Bool.build(False) == b"\x00"


def test_optional_bool_absent_is_none_both_ways():
    assert OptionalBool.parse(b"") is None
    assert OptionalBool.parse(b"\x02") is True
    assert OptionalBool.build(None) == b""
    assert OptionalBool.build(False) == b"\x00"


def test_buffer_keeps_null_and_empty_apart():
    assert Buffer.build(None) == b"\xff\xff\xff\xff"
    assert Buffer.build(b"") == b"\x00\x00\x00\x00"
    assert Buffer.parse(b"\xff\xff\xff\xff") is None
    assert Buffer.parse(b"\x00\x00\x00\x00") == b""
    assert Buffer.parse(b"\x00\x00\x00\x02hiXX") == b"hi"


def test_ustring_null_and_utf8():
    assert UString.parse(b"\xff\xff\xff\xff") is None
    assert UString.parse(b"\x00\x00\x00\x00") == ""
    assert UString.build("é") == b"\x00\x00\x00\x02\xc3\xa9"
    assert UString.build(None) == b"\xff\xff\xff\xff"


def test_ustring_accepts_java_surrogate_encoding():
    # U+1F600 as Java sends it: two 3-byte surrogate encodings (CESU-8).
    cesu = "\ud83d\ude00".encode("utf-8", "surrogatepass")
    assert len(cesu) == 6
    text = UString.parse(i32(6) + cesu)
    assert text == "\ud83d\ude00"
    assert UString.build(text) == i32(6) + cesu


def test_ustring_rejects_invalid_utf8():
    with pytest.raises(ConstructError):
        UString.parse(i32(2) + b"\xff\xfe")


def test_vector_null_empty_and_items():
    strings = Vector(UString)
    assert strings.parse(i32(-1)) is None
    assert strings.parse(i32(0)) == []
    assert strings.build(None) == i32(-1)
    assert strings.build(["a", "bc"]) == i32(2) + ustr("a") + ustr("bc")
    assert strings.parse(i32(2) + ustr("a") + ustr("bc")) == ["a", "bc"]


@pytest.mark.parametrize("construct", [Buffer, UString, Vector(Int)])
@pytest.mark.parametrize("length", [-2, -(2**31)])
def test_lengths_below_minus_one_are_rejected(construct, length):
    with pytest.raises(ConstructError):
        construct.parse(i32(length) + b"\x00" * 16)


@pytest.mark.parametrize(
    "construct, length",
    [(Buffer, MAX_LENGTH + 1), (UString, MAX_LENGTH + 1), (Vector(Bool), MAX_ELEMENTS + 1)],
)
def test_lengths_above_the_cap_are_rejected(construct, length):
    with pytest.raises(ConstructError):
        construct.parse(i32(length) + b"\x01" * 64)


@pytest.mark.parametrize("construct", [Buffer, UString, Vector(Bool)])
def test_lengths_beyond_the_data_are_rejected(construct):
    with pytest.raises(ConstructError):
        construct.parse(i32(5) + b"\x01\x01")


# --- sizes and byte-exact examples -------------------------------------------


def test_fixed_record_sizes():
    assert len(r.Stat.build(STAT)) == 68
    assert r.Stat.build(STAT) == STAT_BYTES
    assert len(r.ReplyHeader.build({"xid": 1, "zxid": 2, "err": 0})) == 16
    assert len(r.RequestHeader.build({"xid": 1, "type": 4})) == 8
    assert r.MultiHeader.build({"type": -1, "done": True, "err": -1}) == bytes.fromhex(
        "ffffffff01ffffffff"
    )


def test_get_data_worked_example():
    wire = bytes.fromhex("0000000f 00000005 00000004 00000002 2f61 01")
    assert w.encode_request(5, w.OpCode.GET_DATA, {"path": "/a", "watch": True}) == wire
    xid, opcode, body = w.decode_request_header(unframe(wire))
    assert (xid, opcode) == (5, 4)
    request = w.decode_request(opcode, body)
    assert request.path == "/a" and request.watch is True


def test_get_data_reply_worked_example():
    reply = w.encode_reply(5, 0x42, 0, w.OpCode.GET_DATA, {"data": b"hi", "stat": STAT})
    assert reply == (
        bytes.fromhex("0000005a 00000005")
        + struct.pack(">q", 0x42)
        + bytes.fromhex("00000000 00000002 6869")
        + STAT_BYTES
    )


JAVA_CONNECT = bytes.fromhex(
    "00000000 0000000000000000 00007530 0000000000000000 00000010"
    + "00" * 16
    + "00"
)


def test_java_connect_request():
    assert len(JAVA_CONNECT) == 45
    request = w.decode_connect_request(JAVA_CONNECT)
    assert request == Container(
        protocolVersion=0,
        lastZxidSeen=0,
        timeOut=30000,
        sessionId=0,
        passwd=b"\x00" * 16,
        readOnly=False,
    )
    assert w.encode_connect_request(30000) == w.frame(JAVA_CONNECT)


def test_connect_request_from_old_client_has_no_read_only():
    request = w.decode_connect_request(JAVA_CONNECT[:-1])
    assert request.readOnly is None
    assert request.timeOut == 30000


def test_connect_request_truncated_is_marshalling_error():
    with pytest.raises(MarshallingError):
        w.decode_connect_request(JAVA_CONNECT[:30])


def test_connect_response_sizes():
    passwd = bytes(range(16))
    with_ro = w.encode_connect_response(4000, 0x1234, passwd, False)
    without_ro = w.encode_connect_response(4000, 0x1234, passwd, None)
    assert len(unframe(with_ro)) == 37
    assert len(unframe(without_ro)) == 36
    assert with_ro == without_ro[:4].replace(i32(36), i32(37)) + without_ro[4:] + b"\x00"
    assert w.encode_connect_response(0, 0, b"\x00" * 16, True)[-1:] == b"\x01"
    response = w.decode_connect_response(unframe(with_ro))
    assert (response.timeOut, response.sessionId, response.passwd) == (4000, 0x1234, passwd)
    assert response.readOnly is False
    assert w.decode_connect_response(unframe(without_ro)).readOnly is None


def test_multi_error_reply_matches_spec_example():
    results = [
        {"type": -1, "err": 0, "body": None},
        {"type": -1, "err": -101, "body": None},
        {"type": -1, "err": -2, "body": None},
        {"type": -1, "err": -2, "body": None},
    ]
    reply = w.encode_reply(9, 0x77, 0, w.OpCode.MULTI, results)
    expected = b"".join(
        struct.pack(">iBi", -1, 0, err) + i32(err) for err in (0, -101, -2, -2)
    ) + struct.pack(">iBi", -1, 1, -1)
    header = struct.pack(">iqi", 9, 0x77, 0)
    assert reply == w.frame(header + expected)


def test_event_frame():
    event = w.encode_event(3, "/a")
    assert event == w.frame(struct.pack(">iqi", -1, -1, 0) + struct.pack(">ii", 3, 3) + ustr("/a"))
    header, body = w.decode_reply(unframe(w.encode_event(4, "/p", zxid=9)))
    assert (header.xid, header.zxid, header.err) == (-1, 9, 0)
    assert body == Container(type=4, state=3, path="/p")


# --- every record round-trips --------------------------------------------------

RECORD_SAMPLES = [
    (r.Id, {"scheme": "ip", "id": "10.0.0.0/8"}),
    (r.ACL, DIGEST),
    (r.Stat, STAT),
    (r.ClientInfo, {"authScheme": "ip", "user": "127.0.0.1"}),
    (
        r.ConnectRequest,
        {
            "protocolVersion": 0,
            "lastZxidSeen": 77,
            "timeOut": 10000,
            "sessionId": 0x7F00000000000001,
            "passwd": b"p" * 16,
            "readOnly": True,
        },
    ),
    (
        r.ConnectResponse,
        {
            "protocolVersion": 0,
            "timeOut": 4000,
            "sessionId": 5,
            "passwd": b"q" * 16,
            "readOnly": None,
        },
    ),
    (r.RequestHeader, {"xid": -8, "type": 101}),
    (r.ReplyHeader, {"xid": 3, "zxid": -1, "err": -101}),
    (r.MultiHeader, {"type": 1, "done": False, "err": -1}),
    (r.AuthPacket, {"type": 0, "scheme": "digest", "auth": b"alice:secret"}),
    (r.CreateRequest, {"path": "/n", "data": None, "acl": [WORLD, DIGEST], "flags": 3}),
    (r.CreateRequest, {"path": "/n", "data": b"", "acl": [], "flags": 0}),
    (r.CreateRequest, {"path": "/n", "data": b"\x00\xff", "acl": None, "flags": 0}),
    (r.CreateTTLRequest, {"path": "/t", "data": b"v", "acl": [WORLD], "flags": 5, "ttl": 60000}),
    (r.CreateResponse, {"path": "/n0000000001"}),
    (r.Create2Response, {"path": "/n", "stat": STAT}),
    (r.DeleteRequest, {"path": "/n", "version": -1}),
    (r.ExistsRequest, {"path": "/n", "watch": True}),
    (r.GetDataRequest, {"path": "/n", "watch": False}),
    (r.GetDataResponse, {"data": None, "stat": STAT}),
    (r.GetDataResponse, {"data": b"", "stat": STAT}),
    (r.SetDataRequest, {"path": "/n", "data": b"x" * 1000, "version": 4}),
    (r.GetACLRequest, {"path": "/n"}),
    (r.GetACLResponse, {"acl": [WORLD, DIGEST], "stat": STAT}),
    (r.SetACLRequest, {"path": "/n", "acl": [DIGEST], "version": -1}),
    (r.GetChildrenRequest, {"path": "/", "watch": True}),
    (r.GetChildrenResponse, {"children": ["a", "zookeeper", "ü"]}),
    (r.GetChildren2Request, {"path": "/", "watch": False}),
    (r.GetChildren2Response, {"children": [], "stat": STAT}),
    (r.SyncRequest, {"path": "/"}),
    (r.SyncResponse, {"path": "/"}),
    (r.DeleteContainerRequest, {"path": "/c"}),
    (r.CheckVersionRequest, {"path": "/n", "version": 2}),
    (
        r.ReconfigRequest,
        {"joiningServers": None, "leavingServers": "2", "newMembers": "", "curConfigId": -1},
    ),
    (r.CheckWatchesRequest, {"path": "/n", "type": 3}),
    (r.RemoveWatchesRequest, {"path": "/n", "type": 1}),
    (r.AddWatchRequest, {"path": "/n", "mode": 1}),
    (r.GetEphemeralsRequest, {"prefixPath": "/"}),
    (r.GetEphemeralsResponse, {"ephemerals": ["/a", "/b/c"]}),
    (r.GetAllChildrenNumberRequest, {"path": "/"}),
    (r.GetAllChildrenNumberResponse, {"totalNumber": 12}),
    (r.WhoAmIResponse, {"clientInfo": [{"authScheme": "ip", "user": "::1"}]}),
    (
        r.SetWatches,
        {"relativeZxid": 9, "dataWatches": ["/a"], "existWatches": [], "childWatches": None},
    ),
    (
        r.SetWatches2,
        {
            "relativeZxid": 9,
            "dataWatches": ["/a"],
            "existWatches": ["/b"],
            "childWatches": ["/c"],
            "persistentWatches": ["/d"],
            "persistentRecursiveWatches": ["/e", "/f"],
        },
    ),
    (r.WatcherEvent, {"type": 2, "state": 3, "path": "/gone"}),
    (r.ErrorResponse, {"err": -121}),
    (r.GetSASLRequest, {"token": b"tok"}),
    (r.SetSASLResponse, {"token": None}),
    (r.CreateSessionTxn, {"timeOut": 30000, "passwd": b"s" * 16}),
    (
        ops.MultiRequest,
        [
            {"type": 1, "request": {"path": "/m", "data": b"", "acl": [WORLD], "flags": 0}},
            {"type": 15, "request": {"path": "/m2", "data": None, "acl": [WORLD], "flags": 2}},
            {"type": 19, "request": {"path": "/c", "data": b"", "acl": [WORLD], "flags": 4}},
            {
                "type": 21,
                "request": {"path": "/t", "data": b"", "acl": [WORLD], "flags": 5, "ttl": 10},
            },
            {"type": 2, "request": {"path": "/m", "version": -1}},
            {"type": 5, "request": {"path": "/m", "data": b"d", "version": 0}},
            {"type": 13, "request": {"path": "/m", "version": 1}},
        ],
    ),
    (
        ops.MultiReadRequest,
        [
            {"type": 8, "request": {"path": "/m", "watch": False}},
            {"type": 4, "request": {"path": "/m", "watch": False}},
        ],
    ),
    (
        ops.MultiResponse,
        [
            {"type": 1, "err": 0, "body": {"path": "/m"}},
            {"type": 15, "err": 0, "body": {"path": "/m2", "stat": STAT}},
            {"type": 2, "err": 0, "body": None},
            {"type": 5, "err": 0, "body": STAT},
            {"type": 13, "err": 0, "body": None},
            {"type": 4, "err": 0, "body": {"data": b"x", "stat": STAT}},
            {"type": 8, "err": 0, "body": {"children": ["a"]}},
            {"type": -1, "err": -101, "body": {"err": -101}},
        ],
    ),
]


RECORD_NAMES = {id(value): name for name, value in vars(w).items() if isinstance(value, Construct)}


@pytest.mark.parametrize("record, value", RECORD_SAMPLES, ids=lambda v: RECORD_NAMES.get(id(v)))
def test_record_round_trips(record, value):
    data = record.build(value)
    assert record.parse(data) == value
    assert record.build(record.parse(data)) == data


def test_parsed_containers_do_not_hold_the_stream():
    request = {"path": "/n", "data": None, "acl": [WORLD], "flags": 0}
    parsed = r.CreateRequest.parse(r.CreateRequest.build(request))
    assert "_io" not in parsed
    assert "_io" not in parsed.acl[0] and "_io" not in parsed.acl[0].id


def test_acl_entry_shape():
    parsed = r.ACL.parse(r.ACL.build(DIGEST))
    assert parsed.perms == 1
    assert parsed.id.scheme == "digest"
    assert parsed.id.id.startswith("alice:")


# --- decode_request --------------------------------------------------------------


@pytest.mark.parametrize("opcode", [11, -11, 107])
def test_ops_without_body_decode_to_none(opcode):
    assert w.decode_request(opcode, b"") is None
    assert w.decode_request(opcode, b"junk") is None


@pytest.mark.parametrize("opcode", [0, 10, 23, 50, 99, 108, -10, -1, -2])
def test_unknown_opcode_is_unimplemented(opcode):
    with pytest.raises(UnimplementedError):
        w.decode_request(opcode, b"\x00" * 32)


def test_request_header_too_short():
    with pytest.raises(MarshallingError):
        w.decode_request_header(b"\x00\x00\x00\x01\x00\x00")
    assert w.decode_request_header(b"\x00\x00\x00\x01\xff\xff\xff\xf5") == (1, -11, b"")


@pytest.mark.parametrize(
    "opcode, body",
    [
        (w.OpCode.GET_DATA, b""),
        (w.OpCode.GET_DATA, ustr("/a")),  # watch byte missing
        (w.OpCode.GET_DATA, i32(10) + b"/a\x01"),  # length beyond the data
        (w.OpCode.GET_DATA, i32(-2) + b"/a\x01"),  # negative length
        (w.OpCode.GET_DATA, i32(2) + b"\xc3\x28\x01"),  # bad utf-8
        (w.OpCode.CREATE, ustr("/a") + i32(-1) + i32(-5) + i32(0)),  # bad acl count
        (w.OpCode.CREATE, ustr("/a") + i32(-1) + i32(3) + i32(31)),  # acl truncated
        (w.OpCode.SET_DATA, ustr("/a") + i32(MAX_LENGTH + 1)),
        (w.OpCode.AUTH, i32(0) + ustr("digest")),
        (w.OpCode.SET_WATCHES, struct.pack(">q", 1) + i32(1)),
    ],
)
def test_malformed_bodies_are_marshalling_errors(opcode, body):
    with pytest.raises(MarshallingError):
        w.decode_request(opcode, body)


def test_trailing_bytes_are_ignored():
    request = w.decode_request(w.OpCode.SYNC, ustr("/a") + b"extra")
    assert request == Container(path="/a")


def test_null_strings_decode_to_none():
    request = w.decode_request(w.OpCode.AUTH, i32(0) + i32(-1) + i32(-1))
    assert request == Container(type=0, scheme=None, auth=None)


def _multi(*ops):
    body = b""
    for op_type, record in ops:
        body += struct.pack(">iBi", op_type, 0, -1) + record
    return body + struct.pack(">iBi", -1, 1, -1)


def test_multi_decodes_to_typed_sub_requests():
    body = _multi(
        (1, r.CreateRequest.build({"path": "/m", "data": b"v", "acl": [WORLD], "flags": 0})),
        (13, r.CheckVersionRequest.build({"path": "/m", "version": 0})),
        (2, r.DeleteRequest.build({"path": "/m", "version": -1})),
    )
    ops = w.decode_request(w.OpCode.MULTI, body)
    assert [op.type for op in ops] == [1, 13, 2]
    assert ops[0].request.data == b"v"
    assert ops[1].request == Container(path="/m", version=0)


def test_empty_multi_is_an_empty_list():
    assert w.decode_request(w.OpCode.MULTI, _multi()) == []
    assert w.decode_request(w.OpCode.MULTI_READ, _multi()) == []


@pytest.mark.parametrize(
    "opcode, sub_type, record",
    [
        (w.OpCode.MULTI, 4, r.GetDataRequest.build({"path": "/m", "watch": False})),
        (w.OpCode.MULTI, 8, r.GetChildrenRequest.build({"path": "/m", "watch": False})),
        (w.OpCode.MULTI, 3, r.ExistsRequest.build({"path": "/m", "watch": False})),
        (w.OpCode.MULTI, 14, b""),
        (w.OpCode.MULTI, 99, b""),
        (w.OpCode.MULTI_READ, 2, r.DeleteRequest.build({"path": "/m", "version": -1})),
        (
            w.OpCode.MULTI_READ,
            1,
            r.CreateRequest.build({"path": "/m", "data": b"", "acl": [], "flags": 0}),
        ),
    ],
)
def test_sub_op_not_allowed_is_marshalling_error(opcode, sub_type, record):
    with pytest.raises(MarshallingError):
        w.decode_request(opcode, _multi((sub_type, record)))


def test_multi_without_terminator_is_marshalling_error():
    body = _multi((2, r.DeleteRequest.build({"path": "/m", "version": -1})))
    with pytest.raises(MarshallingError):
        w.decode_request(w.OpCode.MULTI, body[:-9])


def test_multi_read_decodes():
    body = _multi(
        (8, r.GetChildrenRequest.build({"path": "/m", "watch": True})),
        (4, r.GetDataRequest.build({"path": "/m", "watch": False})),
    )
    ops = w.decode_request(w.OpCode.MULTI_READ, body)
    assert [(op.type, op.request.path) for op in ops] == [(8, "/m"), (4, "/m")]


# --- encode_reply / decode_reply --------------------------------------------------


def test_error_reply_is_header_only():
    reply = w.encode_reply(7, 12, -101, w.OpCode.GET_DATA, {"data": b"x", "stat": STAT})
    assert reply == w.frame(struct.pack(">iqi", 7, 12, -101))
    assert len(reply) == 20


@pytest.mark.parametrize(
    "opcode", [w.OpCode.DELETE, w.OpCode.PING, w.OpCode.CLOSE_SESSION, w.OpCode.AUTH]
)
def test_ops_without_response_record_are_header_only(opcode):
    assert len(unframe(w.encode_reply(1, 2, 0, opcode, None))) == 16


def test_empty_multi_reply_is_just_the_terminator():
    reply = unframe(w.encode_reply(1, 2, 0, w.OpCode.MULTI, []))
    assert reply[16:] == struct.pack(">iBi", -1, 1, -1)


def test_add_watch_reply_is_four_bytes_of_body():
    reply = unframe(w.encode_reply(1, 2, 0, w.OpCode.ADD_WATCH, {"err": 0}))
    assert reply[16:] == i32(0)


@pytest.mark.parametrize(
    "opcode, body",
    [
        (w.OpCode.CREATE, {"path": "/n"}),
        (w.OpCode.CREATE2, {"path": "/n", "stat": STAT}),
        (w.OpCode.CREATE_CONTAINER, {"path": "/n", "stat": STAT}),
        (w.OpCode.CREATE_TTL, {"path": "/n", "stat": STAT}),
        (w.OpCode.EXISTS, STAT),
        (w.OpCode.GET_DATA, {"data": None, "stat": STAT}),
        (w.OpCode.SET_DATA, STAT),
        (w.OpCode.GET_ACL, {"acl": [WORLD], "stat": STAT}),
        (w.OpCode.SET_ACL, STAT),
        (w.OpCode.GET_CHILDREN, {"children": ["a", "b"]}),
        (w.OpCode.GET_CHILDREN2, {"children": ["a"], "stat": STAT}),
        (w.OpCode.SYNC, {"path": "/"}),
        (w.OpCode.MULTI_READ, [{"type": 8, "err": 0, "body": {"children": []}}]),
        (w.OpCode.GET_EPHEMERALS, {"ephemerals": ["/e"]}),
        (w.OpCode.GET_ALL_CHILDREN_NUMBER, {"totalNumber": 4}),
        (w.OpCode.WHO_AM_I, {"clientInfo": [{"authScheme": "ip", "user": "127.0.0.1"}]}),
        (w.OpCode.ADD_WATCH, {"err": 0}),
    ],
)
def test_reply_round_trips(opcode, body):
    header, decoded = w.decode_reply(unframe(w.encode_reply(11, 99, 0, opcode, body)), opcode)
    assert (header.xid, header.zxid, header.err) == (11, 99, 0)
    assert decoded == body


def test_request_round_trips_through_frames():
    request = {"path": "/x", "data": b"", "acl": [WORLD], "flags": 1}
    xid, opcode, body = w.decode_request_header(unframe(w.encode_request(3, 15, request)))
    assert (xid, opcode) == (3, 15)
    assert w.decode_request(opcode, body) == request
    assert w.encode_request(4, w.OpCode.PING) == w.frame(struct.pack(">ii", 4, 11))


# --- interop with kazoo's serializer ---------------------------------------------

KZ_ACL = [KazooACL(31, KazooId("world", "anyone")), KazooACL(1, KazooId("digest", "u:h="))]
WIRE_ACL = [
    {"perms": 31, "id": {"scheme": "world", "id": "anyone"}},
    {"perms": 1, "id": {"scheme": "digest", "id": "u:h="}},
]


@pytest.mark.parametrize(
    "kazoo_request, expected",
    [
        (
            kz.Create("/a", b"v", KZ_ACL, 3),
            {"path": "/a", "data": b"v", "acl": WIRE_ACL, "flags": 3},
        ),
        (
            kz.Create("/a", None, KZ_ACL, 0),
            {"path": "/a", "data": None, "acl": WIRE_ACL, "flags": 0},
        ),
        (
            kz.Create2("/b", b"", KZ_ACL[:1], 1),
            {"path": "/b", "data": b"", "acl": WIRE_ACL[:1], "flags": 1},
        ),
        (kz.Delete("/a", 4), {"path": "/a", "version": 4}),
        (kz.Exists("/a", True), {"path": "/a", "watch": True}),
        (kz.GetData("/a", False), {"path": "/a", "watch": False}),
        (kz.SetData("/a", b"new", -1), {"path": "/a", "data": b"new", "version": -1}),
        (kz.GetACL("/a"), {"path": "/a"}),
        (kz.SetACL("/a", KZ_ACL, 2), {"path": "/a", "acl": WIRE_ACL, "version": 2}),
        (kz.GetChildren("/", True), {"path": "/", "watch": True}),
        (kz.GetChildren2("/", False), {"path": "/", "watch": False}),
        (kz.Sync("/a"), {"path": "/a"}),
        (
            kz.Reconfig("server.1=h:1:2", "", "", -1),
            {
                "joiningServers": "server.1=h:1:2",
                "leavingServers": None,
                "newMembers": None,
                "curConfigId": -1,
            },
        ),
        (kz.Auth(0, "digest", "alice:pw"), {"type": 0, "scheme": "digest", "auth": b"alice:pw"}),
        (kz.SASL(b"token"), {"token": b"token"}),
    ],
    ids=lambda v: None if isinstance(v, dict) else type(v).__name__,
)
def test_decodes_kazoo_requests(kazoo_request, expected):
    body = bytes(kazoo_request.serialize())
    assert w.decode_request(kazoo_request.type, body) == expected
    assert w.REQUEST_RECORDS[kazoo_request.type].build(expected) == body


def test_decodes_kazoo_transaction():
    transaction = kz.Transaction(
        [
            kz.Create("/t", b"1", KZ_ACL[:1], 0),
            kz.Delete("/t/x", -1),
            kz.SetData("/t", b"2", 0),
            kz.CheckVersion("/t", 1),
        ]
    )
    ops = w.decode_request(transaction.type, bytes(transaction.serialize()))
    assert [op.type for op in ops] == [1, 2, 5, 13]
    assert ops[0].request == {"path": "/t", "data": b"1", "acl": WIRE_ACL[:1], "flags": 0}
    assert ops[3].request == {"path": "/t", "version": 1}


@pytest.mark.parametrize("read_only", [True, False])
def test_decodes_kazoo_connect(read_only):
    connect = kz.Connect(0, 0x55, 10000, 0x77, b"\x01" * 16, read_only)
    request = w.decode_connect_request(bytes(connect.serialize()))
    assert request == Container(
        protocolVersion=0,
        lastZxidSeen=0x55,
        timeOut=10000,
        sessionId=0x77,
        passwd=b"\x01" * 16,
        readOnly=read_only,
    )


@pytest.mark.parametrize("read_only", [True, False, None])
def test_kazoo_reads_connect_response(read_only):
    payload = unframe(w.encode_connect_response(4000, 0xABC, b"\x02" * 16, read_only))
    response, offset = kz.Connect.deserialize(payload, 0)
    assert (response.time_out, response.session_id, response.passwd) == (4000, 0xABC, b"\x02" * 16)
    assert response.read_only is bool(read_only)
    assert offset == len(payload)


def _kazoo_reply(opcode, body):
    payload = unframe(w.encode_reply(21, 500, 0, opcode, body))
    header, offset = kz.ReplyHeader.deserialize(payload, 0)
    assert header == (21, 500, 0)
    return payload, offset


def test_kazoo_reads_multi_response():
    results = [
        {"type": 1, "err": 0, "body": {"path": "/t"}},
        {"type": 2, "err": 0, "body": None},
        {"type": 5, "err": 0, "body": STAT},
        {"type": 13, "err": 0, "body": None},
    ]
    payload, offset = _kazoo_reply(w.OpCode.MULTI, results)
    parsed = kz.Transaction.deserialize(payload, offset)
    assert parsed[0] == "/t"
    assert parsed[1] is True
    assert tuple(parsed[2]) == tuple(STAT.values())
    assert parsed[3] is True


def test_kazoo_reads_multi_failure():
    results = [
        {"type": -1, "err": 0, "body": None},
        {"type": -1, "err": -101, "body": None},
        {"type": -1, "err": -2, "body": None},
    ]
    payload, offset = _kazoo_reply(w.OpCode.MULTI, results)
    parsed = kz.Transaction.deserialize(payload, offset)
    assert [type(result) for result in parsed] == [
        KazooRolledBack,
        KazooNoNode,
        KazooRuntimeInconsistency,
    ]


def test_kazoo_reads_single_replies():
    payload, offset = _kazoo_reply(w.OpCode.GET_DATA, {"data": b"hi", "stat": STAT})
    data, stat = kz.GetData.deserialize(payload, offset)
    assert data == b"hi" and stat.version == 3 and stat.ephemeralOwner == STAT["ephemeralOwner"]

    payload, offset = _kazoo_reply(w.OpCode.EXISTS, STAT)
    assert kz.Exists.deserialize(payload, offset).pzxid == STAT["pzxid"]

    payload, offset = _kazoo_reply(w.OpCode.CREATE, {"path": "/a0000000003"})
    assert kz.Create.deserialize(payload, offset) == "/a0000000003"

    payload, offset = _kazoo_reply(w.OpCode.CREATE2, {"path": "/b", "stat": STAT})
    path, stat = kz.Create2.deserialize(payload, offset)
    assert path == "/b" and stat.czxid == STAT["czxid"]

    payload, offset = _kazoo_reply(w.OpCode.GET_ACL, {"acl": WIRE_ACL, "stat": STAT})
    acls, stat = kz.GetACL.deserialize(payload, offset)
    assert acls == KZ_ACL and stat.aversion == 2

    payload, offset = _kazoo_reply(w.OpCode.GET_CHILDREN2, {"children": ["x", "y"], "stat": STAT})
    children, stat = kz.GetChildren2.deserialize(payload, offset)
    assert children == ["x", "y"] and stat.numChildren == 7

    payload, offset = _kazoo_reply(w.OpCode.SYNC, {"path": "/s"})
    assert kz.Sync.deserialize(payload, offset) == "/s"

    payload, offset = _kazoo_reply(w.OpCode.SET_DATA, STAT)
    assert kz.SetData.deserialize(payload, offset).mtime == STAT["mtime"]


def test_kazoo_reads_event():
    payload = unframe(w.encode_event(2, "/gone"))
    header, offset = kz.ReplyHeader.deserialize(payload, 0)
    assert header == (-1, -1, 0)
    event, _ = kz.Watch.deserialize(payload, offset)
    assert event == (2, 3, "/gone")
