"""Sessions through trouble: slow callbacks, expiry, server restarts, frozen servers.

Run against both nookeeper and Apache ZooKeeper (the `backend` fixture of
tests/client/conftest.py); `backend.server` is the server process, which the
tests kill, restart or freeze.
"""

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from harness import free_port, wait_for
from nookeeper.client import EventType, KeeperClient, KeeperState, WatchedEvent
from nookeeper.client.exceptions import (
    ConnectionLoss,
    KeeperTimeoutError,
    NoAuthError,
    SessionExpiredError,
)
from nookeeper.client.security import make_digest_acl


@pytest.fixture
def connect(backend):
    clients = []

    def make(**kwargs):
        client = KeeperClient(**{"hosts": backend.hosts, "timeout": 10, **kwargs})
        clients.append(client)
        client.start(timeout=30)
        return client

    yield make
    for client in clients:
        client.stop()


def wait_until_stopped(pid):
    """SIGSTOP takes effect thread by thread, a little after kill() returns;
    until every thread of the process is stopped it may still answer."""

    def stopped():
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            states.append(stat.rsplit(")", 1)[1].split()[0])
        return bool(states) and all(state in ("T", "t") for state in states)

    wait_for(stopped, timeout=10, message=f"every thread of {pid} stopped")


class States:
    """A listener that remembers every state it was told, in order."""

    def __init__(self, client):
        self.seen = []
        client.add_listener(self.seen.append)

    def wait_for(self, *expected, timeout=30):
        wait_for(lambda: self.seen[-len(expected):] == list(expected), timeout=timeout,
                 message=f"states {expected} (have {self.seen})")


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, event):
        self.seen.append(event)

    def wait(self, count, timeout=20):
        wait_for(lambda: len(self.seen) >= count, timeout=timeout,
                 message=f"{count} events (have {self.seen})")
        return self.seen


def frames_received(client):
    """How many frames the server has had on this client's connection (`cons`'s recved)."""
    session = client.client_id[0] & (2**64 - 1)
    for line in client.command(b"cons").splitlines():
        fields = dict(item.split("=", 1) for item in line.partition("(")[2].rstrip(")").split(",")
                      if "=" in item)
        if "sid" in fields and int(fields["sid"], 16) & (2**64 - 1) == session:
            return int(fields["recved"])
    raise AssertionError(f"session {session:#x} not in cons")


def bytes_waiting_at(port):
    """Bytes the kernel holds, unread, on the server's established connections at `port`."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                waiting += int(queues.split(":")[1], 16)
    return waiting


def test_slow_callback_does_not_stop_pings_or_replies(connect):
    # Short enough to count pings quickly, long enough that a loaded machine's
    # slow server still answers a ping within the read timeout (2/3 of it).
    client = connect(timeout=2.0)
    observer = connect()
    assert client.session_timeout == pytest.approx(2.0)
    ping_interval = client.session_timeout / 3
    states = States(client)
    session = client.client_id
    client.create("/slow", b"0")
    client.create("/slow/eph", ephemeral=True)

    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(event):
        started.set()
        release.wait(30)
        finished.set()

    client.get("/slow", watch=slow)
    client.set("/slow", b"1")
    assert started.wait(5)

    # The watcher thread is stuck and the application sends nothing for three
    # times the session timeout: only the I/O thread's pings keep the session.
    before = frames_received(client)
    began = time.monotonic()
    time.sleep(3 * client.session_timeout)
    pings = frames_received(client) - before
    expected = (time.monotonic() - began) / ping_interval  # about 9
    assert KeeperState.SUSPENDED not in states.seen, "the connection dropped: pings unanswered"
    # One every third of the timeout, a little late each time under load;
    # pinging every half would send about 6.
    assert expected - 2 <= pings <= expected + 1, (pings, expected)
    assert observer.exists("/slow/eph").ephemeralOwner == session[0]

    # Replies come back while the callback still blocks; their rawlinks wait for it.
    later = []
    client.exists_async("/slow").rawlink(lambda result: later.append(finished.is_set()))
    for _ in range(5):
        began = time.monotonic()
        assert client.get("/slow")[0] == b"1"
        assert time.monotonic() - began < ping_interval
    assert client.state == KeeperState.CONNECTED
    assert not finished.is_set() and later == []
    release.set()
    wait_for(lambda: later)
    assert later == [True]
    assert client.client_id == session
    time.sleep(0.1)
    assert KeeperState.SUSPENDED not in states.seen


def test_requests_are_pipelined_without_waiting_for_replies(backend, connect):
    client = connect()
    client.create("/piped")
    paths = [f"/piped/n{i}" for i in range(5)]
    # An exists frame: length, xid, opcode, the path (length and bytes), the watch flag.
    size = sum(4 + 4 + 4 + 4 + len(path) + 1 for path in paths)
    process = backend.server.proc
    process.send_signal(signal.SIGSTOP)
    try:
        wait_until_stopped(process.pid)
        before = bytes_waiting_at(backend.server.port)
        results = [client.exists_async(path) for path in paths]
        # All five reach the server while it cannot have answered the first.
        wait_for(lambda: bytes_waiting_at(backend.server.port) - before >= size, timeout=3,
                 message=f"{size} bytes of requests at the frozen server")
        assert not any(result.ready() for result in results)
    finally:
        process.send_signal(signal.SIGCONT)
    assert [result.get(timeout=10) for result in results] == [None] * len(paths)
    assert client.state == KeeperState.CONNECTED


def test_one_io_thread_and_one_watcher_thread_serve_the_whole_session(backend):
    before = set(threading.enumerate())
    client = KeeperClient(backend.hosts, timeout=10)
    try:
        client.start(timeout=30)
        states = States(client)
        mine = set(threading.enumerate()) - before
        assert sorted(thread.name for thread in mine) == ["nookeeper-io", "nookeeper-watcher"]
        session = client.client_id
        events = Events()
        client.exists("/threads", watch=events)
        backend.server.restart()
        states.wait_for(KeeperState.SUSPENDED, KeeperState.CONNECTED)
        client.create("/threads")
        events.wait(1)
        assert client.client_id == session
        # The reconnect, the reply and the watch all went through the same two threads.
        assert {thread for thread in threading.enumerate() if thread not in before} == mine
    finally:
        client.stop()
    assert not any(thread.is_alive() for thread in mine)


def test_a_server_that_accepts_and_never_answers_does_not_hold_the_client_for_the_whole_session(
        backend):
    """ZooKeeper, while it starts, may accept a connection and neither answer nor
    close it; the client must give up on that handshake in time to reconnect."""
    timeout = 6.0
    client = KeeperClient(backend.hosts, timeout=timeout)
    silent = socket.socket()
    accepted = []
    try:
        client.start(timeout=30)
        states = States(client)
        session = client.client_id
        backend.server.kill()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", backend.server.port))
        silent.listen(1)
        silent.settimeout(10)
        accepted.append(silent.accept()[0])
        stalled_at = time.monotonic()
        silent.close()
        backend.server.start()
        states.wait_for(KeeperState.SUSPENDED, KeeperState.CONNECTED, timeout=timeout)
        assert time.monotonic() - stalled_at < timeout / 2
        assert client.client_id == session
    finally:
        client.stop()
        silent.close()
        for sock in accepted:
            sock.close()


def test_session_expiry_is_reported_as_lost_and_a_new_session_follows(connect, freezable_proxy):
    client = connect(timeout=1.0, hosts=freezable_proxy.hosts)
    observer = connect()
    states = States(client)
    old_session = client.client_id
    client.create("/exp", b"")
    client.create("/exp/eph", ephemeral=True)
    data_events, exist_events = Events(), Events()
    client.get("/exp", watch=data_events)
    client.exists("/exp/missing", watch=exist_events)
    gone = threading.Event()
    observer.exists("/exp/eph", watch=lambda event: gone.set())

    freezable_proxy.freeze()
    try:
        assert gone.wait(20), "the server never expired the cut-off session"
        # Queued while a reconnect attempt is held, so that attempt, not a
        # session timeout in the queue, decides the request's fate.
        attempts = freezable_proxy.connections
        wait_for(lambda: freezable_proxy.connections > attempts, timeout=10,
                 message="the client's next attempt to reconnect")
        queued = client.get_async("/exp")
    finally:
        freezable_proxy.thaw()

    states.wait_for(KeeperState.SUSPENDED, KeeperState.LOST, KeeperState.CONNECTED)
    with pytest.raises(SessionExpiredError):
        queued.get(timeout=10)
    assert client.client_id is not None
    assert client.client_id[0] != old_session[0]
    assert client.exists("/exp/eph") is None
    assert data_events.wait(1) == [WatchedEvent(EventType.NONE, KeeperState.LOST, "/exp")]
    assert exist_events.wait(1) == [WatchedEvent(EventType.NONE, KeeperState.LOST, "/exp/missing")]

    # The new session works and its watches are its own.
    client.create("/exp/eph", ephemeral=True)
    assert observer.exists("/exp/eph").ephemeralOwner == client.client_id[0]
    client.set("/exp", b"x")
    time.sleep(0.2)
    assert len(data_events.seen) == 1


def test_restart_keeps_the_session_and_set_watches_catch_up(backend, connect, freezable_proxy):
    client = connect(hosts=freezable_proxy.hosts)
    states = States(client)
    session = client.client_id
    client.create("/sw", b"0")
    client.create("/sw/kids")
    client.create("/sw/eph", ephemeral=True)
    events = Events()
    client.get("/sw", watch=events)
    client.exists("/sw/new", watch=events)
    client.get_children("/sw/kids", watch=events)
    client.exists("/sw/unchanged", watch=events)

    # Cut the client off so that the changes below happen while it is away;
    # only SetWatches on the next connection can tell it about them.
    freezable_proxy.freeze()
    try:
        backend.server.restart()
        writer = connect()
        writer.set("/sw", b"1")
        writer.create("/sw/new")
        writer.create("/sw/kids/k")
    finally:
        freezable_proxy.thaw()

    states.wait_for(KeeperState.SUSPENDED, KeeperState.CONNECTED)
    assert client.client_id == session
    assert writer.exists("/sw/eph").ephemeralOwner == session[0]
    assert sorted(events.wait(3), key=lambda e: e.path) == [
        WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/sw"),
        WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, "/sw/kids"),
        WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/sw/new"),
    ]
    # The watch that had nothing to catch up on is registered again.
    writer.create("/sw/unchanged")
    assert events.wait(4)[3] == WatchedEvent(EventType.CREATED, KeeperState.CONNECTED,
                                             "/sw/unchanged")


def test_never_resumes_on_a_server_behind_the_last_zxid_seen(backend, request):
    ahead = backend.server
    # A fresh, empty server of the same kind: behind every zxid `ahead` hands out.
    if backend.name == "nookeeper":
        behind = request.getfixturevalue("server_factory")("behind")
    else:
        behind = request.getfixturevalue("zookeeper_factory")("behind")
    client = KeeperClient(f"{ahead.hosts},{behind.hosts}", timeout=10, randomize_hosts=False)
    request.addfinalizer(client.stop)
    client.start(timeout=15)
    assert client.current_host[1] == ahead.port
    states = States(client)
    session = client.client_id
    for i in range(5):
        client.create(f"/z{i}", ephemeral=True)

    ahead.kill()
    # The client goes on to `behind`, which must turn it away (it closes the
    # connection) rather than answer: an answer would be "session expired".
    wait_for(lambda: "has seen zxid" in behind.log_path.read_text(errors="replace"),
             timeout=20, message=f"{behind.hosts} refusing the client")
    assert client.state == KeeperState.SUSPENDED
    ahead.start()
    states.wait_for(KeeperState.CONNECTED)
    assert KeeperState.LOST not in states.seen
    assert client.client_id == session
    assert client.current_host[1] == ahead.port
    assert sorted(client.get_children("/")) == ["z0", "z1", "z2", "z3", "z4", "zookeeper"]


def test_credentials_are_replayed_after_a_reconnect(backend, connect):
    client = connect()
    states = States(client)
    client.add_auth("digest", "alice:pw")
    client.create("/private", b"p", acl=[make_digest_acl("alice", "pw", all=True)])
    backend.server.restart()
    states.wait_for(KeeperState.SUSPENDED, KeeperState.CONNECTED)
    assert client.get("/private")[0] == b"p"
    with pytest.raises(NoAuthError):
        connect().get("/private")


def test_requests_queued_while_disconnected_are_sent_after_reconnecting(backend, connect):
    client = connect()
    states = States(client)
    backend.server.kill()
    states.wait_for(KeeperState.SUSPENDED)
    pending = client.create_async("/queued", b"q")
    assert not pending.ready()
    backend.server.start()
    assert pending.get(timeout=30) == "/queued"
    assert client.state == KeeperState.CONNECTED
    assert client.get("/queued")[0] == b"q"


def test_queued_requests_give_up_after_a_session_timeout_without_servers(backend, connect):
    client = connect(timeout=2.0)
    backend.server.kill()
    began = time.monotonic()
    pending = client.get_async("/")
    with pytest.raises(ConnectionLoss):
        pending.get(timeout=15)
    assert time.monotonic() - began < 8
    assert client.state == KeeperState.SUSPENDED


def test_a_frozen_server_fails_requests_in_flight_with_connection_loss(backend, connect):
    client = connect(timeout=4.0)
    states = States(client)
    session = client.client_id
    process = backend.server.proc
    process.send_signal(signal.SIGSTOP)
    try:
        wait_until_stopped(process.pid)
        in_flight = client.get_async("/")
        began = time.monotonic()
        with pytest.raises(ConnectionLoss):
            in_flight.get(timeout=10)
        # Declared dead after two thirds of the session timeout without a frame.
        assert time.monotonic() - began < 4.0
    finally:
        process.send_signal(signal.SIGCONT)
    states.wait_for(KeeperState.SUSPENDED, KeeperState.CONNECTED)
    assert client.client_id == session
    assert client.exists("/") is not None


def test_start_times_out_when_no_server_answers():
    client = KeeperClient(f"127.0.0.1:{free_port()}", timeout=5)
    began = time.monotonic()
    with pytest.raises(KeeperTimeoutError):
        client.start(timeout=1)
    assert time.monotonic() - began < 3
    assert client.state == KeeperState.LOST
    assert client.client_id is None
