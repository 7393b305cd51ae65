"""The Prometheus endpoint, mntr's keys and the log format, on real servers."""

import re
import socket
import struct
import urllib.error
import urllib.request

import pytest
import yaml
from harness import Ensemble, free_port, wait_for
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from nookeeper import __version__
from nookeeper.wire.client import decode_connect_response, encode_connect_request

ROLES = ("leader", "follower", "standalone", "looking")

# What ZooKeeper 3.8's mntr prints on every server and that monitors read.
ZK_MNTR_KEYS = (
    "zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
    "zk_outstanding_requests", "zk_uptime", "zk_znode_count", "zk_watch_count",
    "zk_ephemerals_count", "zk_approximate_data_size", "zk_global_sessions",
    "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
    "zk_last_client_response_size", "zk_max_client_response_size",
    "zk_min_client_response_size", "zk_avg_fsynctime", "zk_min_fsynctime",
    "zk_max_fsynctime", "zk_cnt_fsynctime", "zk_sum_fsynctime",
)
LEADER_KEYS = ("zk_learners", "zk_followers", "zk_synced_followers", "zk_pending_syncs")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(samples, op):
    return value(samples, "nookeeper_request_latency_seconds_count", op=op)


def mntr(server):
    return dict(line.split("\t", 1) for line in server.command("mntr").splitlines())


def assert_role(samples, role):
    assert {r: value(samples, "nookeeper_role", role=r) for r in ROLES} == {
        r: float(r == role) for r in ROLES}


def test_standalone_metrics(server_factory):
    metrics_port = free_port()
    server = server_factory("metered", metrics_address=f"127.0.0.1:{metrics_port}")
    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=10)
    try:
        before = scrape(metrics_port)
        for i in range(5):
            zk.create(f"/m{i}", b"x")
        for _ in range(3):
            zk.get("/m0")
        zk.set("/m1", b"y")
        zk.set("/m2", b"y")
        zk.get_children("/")
        zk.delete("/m4")
        zk.exists("/m0", watch=lambda event: None)
        after = scrape(metrics_port)
        words = mntr(server)
    finally:
        zk.stop()
        zk.close()

    for op, count in (("create", 5), ("getData", 3), ("setData", 2), ("getChildren", 1),
                      ("delete", 1), ("exists", 1)):
        assert requests(after, op) - requests(before, op) == count, op
    assert value(after, "nookeeper_request_latency_seconds_bucket", op="create", le="+Inf") == \
        requests(after, "create")

    writes = 5 + 2 + 1
    assert value(after, "nookeeper_last_zxid") - value(before, "nookeeper_last_zxid") == writes
    assert value(after, "nookeeper_wal_batch_txns_sum") - \
        value(before, "nookeeper_wal_batch_txns_sum") == writes
    fsyncs = value(after, "nookeeper_wal_fsync_seconds_count")
    assert 1 <= fsyncs - value(before, "nookeeper_wal_fsync_seconds_count") <= writes
    assert value(after, "nookeeper_wal_fsync_seconds_sum") > 0
    assert value(after, "nookeeper_wal_fsync_seconds_bucket", le="+Inf") == fsyncs
    # A lone server proposes to itself: every write is a proposal committed by its own fsync.
    proposals = value(after, "nookeeper_proposal_commit_seconds_count")
    assert proposals - value(before, "nookeeper_proposal_commit_seconds_count") == writes

    assert value(after, "nookeeper_znodes") == value(before, "nookeeper_znodes") + 4
    assert value(after, "nookeeper_znodes") == int(words["zk_znode_count"])
    assert value(after, "nookeeper_watches") == 1
    assert value(after, "nookeeper_sessions") == 1
    assert value(after, "nookeeper_connections") == 1
    assert value(after, "nookeeper_outstanding_requests") == 0
    assert_role(after, "standalone")
    assert value(after, "nookeeper_serving") == 1
    assert value(after, "nookeeper_epoch") == 1
    assert int(value(after, "nookeeper_last_zxid")) >> 32 == 1
    assert value(after, "nookeeper_server_info", server_id="1", version=__version__,
                 zookeeper_version="3.8.0") == 1
    assert value(after, "process_open_fds") > 0

    assert all(key in words for key in ZK_MNTR_KEYS), set(ZK_MNTR_KEYS) - set(words)
    assert not any(key in words for key in LEADER_KEYS)
    assert words["zk_server_state"] == "standalone"
    assert words["zk_num_alive_connections"] == "1"
    assert words["zk_watch_count"] == "1"
    assert int(words["zk_cnt_fsynctime"]) == fsyncs
    assert int(words["zk_cnt_proposal_commit_latency"]) == proposals
    assert int(words["zk_packets_received"]) >= 13
    assert float(words["zk_max_fsynctime"]) >= float(words["zk_min_fsynctime"]) > 0

    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/other", timeout=5)
    assert missing.value.code == 404


@pytest.fixture
def metered_ensemble(tmp_path):
    """Three servers, each with its own metrics port; all killed at teardown."""
    ensemble = Ensemble(tmp_path / "ensemble", 3)
    for server in ensemble.servers.values():
        server.metrics_port = free_port()
        config = yaml.safe_load(server.config_path.read_text())
        config["metrics_address"] = f"127.0.0.1:{server.metrics_port}"
        server.config_path.write_text(yaml.safe_dump(config))
    try:
        yield ensemble.start()
    finally:
        ensemble.kill_all()


def test_ensemble_metrics(metered_ensemble):
    leader = metered_ensemble.leader()
    followers = metered_ensemble.followers()
    assert len(followers) == 2
    follower = followers[0]
    leader_before = scrape(leader.metrics_port)
    follower_before = scrape(follower.metrics_port)
    assert_role(leader_before, "leader")
    assert_role(follower_before, "follower")
    epochs = {value(scrape(s.metrics_port), "nookeeper_epoch")
              for s in metered_ensemble.servers.values()}
    assert len(epochs) == 1 and epochs.pop() >= 1
    assert value(leader_before, "nookeeper_learners") == 2
    assert value(leader_before, "nookeeper_synced_followers") == 2

    zk = KazooClient(hosts=follower.hosts, timeout=10)
    zk.start(timeout=10)
    try:
        for i in range(5):
            zk.create(f"/e{i}", b"x")
        # The session and five creates, all forwarded by the follower and proposed by the leader.
        txns = 6
        wait_for(lambda: value(scrape(leader.metrics_port), "nookeeper_proposal_commit_seconds_count")
                 - value(leader_before, "nookeeper_proposal_commit_seconds_count") == txns,
                 message="the leader's proposal-to-commit observations")
        leader_after = scrape(leader.metrics_port)
        assert value(leader_after, "nookeeper_proposal_commit_seconds_sum") > \
            value(leader_before, "nookeeper_proposal_commit_seconds_sum")
        follower_after = scrape(follower.metrics_port)
        assert requests(follower_after, "create") - requests(follower_before, "create") == 5
        assert requests(leader_after, "create") == requests(leader_before, "create")
        assert value(follower_after, "nookeeper_proposal_commit_seconds_count") == 0
        assert value(follower_after, "nookeeper_wal_batch_txns_sum") - \
            value(follower_before, "nookeeper_wal_batch_txns_sum") == txns
        assert value(follower_after, "nookeeper_last_zxid") == value(leader_after, "nookeeper_last_zxid")
        assert value(follower_after, "nookeeper_sessions") == 1
        assert value(follower_after, "nookeeper_connections") == 1
        assert value(leader_after, "nookeeper_connections") == 0

        leader_words = mntr(leader)
        follower_words = mntr(follower)
    finally:
        zk.stop()
        zk.close()
    assert leader_words["zk_server_state"] == "leader"
    assert {key: leader_words[key] for key in LEADER_KEYS} == {
        "zk_learners": "2", "zk_followers": "2", "zk_synced_followers": "2", "zk_pending_syncs": "0"}
    assert leader_words["zk_quorum_size"] == "3"
    assert int(leader_words["zk_cnt_proposal_commit_latency"]) >= txns
    assert follower_words["zk_server_state"] == "follower"
    assert all(key in follower_words for key in ZK_MNTR_KEYS)
    assert not any(key in follower_words for key in LEADER_KEYS)
    assert follower_words["zk_cnt_proposal_commit_latency"] == "0"


LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                  r"\[server 1\] nookeeper(\.\w+)+: ")


def test_log_lines_name_server_and_session(server_factory, tmp_path):
    log_file = tmp_path / "nookeeper.log"
    server = server_factory("logged", log_file=str(log_file))
    # A session that is never used again expires after its 400 ms timeout.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(encode_connect_request(400))
        head = sock.recv(4, socket.MSG_WAITALL)
        session = decode_connect_response(
            sock.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)).sessionId
    assert session > 0
    wait_for(lambda: f"session {session:#x} closed at zxid" in log_file.read_text(),
             message="the expiry in the log")

    lines = log_file.read_text().splitlines()
    assert [line for line in lines if not LINE.match(line)] == []
    text = "\n".join(lines)
    assert f"nookeeper.node: session {session:#x} established for 127.0.0.1:" in text
    assert re.search(rf"nookeeper\.node: session {session:#x} expired \(timeout 400ms\)", text)
    # With a log file, nothing is logged to stderr (the harness's server.log).
    assert not any(LINE.match(line) for line in server.log_path.read_text().splitlines())
