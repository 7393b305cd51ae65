"""Snapshots and purging on real servers: restart from a snapshot plus the
log after it, fall back past a corrupt snapshot, keep the data file bounded,
and bring a far-behind follower up with a SNAP of the leader's snapshot."""

import sqlite3
import time

import pytest
from kazoo.client import KazooClient

from nookeeper.snapstore import SnapshotStore
from nookeeper.wal import WriteAheadLog
from tests.harness import wait_for

DB = "data/nookeeper.db"


def _snapshots(server):
    with WriteAheadLog.open_readonly(server.workdir / DB) as wal:
        return SnapshotStore(wal).infos()


def _log_span(server):
    with WriteAheadLog.open_readonly(server.workdir / DB) as wal:
        return wal.query("SELECT count(*), min(zxid), max(zxid) FROM txnlog")[0]


def _client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=10)
    return zk


def _write_many(zk, count, prefix="/n", start=0):
    """Pipelined, so thousands of writes take a second or two."""
    results = [zk.create_async(f"{prefix}{i:06d}", str(i).encode())
               for i in range(start, start + count)]
    for result in results:
        result.get(timeout=30)


def _write_until_snapshots(zk, server, count):
    """Snapshots are skipped while one is still being written, so how many a
    number of writes makes depends on timing: write until there are enough."""
    written = 0
    while server.log_path.read_text().count("nookeeper.snapshot: snapshot at zxid") < count:
        assert written < 3000, f"{written} writes made fewer than {count} snapshots"
        _write_many(zk, 100, start=written)
        written += 100
        time.sleep(0.1)
    return written


def test_restart_loads_the_newest_snapshot_and_the_log_after_it(server_factory):
    server = server_factory(snapshot_every_txns=100, snapshot_retain_count=2)
    zk = _client(server.hosts)
    written = _write_until_snapshots(zk, server, 3)
    zk.create("/eph", b"mine", ephemeral=True)

    def purged():
        snapshots = _snapshots(server)
        return len(snapshots) == 2 and _log_span(server)[1] > snapshots[-1].zxid

    wait_for(purged, timeout=10, message="older snapshots and the log they cover purged")

    server.restart()  # kill -9; the client reconnects on its own, with its session
    assert "loaded the snapshot at zxid" in server.log_path.read_text()
    try:
        children = zk.retry(zk.get_children, "/")
        assert len([c for c in children if c.startswith("n")]) == written
        assert zk.get("/n000123")[0] == b"123"
        assert zk.get("/eph")[0] == b"mine", "the session and its ephemeral survive"
        zk.set("/n000001", b"after")
        assert zk.get("/n000001")[1].version == 1
    finally:
        zk.stop()
        zk.close()


def test_a_corrupt_newest_snapshot_is_skipped_for_the_previous_one(server_factory):
    server = server_factory(snapshot_every_txns=100, snapshot_retain_count=3)
    zk = _client(server.hosts)
    written = _write_until_snapshots(zk, server, 3)
    zk.stop()
    zk.close()
    server.stop()
    newest = _snapshots(server)[0]
    with sqlite3.connect(server.workdir / DB) as db:
        (data,) = db.execute("SELECT data FROM snapshot_chunks WHERE zxid = ? AND seq = 1",
                             (newest.zxid,)).fetchone()
        damaged = bytearray(data)
        damaged[len(damaged) // 2] ^= 0xFF
        db.execute("UPDATE snapshot_chunks SET data = ? WHERE zxid = ? AND seq = 1",
                   (bytes(damaged), newest.zxid))

    server.start()
    log_text = server.log_path.read_text()
    assert f"skipping snapshot at zxid" in log_text and "fails its crc check" in log_text
    zk = _client(server.hosts)
    try:
        assert len([c for c in zk.get_children("/") if c.startswith("n")]) == written
        assert zk.get(f"/n{written - 1:06d}")[0] == str(written - 1).encode()
    finally:
        zk.stop()
        zk.close()


def _data_file_bytes(server):
    return sum(p.stat().st_size for p in (server.workdir / "data").glob("nookeeper.db*"))


@pytest.mark.timeout(240)
def test_the_data_file_stays_bounded_over_100k_writes(server_factory):
    server = server_factory(snapshot_every_txns=5000, snapshot_retain_count=2)
    zk = _client(server.hosts)
    for i in range(50):
        zk.create(f"/k{i}", b"")
    sizes = []
    payload = b"v" * 100
    started = time.monotonic()
    for round_ in range(10):
        results = [zk.set_async(f"/k{i % 50}", payload) for i in range(10000)]
        for result in results:
            result.get(timeout=60)
        sizes.append(_data_file_bytes(server))
    elapsed = time.monotonic() - started
    print(f"100k writes in {elapsed:.1f} s; data file sizes (MB): "
          f"{[round(s / 1e6, 1) for s in sizes]}")
    count, first, last = _log_span(server)
    assert count < 30000, f"the log keeps only what the kept snapshots need, not {count} rows"
    assert max(sizes[5:]) <= 1.5 * max(sizes[:5]), sizes
    zk.stop()
    zk.close()
    server.restart()
    zk = _client(server.hosts)
    try:
        assert zk.get("/k7")[1].version == 2000
    finally:
        zk.stop()
        zk.close()


def test_a_follower_far_behind_gets_the_leaders_snapshot(ensemble_factory):
    ensemble = ensemble_factory(snapshot_every_txns=100, snapshot_retain_count=2)
    leader = ensemble.leader()
    behind = ensemble.followers()[0]
    behind.kill()
    zk = _client(leader.hosts)
    try:
        written = _write_until_snapshots(zk, leader, 3)
    finally:
        zk.stop()
        zk.close()
    behind.start()
    wait_for(lambda: "installing the leader's snapshot at zxid" in behind.log_path.read_text(),
             timeout=10, message="a SNAP on the follower")
    zk = _client(behind.hosts)
    try:
        zk.sync("/")
        assert len([c for c in zk.get_children("/") if c.startswith("n")]) == written
        assert zk.get(f"/n{written - 1:06d}")[0] == str(written - 1).encode()
    finally:
        zk.stop()
        zk.close()
    # Its own restart now starts from the installed snapshot.
    behind.restart()
    assert "loaded the snapshot at zxid" in behind.log_path.read_text()
