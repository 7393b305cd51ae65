"""nk-dump --backup of a server that kazoo keeps writing to, and --restore of the
backup into a new three-member ensemble and of a --tree-at JSON export into a
new server: each serves the source's tree as it was at the backup's zxid."""

import io
import json
import shutil
import subprocess
import sys
import threading
from contextlib import redirect_stderr, redirect_stdout

import pytest
from kazoo.client import KazooClient

from harness import ROOT, Ensemble, ServerProcess, wait_for
from nookeeper.client import KeeperClient
from nookeeper.client.security import make_acl, make_digest_acl
from nookeeper.tools import dump
from nookeeper.tools.dump import tree_at
from nookeeper.tools.dump_source import LogDatabase
from nookeeper.zab.zxid import epoch_of

NK_DUMP = ROOT / "bin" / "nk-dump"
TIMEOUTS = {"tick_ms": 200, "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}
STAT_KEYS = ("czxid", "mzxid", "pzxid", "ctime", "mtime", "version", "cversion", "aversion",
             "ephemeralOwner", "dataLength", "numChildren")
# Set from each server's own config at start, never from the log (docs/operations.md).
CONFIG_NODE = "/zookeeper/config"


def run_dump(*args, stdout=subprocess.PIPE):
    return subprocess.run([sys.executable, str(NK_DUMP), *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def dump_main(*args):
    """nk-dump in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = dump.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


class Writer(threading.Thread):
    """kazoo creating, setting and deleting under /w until stopped."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.zk = KazooClient(hosts=hosts, timeout=30)
        self.zk.start(timeout=15)
        self.zk.ensure_path("/w")
        self.done = 0
        self.last_zxid = 0
        self.errors = []
        self.stopping = threading.Event()

    def run(self):
        batch = 0
        try:
            while not self.stopping.is_set():
                results = [self.zk.create_async(f"/w/n{batch:04d}-{i}", b"v" * i) for i in range(8)]
                results.append(self.zk.set_async("/w", str(batch).encode()))
                if batch >= 3:
                    results.append(self.zk.delete_async(f"/w/n{batch - 3:04d}-0"))
                for result in results:
                    result.get(timeout=30)
                self.last_zxid = self.zk.exists("/w").mzxid
                self.done += len(results)
                batch += 1
        except Exception as e:  # noqa: BLE001 -- the test reports it
            self.errors.append(e)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


def walk(zk, root="/"):
    """{path: (data, stat basics, acl)} of the whole tree as one server sees it."""
    seen, stack = {}, [root]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        acl = sorted(_acl(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls(path)[0])
        seen[path] = (data, {key: getattr(stat, key) for key in STAT_KEYS}, acl)
        stack.extend(f"{path.rstrip('/')}/{child}" for child in zk.get_children(path))
    seen.pop(CONFIG_NODE, None)
    return seen


def _acl(perms, scheme, ident):
    """getACL answers a digest id with its user only (ZooKeeper 3.8 hides the hash)."""
    return perms, scheme, ident.split(":")[0] if scheme == "digest" else ident


def expected_tree(tree):
    """walk()'s form of a DataTree rebuilt by nk-dump."""
    seen = {}
    for path in tree.paths():
        node = tree.node(path)
        stat = node.stat()
        seen[path] = (node.data, {key: stat[key] for key in STAT_KEYS},
                      sorted(_acl(a.perms, a.scheme, a.id) for a in node.acl))
    seen.pop(CONFIG_NODE, None)
    return seen


class Quiet:
    """nk-dump's Output for in-process rebuilds: warnings fail the test."""

    as_json = False

    def warn(self, text):
        raise AssertionError(f"unexpected nk-dump warning: {text}")


def rebuild(data_dir, zxid):
    with LogDatabase(data_dir) as db:
        return tree_at(db, zxid, Quiet())[0]


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory):
    """A backup taken while kazoo wrote: (source data dir, backup file, its zxid,
    the source's tree at that zxid, the path of the writer's ephemeral)."""
    work = tmp_path_factory.mktemp("backup")
    server = ServerProcess(work / "source", snapshot_every_txns=150, snapshot_retain_count=10,
                           **TIMEOUTS)
    writer = None
    try:
        server.start()
        with KeeperClient(server.hosts) as zk:
            zk.create("/app", b"config v1")
            zk.create("/app/locked", b"secret", acl=[
                make_digest_acl("admin", "pw", all=True), make_acl("world", "anyone", read=True)])
            zk.create("/app/jobs", b"", container=True)
            zk.create("/app/jobs/job-", b"j", sequence=True)
            zk.create("/app/lease", b"l", ttl=3600_000)
            zk.create("/app/empty", None)
        writer = Writer(server.hosts)
        writer.zk.create("/app/owner", b"me", ephemeral=True)
        writer.start()
        wait_for(lambda: writer.errors or writer.done > 400, timeout=30, message="writes")
        target = work / "backup.db"
        before = writer.done
        result = run_dump(server.workdir / "data", "--backup", target, "--json")
        after = writer.done
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        wait_for(lambda: writer.errors or writer.last_zxid > info["zxid_int"], timeout=10,
                 message="writes after the backup")
        writer.stop()
        assert not writer.errors, writer.errors
        assert after > before, "the writer made no progress while the backup was taken"
        assert info["backup"] == str(target) and info["snapshots"], info
        zxid = info["zxid_int"]
        yield work, server.workdir / "data", target, zxid, rebuild(server.workdir / "data", zxid)
    finally:
        if writer is not None:
            writer.stopping.set()
            writer.join(timeout=30)
            writer.zk.stop()
            writer.zk.close()
        server.kill()


def test_backup_restores_into_a_new_ensemble(backed_up, tmp_path):
    work, source_dir, backup_file, zxid, source_tree = backed_up
    assert "/app/owner" in source_tree.paths() and source_tree.last_zxid == zxid
    expected = expected_tree(source_tree)
    ensemble = Ensemble(tmp_path / "restored", 3, container_check_interval_ms=600_000, **TIMEOUTS)
    try:
        for server in ensemble.servers.values():
            result = run_dump(backup_file, "--restore", server.workdir / "data")
            assert result.returncode == 0, result.stderr
            assert f"restored the tree at zxid {zxid >> 32}:{zxid & 0xFFFFFFFF} " in result.stdout
        ensemble.start()
        for server in ensemble.servers.values():
            zk = KazooClient(hosts=server.hosts, timeout=10)
            zk.start(timeout=15)
            try:
                seen = walk(zk)
            finally:
                zk.stop()
                zk.close()
            assert seen.keys() == expected.keys(), server.hosts
            assert seen == expected, server.hosts
        # The new ensemble goes on after the restored history, in a later epoch.
        zk = KazooClient(hosts=ensemble.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            zk.create("/after-restore", b"new")
            stat = zk.exists("/after-restore")
            assert stat.czxid > zxid and epoch_of(stat.czxid) > epoch_of(zxid)
        finally:
            zk.stop()
            zk.close()
    finally:
        ensemble.kill_all()


def test_restore_from_a_tree_at_json_export(backed_up, tmp_path):
    work, source_dir, backup_file, zxid, source_tree = backed_up
    export = tmp_path / "tree.json"
    with open(export, "w") as out:
        result = run_dump(source_dir, "--tree-at", zxid, "--json", stdout=out)
    assert result.returncode == 0, result.stderr
    server = ServerProcess(tmp_path / "from-json", **TIMEOUTS)
    status, out, err = dump_main(export, "--restore", server.workdir / "data", "--json")
    assert status == 0, err
    info = json.loads(out)
    assert info["ephemerals_skipped"] == ["/app/owner"] and "/app/owner" in err
    # No txn after the highest zxid in the exported stats changed those nodes.
    highest = max(max(n.czxid, n.mzxid, n.pzxid) for _, n in source_tree.nodes())
    assert info["zxid_int"] == highest <= zxid
    # The ephemeral is gone as if its session had closed: its parent has one
    # child fewer and one more change to its children.
    expected = expected_tree(source_tree)
    del expected["/app/owner"]
    expected["/app"][1]["numChildren"] -= 1
    expected["/app"][1]["cversion"] += 1
    restored = rebuild(server.workdir / "data", info["zxid_int"])
    assert restored.node("/app/jobs").is_container and restored.node("/app/lease").ttl == 3600_000
    try:
        server.start()
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            assert walk(zk) == expected
        finally:
            zk.stop()
            zk.close()
    finally:
        server.kill()


def test_point_in_time_restore_and_refusals(backed_up, tmp_path):
    work, source_dir, backup_file, zxid, source_tree = backed_up
    earlier = zxid - 100
    status, out, err = dump_main(backup_file, "--restore", tmp_path / "earlier", "--to", earlier)
    assert status == 0, err
    assert expected_tree(rebuild(tmp_path / "earlier", earlier)) == \
        expected_tree(rebuild(source_dir, earlier))
    # Nothing is overwritten, and nothing is left half done.
    status, out, err = dump_main(source_dir, "--backup", backup_file)
    assert status == 2 and "already exists" in err
    status, out, err = dump_main(backup_file, "--restore", tmp_path / "earlier")
    assert status == 2 and "not empty" in err
    status, out, err = dump_main(backup_file, "--restore", tmp_path / "later", "--to", zxid + 1)
    assert status == 2 and "reaches zxid" in err and not (tmp_path / "later").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"path": "/a", "data_base64": null, "acl": [], "stat": {}}\n')
    status, out, err = dump_main(bad, "--restore", tmp_path / "bad")
    assert status == 2 and "line 1" in err and not list((tmp_path / "bad").glob("*"))
    status, out, err = dump_main(backup_file, "--restore", tmp_path / "x", "--from", "1:1")
    assert status == 2 and "--from does not apply to --restore" in err
    # A member is moved by copying its file: the backup is a working data dir as it is.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(backup_file, moved / "nookeeper.db")
    status, out, err = dump_main(moved, "--verify")
    assert status == 0, out + err
