"""bin/nk's commands from zkCli.sh 3.8's newer set: addWatch, removewatches,
getEphemerals, getAllChildrenNumber, whoami, config, setquota/listquota/delquota,
create -c and create -t.

Every test runs against nookeeper and Apache ZooKeeper 3.8 (this module's
`backend`: ZooKeeper with TTL nodes on, as an ensemble of one so that
/zookeeper/config has members in it), but those marked NOOKEEPER_ONLY.
Where zkCli.sh prints a line, test_the_lines_zkcli_prints runs one zkCli.sh
session and one nk session with the same commands on the same server and
compares what they print, line by line.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest

from harness import ServerProcess
from nkprocess import NK
from nookeeper.shell.configtext import client_config_string
from zookeeper_harness import ZKCLI, ZooKeeperProcess, free_ports, java_binary, \
    missing_zookeeper, zookeeper_classpath

NOOKEEPER_ONLY = pytest.mark.parametrize("backend", ["nookeeper"], indirect=True)

# The errors nk reports where zkCli.sh prints a bare line: nk's line is "Name: <zkCli's line>".
_FAILURE = re.compile(r"^(UsageError|QuotaError|NoNodeError|NoWatcherError): ")


@pytest.fixture(scope="module", params=["nookeeper", "zookeeper"])
def backend(request, tmp_path_factory):
    """tests/shell/conftest.py's backend, but ZooKeeper as nookeeper runs by
    default: TTL nodes on, and /zookeeper/config holding its membership."""
    if request.param == "zookeeper":
        reason = missing_zookeeper()
        if reason:
            pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
        peer, election = free_ports(2)
        server = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper"), extended_types=True,
                                  server_id=1, members={1: (peer, election)})
        server.extra_config["server.1"] = (
            f"127.0.0.1:{peer}:{election}:participant;127.0.0.1:{server.port}")
    else:
        server = ServerProcess(tmp_path_factory.mktemp("nookeeper"))
    try:
        yield server.start()
    finally:
        server.kill()


def run(hosts, *args, script=None, merged=False):
    """bin/nk once: (exit status, stdout, stderr); with `merged`, stderr goes to stdout
    in the order written."""
    result = subprocess.run(
        [sys.executable, str(NK), "-s", hosts, *args], input=script or "", text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        timeout=60)
    return result.returncode, result.stdout, result.stderr


def ok(result):
    status, out, err = result
    assert (status, err) == (0, ""), result
    return out


def failed(result, name):
    status, out, err = result
    assert status == 1 and out == "", result
    assert err.startswith(f"{name}: ") and err.count("\n") == 1, result
    return err[len(name) + 2:].rstrip("\n")


def prompt(number):
    return rf"\[nk: [^\]]*\(CONNECTED\) {number}\] "


def event(kind, path):
    """One watch event as the shell prints it (zkCli.sh's layout)."""
    return (r"\nWATCHER::\n\nWatchedEvent state:SyncConnected type:" + kind
            + " " + re.escape(f"path:{path}") + r"\n")


# -- the lines zkCli.sh prints -------------------------------------------------------

# One session's commands; {base} is the test's own node, different for each shell.
_COMPARED = """\
create {base}
whoami
addauth digest bob:pw
whoami
config
config -c
create {base}/q
create {base}/q/a 12345
setquota -n 2 {base}/q
listquota {base}/q
setquota -B 100 {base}/q
listquota {base}/q
setquota -n 1 {base}/q
delquota -n {base}/q
listquota {base}/q
setquota -n 5 {base}/q/a
setquota -n 0 {base}/q
setquota -b x {base}/q
setquota -N 1 /zookeeper/quota/x
delquota {base}/q
listquota {base}/q
delquota {base}/q
create -c {base}/c
create -c -s {base}/c2
create -c -e {base}/c2
create -t abc {base}/t
create -t 0 {base}/t
create -t 1099511627776 {base}/t
create -e -t 5 {base}/t
create -c -t 5 {base}/t
create -t 100000 {base}/t data
getAllChildrenNumber {base}
create -e {base}/e
getEphemerals {base}
"""

# zkCli.sh's own chatter around the commands' output.
_ZKCLI_NOISE = re.compile(
    r"^(\d{4}-\d\d-\d\d |SLF4J:|log4j:|Connecting to |Welcome to ZooKeeper!|JLine support"
    r"|WATCHER::|WatchedEvent state:|\s+at )")


def zkcli(hosts, script, timeout=60):
    """zkCli.sh's output lines for `script` (fed on stdin), without its chatter; stdout
    and stderr in the order written (it prints "Created ..." on stderr)."""
    result = subprocess.run([str(ZKCLI), "-server", hosts], input=script + "quit\n",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    lines = result.stdout.splitlines()
    return [line for line in lines if line and not _ZKCLI_NOISE.match(line)]


@pytest.mark.skipif(not (ZKCLI.exists() and java_binary()),
                    reason="zkCli.sh or java missing (make test installs Debian's zookeeper)")
def test_the_lines_zkcli_prints(backend, client):
    zk_base, nk_base = "/zkcli-lines", "/nk-lines"
    expected = [line.replace(zk_base, "BASE")
                for line in zkcli(backend.hosts, _COMPARED.format(base=zk_base))]
    # zkCli's listquota prints where it looks before finding nothing there; nk's, a
    # failure, prints nothing on stdout, only the error line.
    expected = [line for line, after in zip(expected, expected[1:] + [""])
                if not (line.startswith("absolute path is ") and after.startswith("quota for "))]
    status, out, _ = run(backend.hosts, script=_COMPARED.format(base=nk_base), merged=True)
    assert status == 0
    shown = [_FAILURE.sub("", line).replace(nk_base, "BASE")
             for line in out.splitlines() if line]
    assert shown == expected
    # Both made the same nodes; quotas gone again with the last delquota.
    assert client.get_children(nk_base) == client.get_children(zk_base)
    assert client.get(f"{nk_base}/t")[0] == b"data"
    assert not [name for name in client.get_children("/zookeeper/quota")
                if name in ("zkcli-lines", "nk-lines")]


# -- quotas --------------------------------------------------------------------------


def test_quota_usage_is_counted_and_the_quota_removed(backend, client, base):
    hosts = backend.hosts
    node = f"{base}/q"
    client.create(node, b"")
    assert ok(run(hosts, "setquota", "-n", "2", node)) == ""
    limits = f"/zookeeper/quota{node}/zookeeper_limits"
    assert client.get(limits)[0] == b"count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    assert client.get(f"/zookeeper/quota{node}/zookeeper_stats")[0] == b"count=1,bytes=0"
    for name, data in (("a", b"123"), ("b", b"45"), ("c", b"")):
        client.create(f"{node}/{name}", data)

    # The server counts every node under the quota root, the root included.
    assert ok(run(hosts, "listquota", node)).splitlines() == [
        f"absolute path is {limits}",
        f"Output quota for {node} count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        f"Output stat for {node} count=4,bytes=5",
    ]
    # A limit below the usage is set all the same, with zkCli's warning.
    assert ok(run(hosts, "setquota", "-N", "3", node)) == (
        "[Warning]: the count quota you create is less than the existing count:4\n")
    assert json.loads(ok(run(hosts, "--json", "listquota", node))) == {
        "path": node, "limit_path": limits,
        "limits": {"count": 2, "bytes": -1, "byteHardLimit": -1, "countHardLimit": 3},
        "usage": {"count": 4, "bytes": 5}}

    # Quotas do not nest, and need a node to be on.
    assert failed(run(hosts, "setquota", "-b", "10", f"{node}/a"), "QuotaError") == (
        f"{node}/a has a parent {node} which has a quota")
    assert failed(run(hosts, "setquota", "-b", "10", base), "QuotaError") == (
        f"{base} has a child {node} which has a quota")
    assert failed(run(hosts, "setquota", "-n", "1", f"{base}/none"), "NoNodeError") == (
        f"Node does not exist: {base}/none")

    # delquota -n resets one limit; plain delquota removes the quota and its part of
    # the quota tree; then there is none.
    assert ok(run(hosts, "delquota", "-N", node)) == ""
    assert client.get(limits)[0] == b"count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    assert ok(run(hosts, "delquota", node)) == ""
    assert client.exists(f"/zookeeper/quota{base}") is None
    assert failed(run(hosts, "listquota", node), "NoNodeError") == (
        f"quota for {node} does not exist.")
    assert failed(run(hosts, "delquota", node), "NoNodeError") == (
        f"Quota does not exist for {node}")


@NOOKEEPER_ONLY
def test_quota_command_lines(backend, base):
    hosts = backend.hosts
    usage = "setquota -n|-b|-N|-B val path"
    assert failed(run(hosts, "setquota", base), "UsageError") == (
        f"one of -n, -b, -N, -B is needed; usage: {usage}")
    assert failed(run(hosts, "setquota", "-n", "1", "-b", "2", base), "UsageError") == (
        f"only one of -n, -b, -N, -B at a time; usage: {usage}")
    assert failed(run(hosts, "setquota", "-b", "-1", base), "UsageError") == (
        "the bytes quota must be greater than or equal to zero")
    assert failed(run(hosts, "setquota", "-N", "2147483648", base), "UsageError") == (
        "NumberFormatException happens when parsing the option value")
    assert failed(run(hosts, "setquota", "-n", "1", "/"), "UsageError") == (
        "the root node cannot have a quota")
    assert failed(run(f"{hosts}{base}", "listquota", "/x"), "UsageError") == (
        f"quota commands need a session without a chroot (this one is in {base})")
    assert failed(run(hosts, "delquota", "-n", "-b", base), "UsageError").startswith(
        "only one of")


# -- create -c, create -t ----------------------------------------------------------


def test_create_container_and_ttl(backend, client, base):
    hosts = backend.hosts
    assert ok(run(hosts, "create", "-c", f"{base}/box")) == f"Created {base}/box\n"
    assert ok(run(hosts, "create", "-t", "60000", f"{base}/ttl", "v")) == f"Created {base}/ttl\n"
    assert ok(run(hosts, "--json", "create", "-s", "-t", "60000", f"{base}/seq-", "v")) == (
        json.dumps({"path": f"{base}/seq-0000000002"}) + "\n")
    assert client.get(f"{base}/ttl")[0] == b"v"
    assert sorted(client.get_children(base)) == ["box", "seq-0000000002", "ttl"]
    assert failed(run(hosts, "create", "-c", "-e", f"{base}/x"), "UsageError") == (
        "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.")
    assert failed(run(hosts, "create", "-t", "-1", f"{base}/x"), "UsageError") == (
        "ttl must be positive and cannot be larger than: 1099511627775")


# -- whoami, config, getEphemerals, getAllChildrenNumber ----------------------------


def test_whoami(backend):
    assert ok(run(backend.hosts, "whoami")) == "Auth scheme: User\nip: 127.0.0.1\n"
    assert json.loads(ok(run(backend.hosts, "--json", "whoami"))) == {
        "identities": [{"scheme": "ip", "id": "127.0.0.1"}]}
    out = ok(run(backend.hosts, script="addauth digest bob:pw\nwhoami\n"))
    assert out.splitlines()[0] == "Auth scheme: User"
    assert sorted(out.splitlines()[1:]) == ["digest: bob", "ip: 127.0.0.1"]


def test_config(backend, client, base):
    data, stat = client.get("/zookeeper/config")
    text = data.decode()
    assert ok(run(backend.hosts, "config")) == text + "\n"
    assert ok(run(backend.hosts, "config", "-c")) == client_config_string(text) + "\n"
    with_stat = ok(run(backend.hosts, "config", "-s")).splitlines()
    assert with_stat[-11:][6] == f"dataVersion = {stat.version}"
    # ZooKeeper's getConfig reads /zookeeper/config whatever the chroot.
    assert ok(run(f"{backend.hosts}{base}", "config")) == text + "\n"
    document = json.loads(ok(run(backend.hosts, "--json", "config", "-c", "-s")))
    assert document["path"] == "/zookeeper/config" and document["data"] == text
    assert document["client"] == client_config_string(text)
    assert document["stat"]["version"] == stat.version
    if isinstance(backend, ZooKeeperProcess):
        assert ok(run(backend.hosts, "config", "-c")) == f"0 127.0.0.1:{backend.port}\n"


def test_ephemerals_and_children_number(backend, client, base):
    client.create(f"{base}/a/b/c", b"", makepath=True)
    client.create(f"{base}/mine", b"", ephemeral=True)       # another session's
    script = (f"create -e {base}/e1\ncreate -e {base}/a/e2\ncreate -e {base}x\n"
              f"getEphemerals {base}/a\ngetEphemerals\ngetAllChildrenNumber {base}\n"
              f"getEphemerals {base}/a/\ngetAllChildrenNumber {base}/none\n")
    status, out, err = run(backend.hosts, script=script)
    assert status == 0
    assert out.splitlines()[3:] == [
        f"[{base}/a/e2]",
        f"[{base}/a/e2, {base}/e1, {base}x]",
        "6",
    ]
    assert err.splitlines()[0].startswith("UsageError: ")
    assert err.splitlines()[1] == f"NoNodeError: Node does not exist: {base}/none"
    assert json.loads(ok(run(backend.hosts, "--json", "getAllChildrenNumber", base))) == {
        "path": base, "count": 4}
    assert json.loads(ok(run(backend.hosts, "--json", "getEphemerals"))) == {
        "path": "/", "ephemerals": []}


# -- addWatch, removewatches --------------------------------------------------------


def test_add_watch_prints_events_as_they_arrive(terminal, client, base):
    term = terminal()
    term.expect(prompt(0))
    term.send("addWatch -m PERSISTENT_R\t")                 # Tab completes the mode
    term.expect(r"PERSISTENT_RECURSIVE $")
    term.send(f"{base}\n")
    term.expect(prompt(1))

    # Recursive: every node below, again and again; no children-changed events.
    client.create(f"{base}/a", b"1")
    client.create(f"{base}/a/b", b"")
    client.set(f"{base}/a", b"2")
    client.delete(f"{base}/a/b")
    client.set(f"{base}/a", b"3")
    for kind, path in (("NodeCreated", f"{base}/a"), ("NodeCreated", f"{base}/a/b"),
                       ("NodeDataChanged", f"{base}/a"), ("NodeDeleted", f"{base}/a/b"),
                       ("NodeDataChanged", f"{base}/a")):
        term.expect(event(kind, path))

    # Removed, it is quiet: the next command's output comes with no event before it.
    term.send(f"removewatches {base}\n")
    term.expect(prompt(2))
    quiet_from = len(term.output)
    client.create(f"{base}/quiet", b"")
    term.send(f"ls {base}\n")
    listing = term.expect(r"\n\[a, quiet\]\n")
    assert "WATCHER::" not in term.output[quiet_from:listing.start()]
    term.expect(prompt(3))

    # Plain persistent: the node itself and its children list, not the nodes below.
    term.send(f"addWatch -m persistent {base}\n")
    term.expect(prompt(4))
    client.create(f"{base}/a/deep", b"")
    client.create(f"{base}/c", b"")
    client.set(base, b"x")
    term.expect(event("NodeChildrenChanged", base))
    term.expect(event("NodeDataChanged", base))
    term.send("addWatch -m sometimes /x\n")
    term.expect(r"UsageError: unknown mode 'sometimes'; usage: addWatch \[-m mode\] path")
    term.send("quit\n")
    assert term.wait() == 0
    assert f"type:NodeCreated path:{base}/a/deep" not in term.output


def test_removewatches(backend, client, base):
    script = "\n".join([
        f"removewatches {base}",
        f"get -w {base}",
        f"removewatches {base} -c",
        f"removewatches {base} -d",
        f"ls -w {base}",
        f"stat -w {base}/later",
        f"removewatches {base} -a",
        f"removewatches {base} -l",
        f"removewatches {base}/later",
        f"removewatches {base}",
    ]) + "\n"
    status, out, err = run(backend.hosts, script=script)
    assert status == 0
    assert out == "\n[]\n"                                   # get's empty data, ls
    assert err.splitlines() == [
        f"NoWatcherError: No such watcher: {base}",
        f"NoWatcherError: No such watcher: {base}",
        f"NoNodeError: Node does not exist: {base}/later",
        "UsageError: removewatches -l is not offered: nk's client removes watches"
        " only through the server, so it needs a connection",
        f"NoWatcherError: No such watcher: {base}",
    ]


# -- the shell's own side ------------------------------------------------------------


@NOOKEEPER_ONLY
def test_help_lists_the_newer_commands(backend):
    document = json.loads(ok(run(backend.hosts, "--json", "help")))
    names = {usage.split()[0] for usage in document["commands"]}
    assert {"addWatch", "removewatches", "getEphemerals", "getAllChildrenNumber", "whoami",
            "config", "setquota", "listquota", "delquota"} <= names
    assert "create [-e] [-s] [-c] [-t ttl] path [data] [acl]" in document["commands"]


@pytest.mark.skipif(missing_zookeeper() is not None or shutil.which("java") is None,
                    reason="java and ZooKeeper's jars are needed")
def test_config_client_string_is_javas(tmp_path):
    """config -c against ZooKeeper's own ConfigUtils.getClientConfigStr, with enough
    members that Java's hash order (and its resizes) decide the order printed."""
    configs = []
    for size in (2, 3, 5, 12, 13, 30):
        lines = [f"server.{sid}=10.0.0.{sid}:2888:3888:participant;10.1.0.{sid}:{2000 + sid}"
                 for sid in range(size, 0, -1)]
        configs.append("\n".join(lines + ["version=1000000a3"]))
    configs.append("server.1=a:1:2;3\nserver.2=b:1:2\nserver.3=c:1\n"
                   "server.4=[::1]:1:2:observer;[::1]:99\nserver.5=d:1:2:leader;4\nversion=7")
    configs.append("")
    source = tmp_path / "ClientConfig.java"
    source.write_text(
        "public class ClientConfig { public static void main(String[] args) throws Exception {\n"
        "  String all = new String(System.in.readAllBytes(), \"UTF-8\");\n"
        "  for (String one : all.split(\"\\n---\\n\", -1))\n"
        "    System.out.println(org.apache.zookeeper.server.util.ConfigUtils"
        ".getClientConfigStr(one));\n"
        "} }\n")
    java = subprocess.run(
        [java_binary(), "-cp", ":".join(zookeeper_classpath()), str(source)],
        input="\n---\n".join(configs), capture_output=True, text=True, timeout=60)
    assert java.returncode == 0, java.stderr
    assert java.stdout.splitlines() == [client_config_string(text) for text in configs]
