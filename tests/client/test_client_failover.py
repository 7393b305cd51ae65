"""Failover: kill -9 the server a client is connected to; the session moves on.

Runs on a 3-server nookeeper ensemble (tests/conftest.py's ensemble_factory)
and on a 3-server Apache ZooKeeper quorum (`zookeeper_ensemble` of
tests/client/conftest.py), killing the leader or a follower. The read-only scenario against a
ZooKeeper server is here; against both, with nookeeper's read_only_mode, in
tests/integration/test_read_only.py.
"""

import pytest

from harness import wait_for
from nookeeper.client import EventType, KeeperClient, KeeperState, WatchedEvent
from nookeeper.client.exceptions import KeeperTimeoutError, NotReadOnlyCallError
from zookeeper_harness import ZooKeeperEnsemble, missing_zookeeper


@pytest.fixture(params=["nookeeper", "zookeeper"])
def ensemble(request):
    if request.param == "nookeeper":
        return request.getfixturevalue("ensemble_factory")(3)
    return request.getfixturevalue("zookeeper_ensemble")


@pytest.fixture
def clients():
    made = []
    yield made
    for client in made:
        client.stop()


def _connect(clients, hosts, **kwargs):
    client = KeeperClient(hosts, **{"timeout": 15, **kwargs})
    clients.append(client)
    client.start(timeout=30)
    return client


@pytest.mark.parametrize("victim", ["leader", "follower"])
def test_killing_the_connected_server_keeps_session_ephemerals_and_watches(
        ensemble, clients, victim):
    leader = ensemble.leader()
    target = leader if victim == "leader" else next(
        server for server in ensemble.servers.values() if server is not leader)
    others = [server for server in ensemble.servers.values() if server is not target]
    # The target first, so that is where the session starts; every path is
    # under the chroot, SetWatches' included.
    hosts = ",".join(server.hosts for server in [target] + others) + "/app"
    client = _connect(clients, hosts, randomize_hosts=False)
    assert client.current_host[1] == target.port
    client.ensure_path("/")

    states = []
    client.add_listener(states.append)
    session = client.client_id
    client.create("/fo", b"0")
    client.create("/fo/kids")
    client.create("/fo/eph", b"mine", ephemeral=True)
    events = []
    client.get("/fo", watch=events.append)
    client.exists("/fo/later", watch=events.append)
    client.get_children("/fo/kids", watch=events.append)

    target.kill()
    # The client may first land on a survivor that has not yet noticed the
    # loss and then drops its clients while a leader is elected; what counts
    # is where it ends up once the two survivors serve again.
    wait_for(lambda: sorted(server.safe_mode() or "" for server in others)
             == ["follower", "leader"], timeout=60, message="the survivors serving")
    wait_for(lambda: client.connected and states[-1:] == [KeeperState.CONNECTED],
             timeout=60, message=f"connected (have {states})")
    assert KeeperState.SUSPENDED in states and KeeperState.LOST not in states
    assert client.client_id == session
    assert client.retry(client.get, "/fo/eph")[0] == b"mine"
    assert client.retry(client.exists, "/fo/eph").ephemeralOwner == session[0]
    assert client.current_host[1] != target.port

    # Another client, on a surviving server, changes what the first one watches:
    # the watches came back with SetWatches, so they fire.
    writer = _connect(clients, ",".join(server.hosts for server in others))
    writer.set("/app/fo", b"1")
    writer.create("/app/fo/later")
    writer.create("/app/fo/kids/k")
    wait_for(lambda: len(events) == 3, timeout=20, message=f"3 events (have {events})")
    assert sorted(events, key=lambda e: e.path) == [
        WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/fo"),
        WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, "/fo/kids"),
        WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/fo/later"),
    ]

    # The session is still one session: its ephemeral goes when it closes.
    client.stop()
    writer.sync("/app")  # the writer's server has applied the closeSession too
    assert writer.exists("/app/fo/eph") is None


def test_read_only_zookeeper_server_gives_connected_ro_until_a_quorum_forms(tmp_path, clients):
    """The client against Apache ZooKeeper's servers, which serve reads alone
    while out of a quorum with readonlymode.enabled (and local sessions, the
    only kind a read-only server can create); nookeeper's read_only_mode is
    told the same story in tests/integration/test_read_only.py."""
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
    ensemble = ZooKeeperEnsemble(
        tmp_path / "ro", 3, tick_ms=200, init_limit=25, sync_limit=10,
        min_session_timeout_ms=400, max_session_timeout_ms=30000,
        jvm_flags=("-Dreadonlymode.enabled=true",),
        extra_config={"localSessionsEnabled": "true"})
    first, second, _third = ensemble.servers.values()
    try:
        first.launch()
        wait_for(lambda: first.alive() and first.safe_mode() == "read-only", timeout=30,
                 message="a read-only server")
        # A client that did not ask for read-only servers is turned away.
        with pytest.raises(KeeperTimeoutError):
            KeeperClient(first.hosts, timeout=10).start(timeout=1.5)

        client = _connect(clients, f"{first.hosts},{second.hosts}/ro",
                          read_only=True, randomize_hosts=False)
        states = []
        client.add_listener(states.append)
        assert client.state == KeeperState.CONNECTED_RO and client.connected
        ro_session = client.client_id
        assert client.exists("/") is None  # the chroot: nothing was ever written
        with pytest.raises(NotReadOnlyCallError):
            client.ensure_path("/")
        events = []
        client.exists("/later", watch=events.append)

        second.launch()
        wait_for(lambda: sorted(s.safe_mode() or "" for s in (first, second))
                 == ["follower", "leader"], timeout=60, message="a quorum of two")
        wait_for(lambda: client.connected and states[-1:] == [KeeperState.CONNECTED],
                 timeout=60, message=f"CONNECTED (have {states})")
        assert KeeperState.LOST not in states
        # The read-only server's session was its own; the quorum gave a new one,
        # and the watch came along (SetWatches).
        assert client.client_id[0] != ro_session[0]
        client.ensure_path("/")
        assert client.create("/later") == "/later"
        wait_for(lambda: events, message="the watch set on the read-only server")
        assert events == [WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/later")]
    finally:
        for client in clients:
            client.stop()
        ensemble.kill_all()
