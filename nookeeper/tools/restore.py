"""`nk-dump SOURCE --restore NEW_DATA_DIR`: seed a data directory from a backup.

SOURCE is a backup file (`nk-dump --backup`), any server's data dir or
nookeeper.db, or the JSON lines of `nk-dump --tree-at ZXID --json` (a file,
or `-` for stdin). The target directory must be new or empty.

What is written is what a follower has after its leader sent it a SNAP: one
snapshot at zxid Z and an empty log, with ZAB's accepted and current epoch
both epoch(Z). So:

- From a database, Z is its last txn (or `--to ZXID`), and the tree is
  rebuilt as nk-dump --tree-at rebuilds it: its newest snapshot at or below Z,
  then the log after it, every crc checked on the way. Sessions come along,
  so ephemerals live on until their sessions expire (a full timeout after the
  new servers start, as after any restart).
- From JSON, Z is the highest zxid any node's Stat carries (czxid, mzxid,
  pzxid): every txn after that left the exported nodes as they are. The
  export has no sessions, so ephemeral nodes are left out (their owners are
  gone); containers and TTL nodes keep their kind (the export's "kind").

Every member of a new ensemble seeded from the same source therefore starts
with the same history, ending at Z in epoch(Z): whichever is elected, the
new epoch is epoch(Z) + 1, and the first new txn's zxid is above every zxid
in the tree. The snapshot is written under a temporary name and renamed into
place once it is read back whole, so a failed restore leaves no database a
server could start from.
"""

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from nookeeper import acl, snapshot
from nookeeper.paths import parent_of, validate_path
from nookeeper.snapstore import SnapshotStore
from nookeeper.tools.dump_source import LogDatabase
from nookeeper.tree import CONTAINER_OWNER, NO_CHILDREN, DataTree, Node
from nookeeper.wal import DB_NAME, WriteAheadLog
from nookeeper.wire.ops import MAX_TTL
from nookeeper.zab.zxid import epoch_of

# ZAB's epochs as the server keeps them (server/replication.py's META_*).
META_ACCEPTED = "acceptedEpoch"
META_CURRENT = "currentEpoch"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TTL_TAG = 0xFF
_INT32 = 1 << 31


class RestoreError(Exception):
    """Nothing was restored; the message says why, on one line."""


class RestoreInfo(NamedTuple):
    target: Path
    zxid: int
    epoch: int
    nodes: int
    sessions: int
    ephemerals_skipped: tuple   # paths of ephemeral nodes a JSON export had
    source_kind: str            # "database" or "json"


def source_kind(source) -> str:
    if str(source) == "-":
        return "json"
    path = Path(source)
    if path.is_dir():
        return "database"
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise RestoreError(f"{source}: cannot read: {e.strerror or e}") from None
    return "database" if head == _SQLITE_MAGIC else "json"


def check_target(target) -> Path:
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise RestoreError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise RestoreError(f"{target}: not empty; a restore seeds a new data directory only")
    return target


def restore(source, target, to=None, rebuild=None, stdin=None) -> RestoreInfo:
    """Seeds the data directory `target` from `source`.

    rebuild(db, zxid) -> tree: the tree at zxid from a LogDatabase (nk-dump's
    tree_at, with its warnings); to: the zxid to restore a database at."""
    target = check_target(target)
    kind = source_kind(source)
    if kind == "database":
        tree = _from_database(source, to, rebuild)
        skipped = ()
    else:
        if to is not None:
            raise RestoreError("--to applies to a database only: a JSON export is the tree "
                               "at one zxid already")
        if str(source) == "-":
            tree, skipped = tree_from_json(stdin if stdin is not None else sys.stdin, "<stdin>")
        else:
            try:
                with open(source, encoding="utf-8") as f:
                    tree, skipped = tree_from_json(f, source)
            except OSError as e:
                raise RestoreError(f"{source}: cannot read: {e.strerror or e}") from None
            except UnicodeDecodeError:
                raise RestoreError(f"{source}: neither a nookeeper database nor JSON "
                                   "lines") from None
    zxid = tree.last_zxid
    epoch = epoch_of(zxid)
    write(target, tree, epoch)
    return RestoreInfo(target, zxid, epoch, tree.node_count, len(tree.sessions),
                       tuple(skipped), kind)


def _from_database(source, to, rebuild):
    with LogDatabase(source) as db:
        view = db.overview()
        last = max(db.last_zxid() or 0, view.snapshots[-1].zxid if view.snapshots else 0)
        if last == 0:
            raise RestoreError(f"{db.path}: holds no txn and no snapshot: nothing to restore")
        if to is not None and to > last:
            raise RestoreError(f"{db.path} reaches zxid {_show(last)} only, not {_show(to)}")
        return rebuild(db, last if to is None else to)


def _show(zxid):
    from nookeeper.tools.dump_zxid import show
    return show(zxid)


# ---- JSON ----------------------------------------------------------------------

def tree_from_json(lines, name="the export"):
    """(tree, ephemeral paths left out) from `nk-dump --tree-at --json` lines.

    A fresh tree's built-in nodes (/, /zookeeper, its quota and config) are
    there unless the export has them; every other node's parent must be in it."""
    nodes = {}
    for path, node in DataTree().nodes():
        twin = node.copy()
        twin.children = NO_CHILDREN
        nodes[path] = twin
    given, skipped = set(), []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        where = f"{name}, line {number}"
        try:
            obj = json.loads(line)
            path, node, ephemeral = _node_from_json(obj)
        except (ValueError, KeyError, TypeError) as e:
            raise RestoreError(f"{where}: not a node of `nk-dump --tree-at --json`: "
                               f"{_reason(e)}") from None
        if path in given:
            raise RestoreError(f"{where}: {path} appears twice")
        given.add(path)
        if ephemeral:
            skipped.append(path)
            continue
        nodes[path] = node
    if not given:
        raise RestoreError(f"{name}: no nodes in it")
    for path in sorted(nodes):
        if path != "/" and parent_of(path) not in nodes:
            parent = parent_of(path)
            why = "an ephemeral node, left out" if parent in skipped else "not in the export"
            raise RestoreError(f"{name}: the parent of {path}, {parent}, is {why}; export "
                               "the tree from / (nk-dump --tree-at ZXID --json)")
    zxid = max(max(n.czxid, n.mzxid, n.pzxid) for n in nodes.values())
    tree = DataTree()
    tree.restore(zxid, nodes, {})
    return tree, skipped


def _reason(error):
    if isinstance(error, KeyError):
        return f"no {error.args[0]!r}"
    return str(error)


def _node_from_json(obj):
    """(path, Node, is it ephemeral) from one exported line."""
    path = obj["path"]
    if not isinstance(path, str):
        raise ValueError("path is not a string")
    try:
        validate_path(path)
    except Exception as e:
        raise ValueError(f"bad path {path!r}: {e}") from None
    stat = obj["stat"]
    kind = obj.get("kind")
    owner = _int(stat, "ephemeralOwner", 64)
    if kind is None:  # an export from before "kind": only ephemerals are told apart
        kind = "ephemeral" if owner else "persistent"
    data = obj["data_base64"]
    data = None if data is None else base64.b64decode(data, validate=True)
    acls = tuple(acl.ACL(_int(entry, "perms", 32), str(entry["scheme"]), str(entry["id"]))
                 for entry in obj["acl"])
    node = Node(data, acls)
    node.czxid = _int(stat, "czxid", 64)
    node.mzxid = _int(stat, "mzxid", 64)
    node.pzxid = _int(stat, "pzxid", 64)
    node.ctime = _int(stat, "ctime", 64)
    node.mtime = _int(stat, "mtime", 64)
    node.version = _int(stat, "version", 32)
    node.aversion = _int(stat, "aversion", 32)
    # Stat's cversion is creates + deletes of children, kept as creates
    # (child_creates) less the children there now (tree.Node.cversion).
    twice = _int(stat, "cversion", 32) + _int(stat, "numChildren", 32)
    if twice % 2:
        raise ValueError(f"{path}: cversion and numChildren do not add up")
    node.child_creates = twice // 2
    if kind == "ephemeral":
        return path, node, True
    if kind == "container":
        node.ephemeral_owner = CONTAINER_OWNER
    elif kind == "ttl":
        ttl = obj.get("ttl_ms")
        if not isinstance(ttl, int) or not 0 < ttl <= MAX_TTL:
            raise ValueError(f"{path}: a ttl node needs ttl_ms from 1 to {MAX_TTL}")
        node.ephemeral_owner = ((_TTL_TAG << 56) | ttl) - (1 << 64)
    elif kind != "persistent":
        raise ValueError(f"{path}: unknown kind {kind!r}")
    return path, node, False


def _int(obj, key, bits):
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) \
            or not -(1 << bits - 1) <= value < 1 << bits - 1:
        raise ValueError(f"{key} {value!r} is not a {bits}-bit integer")
    return value


# ---- writing -------------------------------------------------------------------

def write(target, tree, epoch):
    """target/nookeeper.db holding one snapshot of `tree` and the epochs."""
    target.mkdir(parents=True, exist_ok=True)
    final = target / DB_NAME
    partial = target / f".{DB_NAME}.restoring"
    _remove_db(partial)
    try:
        wal = WriteAheadLog(partial)
        try:
            store = SnapshotStore(wal)
            zxid = tree.last_zxid
            store.save(zxid, int(time.time() * 1000), tree.node_count, snapshot.encode(tree))
            wal.set_meta(META_ACCEPTED, epoch)
            wal.set_meta(META_CURRENT, epoch)
            loaded_zxid, loaded = store.load_newest()
            if loaded_zxid != zxid or loaded is None or loaded.node_count != tree.node_count:
                raise RestoreError(f"{partial}: the snapshot written does not read back whole")
            wal.query("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            wal.close()
        for suffix in ("-wal", "-shm"):
            leftover = Path(f"{partial}{suffix}")
            if leftover.exists() and leftover.stat().st_size and suffix == "-wal":
                raise RestoreError(f"{leftover}: not checkpointed into the database")
            _unlink(leftover)
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.rename(partial, final)
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        _remove_db(partial)


def _remove_db(path):
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        _unlink(Path(name))


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
