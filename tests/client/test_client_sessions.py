"""Sessions through trouble: slow callbacks, expiry, server restarts, frozen servers.

Run against both nookeeper and Apache ZooKeeper (the `backend` fixture of
tests/client/conftest.py); `backend.server` is the server process, which the
tests kill, restart or freeze.
"""

import signal
import threading
import time

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
        client = KeeperClient(backend.hosts, **{"timeout": 10, **kwargs})
        clients.append(client)
        client.start(timeout=30)
        return client

    yield make
    for client in clients:
        client.stop()


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


def test_slow_callback_does_not_stop_pings_or_replies(connect):
    client = connect(timeout=1.2)
    observer = connect()
    assert client.session_timeout == pytest.approx(1.2)
    ping_interval = client.session_timeout / 3
    states = States(client)
    session = client.client_id
    client.create("/slow", b"0")
    client.create("/slow/eph", ephemeral=True)

    started, finished = threading.Event(), threading.Event()

    def slow(event):
        started.set()
        time.sleep(6 * ping_interval)
        finished.set()

    client.get("/slow", watch=slow)
    client.set("/slow", b"1")
    assert started.wait(5)

    # The watcher thread sleeps for twice the session timeout; the session
    # only survives if pings go on without it.
    later = []
    client.exists_async("/slow").rawlink(lambda result: later.append(finished.is_set()))
    while not finished.is_set():
        began = time.monotonic()
        assert client.get("/slow")[0] == b"1"
        assert time.monotonic() - began < ping_interval
        assert client.state == KeeperState.CONNECTED
        time.sleep(0.05)
    wait_for(lambda: later)
    assert later == [True]
    assert client.client_id == session
    assert observer.exists("/slow/eph").ephemeralOwner == session[0]
    time.sleep(0.1)
    assert KeeperState.SUSPENDED not in states.seen


def test_session_expiry_is_reported_as_lost_and_a_new_session_follows(connect):
    client = connect(timeout=1.0)
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

    client._pause_io()
    try:
        assert gone.wait(20), "the server never expired the frozen session"
        queued = client.get_async("/exp")
    finally:
        client._resume_io()

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


def test_restart_keeps_the_session_and_set_watches_catch_up(backend, connect):
    client = connect()
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

    # Freeze the client so that the changes below happen while it is away;
    # only SetWatches on the next connection can tell it about them.
    client._pause_io()
    try:
        backend.server.restart()
        writer = connect()
        writer.set("/sw", b"1")
        writer.create("/sw/new")
        writer.create("/sw/kids/k")
    finally:
        client._resume_io()

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
