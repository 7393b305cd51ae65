"""Fuzzing what turns a client's bytes into records.

The server answers a ZooKeeperError with its code (or, for a frame or a
handshake it cannot read, closes with a log line); anything else escapes
into socketserver and drops the connection with a traceback and no answer.
So whatever the bytes, a decoder may return or raise ZooKeeperError, nothing
else. Valid encodings derived from the schema are mutated as well as random
bytes tried, so the fuzzer gets past the first length fields into the records.

Reproducible (no example database, derandomized). NK_FUZZ_EXAMPLES sets the
examples per property (per opcode where parametrized; the auth packet gets
three times as many), 50 by default; raise it for a long run, e.g.
NK_FUZZ_EXAMPLES=20000.
"""

import functools
import os
import socket
import struct
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nookeeper import acl
from nookeeper.errors import AuthFailedError, ZooKeeperError
from nookeeper.server.connection import Connection
from nookeeper.server.throttle import Throttle
from nookeeper.wire import client, hotpath
from nookeeper.wire.records import AuthPacket, MultiOps
from nookeeper.wire.jute import (
    MAX_ELEMENTS,
    MAX_LENGTH,
    Bool,
    Buffer,
    Int,
    Long,
    OptionalBool,
    Record,
    UString,
    Vector,
    java_string,
)

EXAMPLES = int(os.environ.get("NK_FUZZ_EXAMPLES", "50"))

fuzz = settings(
    database=None,
    derandomize=True,
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every opcode the server reads a body for, and those it takes with a header only.
OPCODES = sorted(set(client.REQUEST_RECORDS) | client.NO_BODY_OPS)

INT32 = st.integers(-2**31, 2**31 - 1)
# Lengths and counts that probe the edges of what jute allows.
EDGE_INT32 = st.one_of(
    INT32,
    st.sampled_from([-2**31, -2, -1, 0, 1, 2**31 - 1, MAX_LENGTH, MAX_LENGTH + 1,
                     MAX_ELEMENTS, MAX_ELEMENTS + 1]),
)


def values_of(con):
    """A strategy for values the schema `con` builds, read off the schema itself."""
    if con is Int:
        return INT32
    if con is Long:
        return st.integers(-2**63, 2**63 - 1)
    if con is Bool:
        return st.booleans()
    if con is OptionalBool:
        return st.none() | st.booleans()
    if con is Buffer:
        return st.none() | st.binary(max_size=40)
    if con is UString:
        return st.none() | st.text(max_size=20)
    if isinstance(con, Vector):
        return st.none() | st.lists(values_of(con.subcon), max_size=4)
    if isinstance(con, Record):
        return st.fixed_dictionaries({sub.name: values_of(sub.subcon) for sub in con.subcons})
    if isinstance(con, MultiOps):
        op = st.sampled_from(sorted(con.records)).flatmap(
            lambda op_type: values_of(con.records[op_type]).map(
                lambda request: {"type": op_type, "request": request}))
        return st.lists(op, max_size=4)
    raise AssertionError(f"no strategy for {con!r}: the schema grew a type the fuzzer lacks")


@functools.cache
def encodings_of(record):
    return values_of(record).map(record.build)


def mutate(draw, data):
    """Valid bytes flipped, overwritten with edge lengths, cut short or extended."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "int", "cut", "extend", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "int":
            data[at:at + 4] = struct.pack(">i", draw(EDGE_INT32))
        elif kind == "cut":
            del data[at:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def mutated(draw, valid):
    return mutate(draw, draw(valid))


def answers(decode, *args):
    """What the server can answer: a record, or a ZooKeeperError carrying a code."""
    try:
        return decode(*args)
    except ZooKeeperError as exc:
        assert isinstance(exc.code, int)
        return exc


def decodes(decode, *args):
    result = answers(decode, *args)
    assert not isinstance(result, ZooKeeperError), f"{args!r} is valid but refused: {result!r}"
    return result


# ---- request bodies -----------------------------------------------------------

def check_body(opcode, body):
    answers(client.decode_request, opcode, body)
    if opcode in hotpath.REQUEST_DECODERS:
        answers(hotpath.decode_request, opcode, body)


@pytest.mark.parametrize("opcode", OPCODES)
@fuzz
@given(data=st.data())
def test_request_bodies_decode_or_raise_a_zookeeper_error(opcode, data):
    """Each example: a valid body (which must decode), a mutation of it, random bytes."""
    record = client.REQUEST_RECORDS.get(opcode)
    if record is not None:
        valid = data.draw(encodings_of(record), label="valid")
        decodes(client.decode_request, opcode, valid)
        check_body(opcode, mutate(data.draw, valid))
    check_body(opcode, data.draw(st.binary(max_size=64), label="random"))


@fuzz
@given(opcode=INT32, body=st.binary(max_size=64))
def test_any_opcode_decodes_or_raises_a_zookeeper_error(opcode, body):
    answers(client.decode_request, opcode, body)


@st.composite
def request_frames(draw):
    """A frame payload as the reader loop sees it: header, then a body for some opcode."""
    opcode = draw(st.sampled_from(OPCODES) | INT32)
    record = client.REQUEST_RECORDS.get(opcode)
    body = draw(encodings_of(record)) if record is not None else draw(st.binary(max_size=64))
    return struct.pack(">ii", draw(INT32), opcode) + body


@fuzz
@given(payload=st.one_of(request_frames(), mutated(request_frames()), st.binary(max_size=80)))
def test_request_frames_decode_or_raise_a_zookeeper_error(payload):
    header = answers(client.decode_request_header, payload)
    if not isinstance(header, ZooKeeperError):
        _xid, opcode, body = header
        answers(client.decode_request, opcode, body)


# ---- the handshake --------------------------------------------------------------

CONNECT = encodings_of(client.ConnectRequest)


@fuzz
@given(payload=st.one_of(CONNECT, mutated(CONNECT), st.binary(max_size=64)))
def test_connect_requests_decode_or_raise_a_zookeeper_error(payload):
    request = answers(client.decode_connect_request, payload)
    if not isinstance(request, ZooKeeperError):
        # What node.attach reads of it.
        assert all(isinstance(request[field], int)
                   for field in ("protocolVersion", "lastZxidSeen", "timeOut", "sessionId"))
        assert request.passwd is None or isinstance(request.passwd, bytes)
        assert request.readOnly in (None, True, False)


# ---- the auth packet ------------------------------------------------------------

class _Stats:
    def packet_received(self):
        pass

    def failed_auth(self):
        pass

    def record(self, op, seconds, response_size):
        pass


def _read_all(sock):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def authenticate(body):
    """Connection.handle on one auth packet: (reply payloads, closed by it, ids)."""
    node = types.SimpleNamespace(stats=_Stats(),
                                 config=types.SimpleNamespace(super_digest=None))
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    conn = Connection(node, ours, ("127.0.0.1", 1), throttle=Throttle(10, 10))
    conn.start_sending()
    try:
        conn.handle(client.XID_AUTH, client.OpCode.AUTH, body)
        closed_by_auth = conn.closed
    finally:
        conn.close()
        data = _read_all(theirs)
        conn.wait_sent(5)
        ours.close()
        theirs.close()
    replies = []
    while data:
        (length,) = struct.unpack(">i", data[:4])
        replies.append(data[4:4 + length])
        data = data[4 + length:]
    return replies, closed_by_auth, conn.ids


# The schemes the server accepts are drawn more often than the others.
SCHEMES = st.one_of(st.just("digest"), st.just("ip"), st.none(),
                    st.sampled_from(["sasl", "world", ""]), st.text(max_size=8))
AUTH_PACKETS = st.fixed_dictionaries(
    {"type": INT32, "scheme": SCHEMES, "auth": st.none() | st.binary(max_size=24)}
).map(AuthPacket.build)


@settings(fuzz, max_examples=3 * EXAMPLES)  # the packet this fuzzer was written for
@given(body=st.one_of(AUTH_PACKETS, mutated(AUTH_PACKETS), st.binary(max_size=48)))
def test_auth_packets_get_an_answer(body):
    """OK, or AuthFailed followed by the close; never an exception, never silence."""
    replies, closed, _ids = authenticate(body)
    assert len(replies) == 1
    xid, zxid, err = struct.unpack(">iqi", replies[0])
    assert (xid, zxid) == (client.XID_AUTH, 0)
    assert err in (0, AuthFailedError.code)
    assert closed == (err == AuthFailedError.code)


@fuzz
@given(credential=st.binary(max_size=24))
def test_any_digest_credential_succeeds(credential):
    """ZooKeeper reads the credential with new String(bytes): it never fails on bad UTF-8."""
    body = AuthPacket.build({"type": 0, "scheme": "digest", "auth": credential})
    replies, closed, ids = authenticate(body)
    assert struct.unpack(">iqi", replies[0])[2] == 0 and not closed
    assert ("digest", acl.digest_id(java_string(credential))) in ids


# What Java 17's new String(bytes, UTF_8) makes of these, as run on the JDK;
# for the first three a live ZooKeeper 3.8 also answered whoAmI with that user.
JAVA_READS = [
    (b"\xff\xfe:x", "\ufffd\ufffd:x"),
    (b"a\x80b:\xc3", "a\ufffdb:\ufffd"),
    (b"\xed\xa0\x80:x", "\ufffd:x"),                # an encoded surrogate is one U+FFFD to Java
    (b"\xed\xa0\x80\xed\xb0\x80", "\ufffd\ufffd"),  # CESU-8 too
    (b"\xed\xa0x", "\ufffdx"),
    (b"\xe0\x80\x80", "\ufffd\ufffd\ufffd"),
    (b"\xf0\x9f\x98", "\ufffd"),
    (b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"),
    ("alice:p\u00e9\U0001f600".encode(), "alice:p\u00e9\U0001f600"),
]


@pytest.mark.parametrize("data,text", JAVA_READS)
def test_credentials_read_as_java_reads_them(data, text):
    assert java_string(data) == text


def test_non_utf8_digest_credential_authenticates_as_zookeeper_does():
    body = AuthPacket.build({"type": 0, "scheme": "digest", "auth": b"\xff\xfe:x"})
    replies, closed, ids = authenticate(body)
    assert struct.unpack(">iqi", replies[0]) == (client.XID_AUTH, 0, 0) and not closed
    ident = acl.digest_id("\ufffd\ufffd:x")
    assert ident.startswith("\ufffd\ufffd:") and ("digest", ident) in ids
