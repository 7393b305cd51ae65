"""A flood of requests from a client that does not read its replies waits in
its socket: the server's memory stays bounded, a quiet client is still
served, and when the flooder reads, every reply is there, in order."""

import threading
import time

import pytest
from kazoo.client import KazooClient

from harness import free_port, wait_for
from rawclient import RawClient
from test_metrics import scrape, value
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper
from nookeeper.wire.ops import OpCode

BIG = 512 * 1024
FLOOD = 120


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def flood_story(hosts, port, while_flooding):
    """A flooder pipelines big reads and reads no reply; meanwhile a quiet
    client works; then the flooder reads: the facts either server must show."""
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=10)
    flooder = RawClient(port)
    try:
        zk.create("/big", b"b" * BIG)
        zk.create("/small", b"s")
        sent = threading.Thread(target=lambda: [
            flooder.send(OpCode.GET_DATA, {"path": "/big", "watch": False})
            for _ in range(FLOOD)], daemon=True)
        sent.start()
        while_flooding()
        started = time.monotonic()
        assert zk.get("/small")[0] == b"s"
        zk.create("/quiet", b"q")
        assert time.monotonic() - started < 2, "a quiet client waited on the flooder"
        flooder.sock.settimeout(30)
        for xid in range(1, FLOOD + 1):
            header, body = flooder.reply(OpCode.GET_DATA)
            assert (header.xid, header.err, len(body.data)) == (xid, 0, BIG)
        sent.join(10)
        assert flooder.call(OpCode.EXISTS, {"path": "/quiet", "watch": False})[0].err == 0
    finally:
        flooder.close()
        zk.stop()
        zk.close()


def test_a_flood_waits_in_the_socket_and_nothing_is_lost(server_factory):
    metrics_port = free_port()
    server = server_factory(max_outstanding_per_connection=8, global_outstanding_limit=16,
                            metrics_address=f"127.0.0.1:{metrics_port}", log_level="INFO")
    before = []

    def while_flooding():
        # The flooder reads nothing: its replies fill the sockets, then the server stops reading.
        wait_for(lambda: value(scrape(metrics_port), "nookeeper_throttle_stalls") > 0, 10)
        time.sleep(0.5)
        grown_mib = (rss_kib(server.proc.pid) - before[0]) / 1024
        # Unthrottled, the 120 half-MiB replies would sit in the server: about 60 MiB.
        assert grown_mib < 30, f"the server grew by {grown_mib:.0f} MiB"

    before.append(rss_kib(server.proc.pid))
    flood_story(server.hosts, server.port, while_flooding)


def test_zookeeper_tells_the_same_flood_story(tmp_path):
    if missing_zookeeper():
        pytest.skip(f"Apache ZooKeeper unavailable: {missing_zookeeper()}")
    zk = ZooKeeperProcess(tmp_path / "zk", tick_ms=200)
    try:
        zk.start()
        flood_story(zk.hosts, zk.port, lambda: time.sleep(1.0))
    finally:
        zk.kill()
