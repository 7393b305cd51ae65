"""zkCli.sh 3.8 prints the same for nookeeper as for Apache ZooKeeper 3.8:
containers and TTL nodes (create -c / -t, their stat, their errors)."""

import os
import re
import shutil
import subprocess

import pytest

from zookeeper_harness import ZooKeeperProcess, missing_zookeeper

ZKCLI = os.environ.get("NK_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(ZKCLI) and shutil.which("java")) or bool(missing_zookeeper()),
    reason="zkCli.sh, java or ZooKeeper missing (make test installs Debian's zookeeper package)",
)

# Lines whose values differ between any two servers: times, zxids, the session.
_VARYING = re.compile(r"^(cZxid|ctime|mZxid|mtime|pZxid) = ")


def session_lines(hosts, *commands):
    """What zkCli.sh prints for the commands, without its banner, log and prompts."""
    script = "\n".join(commands + ("quit",)) + "\n"
    result = subprocess.run([ZKCLI, "-server", hosts], input=script, capture_output=True,
                            text=True, timeout=60)
    lines = []
    for line in (result.stdout + result.stderr).splitlines():
        line = re.sub(r"^\[zk: [^\]]*\] ", "", line).strip()
        if (not line or _VARYING.match(line) or "WATCHER::" in line or "WatchedEvent" in line
                or re.match(r"^\d{4}-\d\d-\d\d", line) or "JLine" in line
                or line.startswith(("Connecting to", "Welcome to", "quit"))):
            continue
        lines.append(line)
    return lines


def test_create_container_and_ttl_print_the_same(server_factory, tmp_path):
    commands = (
        "create -c /c", "create /c/x", "stat /c",
        "create -t 60000 /t data", "stat /t",
        "create -t 60000 -s /ts- d", "ls /",
        "create -t 0 /bad", "create -t 60000 -e /bad", "create -c -s /bad",
        "create -t notanumber /bad",
    )
    server = server_factory()
    ours = session_lines(server.hosts, *commands)
    assert "Created /c" in ours and "Created /t" in ours
    assert "Created /ts-0000000002" in ours
    zk = ZooKeeperProcess(tmp_path / "zk", tick_ms=200,
                          jvm_flags=("-Dzookeeper.extendedTypesEnabled=true",))
    try:
        zk.start()
        theirs = session_lines(zk.hosts, *commands)
    finally:
        zk.kill()
    assert ours == theirs
