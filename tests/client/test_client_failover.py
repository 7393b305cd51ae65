"""Failover: kill -9 the server a client is connected to; the session moves on.

Runs on a 3-server nookeeper ensemble (tests/conftest.py's ensemble_factory)
and on a 3-server Apache ZooKeeper quorum (`zookeeper_ensemble` of
tests/client/conftest.py), killing the leader or a follower.
"""

import time

import pytest

from harness import wait_for
from nookeeper.client import EventType, KeeperClient, KeeperState, WatchedEvent


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
    # The target first, so that is where the session starts.
    hosts = ",".join(server.hosts for server in [target] + others)
    client = _connect(clients, hosts, randomize_hosts=False)
    assert client.current_host[1] == target.port

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
    wait_for(lambda: states[-2:] == [KeeperState.SUSPENDED, KeeperState.CONNECTED],
             timeout=60, message=f"SUSPENDED then CONNECTED (have {states})")
    assert client.client_id == session
    assert client.current_host[1] != target.port
    assert client.get("/fo/eph")[0] == b"mine"
    assert client.exists("/fo/eph").ephemeralOwner == session[0]

    # Another client, on a surviving server, changes what the first one watches:
    # the watches came back with SetWatches, so they fire.
    writer = _connect(clients, ",".join(server.hosts for server in others))
    writer.set("/fo", b"1")
    writer.create("/fo/later")
    writer.create("/fo/kids/k")
    wait_for(lambda: len(events) == 3, timeout=20, message=f"3 events (have {events})")
    assert sorted(events, key=lambda e: e.path) == [
        WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/fo"),
        WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, "/fo/kids"),
        WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/fo/later"),
    ]

    # The session is still one session: its ephemeral goes when it closes.
    client.stop()
    time.sleep(0.2)
    assert writer.exists("/fo/eph") is None
