"""The client protocol's records and the framing around them.

Record and field names are exactly ZooKeeper's jute names so that a decoded
request reads like the spec (``req.path``, ``req.acl``, ``req.watch``).
The decode helpers turn every parse failure into MarshallingError, which is
what the server must answer for a body it cannot read.
"""

import struct

from construct import Construct, ConstructError, Container, ValidationError

from nookeeper import txn as _txn
from nookeeper.errors import MarshallingError, UnimplementedError
from nookeeper.wire import hotpath
from nookeeper.wire.jute import (
    Bool,
    Buffer,
    Int,
    Long,
    OptionalBool,
    Record,
    UString,
    Vector,
)


class OpCode:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = _txn.CREATE_SESSION
    CLOSE_SESSION = _txn.CLOSE_SESSION
    ERROR = -1


XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

# The server only ever reports SyncConnected in a notification (spec §9.1).
STATE_SYNC_CONNECTED = 3

# Data records.
Id = Record("scheme" / UString, "id" / UString)
ACL = Record("perms" / Int, "id" / Id)
Stat = Record(
    "czxid" / Long,
    "mzxid" / Long,
    "ctime" / Long,
    "mtime" / Long,
    "version" / Int,
    "cversion" / Int,
    "aversion" / Int,
    "ephemeralOwner" / Long,
    "dataLength" / Int,
    "numChildren" / Int,
    "pzxid" / Long,
)
ClientInfo = Record("authScheme" / UString, "user" / UString)

# Handshake and headers.
ConnectRequest = Record(
    "protocolVersion" / Int,
    "lastZxidSeen" / Long,
    "timeOut" / Int,
    "sessionId" / Long,
    "passwd" / Buffer,
    "readOnly" / OptionalBool,
)
ConnectResponse = Record(
    "protocolVersion" / Int,
    "timeOut" / Int,
    "sessionId" / Long,
    "passwd" / Buffer,
    "readOnly" / OptionalBool,
)
RequestHeader = Record("xid" / Int, "type" / Int)
ReplyHeader = Record("xid" / Int, "zxid" / Long, "err" / Int)
MultiHeader = Record("type" / Int, "done" / Bool, "err" / Int)

# Requests and responses.
AuthPacket = Record("type" / Int, "scheme" / UString, "auth" / Buffer)
CreateRequest = Record(
    "path" / UString, "data" / Buffer, "acl" / Vector(ACL), "flags" / Int
)
CreateTTLRequest = Record(
    "path" / UString,
    "data" / Buffer,
    "acl" / Vector(ACL),
    "flags" / Int,
    "ttl" / Long,
)
CreateResponse = Record("path" / UString)
Create2Response = Record("path" / UString, "stat" / Stat)
DeleteRequest = Record("path" / UString, "version" / Int)
ExistsRequest = Record("path" / UString, "watch" / Bool)
GetDataRequest = Record("path" / UString, "watch" / Bool)
GetDataResponse = Record("data" / Buffer, "stat" / Stat)
SetDataRequest = Record("path" / UString, "data" / Buffer, "version" / Int)
GetACLRequest = Record("path" / UString)
GetACLResponse = Record("acl" / Vector(ACL), "stat" / Stat)
SetACLRequest = Record("path" / UString, "acl" / Vector(ACL), "version" / Int)
GetChildrenRequest = Record("path" / UString, "watch" / Bool)
GetChildrenResponse = Record("children" / Vector(UString))
GetChildren2Request = Record("path" / UString, "watch" / Bool)
GetChildren2Response = Record("children" / Vector(UString), "stat" / Stat)
SyncRequest = Record("path" / UString)
SyncResponse = Record("path" / UString)
# ZooKeeper's own encoding changed between releases; a length-prefixed UTF-8
# path (master's form) is byte-identical to a SyncRequest.
DeleteContainerRequest = Record("path" / UString)
CheckVersionRequest = Record("path" / UString, "version" / Int)
ReconfigRequest = Record(
    "joiningServers" / UString,
    "leavingServers" / UString,
    "newMembers" / UString,
    "curConfigId" / Long,
)
CheckWatchesRequest = Record("path" / UString, "type" / Int)
RemoveWatchesRequest = CheckWatchesRequest
AddWatchRequest = Record("path" / UString, "mode" / Int)
GetEphemeralsRequest = Record("prefixPath" / UString)
GetEphemeralsResponse = Record("ephemerals" / Vector(UString))
GetAllChildrenNumberRequest = Record("path" / UString)
GetAllChildrenNumberResponse = Record("totalNumber" / Int)
WhoAmIResponse = Record("clientInfo" / Vector(ClientInfo))
SetWatches = Record(
    "relativeZxid" / Long,
    "dataWatches" / Vector(UString),
    "existWatches" / Vector(UString),
    "childWatches" / Vector(UString),
)
SetWatches2 = Record(
    "relativeZxid" / Long,
    "dataWatches" / Vector(UString),
    "existWatches" / Vector(UString),
    "childWatches" / Vector(UString),
    "persistentWatches" / Vector(UString),
    "persistentRecursiveWatches" / Vector(UString),
)
WatcherEvent = Record("type" / Int, "state" / Int, "path" / UString)
ErrorResponse = Record("err" / Int)
GetSASLRequest = Record("token" / Buffer)
SetSASLResponse = Record("token" / Buffer)
CreateSessionTxn = Record("timeOut" / Int, "passwd" / Buffer)

_MULTI_DONE = {"type": -1, "done": True, "err": -1}


class _MultiOps(Construct):
    """A multi/multiRead request body: header+record pairs up to the done-header.

    Only the sub-op types in `records` are accepted; anything else (a read in
    a multi, a write in a multiRead, an unknown type) fails the parse, which
    the server answers with MARSHALLINGERROR.
    """

    def __init__(self, records):
        super().__init__()
        self.records = records

    def _parse(self, stream, context, path):
        ops = []
        while True:
            header = MultiHeader._parsereport(stream, context, path)
            if header.done:
                return ops
            record = self.records.get(header.type)
            if record is None:
                raise ValidationError(
                    f"sub-op type {header.type} not allowed here", path=path
                )
            ops.append(
                Container(
                    type=header.type,
                    request=record._parsereport(stream, context, path),
                )
            )

    def _build(self, obj, stream, context, path):
        for op in obj:
            op_type = op["type"]
            MultiHeader._build(
                {"type": op_type, "done": False, "err": -1}, stream, context, path
            )
            self.records[op_type]._build(op["request"], stream, context, path)
        MultiHeader._build(_MULTI_DONE, stream, context, path)
        return obj


class _MultiResults(Construct):
    """A multi/multiRead reply body: one header+result per sub-op, then done.

    Error results carry their code twice (header and ErrorResponse), as
    ZooKeeper does; kazoo reads the second one.
    """

    def __init__(self, records):
        super().__init__()
        self.records = records

    def _parse(self, stream, context, path):
        results = []
        while True:
            header = MultiHeader._parsereport(stream, context, path)
            if header.done:
                return results
            if header.type not in self.records:
                raise ValidationError(
                    f"result type {header.type} unknown", path=path
                )
            record = self.records[header.type]
            body = None
            if record is not None:
                body = record._parsereport(stream, context, path)
            results.append(Container(type=header.type, err=header.err, body=body))

    def _build(self, obj, stream, context, path):
        for result in obj:
            result_type, err = result["type"], result["err"]
            MultiHeader._build(
                {"type": result_type, "done": False, "err": err}, stream, context, path
            )
            record = self.records[result_type]
            if result_type == OpCode.ERROR:
                record._build({"err": err}, stream, context, path)
            elif record is not None:
                record._build(result["body"], stream, context, path)
        MultiHeader._build(_MULTI_DONE, stream, context, path)
        return obj


MultiRequest = _MultiOps(
    {
        OpCode.CREATE: CreateRequest,
        OpCode.CREATE2: CreateRequest,
        OpCode.CREATE_CONTAINER: CreateRequest,
        OpCode.CREATE_TTL: CreateTTLRequest,
        OpCode.DELETE: DeleteRequest,
        OpCode.SET_DATA: SetDataRequest,
        OpCode.CHECK: CheckVersionRequest,
    }
)
MultiReadRequest = _MultiOps(
    {
        OpCode.GET_CHILDREN: GetChildrenRequest,
        OpCode.GET_DATA: GetDataRequest,
    }
)
MultiResponse = _MultiResults(
    {
        OpCode.CREATE: CreateResponse,
        OpCode.CREATE2: Create2Response,
        OpCode.DELETE: None,
        OpCode.CHECK: None,
        OpCode.SET_DATA: Stat,
        OpCode.GET_DATA: GetDataResponse,
        OpCode.GET_CHILDREN: GetChildrenResponse,
        OpCode.ERROR: ErrorResponse,
    }
)

# Ops a client sends with a header only.
NO_BODY_OPS = frozenset({OpCode.PING, OpCode.CLOSE_SESSION, OpCode.WHO_AM_I})

REQUEST_RECORDS = {
    OpCode.CREATE: CreateRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.EXISTS: ExistsRequest,
    OpCode.GET_DATA: GetDataRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.GET_ACL: GetACLRequest,
    OpCode.SET_ACL: SetACLRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
    OpCode.SYNC: SyncRequest,
    OpCode.GET_CHILDREN2: GetChildren2Request,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.MULTI: MultiRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.RECONFIG: ReconfigRequest,
    OpCode.CHECK_WATCHES: CheckWatchesRequest,
    OpCode.REMOVE_WATCHES: RemoveWatchesRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.DELETE_CONTAINER: DeleteContainerRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.MULTI_READ: MultiReadRequest,
    OpCode.AUTH: AuthPacket,
    OpCode.SET_WATCHES: SetWatches,
    OpCode.SASL: GetSASLRequest,
    OpCode.GET_EPHEMERALS: GetEphemeralsRequest,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberRequest,
    OpCode.SET_WATCHES2: SetWatches2,
    OpCode.ADD_WATCH: AddWatchRequest,
}

RESPONSE_RECORDS = {
    OpCode.CREATE: CreateResponse,
    OpCode.EXISTS: Stat,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.SET_DATA: Stat,
    OpCode.GET_ACL: GetACLResponse,
    OpCode.SET_ACL: Stat,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.SYNC: SyncResponse,
    OpCode.GET_CHILDREN2: GetChildren2Response,
    OpCode.MULTI: MultiResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.RECONFIG: GetDataResponse,
    OpCode.CREATE_CONTAINER: Create2Response,
    OpCode.CREATE_TTL: Create2Response,
    OpCode.MULTI_READ: MultiResponse,
    OpCode.SASL: SetSASLResponse,
    OpCode.GET_EPHEMERALS: GetEphemeralsResponse,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberResponse,
    OpCode.ADD_WATCH: ErrorResponse,
    OpCode.WHO_AM_I: WhoAmIResponse,
}

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
