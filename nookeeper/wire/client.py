"""Framing, and the client protocol's records coded by opcode.

Which record an opcode carries comes from the registry (wire/ops.py); the
records themselves are wire/records.py's. The decode helpers turn every
parse failure into MarshallingError, which is what the server must answer
for a body it cannot read.
"""

import struct

from construct import ConstructError

from nookeeper.errors import MarshallingError, UnimplementedError
from nookeeper.wire import hotpath
from nookeeper.wire.ops import NO_BODY_OPS, REQUEST_RECORDS, RESPONSE_RECORDS, OpCode
from nookeeper.wire.records import (
    ConnectRequest,
    ConnectResponse,
    CreateSessionTxn,
    Id,
    ReplyHeader,
    RequestHeader,
    SetWatches,
    WatcherEvent,
)

# Importers of the protocol's framing find the registry's tables and a few
# records here too.
__all__ = [
    "NO_BODY_OPS", "REQUEST_RECORDS", "RESPONSE_RECORDS", "OpCode",
    "ConnectRequest", "ConnectResponse", "CreateSessionTxn", "Id", "ReplyHeader",
    "RequestHeader", "SetWatches", "WatcherEvent",
    "XID_NOTIFICATION", "XID_PING", "XID_AUTH", "XID_SET_WATCHES", "STATE_SYNC_CONNECTED",
    "frame", "decode_connect_request", "encode_connect_request", "encode_connect_response",
    "decode_connect_response", "decode_request_header", "decode_request", "encode_request",
    "encode_reply", "decode_reply", "encode_event",
]

XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

# The server only ever reports SyncConnected in a notification (spec §9.1).
STATE_SYNC_CONNECTED = 3

_FRAME_LENGTH = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">ii")


def frame(payload):
    """Prefix the 4-byte big-endian length every message carries."""
    return _FRAME_LENGTH.pack(len(payload)) + payload


def _parse(record, data):
    try:
        return record.parse(data)
    except ConstructError as exc:
        raise MarshallingError(str(exc)) from exc


def decode_connect_request(payload):
    """The first frame of a connection; readOnly is None for pre-3.4 clients."""
    return _parse(ConnectRequest, payload)


def encode_connect_request(
    timeOut, sessionId=0, passwd=b"\x00" * 16, lastZxidSeen=0, read_only=False
):
    """A framed ConnectRequest, as a client sends it (tests, future client)."""
    return frame(
        ConnectRequest.build(
            {
                "protocolVersion": 0,
                "lastZxidSeen": lastZxidSeen,
                "timeOut": timeOut,
                "sessionId": sessionId,
                "passwd": passwd,
                "readOnly": read_only,
            }
        )
    )


def encode_connect_response(timeOut, sessionId, passwd, read_only):
    """A framed ConnectResponse; read_only None leaves the byte out for old clients."""
    return frame(
        ConnectResponse.build(
            {
                "protocolVersion": 0,
                "timeOut": timeOut,
                "sessionId": sessionId,
                "passwd": passwd,
                "readOnly": read_only,
            }
        )
    )


def decode_connect_response(payload):
    """The server's first frame (without its length prefix)."""
    return _parse(ConnectResponse, payload)


def decode_request_header(payload):
    """Split a request frame's payload into (xid, type, body bytes)."""
    if len(payload) < _REQUEST_HEADER.size:
        raise MarshallingError(f"request header needs 8 bytes, got {len(payload)}")
    xid, op_type = _REQUEST_HEADER.unpack_from(payload)
    return xid, op_type, bytes(payload[_REQUEST_HEADER.size:])


def decode_request(opcode, body):
    """The request record for `opcode`, or None for ops that carry no body.

    multi and multiRead give a list of Container(type, request).
    """
    if opcode in NO_BODY_OPS:
        return None
    if opcode in hotpath.REQUEST_DECODERS:
        return hotpath.decode_request(opcode, body)
    record = REQUEST_RECORDS.get(opcode)
    if record is None:
        raise UnimplementedError(f"unknown opcode {opcode}")
    return _parse(record, body)


def encode_request(xid, opcode, request=None):
    """A framed request; `request` is a dict (a list of {type, request} for multi)."""
    header = RequestHeader.build({"xid": xid, "type": opcode})
    if request is None:
        return frame(header)
    return frame(header + REQUEST_RECORDS[opcode].build(request))


def encode_reply(xid, zxid, err, opcode=None, body=None):
    """A framed reply; errors and body-less ops get the 16-byte header only."""
    header = hotpath.reply_header(xid, zxid, err)
    record = RESPONSE_RECORDS.get(opcode)
    if err != 0 or body is None or record is None:
        return frame(header)
    fast = hotpath.encode_reply_body(opcode, body)
    return frame(header + (fast if fast is not None else record.build(body)))


def decode_reply(payload, opcode=None):
    """(ReplyHeader, body) from a reply payload without its length prefix.

    A notification (xid -1) gives its WatcherEvent; otherwise the body is
    the RESPONSE_RECORDS entry for `opcode`, or None on error or no record.
    """
    header = _parse(ReplyHeader, payload)
    rest = payload[16:]
    if header.xid == XID_NOTIFICATION:
        return header, _parse(WatcherEvent, rest)
    record = RESPONSE_RECORDS.get(opcode)
    if header.err != 0 or record is None:
        return header, None
    return header, _parse(record, rest)


def encode_event(event_type, path, zxid=-1, state=STATE_SYNC_CONNECTED):
    """A framed watch notification (xid -1)."""
    return frame(hotpath.reply_header(XID_NOTIFICATION, zxid, 0)
                 + hotpath.event_body(event_type, state, path))
