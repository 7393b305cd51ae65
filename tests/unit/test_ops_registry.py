"""The op registry (wire/ops.py) against ZooKeeper, and against its readers.

The registry is the one place where an opcode and what goes with it is
written: these tests hold it to ZooKeeper's own tables, hold the decoder,
the tree and the server to it, and look through the package's source for
tables that have grown back elsewhere.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nookeeper.client.states import EVENT_TYPES
from nookeeper.errors import UnimplementedError
from nookeeper.server import readops
from nookeeper.tree import DataTree
from nookeeper.wire import client, hotpath, ops
from nookeeper.wire.ops import OpCode

PACKAGE = Path(__file__).resolve().parents[2] / "nookeeper"

# ZooKeeper 3.8's ZooDefs.OpCode with Request.op2String's name for each.
ZOOKEEPER_OPS = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
    6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
    13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches",
    18: "removeWatches", 19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals",
    104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch", 107: "whoAmI",
    -10: "createSession", -11: "closeSession", -1: "error",
}

# Watcher.Event.EventType, for the types a server sends.
ZOOKEEPER_EVENTS = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
                    4: "NodeChildrenChanged"}


def test_codes_and_names_are_zookeepers():
    assert {op.code: op.name for op in ops.OPS} == ZOOKEEPER_OPS
    assert [op.code for op in ops.OPS] == list(ZOOKEEPER_OPS)


def test_opcode_names_every_code_once():
    codes = [value for name, value in vars(OpCode).items() if not name.startswith("_")]
    assert sorted(codes) == sorted(ZOOKEEPER_OPS)


def test_event_types_are_zookeepers_and_the_clients():
    assert ops.EVENT_NAMES == ZOOKEEPER_EVENTS
    assert set(EVENT_TYPES) == set(ops.EVENT_NAMES)


def test_rows_are_well_formed():
    kinds = {ops.WRITE, ops.READ, ops.SYNC, ops.SESSION, ops.WATCHES, ops.AUTH, ops.PING,
             ops.REFUSED, ops.UNSUPPORTED}
    for op in ops.OPS:
        assert op.kind in kinds, op
        assert (op.refusal is not None) == (op.kind == ops.REFUSED), op
        assert len(op.tag) == 4 and op.tag.isupper(), op
        assert op.sub_of in (None, OpCode.MULTI, OpCode.MULTI_READ), op
    assert ops.BY_CODE[OpCode.SET_DATA].name == "setData"


def test_every_code_the_decoder_knows_is_in_the_registry():
    known = set(client.REQUEST_RECORDS) | client.NO_BODY_OPS | set(hotpath.REQUEST_DECODERS)
    assert known <= set(ops.BY_CODE)
    assert set(client.RESPONSE_RECORDS) | set(hotpath.REPLY_ENCODERS) <= set(ops.BY_CODE)


@pytest.mark.parametrize("code", [code for code in range(-20, 130) if code not in ZOOKEEPER_OPS])
def test_a_code_outside_the_registry_is_unimplemented(code):
    assert ops.kind_of(code) == ops.UNSUPPORTED
    with pytest.raises(UnimplementedError):
        client.decode_request(code, b"")


def test_a_request_is_decodable_unless_the_server_refuses_its_kind():
    """Every op a client may send has a body record or is sent with a header only."""
    for op in ops.OPS:
        if op.kind != ops.UNSUPPORTED:
            assert (op.code in client.REQUEST_RECORDS) != (op.code in client.NO_BODY_OPS), op


def test_fast_codecs_serve_ops_with_the_record_they_stand_in_for():
    for code in hotpath.REQUEST_DECODERS:
        assert ops.BY_CODE[code].request is not None
    for code in hotpath.REPLY_ENCODERS:
        assert ops.BY_CODE[code].reply is not None


def test_txn_types_are_the_ops_the_tree_applies():
    """Reconfig is a txn in ZooKeeper; nookeeper refuses it before it becomes one."""
    applied = set(DataTree()._handlers) | {OpCode.MULTI, OpCode.CREATE_SESSION,
                                           OpCode.CLOSE_SESSION}
    assert ops.TXN_TYPES == applied | {OpCode.RECONFIG}
    assert ops.codes_of(ops.WRITE) | ops.codes_of(ops.SESSION) <= ops.TXN_TYPES
    assert ops.BY_CODE[OpCode.RECONFIG].kind == ops.REFUSED


def test_multi_sub_ops_are_write_txns_and_multi_read_sub_ops_reads():
    assert set(ops.MultiRequest.records) == ops.MULTI_SUB_OPS <= ops.TXN_TYPES
    assert all(ops.BY_CODE[code].kind == ops.READ for code in ops.MultiReadRequest.records)


def test_the_server_reads_exactly_the_registrys_reads():
    assert set(readops.READS) == ops.codes_of(ops.READ)


def test_the_registry_is_pure():
    """Importing it brings in records and codes, none of the tree, server, sockets or threads."""
    probe = ("import sys; before = set(sys.modules); import nookeeper.wire.ops; "
             "print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=PACKAGE.parent).stdout.split()
    ours = {name for name in loaded if name.startswith("nookeeper")}
    assert ours <= {"nookeeper", "nookeeper.errors", "nookeeper.wire", "nookeeper.wire.jute",
                    "nookeeper.wire.records", "nookeeper.wire.ops"}
    assert not {"socket", "threading", "sqlite3"} & set(loaded)


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_wire_layer_does_not_import_the_tree():
    for path in (PACKAGE / "wire").glob("*.py"):
        assert not [name for name in _imports(path) if name.startswith("nookeeper.tree")], path


# ---- no opcode table outside the registry ---------------------------------------

_OPCODE_NAMES = {name: value for name, value in vars(OpCode).items() if not name.startswith("_")}
_WATCH_VALUES = {name: getattr(ops, name) for name in vars(ops)
                 if name.startswith(("NODE_", "WATCHER_", "MODE_"))
                 and isinstance(getattr(ops, name), int)}
_TAGS = {op.tag for op in ops.OPS} - {"UNKN", "SYNC", "PING", "AUTH"}


def _is_opcode(node):
    """OpCode.X, or a bare name that is an opcode's (CLOSE_SESSION)."""
    if isinstance(node, ast.Attribute):
        base = node.value
        return node.attr in _OPCODE_NAMES and (
            (isinstance(base, ast.Name) and base.id.endswith("OpCode"))
            or (isinstance(base, ast.Attribute) and base.attr == "OpCode"))
    return isinstance(node, ast.Name) and node.id in _OPCODE_NAMES


def _is_fact(node):
    """A table's value that states something (a name, a tag, a record), not a handler."""
    if isinstance(node, ast.Constant):
        return True
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name[:1].isupper()


def _int(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _int(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _opcode_tables(tree):
    """(line, what) for each table of opcode facts the module writes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs = []
            for target in node.targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs.extend(zip(target.elts, node.value.elts))
                else:
                    pairs.append((target, node.value))
            for target, value in pairs:
                name = getattr(target, "id", None)
                number = _int(value)
                if number is not None and number == {**_OPCODE_NAMES, **_WATCH_VALUES}.get(name):
                    yield node.lineno, f"{name} = {number}"
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) in (
                    "frozenset", "set", "tuple"):
                value = value.args[0] if value.args else value
            if isinstance(value, (ast.Set, ast.Tuple, ast.List)):
                if sum(map(_is_opcode, value.elts)) >= 2:
                    yield node.lineno, "a set of opcodes"
        if isinstance(node, ast.Dict):
            facts = sum(1 for key, item in zip(node.keys, node.values)
                        if key is not None and _is_opcode(key) and _is_fact(item))
            if facts >= 3:
                yield node.lineno, "a table of opcodes"
        if isinstance(node, ast.Constant) and node.value in _TAGS:
            yield node.lineno, f"the cons tag {node.value!r}"


def test_the_search_finds_the_tables_this_change_removed():
    old = '''
CREATE, DELETE = 1, 2
NODE_CREATED = 1
CLOSE_SESSION = -11
WRITES = frozenset({OpCode.CREATE, OpCode.DELETE})
OP_TAGS = {OpCode.CREATE: "CREA", OpCode.DELETE: "DELE", CLOSE_SESSION: "CLOS"}
NAMES = {CREATE: "create", DELETE: "delete", OpCode.RECONFIG: "reconfig"}
MultiRead = MultiOps({OpCode.GET_DATA: GetDataRequest, OpCode.GET_CHILDREN: GetChildrenRequest,
                      OpCode.CREATE: CreateRequest})
'''
    assert len(list(_opcode_tables(ast.parse(old)))) == 11
    handlers = "H = {OpCode.CREATE: self._create, OpCode.DELETE: _delete, CHECK: lambda: 0}"
    assert not list(_opcode_tables(ast.parse(handlers)))
    permissions = "READ = 1\nWRITE = 2\nCREATE = 4\nDELETE = 8"
    assert not list(_opcode_tables(ast.parse(permissions)))


def test_no_module_but_the_registry_writes_an_opcode_table():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "wire" / "ops.py":
            continue
        for line, what in _opcode_tables(ast.parse(path.read_text())):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}")
    assert found == []
