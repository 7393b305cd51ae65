"""The admin port (admin_address): ZooKeeper's AdminServer commands as JSON, told
against ZooKeeper 3.8's own AdminServer; /health and /ready through a quorum
loss; a ZooKeeper dashboard's metric names on /metrics; gtmk and stmk."""

import json
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from harness import Ensemble, free_port, wait_for

SERVLET_JAR = Path("/usr/share/java/servlet-api.jar")  # libservlet-api-java, Jetty's dependency
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

# Every command asked of both servers, by the name an operator types.
COMMANDS = ("ruok", "srvr", "stats", "mntr", "conf", "cons", "wchs", "leader", "voting_view",
            "is_read_only", "environment", "dump", "dirs", "gtmk", "watches", "watches_by_path",
            "last_snapshot", "observers", "crst", "srst")
# ZooKeeper's fields nookeeper has no quantity for: its proposal sizes, and the JVM's.
NOT_IN_NOOKEEPER = {
    "srvr": {"proposal_stats"},
    "stats": {"proposal_stats"},
    "environment": {"java.version", "java.vendor", "java.home", "java.class.path",
                    "java.library.path", "java.io.tmpdir", "java.compiler",
                    "os.memory.free", "os.memory.max", "os.memory.total"},
}
# ZooKeeper 3.8's mntr keys that nookeeper reports (docs/operations.md names the rest).
MNTR_KEYS = {
    "version", "server_state", "peer_state", "avg_latency", "max_latency", "min_latency",
    "packets_received", "packets_sent", "num_alive_connections", "outstanding_requests",
    "uptime", "znode_count", "watch_count", "ephemerals_count", "approximate_data_size",
    "global_sessions", "local_sessions", "open_file_descriptor_count",
    "max_file_descriptor_count", "last_client_response_size", "max_client_response_size",
    "min_client_response_size", "auth_failed_count", "quorum_size",
    "non_mtls_remote_conn_count", "non_mtls_local_conn_count",
    "learners", "synced_followers", "synced_non_voting_followers", "synced_observers",
    "pending_syncs",
    *(f"{stat}_{name}" for stat in ("avg", "min", "max", "cnt", "sum")
      for name in ("fsynctime", "sync_processor_batch_size")),
    *(f"{stat}_{name}" for stat in ("avg", "cnt", "sum", "p50", "p95", "p99", "p999")
      for name in ("readlatency", "updatelatency")),
}
# What the dashboards and alert rules made for ZooKeeper's Prometheus provider
# query (Grafana's "ZooKeeper by Prometheus", ZooKeeper's monitoring guide).
DASHBOARD_METRICS = (
    "quorum_size", "num_alive_connections", "open_file_descriptor_count",
    "max_file_descriptor_count", "outstanding_requests", "avg_latency", "min_latency",
    "max_latency", "global_sessions", "local_sessions", "znode_count", "ephemerals_count",
    "approximate_data_size", "watch_count", "packets_received", "packets_sent", "uptime",
    "learners", "synced_followers", "pending_syncs", "fsynctime_sum", "fsynctime_count",
    "readlatency", "readlatency_count", "updatelatency_sum", "auth_failed_count",
)


def http(port, path):
    """(status, content type, body: parsed JSON, or text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    kind = headers.get("Content-Type", "")
    return status, kind, json.loads(raw) if kind.startswith("application/json") else raw.decode()


def command(port, name):
    status, kind, body = http(port, f"/commands/{name}")
    assert status == 200 and kind == "application/json", (name, status, body)
    return body


def shape(value):
    """Keys all the way down (the first element standing for a list's, "*" for a
    map keyed by ids, times or paths), to compare an answer's fields with
    ZooKeeper's whatever the values."""
    if isinstance(value, dict):
        if value and all(key.isdigit() or key.startswith("/") for key in value):
            # ZooKeeper's expiry map may hold an emptied bucket: shape a full one.
            items = list(value.values())
            return {"*": shape(next((item for item in items if item), items[0]))}
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def raw_word(port, payload):
    """A four-letter word with whatever follows it (stmk's long); the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _session_with_watch_and_ephemeral(hosts):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=15)
    zk.ensure_path("/admin")
    zk.create("/admin/eph", b"e", ephemeral=True)
    zk.get("/admin", watch=lambda event: None)
    return zk


class AdminEnsemble(Ensemble):
    def __init__(self, workdir, size=3, **settings):
        self.admin_ports = {sid: free_port() for sid in range(1, size + 1)}
        super().__init__(workdir, size, **settings)

    def placement(self, sid):
        return {"admin_address": f"127.0.0.1:{self.admin_ports[sid]}"}


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory):
    """ZooKeeper 3.8's AdminServer answers (a quorum of one: a leader), or None."""
    from zookeeper_harness import (
        ZooKeeperProcess, free_ports, missing_zookeeper, zookeeper_classpath,
    )
    if missing_zookeeper() or not SERVLET_JAR.is_file():
        yield None
        return
    classpath = ":".join(zookeeper_classpath() + [str(SERVLET_JAR)])
    admin, peer, election = free_ports(3)
    server = ZooKeeperProcess(
        tmp_path_factory.mktemp("zookeeper"), tick_ms=200, server_id=1,
        members={1: (peer, election)},
        extra_config={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                      "admin.serverPort": admin})
    patch = pytest.MonkeyPatch()
    zk = None
    try:
        patch.setenv("NK_ZOOKEEPER_CLASSPATH", classpath)
        server.start(60)
        patch.undo()
        zk = _session_with_watch_and_ephemeral(server.hosts)
        answers = {name: command(admin, name) for name in COMMANDS}
        answers["unknown"] = http(admin, "/commands/no_such_command")
        answers["gtmk word"] = raw_word(server.port, b"gtmk")
        answers["stmk word"] = raw_word(server.port, b"stmk" + struct.pack(">q", 0x1FF))
        answers["gtmk after"] = raw_word(server.port, b"gtmk")
        yield answers
    finally:
        patch.undo()
        if zk is not None:
            zk.stop()
            zk.close()
        server.kill()


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    made = AdminEnsemble(tmp_path_factory.mktemp("admin"), 3)
    zk = None
    try:
        made.start()
        zk = _session_with_watch_and_ephemeral(made.hosts)
        yield made, zk
    finally:
        if zk is not None:
            zk.stop()
            zk.close()
        made.kill_all()


def _roles(made):
    leader = made.leader()
    follower = next(s for s in made.servers.values() if s is not leader)
    sid = {server: sid for sid, server in made.servers.items()}
    return (leader, made.admin_ports[sid[leader]]), (follower, made.admin_ports[sid[follower]])


def test_every_command_answers_as_zookeeper(ensemble, zookeeper):
    made, zk = ensemble
    (leader, leader_port), (follower, follower_port) = _roles(made)
    session = zk.client_id[0]
    for port, role in ((leader_port, "leader"), (follower_port, "follower")):
        answers = {name: command(port, name) for name in COMMANDS}
        for name, body in answers.items():
            assert body["error"] is None, (role, name, body)
            assert body["command"] in (name, {"srvr": "server_stats", "mntr": "monitor",
                                              "conf": "configuration", "cons": "connections",
                                              "wchs": "watch_summary", "gtmk": "get_trace_mask",
                                              "crst": "connection_stat_reset",
                                              "srst": "stat_reset"}.get(name))
        assert answers["srvr"]["server_stats"]["server_state"] == role
        assert answers["leader"]["is_leader"] is (role == "leader")
        assert made.servers[answers["leader"]["leader_id"]] is leader
        assert sorted(answers["voting_view"]["current_config"]) == ["1", "2", "3"]
        assert answers["mntr"]["server_state"] == role
        assert answers["mntr"]["quorum_size"] == 3
        assert answers["is_read_only"]["read_only"] is False
        assert answers["environment"]["zookeeper.version"].startswith("3.8.0-nookeeper-")
        assert answers["mntr"]["peer_state"] == ("leading" if role == "leader" else
                                                 "following") + " - broadcast"
        if role == "leader":
            assert answers["mntr"]["synced_followers"] == 2
    # The client's server shows its connection, watch and ephemeral.
    mine = next(port for port in made.admin_ports.values()
                if command(port, "cons")["connections"])
    cons = command(mine, "cons")["connections"]
    assert [c["session_id"] for c in cons] == [session]
    assert command(mine, "wchs")["num_total_watches"] == 1
    assert command(mine, "watches")["session_id_to_watched_paths"] == {str(session): ["/admin"]}
    assert command(leader_port, "dump")["session_id_to_ephemeral_paths"] == {
        str(session): ["/admin/eph"]}

    if zookeeper is None:
        pytest.skip("Apache ZooKeeper with its AdminServer (java, zookeeper, "
                    "libservlet-api-java) is not installed: fields not compared")
    ours = {name: command(mine if name in ("stats", "cons", "watches", "watches_by_path")
                          else leader_port, name) for name in COMMANDS}
    for name in COMMANDS:
        theirs, mine_shape = shape(zookeeper[name]), shape(ours[name])
        if name == "mntr":
            assert MNTR_KEYS <= theirs.keys() & mine_shape.keys(), \
                MNTR_KEYS - (theirs.keys() & mine_shape.keys())
            for key in MNTR_KEYS:  # numbers where ZooKeeper has numbers
                assert type(ours[name][key]) is type(zookeeper[name][key]) or \
                    {type(ours[name][key]), type(zookeeper[name][key])} <= {int, float}, key
            continue
        missing = NOT_IN_NOOKEEPER.get(name, set())
        expected = {key: value for key, value in theirs.items() if key not in missing}
        got = {key: value for key, value in mine_shape.items() if key in theirs}
        assert got == expected, name
        if name not in ("environment",):
            assert mine_shape.keys() <= theirs.keys(), (name, mine_shape.keys() - theirs.keys())
    # An unknown command: ZooKeeper's body (3.8.0 says 200; nookeeper 404).
    status, kind, body = http(leader_port, "/commands/no_such_command")
    assert (status, body) == (404, zookeeper["unknown"][2])


def test_trace_mask_words_as_zookeeper(ensemble, zookeeper):
    made, _zk = ensemble
    server = made.servers[3]
    port = made.admin_ports[3]
    default = raw_word(server.port, b"gtmk")
    assert default == b"306"
    assert raw_word(server.port, b"stmk" + struct.pack(">q", 0x1FF)) == b"511"
    assert raw_word(server.port, b"gtmk") == b"511"
    assert command(port, "gtmk")["tracemask"] == 511  # one mask for the words and the port
    assert raw_word(server.port, b"stmk" + struct.pack(">q", -1)) == b"-1"
    assert raw_word(server.port, b"stmk\x00\x01") == b""  # no whole long: no answer
    assert command(port, "stmk?traceMask=306") == {
        "tracemask": 306, "command": "set_trace_mask", "error": None}
    assert command(port, "stmk")["error"] == "setTraceMask requires long traceMask argument"
    assert raw_word(server.port, b"gtmk") == b"306"
    if zookeeper is not None:
        assert (default, b"511", b"511") == (zookeeper["gtmk word"], zookeeper["stmk word"],
                                             zookeeper["gtmk after"])
        assert command(port, "gtmk").keys() == zookeeper["gtmk"].keys()


def test_zookeeper_dashboard_metrics(ensemble):
    made, zk = ensemble
    (leader, leader_port), _ = _roles(made)
    zk.set("/admin", b"scraped")
    status, kind, text = http(leader_port, "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    missing = [name for name in DASHBOARD_METRICS if name not in samples]
    assert not missing, missing
    assert samples["quorum_size"][0].value == 3 and samples["synced_followers"][0].value == 2
    assert samples["znode_count"][0].value == command(leader_port, "mntr")["znode_count"]
    assert {s.labels.get("quantile") for s in samples["readlatency"]} == {"0.5", "0.9", "0.99"}
    assert samples["fsynctime_count"][0].value >= 1
    # nookeeper's own names are still there.
    assert "nookeeper_znodes" in samples and "nookeeper_wal_fsync_seconds_bucket" in samples


def test_metrics_address_serves_the_same_pages(server_factory):
    port = free_port()
    server = server_factory("metrics", metrics_address=f"127.0.0.1:{port}")
    assert http(port, "/metrics")[0] == 200
    assert command(port, "ruok") == {"command": "ruok", "error": None}
    # A standalone server is no quorum member, as ZooKeeper's standalone is not.
    assert command(port, "leader") == {"command": "leader", "error": "server is not initialized"}
    assert command(port, "voting_view")["current_config"] == {}
    status, _, body = http(port, "/health")
    assert (status, body) == (200, {"health": "true", "reason": "", "server_state": "standalone"})
    status, _, body = http(port, "/nowhere")
    assert status == 404 and "/commands" in body["error"]
    assert server.alive()


def test_health_and_ready_through_a_quorum_loss(ensemble):
    made, _zk = ensemble
    (leader, _), (survivor, survivor_port) = _roles(made)
    for port in made.admin_ports.values():
        assert http(port, "/health")[0] == 200
        status, _, body = http(port, "/ready")
        assert status == 200 and made.servers[body["leader_id"]] is leader
    others = [s for s in made.servers.values() if s is not survivor]
    for server in others:
        server.kill()
    wait_for(lambda: http(survivor_port, "/ready")[0] == 503, timeout=10,
             message="the survivor not ready")
    status, _, body = http(survivor_port, "/health")
    assert status == 503 and body["health"] == "false" and "no leader" in body["reason"]
    status, _, body = http(survivor_port, "/ready")
    assert status == 503 and body == {"ready": "false", "reason": body["reason"],
                                      "server_state": "looking", "leader_id": None}
    # Commands that need a serving server say so, as ZooKeeper's do; others answer.
    assert command(survivor_port, "srvr") == {"command": "srvr", "error": NOT_SERVING}
    assert command(survivor_port, "environment")["error"] is None
    others[0].launch()
    started = time.monotonic()
    wait_for(lambda: http(survivor_port, "/ready")[0] == 200, timeout=20,
             message="ready again with a leader")
    assert http(survivor_port, "/health")[0] == 200
    assert time.monotonic() - started < 20


def test_admin_address_in_the_config(tmp_path):
    import yaml

    from nookeeper.config import ConfigError, load_config

    path = tmp_path / "server.yaml"
    base = {"server_id": 1, "client_address": "127.0.0.1:2181", "data_dir": str(tmp_path / "d")}
    path.write_text(yaml.safe_dump({**base, "admin_address": "[::1]:8080"}))
    config = load_config(path)
    assert (config.admin_host, config.admin_port, config.metrics_port) == ("::1", 8080, None)
    path.write_text(yaml.safe_dump({**base, "admin_address": "127.0.0.1:8080",
                                    "metrics_address": "127.0.0.1:8080"}))
    with pytest.raises(ConfigError, match="admin_address: is metrics_address too"):
        load_config(path)
    path.write_text(yaml.safe_dump({**base, "admin_address": "127.0.0.1"}))
    with pytest.raises(ConfigError, match="admin_address: expected host:port"):
        load_config(path)
