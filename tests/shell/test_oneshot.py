"""bin/nk one command at a time (`nk -s HOST cmd args`): output, exit status, --json.

Each test runs against nookeeper and Apache ZooKeeper 3.8 (the `backend`
fixture), so the shell is checked against the reference server too; those
marked NOOKEEPER_ONLY test the shell's own side and run once.
"""

import base64
import json
import re

import pytest

from harness import free_port
from nkprocess import run_nk
from nookeeper.client import KeeperClient
from nookeeper.client.security import ACL, Id, Permissions, make_digest_acl_credential

# zkCli.sh's stat layout, label by label.
STAT_LABELS = ["cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion",
               "aclVersion", "ephemeralOwner", "dataLength", "numChildren"]
JAVA_DATE = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+ \d{4}$")

# For tests of the shell alone (parsing, history, rendering): the server's
# answers do not matter, so running them against ZooKeeper too would only add time.
NOOKEEPER_ONLY = pytest.mark.parametrize("backend", ["nookeeper"], indirect=True)


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def failed(result, name):
    """The error line on stderr, after checking exit status 1 and that it names the error."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{name}: "), result.stderr
    return result.stderr.strip()


def as_json(result):
    return json.loads(ok(result))


def stat_lines(text):
    """{label: value} of the stat block at the end of `text`, checking zkCli's order."""
    lines = text.strip().splitlines()[-len(STAT_LABELS):]
    pairs = [line.split(" = ", 1) for line in lines]
    assert [label for label, _ in pairs] == STAT_LABELS, text
    return dict(pairs)


def test_create_get_set_stat(nk, client, base):
    node = f"{base}/conf"
    assert ok(nk("create", node, "hello world")) == f"Created {node}\n"
    assert client.get(node)[0] == b"hello world"
    assert ok(nk("get", node)) == "hello world\n"

    assert ok(nk("set", node, "v2")) == ""
    assert ok(nk("set", node, "--", "-1")) == ""
    assert client.get(node)[0] == b"-1"

    out = ok(nk("get", "-s", node))
    assert out.splitlines()[0] == "-1"
    stat = stat_lines(out)
    _, znode = client.get(node)
    assert stat["dataVersion"] == "2" == str(znode.version)
    assert stat["cZxid"] == hex(znode.czxid)
    assert stat["mZxid"] == hex(znode.mzxid)
    assert stat["ephemeralOwner"] == "0x0"
    assert stat["dataLength"] == "2"
    assert JAVA_DATE.match(stat["ctime"]) and JAVA_DATE.match(stat["mtime"])

    assert stat_lines(ok(nk("stat", node))) == stat
    out = ok(nk("set", "-s", "-v", "2", node, "v3"))
    assert stat_lines(out)["dataVersion"] == "3"


def test_create_without_data_gives_null(nk, client, base):
    node = f"{base}/empty"
    ok(nk("create", node))
    assert client.get(node)[0] in (None, b"")
    assert ok(nk("get", node)) == "null\n"


def test_create_sequential_and_ephemeral(nk, client, base):
    out = ok(nk("create", "-s", f"{base}/job-", "x"))
    assert re.fullmatch(rf"Created {base}/job-\d{{10}}\n", out)
    assert len(client.get_children(base)) == 1

    # A sequential node's path may end in "/": the server appends the counter.
    assert re.fullmatch(rf"Created {base}/\d{{10}}\n", ok(nk("create", "-s", f"{base}/")))
    assert len(client.get_children(base)) == 2

    # An ephemeral node lives as long as nk's session: gone once nk has exited.
    out = ok(nk("create", "-e", "-s", f"{base}/eph-"))
    assert out.startswith(f"Created {base}/eph-")
    assert client.exists(out.split()[1]) is None
    assert len(client.get_children(base)) == 2


def test_create_with_acl_is_enforced(nk, client, base):
    node = f"{base}/ro"
    ok(nk("create", node, "data", "world:anyone:r"))
    acl, _ = client.get_acls(node)
    assert acl == [ACL(Permissions.READ, Id("world", "anyone"))]
    assert ok(nk("get", node)) == "data\n"
    line = failed(nk("set", node, "new"), "NoAuthError")
    assert line.endswith(node)


def test_ls_forms(nk, client, base):
    for path in ("b", "a", "a/x", "a/y", "c", "a/x/deep"):
        client.create(f"{base}/{path}", b"")
    assert ok(nk("ls", base)) == "[a, b, c]\n"
    assert ok(nk("ls", "-w", base)) == "[a, b, c]\n"
    out = ok(nk("ls", "-s", base))
    assert out.splitlines()[0] == "[a, b, c]"
    assert stat_lines(out)["numChildren"] == "3"
    # Breadth first, children sorted, as zkCli.sh's ls -R.
    assert ok(nk("ls", "-R", base)).splitlines() == [
        base, f"{base}/a", f"{base}/b", f"{base}/c", f"{base}/a/x", f"{base}/a/y",
        f"{base}/a/x/deep"]
    assert "zookeeper" in ok(nk("ls", "/")).strip("[]\n").split(", ")


def test_delete_and_versions(nk, client, base):
    node = f"{base}/n"
    client.create(node, b"")
    client.create(f"{node}/child", b"")
    assert failed(nk("delete", node), "NotEmptyError").endswith(f": {node}")
    assert failed(nk("delete", "-v", "7", f"{node}/child"), "BadVersionError")
    assert ok(nk("delete", "-v", "0", f"{node}/child")) == ""
    assert ok(nk("delete", node)) == ""
    assert client.exists(node) is None
    assert failed(nk("delete", node), "NoNodeError") == f"NoNodeError: Node does not exist: {node}"


def test_deleteall_and_rmr(nk, client, base):
    for path in ("t1/a/b", "t1/c", "t2/d"):
        client.ensure_path(f"{base}/{path}")
    assert ok(nk("deleteall", f"{base}/t1")) == ""
    assert ok(nk("rmr", f"{base}/t2")) == ""
    assert client.get_children(base) == []
    failed(nk("deleteall", f"{base}/t1"), "NoNodeError")


def test_sync(nk, base):
    assert ok(nk("sync", base)) == "Sync is OK\n"
    failed(nk("sync", "x"), "UsageError")


def test_get_and_set_acl(nk, client, base):
    node = f"{base}/acl"
    client.create(node, b"")
    assert ok(nk("getAcl", node)) == "'world,'anyone\n: cdrwa\n"
    digest = make_digest_acl_credential("user", "secret")
    acl = f"world:anyone:r,ip:127.0.0.1:cdrwa,digest:{digest}:rw"
    assert ok(nk("setAcl", node, acl)) == ""
    entries, stat = client.get_acls(node)
    assert sorted(entries) == sorted([
        ACL(Permissions.READ, Id("world", "anyone")),
        ACL(Permissions.ALL, Id("ip", "127.0.0.1")),
        ACL(Permissions.READ | Permissions.WRITE, Id("digest", digest)),
    ])
    out = ok(nk("getAcl", "-s", node))
    assert f"'digest,'{digest}\n: rw" in out
    assert "'ip,'127.0.0.1\n: cdrwa" in out
    assert stat_lines(out)["aclVersion"] == "1"
    failed(nk("setAcl", "-v", "0", node, "world:anyone:cdrwa"), "BadVersionError")
    assert stat_lines(ok(nk("setAcl", "-s", "-v", "1", node, "world:anyone:cdrwa")))[
        "aclVersion"] == "2"


@NOOKEEPER_ONLY
def test_set_acl_recursive(nk, client, base):
    client.ensure_path(f"{base}/r/s/t")
    ok(nk("setAcl", "-R", f"{base}/r", "world:anyone:cdr"))
    for path in ("r", "r/s", "r/s/t"):
        assert client.get_acls(f"{base}/{path}")[0] == [
            ACL(Permissions.CREATE | Permissions.DELETE | Permissions.READ,
                Id("world", "anyone"))]


def test_addauth_in_a_session(backend, nk, client, base):
    """addauth lasts one session, so the commands go to one nk on stdin."""
    node = f"{base}/mine"
    script = f"addauth digest user:secret\ncreate {node} private auth::cdrwa\nget {node}\n"
    result = run_nk("-s", backend.hosts, input=script)
    assert result.returncode == 0, result.stderr
    assert f"Created {node}\nprivate\n" in result.stdout
    assert result.stderr == ""
    digest = make_digest_acl_credential("user", "secret")
    # Reading an ACL needs READ or ADMIN on the node (since ZooKeeper 3.6): ask as its owner.
    with KeeperClient(backend.hosts, auth_data=[("digest", "user:secret")]) as owner:
        assert owner.get_acls(node)[0] == [ACL(Permissions.ALL, Id("digest", digest))]
    failed(nk("get", node), "NoAuthError")
    assert ok(nk("addauth", "digest", "user:secret")) == ""


def test_server_errors_are_named(nk, client, base):
    assert failed(nk("get", f"{base}/missing"), "NoNodeError") == (
        f"NoNodeError: Node does not exist: {base}/missing")
    assert failed(nk("stat", "-w", f"{base}/missing"), "NoNodeError")
    assert failed(nk("ls", f"{base}/missing"), "NoNodeError")
    assert failed(nk("create", base), "NodeExistsError") == (
        f"NodeExistsError: Node already exists: {base}")
    assert failed(nk("create", f"{base}/no/parent"), "NoNodeError")
    client.create(f"{base}/eph", b"", ephemeral=True)
    failed(nk("create", f"{base}/eph/child"), "NoChildrenForEphemeralsError")
    # An auth ACL with no credentials in the session; an auth scheme the server lacks.
    assert failed(nk("create", f"{base}/a", "d", "auth::cdrwa"), "InvalidACLError") == (
        f"InvalidACLError: Invalid ACL: {base}/a")
    assert failed(nk("addauth", "nosuchscheme", "x"), "AuthFailedError") == (
        "AuthFailedError: Authentication failed")


@NOOKEEPER_ONLY
def test_bad_input_is_a_usage_error(nk, base):
    failed(nk("frobnicate", "/"), "UsageError")
    failed(nk("ls"), "UsageError")
    failed(nk("get", "-x", base), "UsageError")
    failed(nk("get", "relative"), "UsageError")
    failed(nk("set", "-v", "abc", base, "x"), "UsageError")
    failed(nk("create", f"{base}/bad", "d", "world:anyone:rz"), "UsageError")
    failed(nk("setAcl", base, "world-anyone"), "UsageError")
    failed(nk("printwatches", "maybe"), "UsageError")
    failed(nk("redo", "0"), "UsageError")
    failed(nk("get", "'unclosed"), "UsageError")
    # The client would tidy these paths; the shell refuses them, as zkCli.sh does.
    assert failed(nk("get", f"{base}/"), "UsageError") == (
        f"UsageError: path must not end with /: '{base}/'")
    failed(nk("create", f"{base}//x"), "UsageError")
    failed(nk("ls", f"{base}/../x"), "UsageError")
    failed(nk("create", f"{base}/bad\x01"), "UsageError")


def test_json_documents(nk, client, base):
    node = f"{base}/j"
    assert as_json(nk("--json", "create", node, "héllo")) == {"path": node}
    client.create(f"{node}/kid", b"")
    assert as_json(nk("--json", "ls", node)) == {"path": node, "children": ["kid"]}
    doc = as_json(nk("--json", "ls", "-s", node))
    assert doc["children"] == ["kid"] and doc["stat"]["numChildren"] == 1
    assert as_json(nk("--json", "ls", "-R", node)) == {"path": node,
                                                       "paths": [node, f"{node}/kid"]}
    assert as_json(nk("--json", "get", node)) == {"path": node, "data": "héllo",
                                                  "encoding": "utf-8"}
    _, znode = client.get(node)
    doc = as_json(nk("--json", "get", "-s", node))
    assert doc["data"] == "héllo"
    assert doc["stat"] == dict(znode._asdict())
    assert as_json(nk("--json", "stat", node)) == {"path": node, "stat": dict(znode._asdict())}
    doc = as_json(nk("--json", "set", node, "v2"))
    assert doc["path"] == node and doc["stat"]["version"] == 1
    assert as_json(nk("--json", "getAcl", node)) == {
        "path": node, "acl": [{"scheme": "world", "id": "anyone", "perms": "cdrwa"}]}
    doc = as_json(nk("--json", "setAcl", node, "world:anyone:cdrwa"))
    assert doc["stat"]["aversion"] == 1
    assert as_json(nk("--json", "sync", node)) == {"path": node, "synced": True}
    assert as_json(nk("--json", "addauth", "digest", "a:b")) == {"scheme": "digest",
                                                                  "added": True}
    assert as_json(nk("--json", "delete", f"{node}/kid")) == {"path": f"{node}/kid",
                                                             "deleted": True}
    assert as_json(nk("--json", "deleteall", node)) == {"path": node, "deleted": True}
    assert client.exists(node) is None


@NOOKEEPER_ONLY
def test_json_data_encodings(nk, client, base):
    client.create(f"{base}/bin", b"\xff\x00\x01")
    doc = as_json(nk("--json", "get", f"{base}/bin"))
    assert doc["encoding"] == "base64"
    assert base64.b64decode(doc["data"]) == b"\xff\x00\x01"
    assert ok(nk("get", f"{base}/bin")) == "\\xff\x00\x01\n"
    ok(nk("create", f"{base}/null"))
    doc = as_json(nk("--json", "get", f"{base}/null"))
    assert doc["path"] == f"{base}/null" and doc["data"] in (None, "")


@NOOKEEPER_ONLY
def test_json_errors_go_to_stderr(nk, base):
    result = nk("--json", "get", f"{base}/missing")
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads(result.stderr) == {
        "error": "NoNodeError", "code": -101,
        "message": f"Node does not exist: {base}/missing"}
    result = nk("--json", "delete", "-v", "5", base)
    assert json.loads(result.stderr)["error"] == "BadVersionError"
    assert json.loads(result.stderr)["code"] == -103
    result = nk("--json", "ls")
    assert result.returncode == 1
    assert json.loads(result.stderr)["error"] == "UsageError"


def test_chroot(backend, client, base):
    client.create(f"{base}/inside", b"x")
    chrooted = ("-s", backend.hosts + base)
    assert ok(run_nk(*chrooted, "ls", "/")) == "[inside]\n"
    assert ok(run_nk(*chrooted, "create", "/made", "y")) == "Created /made\n"
    assert client.get(f"{base}/made")[0] == b"y"
    assert ok(run_nk(*chrooted, "ls", "-R", "/")).splitlines() == ["/", "/inside", "/made"]


@NOOKEEPER_ONLY
def test_session_commands(backend, nk):
    assert as_json(nk("--json", "connect", backend.hosts)) == {"hosts": backend.hosts,
                                                               "state": "CONNECTED"}
    assert as_json(nk("--json", "close")) == {"closed": True}
    assert as_json(nk("--json", "quit")) == {"quit": True}
    assert ok(nk("quit")) == ""
    assert ok(nk("printwatches")) == "printwatches is off\n"
    assert as_json(nk("--json", "printwatches", "on")) == {"printwatches": True}
    assert ok(nk("history")) == "0 - history\n"
    assert as_json(nk("--json", "history")) == {"history": [{"number": 0,
                                                             "command": "history"}]}
    assert "\tsetAcl [-s] [-v version] [-R] path acl" in ok(nk("help")).splitlines()
    assert "ls [-s] [-w] [-R] path" in as_json(nk("--json", "help"))["commands"]


def test_connection_failure_is_reported_cleanly():
    hosts = f"127.0.0.1:{free_port()}"
    result = run_nk("-s", hosts, "--timeout", "0.5", "ls", "/")
    assert failed(result, "ConnectionLoss") == (
        f"ConnectionLoss: cannot connect to {hosts} within 0.5 s")
    result = run_nk("-s", hosts, "--timeout", "0.5", "--json", "get", "/x")
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads(result.stderr) == {
        "error": "ConnectionLoss", "code": -4,
        "message": f"cannot connect to {hosts} within 0.5 s"}
    # Commands that need no session still work, and connect can go elsewhere.
    assert ok(run_nk("-s", hosts, "help")).startswith("nk ")
    failed(run_nk("-s", "127.0.0.1:notaport", "ls", "/"), "UsageError")


def test_command_line_errors():
    result = run_nk("--no-such-option")
    assert result.returncode == 2 and "usage: nk" in result.stderr
    result = run_nk("--timeout", "0", "ls", "/")
    assert result.returncode == 2 and "--timeout" in result.stderr
    assert "Traceback" not in result.stderr
