"""Fixtures for bin/nk-dump's tests: logs written by real servers through kazoo.

story          a server (still running) whose log holds two epochs of known writes:
               creates, sets, a sequential node, an ephemeral, a multi and a
               failing one, a failed create, a delete and two session closes;
               with the zxid of each and what kazoo saw at one point in between.
snapped        a server that took several snapshots and purged the log behind
               them, with what kazoo saw at points along the way.
busy           (server, writer): a server kazoo keeps writing to (Writer) all
               along, with snapshots every 500 txns and purges behind them.
kazoo_factory  kazoo_factory(hosts): a started kazoo client, closed at teardown.

These servers are started once per module, as tests/shell/conftest.py does,
and killed at teardown whatever happens: the tests only read their logs (or
copies of them). An ensemble comes from tests/conftest.py's ensemble_factory.
"""

import sqlite3
import threading
import time
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from harness import ServerProcess, wait_for

TIMEOUTS = {"tick_ms": 200, "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}


def kazoo(hosts):
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=15)
    return client


def close(client):
    client.stop()
    client.close()


@pytest.fixture
def kazoo_factory():
    """Started kazoo clients on demand; all stopped at teardown."""
    made = []

    def make(hosts):
        made.append(kazoo(hosts))
        return made[-1]

    yield make
    for client in made:
        close(client)


def walk(zk, root):
    """{path: (data, stat as a dict)} of the subtree at root, as kazoo sees it now."""
    seen, stack = {}, [root]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        seen[path] = (data, stat._asdict())
        stack.extend(f"{path.rstrip('/')}/{child}" for child in zk.get_children(path))
    return seen


@dataclass
class Story:
    server: ServerProcess
    zxid: dict = field(default_factory=dict)       # name -> zxid of that write
    sessions: dict = field(default_factory=dict)   # "zk1".. -> session id
    seq_path: str = ""
    view_at_mid: dict = field(default_factory=dict)

    @property
    def data_dir(self):
        return self.server.workdir / "data"


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("story"), **TIMEOUTS)
    clients = []
    try:
        server.start()
        zk1, zk2 = kazoo(server.hosts), kazoo(server.hosts)
        clients += [zk1, zk2]
        s = Story(server)
        s.sessions = {"zk1": zk1.client_id[0], "zk2": zk2.client_id[0]}
        z = s.zxid
        zk1.create("/app", b"root")
        z["app"] = zk1.exists("/app").czxid
        zk1.create("/app/a", b"hello")
        z["create_a"] = zk1.exists("/app/a").czxid
        z["set_a"] = zk1.set("/app/a", b"world!").mzxid
        s.view_at_mid = walk(zk1, "/app")
        zk1.create("/apple", b"not below /app")
        z["apple"] = zk1.exists("/apple").czxid
        zk1.create("/app/q", b"")
        s.seq_path = zk1.create("/app/q/item-", b"x", sequence=True)
        z["seq"] = zk1.exists(s.seq_path).czxid
        zk2.create("/app/eph", b"e", ephemeral=True)
        z["eph"] = zk2.exists("/app/eph").czxid
        multi = zk1.transaction()
        multi.create("/app/m1", b"1")
        multi.set_data("/app/a", b"m")
        multi.delete(s.seq_path)
        assert multi.commit()[0] == "/app/m1"
        z["multi"] = zk1.exists("/app/m1").czxid
        with pytest.raises(NodeExistsError):
            zk1.create("/app/a", b"dup")
        z["dup"] = z["multi"] + 1
        failing = zk1.transaction()
        failing.create("/app/m2", b"2")
        failing.check("/app/a", 99)
        failing.commit()
        z["bad_multi"] = z["dup"] + 1
        zk1.delete("/app/m1")
        z["delete_m1"] = zk1.exists("/app").pzxid
        assert z["delete_m1"] == z["bad_multi"] + 1, "only these writes happened"
        close(zk2)
        wait_for(lambda: zk1.exists("/app/eph") is None, message="zk2's ephemeral removed")
        z["close_zk2"] = zk1.exists("/app").pzxid
        close(zk1)
        server.restart()  # kill -9: the log goes on in a new epoch
        zk3 = kazoo(server.hosts)
        clients.append(zk3)
        s.sessions["zk3"] = zk3.client_id[0]
        z["epoch2_set"] = zk3.set("/app/a", b"epoch two").mzxid
        yield s
    finally:
        for client in clients:
            try:
                close(client)
            except Exception:
                pass
        server.kill()


@dataclass
class Snapped:
    server: ServerProcess
    # (zxid, /s/counter's data, its stat, /s's stat, /s's children) after each batch
    points: list = field(default_factory=list)

    @property
    def data_dir(self):
        return self.server.workdir / "data"


def snapshot_rows(server):
    conn = sqlite3.connect(f"file:{server.workdir / 'data' / 'nookeeper.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    finally:
        conn.close()


def _snapshots_logged(server):
    return server.log_path.read_text().count("nookeeper.snapshot: snapshot at zxid")


@pytest.fixture(scope="module")
def snapped(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("snapped"), snapshot_every_txns=60,
                           snapshot_retain_count=2, **TIMEOUTS)
    zk = None
    try:
        server.start()
        zk = kazoo(server.hosts)
        s = Snapped(server)
        zk.create("/s", b"")
        zk.create("/s/counter", b"0")
        names = []
        batch = 0
        while _snapshots_logged(server) < 4 or batch < 6:
            assert batch < 60, "the server took too few snapshots"
            new = [f"n{batch:03d}-{i:02d}" for i in range(25)]
            for result in [zk.create_async(f"/s/{name}", name.encode()) for name in new]:
                result.get(timeout=30)
            names += new
            stat = zk.set("/s/counter", str(batch).encode())
            s.points.append((stat.mzxid, str(batch).encode(), stat._asdict(),
                             zk.exists("/s")._asdict(), frozenset(names + ["counter"])))
            batch += 1
            time.sleep(0.05)
        wait_for(lambda: "purged 1 old snapshots" in server.log_path.read_text()
                 and snapshot_rows(server) == 2,
                 message="a purge of old snapshots and the log behind them")
        yield s
    finally:
        if zk is not None:
            close(zk)
        server.kill()


class Writer(threading.Thread):
    """Keeps a server busy with pipelined creates and sets until stopped."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.zk = kazoo(hosts)
        self.zk.ensure_path("/w")
        self.done = 0
        self.errors = []
        self.last_zxid = 0
        self.pause_s = 0.0  # between batches of 21 writes
        self.stopping = threading.Event()

    def run(self):
        batch = 0
        try:
            while not self.stopping.is_set():
                results = [self.zk.create_async(f"/w/n{batch:05d}-{i:02d}", b"x" * i)
                           for i in range(20)]
                results.append(self.zk.set_async("/w", str(batch).encode()))
                for result in results:
                    result.get(timeout=30)
                self.last_zxid = results[-1].get().mzxid
                self.done += len(results)
                batch += 1
                self.stopping.wait(self.pause_s)
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.errors.append(e)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        close(self.zk)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("busy"), snapshot_every_txns=500,
                           snapshot_retain_count=3, **TIMEOUTS)
    writer = None
    try:
        server.start()
        writer = Writer(server.hosts)
        writer.start()
        wait_for(lambda: writer.errors or writer.done > 1500 and snapshot_rows(server) >= 3,
                 timeout=30, message="writes and three snapshots")
        yield server, writer
    finally:
        if writer is not None:
            writer.stop()
        server.kill()
