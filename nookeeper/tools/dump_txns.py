"""What one log row says: its txn decoded into the entry nk-dump shows and filters.

An entry names the paths the txn touched as the tree saw them: the path a
sequential create really made, every sub-op of a multi, and the ephemerals
a closeSession removed. Those come from applying the txn (dump_replay);
without that, the request's own paths are all there is, and the result is
unknown (None).
"""

from dataclasses import dataclass

from nookeeper.errors import ERRORS_BY_CODE, MarshallingError, RuntimeInconsistency
from nookeeper.wire.ops import CREATES, OPS, OpCode
from nookeeper.wire.txn import decode_txn

# The txn types, by ZooKeeper's names for them.
TYPE_NAMES = {op.code: op.name for op in OPS if op.writes}
_CODES_BY_NAME = {name.lower(): code for code, name in TYPE_NAMES.items()}


def type_name(code) -> str:
    return TYPE_NAMES.get(code, f"type{code}")


def parse_types(text: str) -> frozenset:
    """'create,setData' (any case, or opcodes) -> opcodes; ValueError naming the valid names."""
    codes = set()
    for word in filter(None, (part.strip() for part in text.split(","))):
        code = _CODES_BY_NAME.get(word.lower())
        if code is None and word.lstrip("-").isdigit():
            code = int(word)
        if code is None:
            raise ValueError(f"unknown txn type {word!r}; known: {', '.join(TYPE_NAMES.values())}")
        codes.add(code)
    if not codes:
        raise ValueError("no txn type given")
    return frozenset(codes)


def result_name(code: int) -> str:
    """'ok', or the error as kazoo and nookeeper.errors name it (NoNodeError ...)."""
    if code == 0:
        return "ok"
    error = ERRORS_BY_CODE.get(code)
    return error.__name__ if error is not None else f"error {code}"


@dataclass(frozen=True)
class Op:
    """One change a txn asked for: a sub-op of a multi, or an ephemeral a closeSession removed."""

    type: str
    path: str | None
    data_bytes: int | None = None
    result: str | None = None
    ephemeral: bool = False


@dataclass(frozen=True)
class Entry:
    """One log row as nk-dump shows it; `paths` is every path it touched."""

    rowid: int
    zxid: int
    time: object           # ms since the epoch (whatever the row holds, if it is damaged)
    session: object
    cxid: object
    type_code: object
    payload_bytes: int
    path: str | None = None
    data_bytes: int | None = None
    result: str | None = None
    ops: tuple = ()
    detail: str | None = None
    problem: str | None = None
    paths: frozenset = frozenset()

    @property
    def type(self) -> str:
        return type_name(self.type_code)


def read_txn(row):
    """(Txn or None, problem or None): a row's body decoded and held against its columns."""
    problem = None
    if not row.crc_ok:
        computed = "none: the columns cannot be packed" if row.computed_crc is None \
            else f"0x{row.computed_crc:08x}"
        stored = f"0x{row.crc:08x}" if isinstance(row.crc, int) else repr(row.crc)
        problem = f"crc mismatch (stored {stored}, computed {computed})"
    try:
        txn = decode_txn(row.body)
    except (MarshallingError, TypeError) as e:
        return None, problem or f"undecodable body: {e}"
    header = (txn.zxid, txn.time, txn.session, txn.cxid, txn.type)
    columns = (row.zxid, row.time, row.session, row.cxid, row.type)
    if problem is None and header != columns:
        names = ("zxid", "time", "session", "cxid", "type")
        wrong = [f"{n} {h!r} (row {c!r})" for n, h, c in zip(names, header, columns) if h != c]
        problem = "body disagrees with the row: " + ", ".join(wrong)
    return txn, problem


def describe(row, txn, problem=None, outcome=None, removed=()) -> Entry:
    """The entry for a row; `outcome` (tree.Outcome) and `removed` (the
    ephemerals a closeSession took) when the txn was applied."""
    base = dict(rowid=row.rowid, zxid=row.zxid, time=row.time, session=row.session,
                cxid=row.cxid, type_code=row.type, payload_bytes=len(row.body), problem=problem)
    if txn is None:
        return Entry(**base)
    path, data, result, ops, detail = None, None, None, (), None
    request = txn.request
    if outcome is not None:
        result = result_name(outcome.err)
    if txn.type == OpCode.MULTI:
        ops = _multi_ops(request or [], outcome)
        result = _multi_result(outcome) if outcome is not None else None
        sizes = [op.data_bytes for op in ops if op.data_bytes is not None]
        data = sum(sizes) if sizes else None
    elif txn.type == OpCode.CREATE_SESSION:
        detail = f"timeout={request.timeOut}ms"
    elif txn.type == OpCode.CLOSE_SESSION:
        ops = tuple(Op("delete", p, result=result, ephemeral=True) for p in sorted(removed))
    elif request is not None and hasattr(request, "path"):
        path = _made_path(txn.type, request.path, outcome.err if outcome else None,
                          outcome.body if outcome else None)
        data = _data_bytes(request)
    paths = frozenset(p for p in (path, *(op.path for op in ops)) if p is not None)
    return Entry(**base, path=path, data_bytes=data, result=result, ops=ops, detail=detail,
                 paths=paths)


def _data_bytes(request):
    data = getattr(request, "data", None)
    return None if data is None else len(data)


def _made_path(op_type, requested, err, body):
    """A successful create reports the path it made (sequential: with its counter)."""
    if op_type in CREATES and err == 0 and isinstance(body, dict) and body.get("path"):
        return body["path"]
    return requested


def _multi_ops(subs, outcome):
    results = outcome.body if outcome is not None and isinstance(outcome.body, list) else None
    failed = results is not None and any(r["err"] != 0 for r in results)
    ops = []
    for index, sub in enumerate(subs):
        err, body, shown = None, None, None
        if results is not None and index < len(results):
            err, body = results[index]["err"], results[index]["body"]
            shown = _sub_result(err, failed)
        elif outcome is not None:
            shown = result_name(outcome.err)
        ops.append(Op(type_name(sub.type), _made_path(sub.type, sub.request.path, err, body),
                      _data_bytes(sub.request), shown))
    return tuple(ops)


def _sub_result(err, failed):
    if failed and err == 0:
        return "rolled back"
    if failed and err == RuntimeInconsistency.code:
        return "not run"
    return result_name(err)


def _multi_result(outcome):
    """ok, or the error of the sub-op that failed the whole multi."""
    if outcome.err != 0 or not isinstance(outcome.body, list):
        return result_name(outcome.err)
    for index, result in enumerate(outcome.body):
        if result["err"] not in (0, RuntimeInconsistency.code):
            return f"{result_name(result['err'])} (op {index + 1})"
    return "ok"

