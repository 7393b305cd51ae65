"""Apache ZooKeeper's own zkCli.sh (Debian package `zookeeper`) against nookeeper."""

import os
import shutil
import subprocess

import pytest

ZKCLI = os.environ.get("NK_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(ZKCLI) and shutil.which("java")),
    reason="zkCli.sh or java missing (make test installs Debian's zookeeper package)",
)


def zkcli(server, *commands, timeout=60):
    """Run one interactive zkCli session, feeding it commands on stdin."""
    script = "\n".join(commands + ("quit",)) + "\n"
    result = subprocess.run(
        [ZKCLI, "-server", server.hosts], input=script, capture_output=True,
        text=True, timeout=timeout,
    )
    return result.stdout + result.stderr


def test_zkcli_create_list_get_set_delete(server):
    out = zkcli(
        server,
        "create /cli hello",
        "create /cli/child world",
        "create -s /cli/seq- x",
        "create -e /cli/eph e",
        "ls /cli",
        "get /cli/child",
        "set /cli/child again",
        "get -s /cli/child",
        "stat /cli",
        "getAcl /cli",
        "delete /cli/child",
        "ls /cli",
        "deleteall /cli",
        "ls /",
    )
    assert "Created /cli" in out
    assert "Created /cli/seq-0000000001" in out
    assert "[child, eph, seq-0000000001]" in out or "[child, seq-0000000001, eph]" in out
    assert "world" in out and "again" in out
    assert "dataVersion = 1" in out
    assert "numChildren = 3" in out
    assert "'world,'anyone" in out
    assert "Exception" not in out, out
    assert "[zookeeper]" in out


def test_zkcli_errors_are_reported_like_zookeeper(server):
    out = zkcli(server, "get /nope", "create /dup", "create /dup", "delete /nope")
    assert "Node does not exist: /nope" in out
    assert "Node already exists: /dup" in out


def test_zkcli_watch_and_auth(server):
    out = zkcli(
        server,
        "create /w 1",
        "get -w /w",
        "set /w 2",
        "addauth digest bob:pw",
        "create /secret s digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa",
        "get /secret",
        "whoami",
    )
    assert "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w" in out
    assert "Created /secret" in out
    assert "digest" in out
