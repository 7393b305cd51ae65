"""`nk status` and `nk health`: an ensemble at a glance, from four-letter words.

Against a real 3-node ensemble (tests/harness.py), healthy and then with
members stopped; a standalone server that allows only srvr; Apache ZooKeeper
when it is installed; and the table and verdict logic on made-up answers.
"""

import json
import re

import pytest

from harness import Ensemble, free_port, wait_for
from nkprocess import run_nk
from nookeeper.client import KeeperClient
from nookeeper.shell.status import (
    LOCAL_ENSEMBLE, EnsembleStatus, MemberStatus, human_bytes, human_duration, short_version,
    table_lines,
)
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper

MEMBER_KEYS = {
    "address", "id", "answered", "error", "role", "serving", "read_only", "epoch", "last_zxid",
    "zxid_lag", "connections", "global_sessions", "local_sessions", "znodes",
    "outstanding_requests", "p99_read_latency_ms", "p99_write_latency_ms", "log_size_bytes",
    "version", "uptime_ms", "mntr_allowed", "notes",
}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    """Three members allowing every word; the tests below stop members, so it is
    started once for this module and its last test leaves it broken."""
    servers = Ensemble(tmp_path_factory.mktemp("status"))
    try:
        servers.start()
        servers.leader()
        yield servers
    finally:
        servers.kill_all()


def row(text, address):
    """The cells of the table row of `address`, stripped."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) > 1 and cells[1] == address:
            return cells
    raise AssertionError(f"no row for {address} in:\n{text}")


def header(text):
    return [cell.strip() for cell in text.splitlines()[1].strip("|").split("|")]


def nk_status(hosts, *args):
    return run_nk("-s", hosts, *args)


def test_a_healthy_ensemble(ensemble):
    leader = ensemble.leader()
    with KeeperClient(ensemble.hosts, timeout=10) as client:
        for i in range(5):
            client.create(f"/status-{i}", b"x")
        client.get("/status-0")
    # Every member has applied the writes (their last zxids agree) before asking.
    wait_for(lambda: len({s.command("srvr").split("Zxid: ")[1].split()[0]
                          for s in ensemble.servers.values()}) == 1, timeout=10)

    result = nk_status(ensemble.hosts, "status")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    text = result.stdout
    assert header(text) == ["ID", "ADDRESS", "ROLE", "EPOCH", "LAST ZXID", "LAG", "CONNS",
                            "ZNODES", "OUTSTANDING", "P99 R/W MS", "LOG SIZE", "VERSION",
                            "UPTIME"]
    zxids = set()
    for sid, server in ensemble.servers.items():
        cells = row(text, server.hosts)
        assert cells[0] == str(sid)
        assert cells[2] == ("leader" if server is leader else "follower")
        assert cells[5] == "0"  # no lag
        assert int(cells[7]) >= 6  # the root, /zookeeper..., and /status-*
        assert re.fullmatch(r"\d+\.\d+/\d+\.\d+", cells[9]), cells[9]
        assert re.fullmatch(r"\d+(\.\d)? [kM]?B", cells[10]), cells[10]
        assert cells[11].startswith("nookeeper ")
        zxids.add(cells[4])
    assert len(zxids) == 1 and zxids != {"0x0"}
    leader_id = next(sid for sid, s in ensemble.servers.items() if s is leader)
    assert text.rstrip().splitlines()[-1] == f"healthy: 3/3 members, leader {leader_id}"

    health = nk_status(ensemble.hosts, "health")
    assert (health.returncode, health.stdout) == (0, f"healthy: 3/3 members, leader {leader_id}\n")

    document = json.loads(nk_status(ensemble.hosts, "--json", "status").stdout)
    assert document["healthy"] is True and document["problems"] == []
    assert document["leader"] == {"id": leader_id, "address": leader.hosts}
    assert [m["address"] for m in document["members"]] == [
        s.hosts for s in ensemble.servers.values()]
    for member in document["members"]:
        assert set(member) == MEMBER_KEYS
        assert member["answered"] and member["serving"] and member["mntr_allowed"]
        assert member["zxid_lag"] == 0
        assert member["global_sessions"] == 0  # the writer's session has ended
        assert member["p99_write_latency_ms"] >= 0 and member["uptime_ms"] > 0
        assert member["log_size_bytes"] > 0 and member["error"] is None
    # Timed where the client was connected: one member took the writes.
    assert max(m["p99_write_latency_ms"] for m in document["members"]) > 0
    assert json.loads(nk_status(ensemble.hosts, "--json", "health").stdout)["healthy"] is True


def test_members_stopped(ensemble):
    leader = ensemble.leader()
    stopped = next(s for s in ensemble.servers.values() if s is not leader)
    stopped.kill()
    leader_id = next(sid for sid, s in ensemble.servers.items() if s is leader)

    result = nk_status(ensemble.hosts, "status")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr == ""
    cells = row(result.stdout, stopped.hosts)
    assert cells[2] == "no answer" and cells[-1] == "connection refused"
    assert set(cells[3:-1]) == {"-"}
    assert row(result.stdout, leader.hosts)[2] == "leader"
    expected = (f"unhealthy: member {stopped.hosts} does not answer (connection refused); "
                f"2/3 members serve, leader {leader_id}")
    assert result.stdout.rstrip().splitlines()[-1] == expected

    health = nk_status(ensemble.hosts, "health")
    assert (health.returncode, health.stdout, health.stderr) == (1, expected + "\n", "")

    document = json.loads(nk_status(ensemble.hosts, "--json", "status").stdout)
    assert document["healthy"] is False
    assert document["problems"] == [
        f"member {stopped.hosts} does not answer (connection refused)"]
    down = next(m for m in document["members"] if m["address"] == stopped.hosts)
    assert down["answered"] is False and down["role"] is None
    assert down["error"] == "connection refused" and down["last_zxid"] is None

    # The leader gone too: the last member is alone, and serves no one.
    leader.kill()
    alone = next(s for s in ensemble.servers.values() if s.alive())
    wait_for(lambda: "not currently serving" in alone.command("srvr"), timeout=10)
    result = nk_status(ensemble.hosts, "status")
    assert result.returncode == 1
    assert row(result.stdout, alone.hosts)[2] == "not serving"
    health = nk_status(ensemble.hosts, "health")
    assert health.returncode == 1
    assert health.stdout.startswith("unhealthy: ")
    assert f"member {alone.hosts} is not serving" in health.stdout
    assert health.stdout.rstrip().endswith("no leader; 0/3 members serve")
    document = json.loads(nk_status(ensemble.hosts, "--json", "status").stdout)
    assert document["leader"] is None and "no leader" in document["problems"]
    # conf answers in any state: the id of a member that does not serve is known.
    assert next(m for m in document["members"] if m["address"] == alone.hosts)["id"] is not None


def test_only_srvr_allowed(server_factory):
    """A server without four_letter_words answers srvr alone: the rest is marked unknown."""
    server = server_factory(four_letter_words=None)
    result = nk_status(server.hosts, "status")
    assert result.returncode == 0, (result.stdout, result.stderr)
    cells = row(result.stdout, server.hosts)
    columns = dict(zip(header(result.stdout), cells))
    assert columns["ROLE"] == "standalone"
    assert columns["LAST ZXID"] == "0x0" and columns["ZNODES"].isdigit()
    assert columns["EPOCH"] == "1"  # srvr's Epoch line
    for unknown in ("ID", "P99 R/W MS", "LOG SIZE", "UPTIME"):
        assert columns[unknown] == "?", unknown
    assert columns["NOTES"] == "mntr not allowed"
    assert f"mntr is not allowed on {server.hosts}" in result.stdout
    member = json.loads(nk_status(server.hosts, "--json", "status").stdout)["members"][0]
    assert member["mntr_allowed"] is False
    assert member["id"] is None and member["uptime_ms"] is None
    assert member["role"] == "standalone" and member["version"].startswith("3.8.0-nookeeper-")
    health = nk_status(server.hosts, "health")
    assert (health.returncode, health.stdout) == (
        0, f"healthy: 1/1 members, leader {server.hosts} (standalone)\n")


def test_without_s_asks_the_local_ensemble():
    document = json.loads(run_nk("--json", "--timeout", "2", "status").stdout)
    assert [m["address"] for m in document["members"]] == LOCAL_ENSEMBLE.split(",")


def test_a_member_that_is_no_server(tmp_path):
    """Nothing listens: the member does not answer, and nk says so without a traceback."""
    port = free_port()
    result = run_nk("-s", f"127.0.0.1:{port}/chroot", "health")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == (f"unhealthy: member 127.0.0.1:{port} does not answer "
                             "(connection refused); no leader; 0/1 members serve\n")


@pytest.mark.skipif(missing_zookeeper() is not None, reason="Apache ZooKeeper unavailable")
def test_against_apache_zookeeper(tmp_path):
    server = ZooKeeperProcess(tmp_path / "zookeeper").start()
    try:
        document = json.loads(nk_status(server.hosts, "--json", "status").stdout)
    finally:
        server.kill()
    member = document["members"][0]
    assert document["healthy"] is True
    assert member["role"] == "standalone" and member["id"] is not None  # from conf
    assert member["log_size_bytes"] is not None  # conf's dataLogSize
    assert member["p99_read_latency_ms"] is not None  # ZooKeeper's own mntr key
    assert "epoch of the last zxid" in member["notes"]


# -- the verdicts and the table, on made-up answers ------------------------------------


def member(port, role, sid, zxid=0x100000005, **fields):
    return MemberStatus("127.0.0.1", port, answered=True, role=role, server_id=sid,
                        last_zxid=zxid, epoch=zxid >> 32, **fields)


def test_verdicts():
    two_leaders = EnsembleStatus([member(1, "leader", 1), member(2, "leader", 2)])
    assert two_leaders.problems() == ["2 members say they lead: 1, 2"]
    read_only = EnsembleStatus([member(1, "read-only", 1), member(2, "leader", 2),
                                member(3, "follower", 3)])
    assert read_only.health_line() == (
        "unhealthy: member 127.0.0.1:1 is read-only; 2/3 members serve, leader 2")
    lone = EnsembleStatus([member(1, "standalone", 7)])
    assert lone.health_line() == "healthy: 1/1 members, leader 7 (standalone)"
    pair = EnsembleStatus([member(1, "standalone", 1), member(2, "standalone", 2)])
    assert pair.health_line() == "healthy: 2/2 members, every member standalone"
    observer = EnsembleStatus([member(1, "leader", 1), member(2, "observer", 2)])
    assert observer.healthy


def test_table_fits_a_terminal_by_dropping_columns():
    status = EnsembleStatus([member(2181, "leader", 1, uptime_ms=3_723_000, log_bytes=2_500_000,
                                    version="3.8.0-nookeeper-0.1.0, built on x")])
    wide = table_lines(status)
    assert len({len(line) for line in wide}) == 1
    assert "1h02m" in wide[3] and "2.5 MB" in wide[3] and "nookeeper 0.1.0" in wide[3]
    narrow = table_lines(status, width=60)
    assert all(len(line) <= 60 for line in narrow)
    kept = [cell.strip() for cell in narrow[1].strip("|").split("|")]
    assert kept[:3] == ["ID", "ADDRESS", "ROLE"] and "LAG" in kept and "UPTIME" not in kept


def test_formats():
    assert human_bytes(999) == "999 B" and human_bytes(94576) == "94.6 kB"
    assert human_duration(59_999) == "59s" and human_duration(90_061_000) == "1d01h"
    assert short_version("3.8.0-nookeeper-0.1.0, built on 2026-12-05 08:52 UTC") == \
        "nookeeper 0.1.0"
    assert short_version("3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on ...") == \
        "3.8.4"
