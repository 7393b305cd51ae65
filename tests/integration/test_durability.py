"""kill -9 at any moment loses no acknowledged write; sessions survive a restart."""

import threading

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from harness import wait_for


def test_kill_9_keeps_every_acknowledged_write_and_the_session(server):
    zk = KazooClient(hosts=server.hosts, timeout=20)
    zk.start(timeout=10)
    session_before = zk.client_id
    zk.create("/eph", b"mine", ephemeral=True)
    zk.create("/acked")
    acked = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            try:
                zk.create(f"/acked/n{i:06d}", b"x" * 100)
            except Exception:
                return
            acked.append(f"n{i:06d}")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(acked) > 200, timeout=30, message="writes in flight")
    server.kill()  # SIGKILL in the middle of a stream of writes
    stop.set()
    # Restarted before the writer is awaited: a create it sent after kazoo saw
    # the connection drop waits for the reconnect instead of failing.
    server.start()

    lost = []
    states = []
    zk.add_listener(states.append)
    wait_for(lambda: zk.state == KazooState.CONNECTED, timeout=20, message="reconnect")
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert zk.client_id == session_before, "the session did not survive the restart"
    children = set(zk.get_children("/acked"))
    lost = [name for name in acked if name not in children]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    assert zk.get("/eph")[0] == b"mine"
    assert KazooState.LOST not in states
    zk.stop()
    zk.close()


def test_restart_after_clean_stop_replays_the_tree(server):
    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=10)
    zk.create("/r/a", b"1", makepath=True)
    zk.create("/r/s-", b"", sequence=True)
    zk.set("/r/a", b"2")
    stat_before = zk.exists("/r/a")
    zk.stop()
    zk.close()
    server.stop()
    server.start()
    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=10)
    data, stat = zk.get("/r/a")
    assert data == b"2" and stat == stat_before
    assert zk.create("/r/s-", b"", sequence=True) == "/r/s-0000000002"
    zk.stop()
    zk.close()


def test_expired_session_is_told_so_after_restart(server):
    """A session that timed out while the server was down is gone after replay + timeout."""
    zk = KazooClient(hosts=server.hosts, timeout=1.0)
    zk.start(timeout=10)
    zk.create("/short", ephemeral=True)
    watcher = KazooClient(hosts=server.hosts, timeout=10)
    server.kill()
    zk.stop()
    server.start()
    watcher.start(timeout=10)
    wait_for(lambda: watcher.exists("/short") is None, timeout=15, message="ephemeral expiry")
    watcher.stop()
    watcher.close()
    zk.close()
