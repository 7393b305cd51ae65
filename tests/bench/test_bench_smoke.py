"""make bench in its tiny profile: both systems if ZooKeeper is installed,
every section, and a JSON file with every row, its figures and its ratio."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from tests.zookeeper_harness import zookeeper_available  # noqa: E402

KAZOO_OPS = ("create", "set", "get", "exists", "get_children(1000)", "mix 90% get/10% set")


def run_bench(*argv, timeout, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.mark.timeout(90)
def test_tiny_run_writes_every_row_with_ratios(tmp_path):
    out = tmp_path / "bench.json"
    run = run_bench("--tiny", "--out", str(out), timeout=80, cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())
    rows = {row["id"]: row for row in document["rows"]}
    both = zookeeper_available()

    expected = [f"kazoo {op} | 1 conn x {depth} in flight" for op in KAZOO_OPS for depth in (1, 100)]
    expected += ["watch notification latency (set on one server, watch on another)",
                 "failover: kill -9 leader -> survivor says leader",
                 "failover: kill -9 leader -> first write acknowledged"]
    expected += [row for row in rows if row.startswith("kazoo session connect+close")][:1]
    if not loadgen.missing_load_gen():
        expected += [f"load_gen {phase} | 1 conn x 100 in flight" for phase in ("create", "set", "get")]
    assert len(expected) == len(set(expected)) and any("session" in r for r in expected)

    for row_id in expected:
        row = rows[row_id]
        assert row["nookeeper"]["value"] > 0, row
        if row["group"] in ("kazoo", "watch"):
            assert row["nookeeper"]["p50_ms"] <= row["nookeeper"]["p99_ms"], row
        if both:
            assert row["zookeeper"]["value"] > 0, row
            assert row["ratio"] == pytest.approx(row["nookeeper"]["value"] / row["zookeeper"]["value"])
            assert row["met"], row
        else:
            assert row["zookeeper"] is None and row["ratio"] is None
    for row_id in expected[:12]:
        assert rows[row_id]["nookeeper"]["errors"] == 0, rows[row_id]
    assert "nk/zk" in run.stdout and expected[0] in run.stdout
    assert not Path(document["workdir"]).exists()
    for system in document["systems"].values():
        for pid in system["pids"]:
            assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), f"server {pid} still runs"


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.timeout(90)
def test_big_rows_on_a_small_tree(tmp_path):
    """--big's code path with 2,000 znodes instead of 1,000,000."""
    out = tmp_path / "big.json"
    run = run_bench("--tiny", "--big", "--sections", "big", "--big-count", "2000", "--out", str(out),
                    timeout=80, cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())
    rows = {row["id"]: row for row in document["rows"]}
    systems = ("nookeeper", "zookeeper") if zookeeper_available() else ("nookeeper",)
    label = "2,000 znodes x 100 B"
    for row_id in (f"{label}: RSS per server, filled (MiB, largest of 3)",
                   f"{label}: RSS per server, after restart (MiB, largest of 3)",
                   f"{label}: restart, kill -9 all -> all serve, last znode read (s)"):
        for system in systems:
            assert rows[row_id][system]["value"] > 0, rows[row_id]
    for system in systems:
        big = document["systems"][system]["big"]
        assert big["created"] == 2000 and big["fill_errors"] == 0, big
    assert not any(row_id.startswith("kazoo") for row_id in rows)


@pytest.mark.parametrize("argv, message", [
    (["--systems", "etcd"], "unknown system(s): etcd"),
    (["--sections", "kazoo,speed"], "unknown section(s): speed"),
    (["--big-count", "-5"], "must be above 0"),
    (["--time-limit", "soon"], "not a number"),
])
def test_bad_arguments_are_named_without_a_traceback(argv, message):
    run = run_bench(*argv, timeout=30)
    assert run.returncode != 0
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr
