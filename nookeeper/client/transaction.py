"""multi: several writes that all happen or none do (spec §10)."""

from nookeeper.client.exceptions import error_from_code
from nookeeper.client.states import ZnodeStat
from nookeeper.wire.client import OpCode


class Transaction:
    """Collects create/delete/set_data/check, then commits them as one multi.

    commit() returns one result per op: the created path, True for delete
    and check, a ZnodeStat for set_data. When the multi fails nothing is
    applied and every result is an exception instance: RolledBackError for
    the ops before the failing one, the failing op's own error, and
    RuntimeInconsistency for the ops after it.
    """

    def __init__(self, client):
        self._client = client
        self._ops = []
        self.committed = False

    def create(self, path, value=b"", acl=None, ephemeral=False, sequence=False):
        self._add(OpCode.CREATE, self._client._create_record(path, value, acl, ephemeral, sequence))

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

    def _add(self, opcode, request):
        if self.committed:
            raise ValueError("the transaction is already committed")
        self._ops.append({"type": opcode, "request": request})

    def commit_async(self):
        if self.committed:
            raise ValueError("the transaction is already committed")
        self.committed = True
        return self._client._submit(OpCode.MULTI, self._ops, convert=self._results)

    def commit(self):
        return self.commit_async().get()

    def _results(self, body):
        strip = self._client.unchroot
        results = []
        for result in body:
            if result.type == OpCode.ERROR:
                results.append(error_from_code(result.body.err if result.body else result.err))
            elif result.type == OpCode.CREATE:
                results.append(strip(result.body.path))
            elif result.type == OpCode.CREATE2:
                results.append((strip(result.body.path), ZnodeStat.from_record(result.body.stat)))
            elif result.type == OpCode.SET_DATA:
                results.append(ZnodeStat.from_record(result.body))
            else:
                results.append(True)
        return results

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
