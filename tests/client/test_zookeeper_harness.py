"""The Apache ZooKeeper harness: kazoo (the PyPI client) against real ZooKeeper 3.8."""

import os
import time
from collections import namedtuple

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import UnimplementedError
from kazoo.protocol.serialization import Create2
from kazoo.security import OPEN_ACL_UNSAFE

from harness import wait_for
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper, srvr_mode

needs_zookeeper = pytest.mark.skipif(missing_zookeeper() is not None,
                                     reason=f"Apache ZooKeeper unavailable: {missing_zookeeper()}")


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def connect(hosts, **kwargs):
    client = KazooClient(hosts=hosts, timeout=10, **kwargs)
    client.start(timeout=15)
    return client


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """OpCode 21 (createTTL), which kazoo has no call for; the reply is create2's."""
    type = 21

    def serialize(self):
        body = Create2(self.path, self.data, self.acl, self.flags).serialize()
        return body + self.ttl.to_bytes(8, "big", signed=True)

    deserialize = Create2.deserialize


def create_ttl(client, path, ttl_ms):
    result = client.handler.async_result()
    client._call(CreateTTL(path, b"", OPEN_ACL_UNSAFE, 5, ttl_ms), result)  # 5: PERSISTENT_WITH_TTL
    return result.get(timeout=10)


_fixture_pids = []


def test_kazoo_creates_and_reads_on_standalone_zookeeper(zookeeper):
    _fixture_pids.append(zookeeper.pid)
    assert zookeeper.mode() == "standalone"
    client = connect(zookeeper.hosts)
    try:
        assert client.server_version()[:2] == (3, 8)
        assert client.create("/harness", b"hello") == "/harness"
        client.create("/harness/child", b"world", ephemeral=True)
        data, stat = client.get("/harness")
        assert data == b"hello" and stat.version == 0 and stat.numChildren == 1
        assert client.get_children("/harness") == ["child"]
        client.set("/harness", b"again")
        assert client.get("/harness")[0] == b"again"
    finally:
        client.stop()
        client.close()
    conf = zookeeper.command("conf")
    assert "minSessionTimeout=400" in conf and "maxSessionTimeout=30000" in conf
    assert "tickTime=200" in conf


def test_the_fixture_killed_its_zookeeper():
    if not _fixture_pids:
        pytest.skip("the standalone test did not run first")
    assert all(pid_gone(pid) for pid in _fixture_pids)


@needs_zookeeper
def test_data_survives_kill_and_restart_and_processes_die_on_failure(tmp_path):
    zk = ZooKeeperProcess(tmp_path / "zk", tick_ms=200)
    with pytest.raises(ZeroDivisionError):
        try:
            zk.start()
            client = connect(zk.hosts)
            client.create("/durable", b"x")
            client.stop()
            client.close()
            port = zk.port
            zk.restart()
            assert zk.port == port and zk.mode() == "standalone"
            client = connect(zk.hosts)
            assert client.get("/durable")[0] == b"x"
            client.stop()
            client.close()
            1 / 0                          # a failing test: cleanup must still happen
        finally:
            pid = zk.pid
            zk.kill()
    assert not zk.alive() and pid_gone(pid)
    assert "--- zookeeper.log" in zk.log_tail()


def test_extended_types_enable_ttl_nodes(zookeeper_factory):
    plain = zookeeper_factory("plain")
    ttl = zookeeper_factory("ttl", extended_types=True)
    for zk, enabled in ((plain, False), (ttl, True)):
        client = connect(zk.hosts)
        try:
            if enabled:
                path, stat = create_ttl(client, "/ttl", 60000)
                assert path == "/ttl" and client.exists("/ttl")
            else:
                with pytest.raises(UnimplementedError):
                    create_ttl(client, "/ttl", 60000)
        finally:
            client.stop()
            client.close()


_ensemble_pids = []


def test_ensemble_elects_a_leader_and_kazoo_writes_through_it(zookeeper_ensemble):
    servers = zookeeper_ensemble.servers
    _ensemble_pids.extend(s.pid for s in servers.values())
    leader = zookeeper_ensemble.leader()
    modes = sorted(s.mode() for s in servers.values())
    assert modes == ["follower", "follower", "leader"]

    writer = connect(leader.hosts)                      # writes go straight to the leader
    try:
        writer.create("/through-leader", b"v1")
        writer.set("/through-leader", b"v2")
    finally:
        writer.stop()
        writer.close()
    for follower in zookeeper_ensemble.followers():     # and are replicated to every member
        reader = connect(follower.hosts)
        try:
            reader.sync("/through-leader")
            assert reader.get("/through-leader")[0] == b"v2"
        finally:
            reader.stop()
            reader.close()

    # A new leader is elected when the old one dies; the data survive.
    leader.kill()
    new_leader = zookeeper_ensemble.leader()
    assert new_leader is not leader
    client = connect(zookeeper_ensemble.hosts)
    try:
        assert client.retry(client.get, "/through-leader")[0] == b"v2"
    finally:
        client.stop()
        client.close()


def test_the_ensemble_fixture_killed_its_processes():
    if not _ensemble_pids:
        pytest.skip("the ensemble test did not run first")
    assert all(pid_gone(pid) for pid in _ensemble_pids)


def test_backend_fixture_starts_only_the_named_server(backend, request):
    assert backend.name in ("nookeeper", "zookeeper")
    other = "zookeeper" if backend.name == "nookeeper" else "server"
    assert other not in request.fixturenames
    client = connect(backend.hosts)
    try:
        client.create("/backend", backend.name.encode())
        assert client.get("/backend")[0] == backend.name.encode()
    finally:
        client.stop()
        client.close()
    if backend.name == "zookeeper":
        assert srvr_mode(backend.server.port) == "standalone"


def test_standalone_start_up_is_fast(zookeeper_factory):
    start = time.monotonic()
    zk = zookeeper_factory("timed")
    elapsed = time.monotonic() - start
    print(f"standalone ZooKeeper served after {elapsed:.2f}s")
    assert zk.ready_after is not None and elapsed < 20
    wait_for(lambda: zk.mode() == "standalone", timeout=5)
