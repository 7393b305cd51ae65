"""A 3-node ensemble of real processes on loopback, driven by kazoo."""

import signal
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from harness import ClientProcess, wait_for


def client(hosts, **kwargs):
    zk = KazooClient(hosts=hosts, timeout=kwargs.pop("timeout", 10), **kwargs)
    zk.start(timeout=20)
    return zk


def close(*clients):
    for zk in clients:
        zk.stop()
        zk.close()


def test_modes_and_a_write_through_any_server_is_read_everywhere(ensemble_factory):
    ensemble = ensemble_factory()
    leader = ensemble.leader()
    modes = sorted(server.mode() for server in ensemble.servers.values())
    assert modes == ["follower", "follower", "leader"]
    assert "Epoch: " in leader.command("srvr")
    per_server = [client(server.hosts) for server in ensemble.servers.values()]
    for i, zk in enumerate(per_server):
        zk.create(f"/from-{i}", str(i).encode())
    for zk in per_server:
        zk.sync("/")
        for i in range(len(per_server)):
            assert zk.get(f"/from-{i}")[0] == str(i).encode()
    mntr = dict(line.split("\t", 1) for line in leader.command("mntr").splitlines())
    assert mntr["zk_server_state"] == "leader" and int(mntr["zk_epoch"]) >= 1
    close(*per_server)


def test_leader_kill_9_elects_a_new_leader_and_loses_nothing(ensemble_factory):
    ensemble = ensemble_factory()
    old = ensemble.leader()
    writer = client(ensemble.hosts)
    writer.create("/acked")
    acked = []
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            try:
                writer.create(f"/acked/n{i:06d}")
                acked.append(f"n{i:06d}")
            except Exception:
                time.sleep(0.05)
            i += 1

    thread = threading.Thread(target=write)
    thread.start()
    wait_for(lambda: len(acked) > 100, timeout=30, message="writes before the kill")
    killed_at = time.monotonic()
    old.kill()
    new = wait_for(lambda: (l := ensemble._find("leader")) is not None and l is not old and l,
                   timeout=30, message="a new leader")
    print(f"new leader {new.config_path.parent.name} after {time.monotonic() - killed_at:.2f}s")
    count = len(acked)
    wait_for(lambda: len(acked) > count + 50, timeout=30, message="writes after failover")
    stop.set()
    thread.join(timeout=30)
    old.start(timeout=30)
    reader = client(old.hosts)
    reader.sync("/")
    children = set(reader.get_children("/acked"))
    missing = [name for name in acked if name not in children]
    assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
    assert old.mode() == "follower"
    close(writer, reader)


def test_kill_9_of_all_three_then_restart_keeps_every_acknowledged_write(ensemble_factory):
    ensemble = ensemble_factory()
    zk = client(ensemble.hosts)
    for i in range(50):
        zk.create(f"/durable-{i}", b"v")
    zk.stop()
    zk.close()
    ensemble.kill_all()
    ensemble.start()
    zk = client(ensemble.hosts)
    zk.sync("/")
    assert all(zk.exists(f"/durable-{i}") for i in range(50))
    close(zk)


def test_a_live_sessions_ephemerals_survive_the_death_of_its_server(ensemble_factory):
    ensemble = ensemble_factory()
    servers = list(ensemble.servers.values())
    first = servers[0]
    zk = KazooClient(hosts=",".join(s.hosts for s in servers), timeout=6,
                     randomize_hosts=False)
    zk.start(timeout=20)
    session = zk.client_id
    zk.create("/mine", b"", ephemeral=True)
    states = []
    zk.add_listener(states.append)
    connected_port = zk._connection._socket.getpeername()[1]
    victim = next(s for s in servers if s.port == connected_port)
    victim.kill()
    wait_for(lambda: zk.state == KazooState.CONNECTED and KazooState.SUSPENDED in states,
             timeout=20, message="reconnect to another server")
    assert zk.client_id == session
    observer = client(",".join(s.hosts for s in servers if s is not victim))
    observer.sync("/")
    assert observer.exists("/mine").ephemeralOwner == session[0]
    assert KazooState.LOST not in states
    close(zk, observer)
    del first


def test_a_follower_cut_off_serves_no_stale_reads_after_sync(ensemble_factory):
    ensemble = ensemble_factory()
    ensemble.leader()
    follower = ensemble.followers()[0]
    others = [s for s in ensemble.servers.values() if s is not follower]
    writer = client(",".join(s.hosts for s in others))
    writer.create("/value", b"0")
    reader = client(follower.hosts)
    reader.sync("/")
    assert reader.get("/value")[0] == b"0"
    follower.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(1, 20):
            writer.set("/value", str(i).encode())
    finally:
        follower.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: reader.state == KazooState.CONNECTED, timeout=30, message="reader back")
    reader.sync("/")
    assert reader.get("/value")[0] == b"19"
    close(writer, reader)


def test_lock_keeps_mutual_exclusion_while_the_leader_is_killed(ensemble_factory):
    ensemble = ensemble_factory()
    leader = ensemble.leader()
    servers = list(ensemble.servers.values())
    workers = [ClientProcess(s.hosts if s is not leader else ensemble.hosts,
                             "lock", "/locks/l", 30, f"w{i}") for i, s in enumerate(servers)]
    try:
        for worker in workers:
            worker.wait_ready()
        time.sleep(1.0)
        leader.kill()
        ensemble.leader(timeout=30)
        time.sleep(1.0)
        leader.start(timeout=30)
        for worker in workers:
            code, out, err = worker.wait(timeout=150)
            assert code == 0, out + err[-3000:]
            assert "done" in out
    finally:
        for worker in workers:
            worker.kill()


@pytest.mark.parametrize("size", [1])
def test_one_member_ensemble_is_standalone(ensemble_factory, size):
    ensemble = ensemble_factory(size=size)
    (server,) = ensemble.servers.values()
    assert server.mode() == "standalone"


def test_leader_that_loses_its_quorum_stops_serving_within_the_sync_limit(ensemble_factory):
    ensemble = ensemble_factory()
    leader = ensemble.leader()
    followers = [s for s in ensemble.servers.values() if s is not leader]
    zk = client(leader.hosts)
    for follower in followers:
        follower.proc.send_signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_for(lambda: not leader.is_serving(), timeout=10, message="the leader to step down")
        elapsed = time.monotonic() - stopped
        # sync_limit 5 ticks of 100 ms, plus a tick of detection and scheduling slack.
        assert elapsed < 2.0, elapsed
        wait_for(lambda: zk.state != KazooState.CONNECTED, timeout=10, message="client cut off")
    finally:
        for follower in followers:
            follower.proc.send_signal(signal.SIGCONT)
    ensemble.leader(timeout=30)
    wait_for(lambda: zk.state == KazooState.CONNECTED, timeout=30, message="client back")
    zk.create("/after-heal")
    close(zk)


def test_session_expired_by_the_leader_is_cut_off_on_a_follower(ensemble_factory):
    ensemble = ensemble_factory()
    follower = ensemble.followers()[0]
    frozen = ClientProcess(follower.hosts, "ephemeral", "/short-lived", timeout=1.0)
    try:
        frozen.wait_ready()
        watcher = client(ensemble.leader().hosts)
        gone = threading.Event()
        assert watcher.exists("/short-lived", watch=lambda event: gone.set()) is not None
        frozen.freeze()
        assert gone.wait(15), "the leader did not expire the silent session"
        wait_for(lambda: "/short-lived" not in follower.command("dump"), timeout=10,
                 message="the follower to drop the expired session's ephemeral")
        wait_for(lambda: "sid=" not in follower.command("cons"), timeout=10,
                 message="the follower to close the expired client's connection")
        close(watcher)
    finally:
        frozen.kill()


def test_election_after_a_leader_death_does_not_wait_for_a_long_tick(ensemble_factory):
    """Elections run on 100 ms ticks. With tick_ms at 10 s, a survivor that
    kept waiting out the tick in progress when its leader died would take up
    to 10 s to elect; it must take a fraction of a second."""
    ensemble = ensemble_factory(tick_ms=10000)
    old = ensemble.leader(timeout=30)
    time.sleep(0.5)  # somewhere inside the survivors' first long tick
    killed_at = time.monotonic()
    old.kill()
    new = wait_for(lambda: (l := ensemble._find("leader")) is not None and l is not old and l,
                   timeout=30, interval=0.02, message="a new leader")
    took = time.monotonic() - killed_at
    print(f"new leader {new.config_path.parent.name} after {took:.2f}s with 10 s ticks")
    assert took < 3.0
