"""Read-only mode, side by side with Apache ZooKeeper 3.8 (readonlymode.enabled).

kazoo's own read-only scenario (kazoo/tests/test_connection.py TestReadOnlyMode):
two of three servers stopped, a `read_only=True` kazoo client is CONNECTED_RO
on the third, reads work, create raises NotReadOnlyCallError; then the two come
back and the client gets back to read-write. It runs on a 3-member nookeeper
ensemble (read_only_mode: true) and on a 3-member ZooKeeper quorum started
with -Dreadonlymode.enabled=true and local sessions (kazoo's harness sets
them for this test: ZooKeeper 3.8 can start a session in read-only mode only
as a local one), and the same facts are asserted on both: what kazoo sees,
isro and srvr, the handshake of a client that did not ask for read-only and
of a global session, the NOTREADONLY answers, the read-only connection closed
when the quorum is back, and the read-only session told "expired" by every
read-write server.

Then nookeeper's own client: KeeperClient(read_only=True) on a server that
stays read-only finds a read-write server by itself (isro, as the Java
client's pingRwServer) and moves there.
"""

import socket
import struct
import threading
import time

import pytest
import yaml
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NotReadOnlyCallError as KazooNotReadOnly
from kazoo.protocol.states import KeeperState as KazooKeeperState

from harness import Ensemble, free_port, wait_for
from zookeeper_harness import ZooKeeperEnsemble, missing_zookeeper
from nookeeper.client import KeeperClient, KeeperState, WatchedEvent
from nookeeper.client.exceptions import NotReadOnlyCallError
from nookeeper.client.states import EventType
from nookeeper.wire.client import (
    decode_connect_response,
    decode_reply,
    encode_connect_request,
    encode_request,
)
from nookeeper.wire.ops import OpCode

NOTREADONLY = -119
SESSION_TIMEOUT_S = 4.0
NO_PASSWORD = b"\0" * 16
# A kazoo client that keeps trying every half second, so it is back within its session timeout.
QUICK_RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5}
READ_ONLY_LINE = "READ-ONLY mode; serving only read-only clients"
OPEN_ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]
# Same timing on both sides: ticks of 100/200 ms, timeouts 400 ms .. 30 s.
ZOOKEEPER_SETTINGS = {"tick_ms": 200, "init_limit": 25, "sync_limit": 10,
                      "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}


class Raw:
    """One connection speaking the wire protocol: the handshake answer as sent
    (None: the server closed the connection without one), then requests."""

    def __init__(self, port, read_only=True, session_id=0, passwd=NO_PASSWORD, last_zxid=0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(encode_connect_request(int(SESSION_TIMEOUT_S * 1000), session_id,
                                                 passwd, last_zxid, read_only=read_only))
        self.xid = 0
        try:
            self.response = decode_connect_response(self._frame())
        except EOFError:
            self.response = None
            self.sock.close()

    def _frame(self):
        (length,) = struct.unpack(">i", self._exact(4))
        return self._exact(length)

    def _exact(self, count):
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                raise EOFError("closed")
            data += chunk
        return data

    def call(self, opcode, request=None):
        self.xid += 1
        self.sock.sendall(encode_request(self.xid, opcode, request))
        return decode_reply(self._frame(), opcode)

    def closed_without_a_frame(self, timeout):
        """True once the server closes the connection, False if a frame comes first."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def _handshake(port, **kwargs):
    raw = Raw(port, **kwargs)
    raw.close()
    return raw.response


def _expired(response):
    return response is not None and (response.timeOut, response.sessionId,
                                     response.passwd) == (0, 0, NO_PASSWORD)


class Cluster:
    """Either implementation's 3 servers, with what the scenario needs of them."""

    def __init__(self, name, ensemble):
        self.name = name
        self.ensemble = ensemble
        self.servers = list(ensemble.servers.values())

    @property
    def hosts(self):
        return ",".join(server.hosts for server in self.servers)

    def isro(self, server):
        try:
            return server.command("isro")
        except OSError:
            return None

    def kill_all(self):
        self.ensemble.kill_all()

    def log_tails(self):
        return "\n".join(f"=== {self.name} {s.hosts}\n{s.log_tail()}" for s in self.servers)


def _skip_without_zookeeper():
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")


@pytest.fixture(params=["nookeeper", "zookeeper"])
def cluster(request, tmp_path):
    if request.param == "nookeeper":
        ensemble = Ensemble(tmp_path / "nookeeper", 3, read_only_mode=True)
    else:
        _skip_without_zookeeper()
        ensemble = ZooKeeperEnsemble(
            tmp_path / "zookeeper", 3, **ZOOKEEPER_SETTINGS,
            jvm_flags=("-Dreadonlymode.enabled=true",),
            extra_config={"localSessionsEnabled": "true",
                          "localSessionsUpgradingEnabled": "true"})
    cluster = Cluster(request.param, ensemble)
    try:
        ensemble.start()
        yield cluster
    finally:
        cluster.kill_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(cluster.log_tails())


@pytest.fixture
def kazoo_clients():
    made = []

    def make(hosts, **kwargs):
        client = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
        client.close()


def test_kazoo_read_only_scenario(cluster, kazoo_clients):
    survivor, *others = cluster.servers
    assert [cluster.isro(s) for s in cluster.servers] == ["rw", "rw", "rw"]

    # Data written through the survivor, so it has applied it; a global
    # session (it owns an ephemeral) that lives on while the others are down.
    owner = kazoo_clients(survivor.hosts, connection_retry=QUICK_RETRY)
    owner.start(timeout=15)
    owner.create("/ro/config", b"v1", makepath=True)
    owner.create("/ro/owner", b"", ephemeral=True)
    global_session = owner.client_id

    client = kazoo_clients(cluster.hosts + "/ro", read_only=True, connection_retry=None)
    seen = []   # (KazooState given to listeners, client_state then)
    became_ro = threading.Event()

    def listen(state):
        seen.append((state, client.client_state))
        if client.client_state == KazooKeeperState.CONNECTED_RO:
            became_ro.set()

    client.add_listener(listen)
    client.start(timeout=15)
    assert client.client_state == KazooKeeperState.CONNECTED

    for server in others:
        server.kill()
    # As kazoo's test: a restarted client asks for a new session, which the
    # read-only server gives (a global session it would refuse).
    client.stop()
    seen.clear()
    client.start(timeout=20)
    assert became_ro.wait(15), f"{cluster.name}: states {seen}"
    assert client.client_state == KazooKeeperState.CONNECTED_RO
    assert seen[-1] == (KazooState.CONNECTED, KazooKeeperState.CONNECTED_RO)
    assert cluster.isro(survivor) == "ro"
    srvr = survivor.command("srvr").splitlines()
    assert srvr[1] == READ_ONLY_LINE and "Mode: read-only" in srvr
    assert READ_ONLY_LINE in survivor.command("stat")

    # Reads from the tree the survivor had; writes and sync refused.
    assert client.get("/config")[0] == b"v1"
    assert sorted(client.get_children("/")) == ["config", "owner"]
    with pytest.raises(KazooNotReadOnly):
        client.create("/fred")
    with pytest.raises(KazooNotReadOnly):
        client.sync("/")
    ro_session = client.client_id

    # Who else the read-only server takes: a client that did not ask for
    # read-only and a global session get no answer at all.
    assert _handshake(survivor.port, read_only=False) is None
    assert _handshake(survivor.port, session_id=global_session[0],
                      passwd=global_session[1]) is None

    # A raw read-only session: the handshake, the NOTREADONLY answers.
    raw = Raw(survivor.port)
    answer = raw.response
    assert answer.readOnly is True and answer.timeOut > 0 and answer.sessionId != 0
    assert len(answer.passwd) == 16 and answer.passwd != NO_PASSWORD
    header, data = raw.call(OpCode.GET_DATA, {"path": "/ro/config", "watch": True})
    assert (header.err, data.data) == (0, b"v1")
    applied = header.zxid
    assert f"Zxid: {applied:#x}" in srvr
    refused = {
        "create": (OpCode.CREATE, {"path": "/ro/x", "data": b"", "acl": OPEN_ACL, "flags": 0}),
        "setData": (OpCode.SET_DATA, {"path": "/ro/config", "data": b"v2", "version": -1}),
        "delete": (OpCode.DELETE, {"path": "/ro/config", "version": -1}),
        "sync": (OpCode.SYNC, {"path": "/ro"}),
        "multi": (OpCode.MULTI, [{"type": OpCode.DELETE,
                                  "request": {"path": "/ro/config", "version": -1}}]),
    }
    for name, (opcode, request) in refused.items():
        header, _ = raw.call(opcode, request)
        assert (header.err, header.zxid) == (NOTREADONLY, applied), name
    # The same session back on a new connection; the old one is closed.
    again = Raw(survivor.port, session_id=answer.sessionId, passwd=answer.passwd)
    assert (again.response.sessionId, again.response.passwd) == (answer.sessionId,
                                                                   answer.passwd)
    assert again.response.readOnly is True
    assert raw.closed_without_a_frame(5)
    assert again.call(OpCode.EXISTS, {"path": "/ro/config", "watch": False})[0].err == 0
    # An id this server does not know is told it expired, the readOnly byte set.
    unknown = _handshake(survivor.port, session_id=answer.sessionId + 1000, passwd=answer.passwd)
    assert _expired(unknown) and unknown.readOnly is True
    # So is the right id with a wrong password; as in ZooKeeper, the session's
    # connection is closed all the same (the client reconnects and resumes it).
    wrong = _handshake(survivor.port, session_id=answer.sessionId, passwd=b"x" * 16)
    assert _expired(wrong) and wrong.readOnly is True
    assert again.closed_without_a_frame(5)
    again = Raw(survivor.port, session_id=answer.sessionId, passwd=answer.passwd)
    assert again.call(OpCode.EXISTS, {"path": "/ro/config", "watch": False})[0].err == 0

    # Pings keep the read-only session (kazoo's test waits for one).
    time.sleep(SESSION_TIMEOUT_S * 0.75)
    assert client.client_state == KazooKeeperState.CONNECTED_RO
    assert client.exists("/config") is not None

    # The quorum comes back: read-only connections are closed without a word,
    # and kazoo, whose read-only session no read-write server knows, is told
    # it expired (LOST) and starts a new session (CONNECTED).
    seen.clear()
    for server in others:
        server.launch()
    assert again.closed_without_a_frame(60)
    again.close()
    wait_for(lambda: client.client_state == KazooKeeperState.CONNECTED, timeout=60,
             message=f"{cluster.name}: kazoo back to read-write (states {seen})")
    states = [state for state, _ in seen]
    assert KazooState.LOST in states and states[-1] == KazooState.CONNECTED, states
    assert client.client_id[0] != ro_session[0]
    wait_for(lambda: [cluster.isro(s) for s in cluster.servers] == ["rw"] * 3, timeout=30,
             message="isro rw everywhere")
    assert client.create("/fred") == "/fred"
    # Sessions of read-only mode were never logged: every read-write server
    # answers them "expired".
    for server in cluster.servers:
        for session_id, passwd in (ro_session, (answer.sessionId, answer.passwd)):
            response = _handshake(server.port, session_id=session_id, passwd=passwd)
            assert _expired(response) and response.readOnly is False, server.hosts
    # The global session outlived read-only mode, its ephemeral with it.
    wait_for(lambda: owner.connected, timeout=SESSION_TIMEOUT_S, message="the owner back")
    assert owner.exists("/ro/owner").ephemeralOwner == global_session[0]


# -- nookeeper's client finds a read-write server by itself --------------------


def _partitioned_nookeeper(workdir):
    """Each side sees the other at the same dead ports, so the two of one side
    agree on the membership (a peer link checks it)."""
    ensemble = Ensemble(workdir, 3, read_only_mode=True)
    dead = {sid: f"127.0.0.1:{free_port()}" for sid in ensemble.servers}
    for sid, server in ensemble.servers.items():
        config = yaml.safe_load(server.config_path.read_text())
        for other in config["members"]:
            if (sid == 1) != (other == 1):
                config["members"][other] = dead[other]
        server.config_path.write_text(yaml.safe_dump(config))
    return ensemble


def _partitioned_zookeeper(workdir):
    ensemble = ZooKeeperEnsemble(
        workdir, 3, **ZOOKEEPER_SETTINGS, jvm_flags=("-Dreadonlymode.enabled=true",),
        extra_config={"localSessionsEnabled": "true"})
    dead = {sid: f"127.0.0.1:{free_port()}:{free_port()}" for sid in ensemble.servers}
    for sid, server in ensemble.servers.items():
        for other in ensemble.servers:
            if (sid == 1) != (other == 1):
                server.extra_config[f"server.{other}"] = dead[other]
    return ensemble


@pytest.fixture(params=["nookeeper", "zookeeper"])
def partitioned(request, tmp_path):
    """Three servers whose server 1 cannot reach the other two nor they it
    (each side's config names dead peer ports for the other side), so it
    stays read-only while 2 and 3 form a quorum. Nothing is started."""
    if request.param == "nookeeper":
        ensemble = _partitioned_nookeeper(tmp_path / "nookeeper")
    else:
        _skip_without_zookeeper()
        ensemble = _partitioned_zookeeper(tmp_path / "zookeeper")
    cluster = Cluster(request.param, ensemble)
    try:
        yield cluster
    finally:
        cluster.kill_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(cluster.log_tails())


def test_keeper_client_moves_from_a_read_only_server_to_a_read_write_one(partitioned):
    lone, second, third = partitioned.servers
    lone.launch()
    wait_for(lambda: lone.alive() and partitioned.isro(lone) == "ro", timeout=30,
             message="a read-only server")
    client = KeeperClient(partitioned.hosts, timeout=SESSION_TIMEOUT_S, read_only=True,
                          randomize_hosts=False)
    try:
        states = []
        client.add_listener(states.append)
        client.start(timeout=15)
        assert client.state == KeeperState.CONNECTED_RO
        assert client.current_host[1] == lone.port
        ro_session = client.client_id
        events = []
        assert client.exists("/later", watch=events.append) is None
        with pytest.raises(NotReadOnlyCallError):
            client.create("/later")

        second.launch()
        third.launch()
        wait_for(lambda: client.state == KeeperState.CONNECTED, timeout=45,
                 message=f"CONNECTED (states {states})")
        # The lone server is still read-only: the client moved by itself.
        assert partitioned.isro(lone) == "ro"
        assert client.current_host[1] in (second.port, third.port)
        assert KeeperState.LOST not in states
        assert client.client_id[0] != ro_session[0]
        assert client.create("/later") == "/later"
        wait_for(lambda: events, message="the watch set on the read-only server")
        assert events == [WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/later")]
    finally:
        client.stop()
