"""Every client operation in one table, and the values the watch ops carry.

ZooKeeper spreads what an op is over ZooDefs.OpCode, Request.op2String, the
request processors and the jute schema. Here one row per op holds it all,
and every other table (records by opcode, the metrics' op names, cons' last
operation, which ops are txns, what the server does with each) is read from
these rows, so a fact about an op is written once. Pure: records and codes,
no tree, no server.
"""

from typing import NamedTuple

from construct import Construct

from nookeeper.errors import BadArgumentsError, ReconfigDisabledError
from nookeeper.wire import records as r


class OpCode:
    """ZooKeeper's ZooDefs.OpCode."""

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
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


# The session txns' types, named on their own: whatever makes or reads them says so.
CREATE_SESSION = OpCode.CREATE_SESSION
CLOSE_SESSION = OpCode.CLOSE_SESSION

# Kinds: what the server does with a request frame of the op, one handler each.
WRITE = "write"              # proposed as a txn, answered once applied
READ = "read"                # answered from the local tree (server/readops.py)
SYNC = "sync"                # answered once this server has what the leader had
SESSION = "session"          # closeSession: the txn that ends the session
WATCHES = "watches"          # setWatches(2): a reconnecting client's watches restored
AUTH = "auth"                # addAuth and SASL: identities for the connection
PING = "ping"
REFUSED = "refused"          # answered with the op's refusal error; the connection stays
UNSUPPORTED = "unsupported"  # answered UNIMPLEMENTED, and the connection closed


class Op(NamedTuple):
    code: int
    name: str         # Request.op2String: the metrics' op label, nk-dump's txn type
    tag: str          # cons' last operation (lop); UNKN where nookeeper has never named one
    kind: str
    writes: bool      # a txn type (ZooKeeper's Request.isQuorum), whether or not nookeeper takes it
    request: Construct | None = None  # the body a client sends; None: header only, or never sent
    reply: Construct | None = None    # the body of a successful reply; None: header only
    sub_of: int | None = None         # MULTI or MULTI_READ when it may be one of their sub-ops
    refusal: int | None = None        # REFUSED ops: the error code they are answered with


_C = OpCode
# In ZooDefs' order. multi and multiRead get their records below, being made of the others.
_ROWS = (
    Op(_C.NOTIFICATION, "notification", "UNKN", UNSUPPORTED, False),
    Op(_C.CREATE, "create", "CREA", WRITE, True, r.CreateRequest, r.CreateResponse, _C.MULTI),
    Op(_C.DELETE, "delete", "DELE", WRITE, True, r.DeleteRequest, None, _C.MULTI),
    Op(_C.EXISTS, "exists", "EXIS", READ, False, r.ExistsRequest, r.Stat),
    Op(_C.GET_DATA, "getData", "GETD", READ, False, r.GetDataRequest, r.GetDataResponse,
       _C.MULTI_READ),
    Op(_C.SET_DATA, "setData", "SETD", WRITE, True, r.SetDataRequest, r.Stat, _C.MULTI),
    Op(_C.GET_ACL, "getACL", "GETA", READ, False, r.GetACLRequest, r.GetACLResponse),
    Op(_C.SET_ACL, "setACL", "SETA", WRITE, True, r.SetACLRequest, r.Stat),
    Op(_C.GET_CHILDREN, "getChildren", "GETC", READ, False, r.GetChildrenRequest,
       r.GetChildrenResponse, _C.MULTI_READ),
    Op(_C.SYNC, "sync", "SYNC", SYNC, False, r.SyncRequest, r.SyncResponse),
    Op(_C.PING, "ping", "PING", PING, False),
    Op(_C.GET_CHILDREN2, "getChildren2", "GETC", READ, False, r.GetChildren2Request,
       r.GetChildren2Response),
    Op(_C.CHECK, "check", "UNKN", UNSUPPORTED, True, r.CheckVersionRequest, None, _C.MULTI),
    Op(_C.MULTI, "multi", "MULT", WRITE, True),
    Op(_C.CREATE2, "create2", "CREA", WRITE, True, r.CreateRequest, r.Create2Response, _C.MULTI),
    Op(_C.RECONFIG, "reconfig", "UNKN", REFUSED, True, r.ReconfigRequest, r.GetDataResponse,
       refusal=ReconfigDisabledError.code),
    Op(_C.CHECK_WATCHES, "checkWatches", "UNKN", READ, False, r.CheckWatchesRequest),
    Op(_C.REMOVE_WATCHES, "removeWatches", "UNKN", READ, False, r.RemoveWatchesRequest),
    Op(_C.CREATE_CONTAINER, "createContainer", "CREA", WRITE, True, r.CreateRequest,
       r.Create2Response, _C.MULTI),
    # Proposed by the leader's reaper. ZooKeeper 3.8 reads the body as a bare
    # path, which a client's jute-framed request is not a valid one: BADARGUMENTS.
    Op(_C.DELETE_CONTAINER, "deleteContainer", "UNKN", REFUSED, True, r.DeleteContainerRequest,
       refusal=BadArgumentsError.code),
    Op(_C.CREATE_TTL, "createTTL", "CREA", WRITE, True, r.CreateTTLRequest, r.Create2Response,
       _C.MULTI),
    Op(_C.MULTI_READ, "multiRead", "MLTR", READ, False),
    Op(_C.AUTH, "auth", "AUTH", AUTH, False, r.AuthPacket),
    Op(_C.SET_WATCHES, "setWatches", "SETW", WATCHES, False, r.SetWatches),
    Op(_C.SASL, "sasl", "UNKN", AUTH, False, r.GetSASLRequest, r.SetSASLResponse),
    Op(_C.GET_EPHEMERALS, "getEphemerals", "UNKN", READ, False, r.GetEphemeralsRequest,
       r.GetEphemeralsResponse),
    Op(_C.GET_ALL_CHILDREN_NUMBER, "getAllChildrenNumber", "UNKN", READ, False,
       r.GetAllChildrenNumberRequest, r.GetAllChildrenNumberResponse),
    Op(_C.SET_WATCHES2, "setWatches2", "SETW", WATCHES, False, r.SetWatches2),
    Op(_C.ADD_WATCH, "addWatch", "UNKN", READ, False, r.AddWatchRequest, r.ErrorResponse),
    Op(_C.WHO_AM_I, "whoAmI", "UNKN", READ, False, None, r.WhoAmIResponse),
    # A session is created by the connect handshake, never by a request frame.
    Op(_C.CREATE_SESSION, "createSession", "UNKN", UNSUPPORTED, True),
    Op(_C.CLOSE_SESSION, "closeSession", "CLOS", SESSION, True),
    Op(_C.ERROR, "error", "UNKN", UNSUPPORTED, False),
)


def _sub_op_records(multi):
    return {op.code: op.request for op in _ROWS if op.sub_of == multi}


MultiRequest = r.MultiOps(_sub_op_records(_C.MULTI))
MultiReadRequest = r.MultiOps(_sub_op_records(_C.MULTI_READ))
# Results are typed as ZooKeeper's MultiResponse types them: every create but
# a plain one reports as create2, and a failed sub-op as error.
MultiResponse = r.MultiResults({
    _C.CREATE: r.CreateResponse,
    _C.CREATE2: r.Create2Response,
    _C.DELETE: None,
    _C.CHECK: None,
    _C.SET_DATA: r.Stat,
    _C.GET_DATA: r.GetDataResponse,
    _C.GET_CHILDREN: r.GetChildrenResponse,
    _C.ERROR: r.ErrorResponse,
})

OPS = tuple(
    op._replace(request=MultiRequest, reply=MultiResponse) if op.code == _C.MULTI
    else op._replace(request=MultiReadRequest, reply=MultiResponse) if op.code == _C.MULTI_READ
    else op
    for op in _ROWS
)
BY_CODE = {op.code: op for op in OPS}

NAMES = {op.code: op.name for op in OPS}
TAGS = {op.code: op.tag for op in OPS}
KINDS = {op.code: op.kind for op in OPS}
REQUEST_RECORDS = {op.code: op.request for op in OPS if op.request is not None}
RESPONSE_RECORDS = {op.code: op.reply for op in OPS if op.reply is not None}
# Ops a client sends with a header only.
NO_BODY_OPS = frozenset(op.code for op in OPS if op.request is None and op.kind != UNSUPPORTED)
TXN_TYPES = frozenset(op.code for op in OPS if op.writes)
MULTI_SUB_OPS = frozenset(_sub_op_records(_C.MULTI))
CREATES = frozenset({_C.CREATE, _C.CREATE2, _C.CREATE_CONTAINER, _C.CREATE_TTL})


def kind_of(code):
    """What the server does with a request of `code`; an unknown one is unsupported."""
    return KINDS.get(code, UNSUPPORTED)


def codes_of(kind):
    return frozenset(op.code for op in OPS if op.kind == kind)


# Watch events (Watcher.Event.EventType): a notification's type.
NODE_CREATED = 1
NODE_DELETED = 2
NODE_DATA_CHANGED = 3
NODE_CHILDREN_CHANGED = 4
EVENT_NAMES = {
    NODE_CREATED: "NodeCreated",
    NODE_DELETED: "NodeDeleted",
    NODE_DATA_CHANGED: "NodeDataChanged",
    NODE_CHILDREN_CHANGED: "NodeChildrenChanged",
}

# checkWatches' and removeWatches' WatcherType.
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3
WATCHER_PERSISTENT = 4
WATCHER_PERSISTENT_RECURSIVE = 5
WATCHER_TYPES = frozenset({WATCHER_CHILDREN, WATCHER_DATA, WATCHER_ANY, WATCHER_PERSISTENT,
                           WATCHER_PERSISTENT_RECURSIVE})

# addWatch's modes (ZooDefs.AddWatchModes).
MODE_PERSISTENT = 0
MODE_PERSISTENT_RECURSIVE = 1

# The largest TTL of a TTL node: ZooKeeper's EphemeralType.TTL keeps it in 40
# bits of the stored ephemeralOwner.
MAX_TTL = (1 << 40) - 1
