"""Containers, as ZooKeeper reaps them: the same story told to nookeeper and to
Apache ZooKeeper 3.8 (a short check interval for both) must read the same."""

import contextlib
import threading
import time

import pytest
from kazoo.client import KazooClient

from harness import wait_for
from rawclient import RawClient
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper
from nookeeper.wire.ops import OpCode

INTERVAL_MS = 300
OPEN_ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]


def create_container(raw, path):
    header, _ = raw.call(OpCode.CREATE_CONTAINER,
                         {"path": path, "data": b"", "acl": OPEN_ACL, "flags": 4})
    return header.err


def delete_container(raw, path):
    header, _ = raw.call(OpCode.DELETE_CONTAINER, {"path": path})
    return header.err


def eventually(predicate, timeout):
    """A fact for a story: whether predicate came true within timeout."""
    try:
        return bool(wait_for(predicate, timeout))
    except AssertionError:
        return False


@contextlib.contextmanager
def clients(port):
    """kazoo for what it offers, a raw client for the opcodes it lacks."""
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    zk.start(timeout=10)
    raw = RawClient(port)
    try:
        yield zk, raw
    finally:
        raw.close()
        zk.stop()
        zk.close()


def container_story(port):
    """What a client sees of containers on the server at port, as a list of facts."""
    facts = []
    with clients(port) as (zk, raw):
        facts.append(("create container /c", create_container(raw, "/c")))
        facts.append(("container's ephemeralOwner", zk.exists("/c").ephemeralOwner))
        zk.create("/c/x")
        events = []
        fired = threading.Event()
        zk.exists("/c", watch=lambda event: (events.append(event.type), fired.set()))
        zk.delete("/c/x")
        facts.append(("emptied container reaped", eventually(lambda: zk.exists("/c") is None,
                                                             timeout=10)))
        fired.wait(5)
        facts.append(("watch on it", events))
        facts.append(("create container /never", create_container(raw, "/never")))
        time.sleep(4 * INTERVAL_MS / 1000)
        facts.append(("never-used container kept", zk.exists("/never") is not None))
        facts.append(("client's deleteContainer of it", delete_container(raw, "/never")))
        facts.append(("gone after", zk.exists("/never") is None))
        zk.create("/plain")
        facts.append(("client's deleteContainer of a plain node", delete_container(raw, "/plain")))
        facts.append(("plain node kept", zk.exists("/plain") is not None))
        create_container(raw, "/full")
        zk.create("/full/child")
        facts.append(("client's deleteContainer of a full one", delete_container(raw, "/full")))
    return facts


def test_containers_are_reaped_as_zookeeper_reaps_them(server_factory, tmp_path):
    server = server_factory(container_check_interval_ms=INTERVAL_MS)
    ours = container_story(server.port)
    assert ("emptied container reaped", True) in ours
    assert ("watch on it", ["DELETED"]) in ours
    assert ("never-used container kept", True) in ours
    # A client's deleteContainer is refused as ZooKeeper 3.8 refuses it, and the connection stays.
    assert ("client's deleteContainer of it", -8) in ours
    assert ("client's deleteContainer of a full one", -8) in ours
    if missing_zookeeper():
        pytest.skip(f"Apache ZooKeeper unavailable: {missing_zookeeper()}")
    zk = ZooKeeperProcess(tmp_path / "zk", tick_ms=200,
                          jvm_flags=(f"-Dznode.container.checkIntervalMs={INTERVAL_MS}",))
    try:
        zk.start()
        theirs = container_story(zk.port)
    finally:
        zk.kill()
    assert ours == theirs


def test_the_reaper_leaves_a_never_used_container_until_max_never_used(server_factory):
    server = server_factory(container_check_interval_ms=INTERVAL_MS,
                            container_max_never_used_ms=500)
    with clients(server.port) as (zk, raw):
        assert create_container(raw, "/idle") == 0
        assert zk.exists("/idle") is not None
        assert eventually(lambda: zk.exists("/idle") is None, timeout=10)


def create_ttl(raw, path, ttl, flags=5):
    header, body = raw.call(OpCode.CREATE_TTL, {"path": path, "data": b"", "acl": OPEN_ACL,
                                                "flags": flags, "ttl": ttl})
    return header.err, None if body is None else body.path


def ttl_story(port):
    """What a client sees of TTL nodes on the server at port."""
    facts = []
    with clients(port) as (zk, raw):
        facts.append(("createTTL /t", create_ttl(raw, "/t", 600)))
        facts.append(("its ephemeralOwner", zk.exists("/t").ephemeralOwner))
        facts.append(("createTTL in a mode without TTL", create_ttl(raw, "/bad", 600, flags=0)[0]))
        facts.append(("createTTL with ttl 0", create_ttl(raw, "/bad", 0)[0]))
        facts.append(("sequential TTL", create_ttl(raw, "/s-", 600, flags=6)))
        zk.create("/t/child")
        facts.append(("the TTL node with a child", zk.exists("/t") is not None))
        time.sleep(1.0 + 2 * INTERVAL_MS / 1000)
        facts.append(("kept while it has a child", zk.exists("/t") is not None))
        zk.delete("/t/child")
        facts.append(("reaped once childless and older than its TTL",
                      eventually(lambda: zk.exists("/t") is None, timeout=10)))
        facts.append(("the sequential one reaped too",
                      eventually(lambda: zk.exists("/s-0000000001") is None, timeout=10)))
    return facts


def test_ttl_nodes_behave_as_zookeepers(server_factory, tmp_path):
    server = server_factory(container_check_interval_ms=INTERVAL_MS)
    ours = ttl_story(server.port)
    assert ("reaped once childless and older than its TTL", True) in ours
    assert ("kept while it has a child", True) in ours
    if missing_zookeeper():
        pytest.skip(f"Apache ZooKeeper unavailable: {missing_zookeeper()}")
    zk = ZooKeeperProcess(tmp_path / "zk", tick_ms=200,
                          jvm_flags=(f"-Dznode.container.checkIntervalMs={INTERVAL_MS}",
                                     "-Dzookeeper.extendedTypesEnabled=true"))
    try:
        zk.start()
        theirs = ttl_story(zk.port)
    finally:
        zk.kill()
    assert ours == theirs


def test_a_server_with_ttl_nodes_off_refuses_them_before_they_are_txns(server_factory):
    server = server_factory(ttl_nodes=False)
    raw = RawClient(server.port)
    try:
        assert create_ttl(raw, "/t", 600)[0] == -6  # UNIMPLEMENTED, as ZooKeeper without extended types
        header, _ = raw.call(OpCode.CREATE, {"path": "/p", "data": b"", "acl": OPEN_ACL,
                                             "flags": 0})
        assert header.err == 0  # the connection stays and serves
    finally:
        raw.close()
