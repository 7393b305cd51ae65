"""/zookeeper/config, whoami and ip ACL ids, side by side with Apache ZooKeeper 3.8.

A 3-member nookeeper ensemble and a 3-member ZooKeeper quorum, both started
once for the module (each member with its client address in the membership,
as ZooKeeper's `server.N=host:peer:election;host:client` lines give it, and
the same super digest), are read with kazoo, raw requests and zkCli.sh's
`config`; the answers must be the same once each side's own ports are put
in. nookeeper has one peer port, which it prints for the election port too.
"""

import base64
import hashlib
import re
import subprocess

import pytest
import yaml
from kazoo.client import KazooClient

from harness import Ensemble, wait_for
from rawclient import RawClient
from zookeeper_harness import ZKCLI, ZooKeeperEnsemble, ZooKeeperProcess, missing_zookeeper
from nookeeper import snapshot
from nookeeper.config import ConfigError, load_config
from nookeeper.server.commit import CommitStage
from nookeeper.server.events import TreeInstalled
from nookeeper.server.pipeline import membership
from nookeeper.server.state import ServerState
from nookeeper.server.stats import ServerStats
from nookeeper.tree import DataTree
from nookeeper.wire.ops import OpCode

SUPER = "super:secret"
SUPER_DIGEST = "super:" + base64.b64encode(hashlib.sha1(SUPER.encode()).digest()).decode()
CONFIG = "/zookeeper/config"
NOAUTH, INVALIDACL = -102, -114


def _skip_without_zookeeper():
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")


def _with_client_addresses(server, clients):
    """Rewrite a nookeeper member's config: clients {sid: port} after each peer
    address (None: the members as plain peer addresses)."""
    config = yaml.safe_load(server.config_path.read_text())
    members = {sid: address.partition(";")[0] for sid, address in config["members"].items()}
    config["members"] = {sid: peer + (f";127.0.0.1:{clients[sid]}" if clients else "")
                         for sid, peer in members.items()}
    server.config_path.write_text(yaml.safe_dump(config))


def _client_ports(ensemble):
    return {sid: server.port for sid, server in ensemble.servers.items()}


def _nookeeper_ensemble(workdir, **settings):
    ensemble = Ensemble(workdir, 3, super_digest=SUPER_DIGEST, **settings)
    for server in ensemble.servers.values():
        _with_client_addresses(server, _client_ports(ensemble))
    return ensemble


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(nookeeper Ensemble, ZooKeeperEnsemble), started side by side."""
    _skip_without_zookeeper()
    root = tmp_path_factory.mktemp("config")
    ours = _nookeeper_ensemble(root / "nookeeper")
    theirs = ZooKeeperEnsemble(root / "zookeeper", 3, tick_ms=200, init_limit=25, sync_limit=10,
                               jvm_flags=(f"-Dzookeeper.DigestAuthenticationProvider.superDigest="
                                          f"{SUPER_DIGEST}",))
    for server in theirs.servers.values():
        for sid, other in theirs.servers.items():
            peer, election = other.members[sid]
            server.extra_config[f"server.{sid}"] = \
                f"127.0.0.1:{peer}:{election};127.0.0.1:{other.port}"
    try:
        for server in [*ours.servers.values(), *theirs.servers.values()]:
            server.launch()
        for server in [*ours.servers.values(), *theirs.servers.values()]:
            server.wait_serving(30)
        yield ours, theirs
    finally:
        ours.kill_all()
        theirs.kill_all()


def _expected(ports):
    """The config text for {sid: (peer, election, client)} in ZooKeeper's format."""
    lines = [f"server.{sid}=127.0.0.1:{peer}:{election}:participant;127.0.0.1:{client}"
             for sid, (peer, election, client) in sorted(ports.items())]
    return "\n".join(lines + ["version=0"]).encode()


def _our_ports(ensemble):
    ports = {}
    for sid, server in ensemble.servers.items():
        peer = int(yaml.safe_load(server.config_path.read_text())["members"][sid]
                   .partition(";")[0].rpartition(":")[2])
        ports[sid] = (peer, peer, server.port)
    return ports


def _their_ports(ensemble):
    return {sid: (*server.members[sid], server.port) for sid, server in ensemble.servers.items()}


def _normalised(text):
    return re.sub(r":\d+", ":PORT", text)


def _read(hosts, path=CONFIG):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=10)
    try:
        data, stat = zk.get(path)
        acls, _ = zk.get_acls(path)
        return data, stat, [(a.perms, a.id.scheme, a.id.id) for a in acls]
    finally:
        zk.stop()
        zk.close()


def _shape(stat):
    """The Stat fields both servers must agree on (mtime is ZooKeeper's clock
    when it set the node, 0 in nookeeper; dataLength follows the ports)."""
    return {k: getattr(stat, k) for k in ("czxid", "mzxid", "ctime", "version", "cversion",
                                          "aversion", "ephemeralOwner", "numChildren", "pzxid")}


# ---- /zookeeper/config in an ensemble --------------------------------------------

def test_every_member_shows_the_membership_as_zookeeper_does(both):
    ours, theirs = both
    zookeeper = [_read(server.hosts) for server in theirs.servers.values()]
    nookeeper = [_read(server.hosts) for server in ours.servers.values()]
    their_data, their_stat, their_acl = zookeeper[0]
    assert their_data == _expected(_their_ports(theirs))
    assert their_acl == [(1, "world", "anyone")]
    assert _shape(their_stat) == {"czxid": 0, "mzxid": 0, "ctime": 0, "version": -1,
                                  "cversion": 0, "aversion": -1, "ephemeralOwner": 0,
                                  "numChildren": 0, "pzxid": 0}
    assert their_stat.dataLength == len(their_data)
    data, stat, acls = nookeeper[0]
    assert data == _expected(_our_ports(ours))  # the peer port stands for the election port
    assert _normalised(data.decode()) == _normalised(their_data.decode())
    assert _shape(stat) == _shape(their_stat) and stat.dataLength == len(data)
    assert acls == their_acl
    # Set outside the log, yet alike on every member (ZooKeeper's mtimes differ).
    assert all(answer == nookeeper[0] for answer in nookeeper)
    assert stat.mtime == 0


def _zkcli_config(hosts):
    """zkCli.sh's `config -s`: the config lines and the Stat lines, apart."""
    result = subprocess.run([str(ZKCLI), "-server", hosts, "config", "-s"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = result.stdout.splitlines()
    config = [line for line in lines if re.match(r"(server\.\d+=|version=)", line)]
    stat = dict(line.split(" = ", 1) for line in lines if re.match(r"^\w+ = ", line))
    return config, stat, result.stdout + result.stderr


def test_zkcli_config_prints_the_same(both):
    ours, theirs = both
    their_lines, their_stat, their_out = _zkcli_config(theirs.servers[2].hosts)
    lines, stat, out = _zkcli_config(ours.servers[2].hosts)
    assert their_lines == _expected(_their_ports(theirs)).decode().splitlines(), their_out
    assert lines == _expected(_our_ports(ours)).decode().splitlines(), out
    assert [_normalised(line) for line in lines] == [_normalised(line) for line in their_lines]
    assert {k: v for k, v in stat.items() if k not in ("mtime", "dataLength")} == \
        {k: v for k, v in their_stat.items() if k not in ("mtime", "dataLength")}
    assert stat["dataVersion"] == "-1" and stat["mZxid"] == "0x0"
    assert int(stat["dataLength"]) == len("\n".join(lines))


def test_standalone_config_is_empty_on_both(server_factory, tmp_path):
    _skip_without_zookeeper()
    ours = server_factory()
    theirs = ZooKeeperProcess(tmp_path / "zk", tick_ms=200)
    try:
        theirs.start()
        their_data, their_stat, their_acl = _read(theirs.hosts)
    finally:
        theirs.kill()
    data, stat, acls = _read(ours.hosts)
    assert their_data == data == b""
    assert stat == their_stat and acls == their_acl


def test_a_member_takes_the_config_from_its_own_file_after_a_snapshot(tmp_path):
    """Restarted from its snapshot (which holds the config it had) with its
    members given without client addresses, a member shows its file's config."""
    ensemble = _nookeeper_ensemble(tmp_path / "nookeeper", snapshot_every_txns=20)
    try:
        ensemble.start()
        zk = KazooClient(hosts=ensemble.hosts, timeout=10)
        zk.start(timeout=10)
        try:
            for i in range(30):
                zk.create(f"/n{i}")
        finally:
            zk.stop()
            zk.close()
        member = ensemble.followers()[0]
        wait_for(lambda: "snapshot at zxid" in member.log_path.read_text(), timeout=10,
                 message="a snapshot on the follower")
        member.kill()
        _with_client_addresses(member, None)
        member.start()
        assert "loaded the snapshot at zxid" in member.log_path.read_text()
        data, stat, _ = _read(member.hosts)
        assert data.decode() == "\n".join(
            f"server.{sid}=127.0.0.1:{peer}:{peer}:participant"
            for sid, (peer, _, _) in sorted(_our_ports(ensemble).items())) + "\nversion=0"
        assert stat.version == -1
        other = next(s for s in ensemble.servers.values() if s is not member)
        assert b";127.0.0.1:" in _read(other.hosts)[0]
    finally:
        ensemble.kill_all()


def test_a_tree_installed_from_the_leader_gets_this_members_config():
    """A SNAP replaces the tree: the leader's snapshot (or the empty tree) must
    not bring the leader's /zookeeper/config, nor an empty one."""
    mine = b"server.1=127.0.0.1:2888:2888:participant\nversion=0"
    state = ServerState(100)
    failures = []
    stage = CommitStage(state, ServerStats(), failures.append, membership=mine)
    stage.run(TreeInstalled(0, ()))
    assert state.tree.get_data(CONFIG, ())[0] == mine
    assert state.tree.exists(CONFIG)["version"] == -1
    leaders = DataTree()
    leaders.set_config(b"server.7=elsewhere:1:1:participant\nversion=0")
    stage.run(TreeInstalled(5, tuple(snapshot.encode(leaders))))
    assert state.tree.get_data(CONFIG, ())[0] == mine and not failures


# ---- the config text and the members syntax (no servers) ---------------------------

def _config_file(tmp_path, members, client="127.0.0.1:2181", server_id=1):
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({"server_id": server_id, "client_address": client,
                                    "data_dir": str(tmp_path / "data"), "members": members}))
    return path


def test_members_may_give_their_client_address(tmp_path):
    config = load_config(_config_file(tmp_path, {
        1: "127.0.0.1:2888;127.0.0.1:2181", 2: "[::1]:2889;[::1]:2182", 3: "h3:2890"}))
    assert config.members == {1: ("127.0.0.1", 2888), 2: ("::1", 2889), 3: ("h3", 2890)}
    assert config.member_clients == {1: ("127.0.0.1", 2181), 2: ("::1", 2182)}
    assert membership(config) == (b"server.1=127.0.0.1:2888:2888:participant;127.0.0.1:2181\n"
                                  b"server.2=[::1]:2889:2889:participant;[::1]:2182\n"
                                  b"server.3=h3:2890:2890:participant\n"
                                  b"version=0")


@pytest.mark.parametrize("members, message", [
    ({1: "127.0.0.1:2888;127.0.0.1:2199"}, "members.1: client port 2199 differs"),
    ({1: "127.0.0.1:2888;nowhere"}, "members.1: expected host:port"),
    ({1: "127.0.0.1:2888", 2: "127.0.0.1:2889;"}, "members.2: expected a non-empty string"),
])
def test_a_bad_client_address_in_members_is_named(tmp_path, members, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_config_file(tmp_path, members))


def test_a_standalone_server_has_no_membership(tmp_path):
    assert membership(load_config(_config_file(tmp_path, {1: "127.0.0.1:2888;127.0.0.1:2181"}))) \
        == b""
    (tmp_path / "b").mkdir()
    solo = tmp_path / "b" / "solo.yaml"
    solo.write_text(yaml.safe_dump({"server_id": 1, "client_address": "127.0.0.1:2181",
                                    "data_dir": str(tmp_path / "b" / "data")}))
    assert membership(load_config(solo)) == b""


# ---- whoami ------------------------------------------------------------------------

def _whoami(port, *credentials):
    raw = RawClient(port)
    try:
        for credential in credentials:
            raw.send(OpCode.AUTH, {"type": 0, "scheme": "digest", "auth": credential}, xid=-4)
            header, _ = raw.reply(OpCode.AUTH)
            assert header.err == 0
        header, body = raw.call(OpCode.WHO_AM_I)
        return header.err, [(info.authScheme, info.user) for info in body.clientInfo]
    finally:
        raw.close()


@pytest.mark.parametrize("credentials", [
    (), (b"alice:pw",), (b"alice:pw", b"bob:pw2"), (b"alice:pw", b"alice:pw"),
    (SUPER.encode(),), (b"nocolon",),
])
def test_whoami_lists_identities_as_zookeeper_does(both, credentials):
    ours, theirs = both
    theirs_answer = _whoami(theirs.servers[1].port, *credentials)
    assert _whoami(ours.servers[1].port, *credentials) == theirs_answer
    assert ("ip", "127.0.0.1") in theirs_answer[1]


# ---- ip ACL ids --------------------------------------------------------------------

IP_IDS = ["127.0.0.1", "10.0.0.0/8", "1.2.3.+4", "1.2.3.4/+8", "\uff11.2.3.4", "127.0.0.1/0",
          "127.0.0.1/33", "1.2.3.4/", "1.2.3.4/ 8", "1.2.3.-1", "localhost", "::1", "::1/128",
          "fe80::/10"]


def _ip_acl_answers(port, tag):
    """(create, setACL) error codes for an ip ACL with each id of IP_IDS."""
    raw = RawClient(port)
    try:
        header, _ = raw.call(OpCode.CREATE, {"path": f"/{tag}", "data": b"", "flags": 0,
                                             "acl": [_acl(31, "world", "anyone")]})
        assert header.err == 0
        answers = []
        for i, ident in enumerate(IP_IDS):
            created, _ = raw.call(OpCode.CREATE, {"path": f"/{tag}/{i}", "data": b"", "flags": 0,
                                                  "acl": [_acl(31, "ip", ident)]})
            set_acl, _ = raw.call(OpCode.SET_ACL, {"path": f"/{tag}", "version": -1,
                                                   "acl": [_acl(31, "ip", ident)]})
            raw.call(OpCode.SET_ACL, {"path": f"/{tag}", "version": -1,
                                      "acl": [_acl(31, "world", "anyone")]})
            answers.append((ident, created.err, set_acl.err))
        return answers
    finally:
        raw.close()


def _acl(perms, scheme, ident):
    return {"perms": perms, "id": {"scheme": scheme, "id": ident}}


def test_ip_acl_ids_are_validated_as_zookeeper_validates_them(both):
    ours, theirs = both
    theirs_answers = _ip_acl_answers(theirs.servers[1].port, "ipv")
    assert _ip_acl_answers(ours.servers[1].port, "ipv") == theirs_answers
    # Both answers occur, IPv6 among the refused (ZooKeeper 3.8 reads IPv4 only).
    assert ("127.0.0.1", 0, 0) in theirs_answers
    assert ("::1", INVALIDACL, INVALIDACL) in theirs_answers


MASKS = ["127.0.0.0/8", "127.0.0.1/32", "127.0.0.0/31", "127.0.0.2/31", "10.0.0.0/8",
         "0.0.0.0/1", "128.0.0.0/1", "127.0.0.1/0"]


def _mask_answers(port, tag):
    """getData's error code on nodes readable only by an ip ACL of each mask."""
    raw = RawClient(port)
    try:
        raw.call(OpCode.CREATE, {"path": f"/{tag}", "data": b"", "flags": 0,
                                 "acl": [_acl(31, "world", "anyone")]})
        answers = []
        for i, mask in enumerate(MASKS):
            created, _ = raw.call(OpCode.CREATE, {"path": f"/{tag}/{i}", "data": b"x", "flags": 0,
                                                  "acl": [_acl(1, "ip", mask)]})
            assert created.err == 0
            read, _ = raw.call(OpCode.GET_DATA, {"path": f"/{tag}/{i}", "watch": False})
            answers.append((mask, read.err))
        return answers
    finally:
        raw.close()


def test_ip_acls_match_with_masks_as_zookeeper_matches_them(both):
    ours, theirs = both
    theirs_answers = _mask_answers(theirs.servers[1].port, "mask")
    assert _mask_answers(ours.servers[1].port, "mask") == theirs_answers
    assert {err for _, err in theirs_answers} == {0, NOAUTH}
