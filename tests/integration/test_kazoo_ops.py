"""The real kazoo client against a real nookeeper-server process."""

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoChildrenForEphemeralsError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType
from kazoo.security import ACL, Id, make_digest_acl, Permissions, OPEN_ACL_UNSAFE

from harness import ClientProcess, wait_for


def connect(server, **kwargs):
    client = KazooClient(hosts=server.hosts, timeout=kwargs.pop("timeout", 10), **kwargs)
    client.start(timeout=10)
    return client


def test_create_get_set_delete_with_versions(zk):
    assert zk.create("/a", b"hello") == "/a"
    data, stat = zk.get("/a")
    assert data == b"hello"
    assert stat.version == 0 and stat.dataLength == 5 and stat.numChildren == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ephemeralOwner == 0
    stat2 = zk.set("/a", b"world", version=0)
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid and stat2.czxid == stat.czxid
    with pytest.raises(BadVersionError):
        zk.set("/a", b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/a")
    zk.create("/a/child")
    with pytest.raises(NotEmptyError):
        zk.delete("/a")
    with pytest.raises(BadVersionError):
        zk.delete("/a/child", version=3)
    zk.delete("/a/child", version=0)
    zk.delete("/a")
    assert zk.exists("/a") is None
    with pytest.raises(NoNodeError):
        zk.get("/a")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")


def test_makepath_recursive_delete_and_children(zk):
    zk.create("/deep/er/path", b"x", makepath=True)
    zk.ensure_path("/deep/other")
    assert sorted(zk.get_children("/deep")) == ["er", "other"]
    children, stat = zk.get_children("/deep", include_data=True)
    assert stat.numChildren == 2 and stat.cversion == 2
    zk.delete("/deep", recursive=True)
    assert zk.exists("/deep") is None
    assert "zookeeper" in zk.get_children("/")


def test_null_and_empty_data_are_distinct_on_the_wire(zk):
    zk.create("/empty", b"")
    assert zk.get("/empty")[0] == b""


def test_sequential_names_follow_parent_counter(zk):
    zk.create("/seq")
    first = zk.create("/seq/n-", sequence=True)
    second = zk.create("/seq/n-", sequence=True)
    assert first == "/seq/n-0000000000" and second == "/seq/n-0000000001"
    zk.delete(second)
    third = zk.create("/seq/n-", sequence=True)
    assert third == "/seq/n-0000000002"
    assert zk.exists("/seq").cversion == 4
    assert zk.create("/seq/", sequence=True) == "/seq/0000000003"


def test_ephemerals_go_with_closed_session(server, zk):
    other = connect(server)
    other.create("/eph", b"", ephemeral=True)
    other.create("/eph-seq-", ephemeral=True, sequence=True)
    stat = zk.exists("/eph")
    assert stat.ephemeralOwner == other.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create("/eph/child")
    other.stop()
    other.close()
    assert zk.exists("/eph") is None
    assert not [c for c in zk.get_children("/") if c.startswith("eph")]


def test_ephemerals_go_when_the_session_expires(server, zk):
    """A client that stops pinging (frozen with SIGSTOP) loses its session."""
    frozen = ClientProcess(server.hosts, "ephemeral", "/expiring", timeout=1.0)
    try:
        frozen.wait_ready()
        assert zk.exists("/expiring") is not None
        deleted = threading.Event()
        zk.exists("/expiring", watch=lambda event: deleted.set())
        started = time.monotonic()
        frozen.freeze()
        assert deleted.wait(15)
        assert time.monotonic() - started >= 0.5
        assert zk.exists("/expiring") is None
    finally:
        frozen.kill()


def test_data_child_and_exists_watches(zk, server):
    events = []
    lock = threading.Lock()

    def record(event):
        with lock:
            events.append((event.type, event.path))

    zk.exists("/w", watch=record)
    zk.create("/w", b"1")
    wait_for(lambda: events, message="created event")
    zk.get("/w", watch=record)
    zk.get_children("/w", watch=record)
    zk.set("/w", b"2")
    zk.create("/w/c")
    wait_for(lambda: len(events) == 3, message="three events")
    zk.get("/w", watch=record)
    zk.get_children("/w", watch=record)
    zk.delete("/w/c")
    zk.delete("/w")
    wait_for(lambda: len(events) >= 5, message="delete events")
    time.sleep(0.2)
    assert events == [
        (EventType.CREATED, "/w"),
        (EventType.CHANGED, "/w"),
        (EventType.CHILD, "/w"),
        (EventType.CHILD, "/w"),
        (EventType.DELETED, "/w"),
    ]


def test_watches_are_one_shot(zk):
    zk.create("/once", b"0")
    fired = []
    zk.get("/once", watch=lambda e: fired.append(e))
    zk.set("/once", b"1")
    zk.set("/once", b"2")
    wait_for(lambda: fired, message="event")
    time.sleep(0.3)
    assert len(fired) == 1


def test_watch_event_precedes_reply_that_sees_the_change(server, zk):
    """The watcher's client learns of a change before any read showing it.

    kazoo runs watch callbacks and result callbacks on two different threads,
    so it cannot show the order it received them in; nookeeper's client runs
    both on its one watcher thread in arrival order, so a reply's callback
    there runs after every event that arrived before the reply.
    """
    from nookeeper.client import KeeperClient

    writer = connect(server)
    reader = KeeperClient(server.hosts, timeout=10)
    reader.start(10)
    zk.create("/order", b"0")
    seen = []
    for i in range(1, 30):
        order = []
        reader.get("/order", watch=lambda e: order.append("event"))
        writer.set("/order", str(i).encode())
        while True:
            result = reader.get_async("/order")
            data, _ = result.get(10)
            if data == str(i).encode():
                replied = threading.Event()
                result.rawlink(lambda r: (order.append("reply"), replied.set()))
                assert replied.wait(10)
                seen.append(order[0] == "event")
                break
    reader.stop()
    reader.close()
    writer.stop()
    writer.close()
    assert all(seen)


def test_transactions_commit_or_roll_back(zk):
    zk.create("/t", b"")
    tx = zk.transaction()
    tx.create("/t/a", b"1")
    tx.create("/t/b", b"2")
    tx.set_data("/t", b"parent", version=0)
    tx.check("/t/a", 0)
    results = tx.commit()
    assert results[:2] == ["/t/a", "/t/b"]
    assert zk.get("/t")[0] == b"parent"

    tx = zk.transaction()
    tx.create("/t/c")
    tx.delete("/t/nonexistent")
    tx.set_data("/t", b"never")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NoNodeError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert zk.exists("/t/c") is None
    assert zk.get("/t")[0] == b"parent"


def test_digest_auth_and_acl_denial(server, zk):
    alice = connect(server, auth_data=[("digest", "alice:secret")])
    acl = make_digest_acl("alice", "secret", all=True)
    alice.create("/private", b"mine", acl=[acl])
    with pytest.raises(NoAuthError):
        zk.get("/private")
    with pytest.raises(NoAuthError):
        zk.set("/private", b"theirs")
    with pytest.raises(NoAuthError):
        zk.get_acls("/private")
    assert alice.get("/private")[0] == b"mine"
    alice.create("/shared", b"", acl=[acl, ACL(Permissions.READ, Id("world", "anyone"))])
    acls, _ = zk.get_acls("/shared")
    assert acls[0].id.id == "alice:x"  # digests are masked for callers without ADMIN
    acls, _ = alice.get_acls("/shared")
    assert acls[0].id.id == acl.id.id
    zk.add_auth("digest", "alice:secret")
    assert zk.get("/private")[0] == b"mine"
    alice.stop()
    alice.close()


def test_read_only_world_acl_and_set_acls(zk):
    zk.create("/ro", b"x", acl=[ACL(Permissions.READ, Id("world", "anyone"))])
    assert zk.get("/ro")[0] == b"x"
    with pytest.raises(NoAuthError):
        zk.set("/ro", b"y")
    with pytest.raises(NoAuthError):
        zk.create("/ro/child")
    zk.create("/open", b"")
    stat = zk.set_acls("/open", [ACL(Permissions.READ | Permissions.ADMIN, Id("world", "anyone"))])
    assert stat.aversion == 1
    acls, _ = zk.get_acls("/open")
    assert acls[0].perms == Permissions.READ | Permissions.ADMIN
    zk.set_acls("/open", OPEN_ACL_UNSAFE)
    zk.set("/open", b"ok")


def test_ip_acl(zk):
    zk.create("/iponly", b"x", acl=[ACL(Permissions.ALL, Id("ip", "127.0.0.1"))])
    assert zk.get("/iponly")[0] == b"x"
    zk.create("/othernet", b"x", acl=[ACL(Permissions.ALL, Id("ip", "10.0.0.0/8"))])
    with pytest.raises(NoAuthError):
        zk.get("/othernet")


def test_bad_paths_get_bad_arguments(zk):
    """kazoo normalises slashes and dots itself; these reach the server as written."""
    zk.create("/ok")
    with pytest.raises(BadArgumentsError):
        zk.create("/ok/bell\x07")
    with pytest.raises(BadArgumentsError):
        zk.set("/ok/\ufff5", b"")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")


def test_sync_and_server_version(zk):
    assert zk.sync("/") == "/"
    assert zk.server_version()[:2] == (3, 8)
    assert zk.command(b"ruok") == "imok"


def test_pipelined_requests_keep_order(zk):
    zk.create("/pipe")
    futures = [zk.create_async(f"/pipe/n-{i:04d}", b"x") for i in range(200)]
    reads = [zk.get_children_async("/pipe") for _ in range(20)]
    assert [f.get(timeout=20) for f in futures] == [f"/pipe/n-{i:04d}" for i in range(200)]
    for read in reads:
        read.get(timeout=20)
    assert len(zk.get_children("/pipe")) == 200
