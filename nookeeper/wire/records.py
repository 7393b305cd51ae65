"""The client protocol's records, as jute lays them out.

Record and field names are exactly ZooKeeper's jute names so that a decoded
request reads like the spec (``req.path``, ``req.acl``, ``req.watch``).
Which op carries which record is the registry's business (wire/ops.py);
framing and decoding by opcode are wire/client.py's.
"""

from construct import Construct, Container, ValidationError

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


class MultiOps(Construct):
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


class MultiResults(Construct):
    """A multi/multiRead reply body: one header+result per sub-op, then done.

    `records` maps each result type to its record (None: no body). Error
    results carry their code twice (header and ErrorResponse), as ZooKeeper
    does; kazoo reads the second one.
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
            if record is ErrorResponse:
                record._build({"err": err}, stream, context, path)
            elif record is not None:
                record._build(result["body"], stream, context, path)
        MultiHeader._build(_MULTI_DONE, stream, context, path)
        return obj
