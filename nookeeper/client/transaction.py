"""multi and multiRead: several writes that all happen or none do (spec §10), or
several reads answered together."""

from nookeeper.client.exceptions import error_from_code
from nookeeper.client.states import ZnodeStat
from nookeeper.wire.client import OpCode
from nookeeper.wire.ops import CREATES, OPS

WRITES = "writes"
READS = "reads"
# What a multiRead may hold, as the registry says.
_READ_OPS = frozenset(op.code for op in OPS if op.sub_of == OpCode.MULTI_READ)


class Transaction:
    """Collects operations, then commits them as one multi, or one multiRead.

    Writes (create, delete, set_data, check) go in a multi; commit()
    returns one result per op: the created path, True for delete and
    check, a ZnodeStat for set_data. When the multi fails nothing is
    applied and every result is an exception instance: RolledBackError for
    the ops before the failing one, the failing op's own error, and
    RuntimeInconsistency for the ops after it.

    Reads (get, get_children) go in a multiRead, which ZooKeeper answers
    op by op: (data, ZnodeStat) for get, the child names for get_children,
    or the exception instance of an op that failed, the others unaffected.
    ZooKeeper refuses a multi that mixes the two, so adding one kind to a
    transaction of the other raises ValueError.
    """

    def __init__(self, client, kind=None):
        self._client = client
        self._ops = []
        self._kind = kind
        self.committed = False

    def create(self, path, value=b"", acl=None, ephemeral=False, sequence=False, ttl=None,
               container=False):
        self._add(*self._client._create_record(path, value, acl, ephemeral, sequence, ttl,
                                               container))

    def delete(self, path, version=-1):
        self._add(OpCode.DELETE, {"path": self._client._full(path), "version": version})

    def set_data(self, path, value, version=-1):
        self._add(OpCode.SET_DATA, {
            "path": self._client._full(path),
            "data": self._client._check_value(value),
            "version": version,
        })

    def check(self, path, version):
        self._add(OpCode.CHECK, {"path": self._client._full(path), "version": version})

    def get(self, path):
        self._add(OpCode.GET_DATA, {"path": self._client._full(path), "watch": False})

    def get_children(self, path):
        self._add(OpCode.GET_CHILDREN, {"path": self._client._full(path), "watch": False})

    def _add(self, opcode, request):
        if self.committed:
            raise ValueError("the transaction is already committed")
        kind = READS if opcode in _READ_OPS else WRITES
        if self._kind is None:
            self._kind = kind
        elif kind != self._kind:
            raise ValueError(f"a transaction of {self._kind} cannot take {kind} as well")
        self._ops.append({"type": opcode, "request": request})

    def commit_async(self):
        if self.committed:
            raise ValueError("the transaction is already committed")
        self.committed = True
        opcode = OpCode.MULTI_READ if self._kind == READS else OpCode.MULTI
        return self._client._submit(opcode, self._ops, convert=self._results)

    def commit(self):
        return self.commit_async().get()

    def _results(self, body):
        return [self._result(op["type"], result) for op, result in zip(self._ops, body)]

    def _result(self, sent, result):
        strip = self._client.unchroot
        if result.type == OpCode.ERROR:
            return error_from_code(result.body.err if result.body else result.err)
        if sent in CREATES:
            # ZooKeeper answers a container or TTL create as create2, with a Stat.
            return strip(result.body.path)
        if result.type == OpCode.SET_DATA:
            return ZnodeStat.from_record(result.body)
        if result.type == OpCode.GET_DATA:
            return result.body.data, ZnodeStat.from_record(result.body.stat)
        if result.type == OpCode.GET_CHILDREN:
            return list(result.body.children)
        return True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
