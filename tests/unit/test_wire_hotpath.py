"""The hand-packed codecs agree with the construct schema, byte for byte,
and refuse what it refuses."""

import random

import pytest
from construct import ConstructError

from nookeeper.errors import MarshallingError
from nookeeper.wire import client, hotpath

STAT = {"czxid": 1, "mzxid": 2, "ctime": 3, "mtime": 4, "version": 5, "cversion": -6,
        "aversion": 7, "ephemeralOwner": 0x1234, "dataLength": 9, "numChildren": 10,
        "pzxid": 11}
ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}},
       {"perms": 1, "id": {"scheme": "digest", "id": "u:\u00e9"}}]

REQUESTS = [
    (1, {"path": "/a", "data": b"x", "acl": ACL, "flags": 3}),
    (1, {"path": "/a", "data": None, "acl": [], "flags": 0}),
    (15, {"path": "/\U0001f600", "data": b"", "acl": ACL, "flags": 1}),
    (19, {"path": "/c", "data": b"d", "acl": ACL, "flags": 4}),
    (2, {"path": "/a", "version": -1}),
    (3, {"path": "/a", "watch": True}),
    (4, {"path": "/a/b", "watch": False}),
    (5, {"path": "/a", "data": b"\x00" * 300, "version": 7}),
    (8, {"path": "/", "watch": True}),
    (12, {"path": "/x", "watch": False}),
]
REPLIES = [
    (1, {"path": "/a0000000001"}),
    (15, {"path": "/a", "stat": STAT}),
    (19, {"path": "/a", "stat": STAT}),
    (21, {"path": "/a", "stat": STAT}),
    (3, STAT),
    (5, STAT),
    (7, STAT),
    (4, {"data": b"hello", "stat": STAT}),
    (4, {"data": None, "stat": STAT}),
    (8, {"children": ["a", "b\u00e9"]}),
    (8, {"children": []}),
    (12, {"children": ["x"], "stat": STAT}),
]


@pytest.mark.parametrize("opcode,request_", REQUESTS)
def test_requests_decode_as_the_schema_does(opcode, request_):
    body = client.REQUEST_RECORDS[opcode].build(request_)
    fast = hotpath.decode_request(opcode, body + b"trailing")
    slow = client.REQUEST_RECORDS[opcode].parse(body + b"trailing")
    slow.pop("_io", None)
    assert fast == slow


@pytest.mark.parametrize("opcode,body", REPLIES)
def test_replies_encode_as_the_schema_does(opcode, body):
    assert hotpath.encode_reply_body(opcode, body) == client.RESPONSE_RECORDS[opcode].build(body)


def test_header_and_event_match_the_schema():
    assert hotpath.reply_header(-1, 5, -101) == client.ReplyHeader.build(
        {"xid": -1, "zxid": 5, "err": -101})
    assert hotpath.event_body(3, 3, "/p") == client.WatcherEvent.build(
        {"type": 3, "state": 3, "path": "/p"})


@pytest.mark.parametrize("seed", range(40))
def test_damaged_requests_are_refused_alike(seed):
    """Truncations and random corruption: the fast path and the schema agree
    on accept-or-refuse, and agree on the result when both accept."""
    rng = random.Random(seed)
    opcode, request_ = REQUESTS[seed % len(REQUESTS)]
    body = bytearray(client.REQUEST_RECORDS[opcode].build(request_))
    if seed % 2:
        del body[rng.randrange(len(body)):]
    else:
        for _ in range(3):
            body[rng.randrange(len(body))] = rng.randrange(256)
    try:
        slow = client.REQUEST_RECORDS[opcode].parse(bytes(body))
        slow.pop("_io", None)
    except ConstructError:
        slow = None
    try:
        fast = hotpath.decode_request(opcode, bytes(body))
    except MarshallingError:
        fast = None
    assert fast == slow


def test_decode_request_uses_the_fast_path_and_reports_marshalling_errors():
    with pytest.raises(MarshallingError):
        client.decode_request(4, b"\x00\x00\x00\x09/a")


def test_a_kept_listing_is_encoded_once_and_a_changed_one_afresh():
    from nookeeper.listing import Listing

    names = Listing(f"member-{i:04d}" for i in range(500))
    first = hotpath.encode_reply_body(12, {"children": names, "stat": STAT})
    assert first == client.RESPONSE_RECORDS[12].build({"children": list(names), "stat": STAT})
    assert names.wire == hotpath.encode_reply_body(8, {"children": names})
    names.wire = b"\x00\x00\x00\x00"  # what is kept is what is sent
    assert hotpath.encode_reply_body(8, {"children": names}) == b"\x00\x00\x00\x00"
    changed = Listing(list(names) + ["member-9999"])
    assert hotpath.encode_reply_body(8, {"children": changed}) == \
        client.RESPONSE_RECORDS[8].build({"children": list(changed)})
