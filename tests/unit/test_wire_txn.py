"""The txn codec: every write txn type survives encode/decode unchanged."""

import struct

import pytest
from construct import Container

from nookeeper.errors import MarshallingError
from nookeeper.txn import Txn
from nookeeper.wire.ops import CLOSE_SESSION, CREATE_SESSION
from nookeeper.wire.client import OpCode
from nookeeper.wire.txn import decode_txn, encode_txn, is_stamped, stamp

WORLD = {"perms": 31, "id": {"scheme": "world", "id": "anyone"}}
CREATOR = {"perms": 31, "id": {"scheme": "digest", "id": "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="}}
IDS = (("ip", "127.0.0.1"), ("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="))

REQUESTS = [
    (OpCode.CREATE, {"path": "/a", "data": b"v", "acl": [WORLD], "flags": 0}),
    (OpCode.CREATE, {"path": "/null", "data": None, "acl": [WORLD], "flags": 1}),
    (OpCode.CREATE, {"path": "/empty", "data": b"", "acl": [WORLD, CREATOR], "flags": 3}),
    (OpCode.CREATE2, {"path": "/b", "data": b"\x00\x01", "acl": [WORLD], "flags": 2}),
    (OpCode.CREATE_CONTAINER, {"path": "/c", "data": b"", "acl": [WORLD], "flags": 4}),
    (
        OpCode.CREATE_TTL,
        {"path": "/t", "data": b"x", "acl": [WORLD], "flags": 5, "ttl": 1_099_511_627_775},
    ),
    (OpCode.DELETE, {"path": "/a", "version": -1}),
    (OpCode.DELETE_CONTAINER, {"path": "/c"}),
    (OpCode.SET_DATA, {"path": "/a", "data": b"new" * 100, "version": 7}),
    (OpCode.SET_DATA, {"path": "/a", "data": None, "version": -1}),
    (OpCode.SET_ACL, {"path": "/a", "acl": [CREATOR], "version": 0}),
    (
        OpCode.MULTI,
        [
            {"type": 1, "request": {"path": "/m", "data": b"", "acl": [WORLD], "flags": 0}},
            {"type": 15, "request": {"path": "/m/s", "data": None, "acl": [WORLD], "flags": 2}},
            {"type": 19, "request": {"path": "/m/c", "data": b"", "acl": [WORLD], "flags": 4}},
            {
                "type": 21,
                "request": {"path": "/m/t", "data": b"", "acl": [WORLD], "flags": 6, "ttl": 5},
            },
            {"type": 13, "request": {"path": "/m", "version": 0}},
            {"type": 5, "request": {"path": "/m", "data": b"d", "version": 0}},
            {"type": 2, "request": {"path": "/m/c", "version": -1}},
        ],
    ),
    (OpCode.MULTI, []),
    (CREATE_SESSION, {"timeOut": 30000, "passwd": bytes(range(16))}),
    (CLOSE_SESSION, None),
]


def make_txn(op_type, request, ids=IDS):
    return Txn(
        zxid=0x200000011,
        time=1_700_000_000_999,
        session=0x0100018F3A2B0001,
        cxid=42,
        type=op_type,
        ids=ids,
        request=request,
    )


@pytest.mark.parametrize("op_type, request_body", REQUESTS, ids=lambda v: None)
def test_write_txns_round_trip(op_type, request_body):
    txn = make_txn(op_type, request_body)
    decoded = decode_txn(encode_txn(txn))
    assert decoded == txn
    assert decoded.ids == IDS
    assert isinstance(decoded.ids, tuple) and all(isinstance(i, tuple) for i in decoded.ids)
    assert encode_txn(decoded) == encode_txn(txn)


def test_request_decodes_to_containers_with_field_access():
    txn = decode_txn(encode_txn(make_txn(*REQUESTS[0])))
    assert isinstance(txn.request, Container)
    assert txn.request.path == "/a"
    assert txn.request.acl[0].id.scheme == "world"
    multi = decode_txn(encode_txn(make_txn(*REQUESTS[11])))
    assert [op.type for op in multi.request] == [1, 15, 19, 21, 13, 5, 2]
    assert multi.request[1].request.data is None


def test_null_and_empty_data_stay_distinct():
    assert decode_txn(encode_txn(make_txn(*REQUESTS[1]))).request.data is None
    assert decode_txn(encode_txn(make_txn(*REQUESTS[2]))).request.data == b""


def test_no_identities():
    txn = make_txn(CLOSE_SESSION, None, ids=())
    assert decode_txn(encode_txn(txn)).ids == ()


def test_header_layout():
    data = encode_txn(make_txn(CLOSE_SESSION, None, ids=(("ip", "1"),)))
    assert data == struct.pack(
        ">qqqiii", 0x200000011, 1_700_000_000_999, 0x0100018F3A2B0001, 42, -11, 1
    ) + struct.pack(">i2si1s", 2, b"ip", 1, b"1")


def test_body_is_the_client_request_encoding():
    request = {"path": "/a", "version": 3}
    data = encode_txn(make_txn(OpCode.DELETE, request, ids=()))
    assert data[-(4 + 2 + 4):] == struct.pack(">i2si", 2, b"/a", 3)


@pytest.mark.parametrize("op_type, request_body", REQUESTS[:-1], ids=lambda v: None)
def test_truncated_txn_is_marshalling_error(op_type, request_body):
    data = encode_txn(make_txn(op_type, request_body))
    with pytest.raises(MarshallingError):
        decode_txn(data[:-1])


def test_unknown_type_is_marshalling_error():
    data = bytearray(encode_txn(make_txn(CLOSE_SESSION, None, ids=())))
    data[28:32] = struct.pack(">i", 50)
    with pytest.raises(MarshallingError):
        decode_txn(bytes(data))
    with pytest.raises(MarshallingError):
        encode_txn(make_txn(50, None))


def test_garbage_is_marshalling_error():
    with pytest.raises(MarshallingError):
        decode_txn(b"")
    with pytest.raises(MarshallingError):
        decode_txn(b"\x00" * 32 + struct.pack(">i", -7))


def test_is_stamped_knows_a_sent_txn_only_by_all_its_bytes_but_the_stamp():
    sent = encode_txn(Txn(zxid=0, time=0, session=9, cxid=3, type=5, ids=(("ip", "1.2.3.4"),),
                          request=Container(path="/a", data=b"one", version=-1)))
    assert is_stamped(sent, stamp(sent, (2 << 32) | 7, 1_700_000_000_000))
    other = encode_txn(Txn(zxid=0, time=0, session=9, cxid=3, type=5, ids=(("ip", "1.2.3.4"),),
                           request=Container(path="/a", data=b"two", version=-1)))
    assert not is_stamped(sent, stamp(other, (2 << 32) | 7, 1_700_000_000_000))
