"""The snapshot format and store: round trips, damage detection, purge, install."""

import pytest
from construct import Container

from nookeeper import snapshot
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.snapstore import SnapshotStore
from nookeeper.tree import DataTree
from nookeeper.txn import Txn
from nookeeper.wire.ops import CREATE_SESSION
from nookeeper.wal import LogRecord, WriteAheadLog

WORLD = [Container(perms=31, id=Container(scheme="world", id="anyone"))]
READ_ONLY_DIGEST = [Container(perms=1, id=Container(scheme="digest", id="bob:x1Yz+abc="))]


def _create(tree, path, data=b"d", flags=0, session=0, acl=WORLD):
    request = Container(path=path, data=data, acl=acl, flags=flags)
    return tree.apply(Txn(zxid=tree.last_zxid + 1, time=1000 + tree.last_zxid, session=session,
                          cxid=0, type=1, ids=(), request=request))


def _sample_tree():
    tree = DataTree()
    tree.apply(Txn(zxid=1, time=5, session=77, cxid=0, type=CREATE_SESSION, ids=(),
                   request=Container(timeOut=4000, passwd=b"p" * 16)))
    _create(tree, "/app", b"config")
    _create(tree, "/app/none", None)
    _create(tree, "/app/seq-", b"s", flags=2)
    _create(tree, "/app/seq-", b"s", flags=2)
    _create(tree, "/app/eph", b"e", flags=1, session=77)
    _create(tree, "/app/secret", b"\x00\xff", acl=READ_ONLY_DIGEST)
    _create(tree, "/\u00e9t\u00e9", "caf\u00e9".encode())
    for i in range(300):
        _create(tree, f"/app/many{i}", bytes(i % 7) * i)
    return tree


def _same(a, b):
    assert a.paths() == b.paths()
    for path in a.paths():
        x, y = a.node(path), b.node(path)
        assert (x.stat(), x.data, x.acl, x.children) == (y.stat(), y.data, y.acl, y.children), path
    assert a.sessions == b.sessions and a.last_zxid == b.last_zxid
    assert a.ephemerals(77) == b.ephemerals(77) == {"/app/eph"}


def test_round_trip_keeps_every_node_stat_acl_session_and_ephemeral(monkeypatch):
    monkeypatch.setattr(snapshot, "CHUNK_NODES", 50)
    tree = _sample_tree()
    chunks = list(snapshot.encode(tree))
    assert len(chunks) > 3
    copy = snapshot.decode(chunks)
    _same(tree, copy)
    # The copy keeps working as a tree: the next sequence number follows on.
    assert _create(copy, "/app/seq-", flags=2).body["path"] == "/app/seq-0000000305"


def test_header_tells_zxid_and_size_without_decoding_nodes():
    tree = _sample_tree()
    header = snapshot.read_header(next(iter(snapshot.encode(tree))))
    assert header.zxid == tree.last_zxid and header.nodes == tree.node_count
    assert set(header.sessions) == {77}


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_chunk", "magic", "extra"])
def test_damage_is_reported_never_decoded(damage):
    chunks = list(snapshot.encode(_sample_tree()))
    if damage == "flip":
        body = bytearray(chunks[1])
        body[20] ^= 0x7F
        chunks[1] = bytes(body)
    elif damage == "truncate":
        chunks[1] = chunks[1][:-3]
    elif damage == "drop_chunk":
        chunks.append(chunks[1])
        del chunks[1]
        chunks.pop()
    elif damage == "magic":
        chunks[0] = b"X" + chunks[0][1:]
    else:
        chunks[1] = chunks[1] + b"\x00"
    with pytest.raises(CorruptSnapshot):
        tree = snapshot.decode(chunks)
        # A flipped bit may land in a zxid or a time: then the store's crc catches it.
        if damage == "flip":
            _same(_sample_tree(), tree)


@pytest.fixture
def store(tmp_path):
    with WriteAheadLog(tmp_path / "db") as wal:
        yield SnapshotStore(wal)


def _save(store, tree):
    return store.save(tree.last_zxid, 123, tree.node_count, snapshot.encode(tree))


def test_store_saves_loads_and_falls_back_past_a_bad_crc(store):
    older = _sample_tree()
    _save(store, older)
    newer = _sample_tree()
    _create(newer, "/later")
    info = _save(store, newer)
    assert [i.zxid for i in store.infos()] == [newer.last_zxid, older.last_zxid]
    assert info.nodes == newer.node_count and info.chunks >= 2
    zxid, loaded = store.load_newest()
    assert zxid == newer.last_zxid and loaded.node("/later") is not None
    with store.wal.writing() as conn:
        conn.execute("UPDATE snapshot_chunks SET data = zeroblob(length(data)) "
                     "WHERE zxid = ? AND seq = 1", (newer.last_zxid,))
    zxid, loaded = store.load_newest()
    assert zxid == older.last_zxid
    _same(older, loaded)
    assert store.load_newest(at_most=older.last_zxid - 1) == (0, None)


def test_purge_keeps_the_newest_and_the_log_after_the_oldest_kept(store):
    wal = store.wal
    wal.append([LogRecord(z, 0, 0, 0, 1, b"x") for z in range(1, 31)])
    tree = DataTree()
    for zxid in (10, 20, 30):
        tree.last_zxid = zxid
        _save(store, tree)
    assert store.purge(4) == (0, 0), "fewer snapshots than kept: nothing goes"
    assert store.purge(3) == (0, 10)
    assert store.purge(2, batch=4) == (1, 10)
    assert [i.zxid for i in store.infos()] == [30, 20]
    assert wal.query("SELECT min(zxid), count(*) FROM txnlog")[0] == (21, 10)
    assert wal.query("SELECT DISTINCT zxid FROM snapshot_chunks ORDER BY zxid") == [(20,), (30,)]


def test_install_replaces_snapshots_and_log_at_once(store):
    wal = store.wal
    wal.append([LogRecord(z, 0, 0, 0, 1, b"old") for z in range(1, 6)])
    _save(store, _sample_tree())
    leader = _sample_tree()
    _create(leader, "/from-leader")
    chunks = list(snapshot.encode(leader))
    after = [LogRecord(leader.last_zxid + 1, 7, 8, 9, 2, b"new")]
    store.install(leader.last_zxid, 1, chunks, after)
    assert [i.zxid for i in store.infos()] == [leader.last_zxid]
    assert [r.body for r in wal.records()] == [b"new"]
    _same(leader, store.load(leader.last_zxid))


def test_an_unfinished_snapshot_is_cleaned_up_on_open(tmp_path):
    with WriteAheadLog(tmp_path / "db") as wal:
        store = SnapshotStore(wal)
        with wal.writing() as conn:
            conn.execute("INSERT INTO snapshot_chunks (zxid, seq, data) VALUES (5, 0, x'00')")
    with WriteAheadLog(tmp_path / "db") as wal:
        SnapshotStore(wal)
        assert wal.query("SELECT count(*) FROM snapshot_chunks") == [(0,)]
