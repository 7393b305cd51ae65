"""Quotas, told to nookeeper and to Apache ZooKeeper 3.8 alike: the usage
counted after a mix of writes and after a restart, the hard limits refused
with enforcement on, the same usage on every member, zkCli.sh's listquota."""

import os
import re
import shutil
import subprocess

import pytest
from kazoo.client import KazooClient

from harness import wait_for
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper

ZKCLI = os.environ.get("NK_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
STATS = "/zookeeper/quota/q/zookeeper_stats"


def set_quota(zk, path, limits):
    """zkCli.sh's setquota, step by step: the quota path's nodes, the limits, the stats."""
    quota_path = "/zookeeper/quota"
    for name in path.strip("/").split("/"):
        quota_path += "/" + name
        if zk.exists(quota_path) is None:
            zk.create(quota_path)
    zk.create(quota_path + "/zookeeper_limits", limits)
    zk.create(quota_path + "/zookeeper_stats", b"count=0,bytes=0")


def outcome(call):
    """What a write came to, as a fact that reads the same for both servers."""
    try:
        call()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the class name is the fact
        return type(exc).__name__


def connect(hosts):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=15)
    return zk


def usage_story(hosts):
    facts = []
    zk = connect(hosts)
    other = connect(hosts)
    try:
        zk.create("/q", b"root")
        zk.create("/q/a", b"12345")
        set_quota(zk, "/q", b"count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1")
        facts.append(("after setquota", zk.get(STATS)[0]))
        zk.create("/q/b", b"xy")
        zk.create("/q/a/deep")
        zk.create("/q/c")
        zk.set("/q/a", b"1")
        zk.delete("/q/c")
        other.create("/q/eph", b"eph!", ephemeral=True)
        facts.append(("after writes and an ephemeral", zk.get(STATS)[0]))
        other.stop()
        facts.append(("its session closed", wait_for(
            lambda: zk.get(STATS)[0] if zk.exists("/q/eph") is None else None, 10)))
        tx = zk.transaction()
        tx.create("/q/m1", b"abc")
        tx.create("/q/m2")
        tx.commit()
        tx = zk.transaction()
        tx.create("/q/m3", b"zz")
        tx.create("/missing/x")
        tx.commit()
        facts.append(("after a multi and a failed multi", zk.get(STATS)[0]))
        stat = zk.exists(STATS)
        facts.append(("the stats node's version", stat.version))
    finally:
        zk.stop()
        other.stop()
    return facts


def read_stats(hosts):
    zk = connect(hosts)
    try:
        zk.sync(STATS)
        return zk.get(STATS)[0]
    finally:
        zk.stop()


def enforcement_story(hosts):
    facts = []
    zk = connect(hosts)
    try:
        zk.create("/q")
        set_quota(zk, "/q", b"count=-1,bytes=-1=;byteHardLimit=8;countHardLimit=3")
        facts.append(("create within", outcome(lambda: zk.create("/q/a", b"1234"))))
        facts.append(("create to the limit", outcome(lambda: zk.create("/q/b"))))
        facts.append(("create over", outcome(lambda: zk.create("/q/c"))))
        facts.append(("setData over the bytes", outcome(lambda: zk.set("/q/a", b"123456789"))))
        facts.append(("setData within", outcome(lambda: zk.set("/q/a", b"12"))))
        tx = zk.transaction()
        tx.set_data("/q/a", b"1")
        tx.create("/q/d")
        facts.append(("a multi over", [type(r).__name__ for r in tx.commit()]))
        facts.append(("a create elsewhere", outcome(lambda: zk.create("/free", b"x" * 50))))
        facts.append(("usage", zk.get(STATS)[0]))
    finally:
        zk.stop()
    return facts


@pytest.fixture
def zookeeper(tmp_path):
    if missing_zookeeper():
        pytest.skip(f"Apache ZooKeeper unavailable: {missing_zookeeper()}")
    started = []

    def make(*jvm_flags):
        zk = ZooKeeperProcess(tmp_path / f"zk{len(started)}", tick_ms=200, jvm_flags=jvm_flags)
        started.append(zk)
        return zk.start()

    yield make
    for zk in started:
        zk.kill()


def test_usage_is_counted_as_zookeeper_counts_it_and_survives_a_restart(server_factory,
                                                                       zookeeper):
    server = server_factory(snapshot_every_txns=5)
    ours = usage_story(server.hosts)
    assert ours[0] == ("after setquota", b"count=2,bytes=9")
    server.restart()
    ours.append(("after a restart", read_stats(server.hosts)))
    assert ours[-1][1] == dict(ours)["after a multi and a failed multi"]
    assert "Quota exceeded: /q [current count=4, softCountLimit=3]" in server.log_tail(400)
    zk = zookeeper()
    theirs = usage_story(zk.hosts)
    zk.restart()
    theirs.append(("after a restart", read_stats(zk.hosts)))
    assert ours == theirs


def test_hard_limits_are_refused_as_zookeeper_refuses_them(server_factory, zookeeper):
    server = server_factory(enforce_quota=True)
    ours = enforcement_story(server.hosts)
    assert ("create over", "QuotaExceededError") in ours
    zk = zookeeper("-Dzookeeper.enforceQuota=true")
    assert ours == enforcement_story(zk.hosts)


def test_without_enforcement_a_hard_limit_only_warns(server_factory):
    server = server_factory()
    zk = connect(server.hosts)
    try:
        zk.create("/q")
        set_quota(zk, "/q", b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1")
        zk.create("/q/a")
        assert zk.get(STATS)[0] == b"count=2,bytes=0"
    finally:
        zk.stop()
    assert "Quota exceeded: /q [current count=2, hardCountLimit=1]" in server.log_tail(200)


def test_every_member_counts_the_same_also_one_restored_from_a_snapshot(ensemble_factory):
    ensemble = ensemble_factory(3, snapshot_every_txns=4)
    zk = connect(ensemble.hosts)
    try:
        zk.create("/q", b"r")
        set_quota(zk, "/q", b"count=100,bytes=-1")
        for i in range(6):
            zk.create(f"/q/n{i}", b"x" * i)
        follower = ensemble.followers()[0]
        follower.kill()
        for i in range(6, 9):
            zk.create(f"/q/n{i}", b"y")
        zk.delete("/q/n0")
        follower.start()
        zk.create("/q/last", b"zz")
        expected = b"count=10,bytes=21"
        assert zk.get(STATS)[0] == expected
    finally:
        zk.stop()
    for server in ensemble.servers.values():
        assert read_stats(server.hosts) == expected, server.hosts


def zkcli(hosts, *commands):
    script = "\n".join(commands + ("quit",)) + "\n"
    result = subprocess.run([ZKCLI, "-server", hosts], input=script, capture_output=True,
                            text=True, timeout=60)
    return result.stdout + result.stderr


def quota_lines(output):
    return [line for line in output.splitlines()
            if re.search(r"absolute path|Output (quota|stat)|Quota|quota", line)
            and "WatchedEvent" not in line]


@pytest.mark.skipif(not (os.path.exists(ZKCLI) and shutil.which("java")),
                    reason="zkCli.sh or java missing (make test installs Debian's zookeeper)")
def test_zkcli_listquota_reads_the_same_on_both(server_factory, zookeeper):
    commands = ("create /q", "setquota -n 2 /q", "create /q/a", "create /q/b", "create /q/c",
                "setquota -B 100 /q", "listquota /q")
    server = server_factory()
    ours = quota_lines(zkcli(server.hosts, *commands))
    assert "Output stat for /q count=4,bytes=0" in ours
    zk = zookeeper()
    assert ours == quota_lines(zkcli(zk.hosts, *commands))
