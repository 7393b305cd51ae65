#!/usr/bin/env python3
"""make bench: nookeeper and Apache ZooKeeper, one after the other, same workloads.

Each system runs as a 3-server ensemble on 127.0.0.1 with fresh data dirs
in a temporary directory and free ports, fsync on (ZooKeeper forceSync=yes;
nookeeper always syncs its log), tickTime 2000 ms, initLimit 10, syncLimit 5
for both. The kazoo rows come from several worker processes
(bench/workloads.py); the load_gen rows from the C client's load generator
(bench/loadgen.py); --big adds the 1,000,000-znode memory and restart row
(bench/memory.py). Prints one table and writes it as JSON.
"""

import argparse
import functools
import json
import logging
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError  # noqa: E402

import loadgen  # noqa: E402
import memory  # noqa: E402
from workerpool import WorkerPool, latency_summary, merge  # noqa: E402
from tests.harness import Ensemble  # noqa: E402
from tests.zookeeper_harness import ZooKeeperEnsemble, missing_zookeeper, mode_or_none  # noqa: E402
from workloads import CHILDREN_PATH, CREATE_PARENT, DATA_PATH, PAYLOAD  # noqa: E402

RESULTS = BENCH / "results" / "latest.json"
SYSTEMS = ("nookeeper", "zookeeper")
OPS = ("create", "set", "get", "exists", "children", "mix")
OP_TITLES = {"create": "create", "set": "set", "get": "get", "exists": "exists",
             "children": "get_children(1000)", "mix": "mix 90% get/10% set"}
CHILD_COUNT = 1000
TOTAL_INFLIGHT = 100            # "about 100 in flight", split over the connections
WATCH_PATH = "/bench/watch"
ZAB_SETTINGS = {"tick_ms": 2000, "init_limit": 10, "sync_limit": 5}

# ZooKeeper as its own scripts run it: full JIT (the test harness stops at C1),
# the JVM's default collector (G1; the harness picks Serial), zkEnv's 1000 MB
# heap and the default 64 MB log preallocation (the harness uses 4 MB).
ZK_JVM_FLAGS = ("-XX:TieredStopAtLevel=4", "-XX:-UseSerialGC")
ZK_SETTINGS = {"heap": "1000m", "jvm_flags": ZK_JVM_FLAGS,
               "extra_config": {"preAllocSize": 65536}}

PROFILES = {
    # seconds per kazoo row = warmup + duration
    "tiny": {"ops": OPS, "conns": (1,), "modes": ("one", "many"), "warmup": 0.05,
             "duration": 0.2, "prewarm": 0.2, "workers": 2, "watch": 10, "sessions": 0.3,
             "loadgen": ((1, 0.5),), "loadgen_children": 100, "failovers": 1,
             "time_limit": 300},
    "short": {"ops": OPS, "conns": (1, 4, 16), "modes": ("one", "many"), "warmup": 0.15,
              "duration": 0.6, "prewarm": 2.0, "workers": 4, "watch": 100, "sessions": 1.5,
              "loadgen": ((1, 2.0), (4, 2.0)), "loadgen_children": 500, "failovers": 1,
              "time_limit": 600},
    "long": {"ops": OPS, "conns": (1, 4, 16), "modes": ("one", "many"), "warmup": 1.0,
             "duration": 5.0, "prewarm": 10.0, "workers": 4, "watch": 1000, "sessions": 5.0,
             "loadgen": ((1, 15.0), (4, 15.0), (16, 15.0)), "loadgen_children": 1000,
             "failovers": 3, "time_limit": 3600},
}
SECTIONS = ("kazoo", "watch", "sessions", "loadgen", "failover", "big")


class BenchTimeout(Exception):
    pass


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- systems

def make_ensemble(system, workdir, big=False):
    if system == "nookeeper":
        return Ensemble(workdir, 3, log_level="INFO", **ZAB_SETTINGS)
    settings = dict(ZK_SETTINGS)
    if big:
        settings["heap"] = memory.ZK_BIG_HEAP
    return ZooKeeperEnsemble(workdir, 3, tick_ms=ZAB_SETTINGS["tick_ms"],
                             init_limit=ZAB_SETTINGS["init_limit"],
                             sync_limit=ZAB_SETTINGS["sync_limit"], **settings)


def started(system, workdir, big=False):
    """A serving ensemble and its servers in connection order; on any failure
    its processes are gone (nookeeper's Ensemble.start leaves them running)."""
    ensemble = make_ensemble(system, workdir, big)
    try:
        ensemble.start(60.0)
        return ensemble, server_order(ensemble)
    except BaseException:
        ensemble.kill_all()
        raise


def server_order(ensemble):
    """Followers first (by client port), the leader last: connection g goes to
    order[g % 3], so one connection is on a follower in both systems."""
    leader = ensemble.leader()
    followers = sorted((s for s in ensemble.servers.values() if s is not leader),
                       key=lambda s: s.port)
    return followers + [leader]


def version_of(server):
    try:
        first = server.command("srvr").splitlines()[0]
        return first.split(":", 1)[1].strip()
    except (OSError, IndexError):
        return None


# ---------------------------------------------------------------- measurements

def prepare_tree(hosts, conns):
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=20)
    try:
        for path in ("/bench", "/bench/data", CREATE_PARENT, CHILDREN_PATH):
            client.create(path, b"")
        client.create(WATCH_PATH, PAYLOAD)
        for g in range(conns):
            client.create(DATA_PATH.format(g=g), PAYLOAD)
        pending = [client.create_async(f"{CHILDREN_PATH}/child-{i:04d}", PAYLOAD)
                   for i in range(CHILD_COUNT)]
        for result in pending:
            result.get(timeout=60)
    finally:
        client.stop()
        client.close()


def inflight_per_conn(mode, conns):
    return 1 if mode == "one" else max(1, round(TOTAL_INFLIGHT / conns))


def kazoo_row_id(op, mode, conns):
    depth = inflight_per_conn(mode, conns)
    return f"kazoo {OP_TITLES[op]} | {conns} conn x {depth} in flight"


def measure_kazoo(pool, profile, results):
    for op in profile["ops"]:
        for mode in profile["modes"]:
            for conns in profile["conns"]:
                row = kazoo_row_id(op, mode, conns)
                measured = pool.run(op, conns, inflight_per_conn(mode, conns), profile["warmup"],
                                    profile["duration"], tag=f"{op}-{mode}-{conns}")
                results[row] = {"group": "kazoo", "metric": "ops/s", **measured}
                log(f"  {row}: {measured['value']:.0f} ops/s, p50 {two_decimals(measured['p50_ms'])} ms, "
                    f"p99 {two_decimals(measured['p99_ms'])} ms" +
                    (f", {measured['errors']} errors" if measured["errors"] else ""))


def measure_watch(pool, profile, results, conns):
    """Watcher and writer: two connections of one worker on different servers."""
    worker = pool.owner(0)
    writer = next(g for g in range(1, conns) if pool.owner(g) == worker and g % 3 != 0)
    answer = pool.ask({worker: {"cmd": "watch", "watcher": 0, "writer": writer,
                                "count": profile["watch"], "path": WATCH_PATH}}, timeout=120)[worker]
    summary = latency_summary(answer["lat_us"])
    write = latency_summary(answer["write_lat_us"])
    results["watch notification latency (set on one server, watch on another)"] = {
        "group": "watch", "metric": "ms p50", "value": summary["p50_ms"], **summary,
        "count": answer["count"], "errors": answer["errors"],
        "write_p50_ms": write["p50_ms"], "write_p99_ms": write["p99_ms"]}
    log(f"  watch: p50 {two_decimals(summary['p50_ms'])} ms, p99 {two_decimals(summary['p99_ms'])} ms "
        f"(the set itself: p50 {two_decimals(write['p50_ms'])} ms)")


def measure_sessions(pool, order, profile, results):
    start = time.monotonic() + 0.05
    warmup = min(0.3, profile["sessions"] / 4)
    end = start + warmup + profile["sessions"]
    answers = pool.ask({i: {"cmd": "sessions", "hosts": order[i % len(order)].hosts,
                            "start": start, "measure": start + warmup, "end": end}
                        for i in range(len(pool.procs))}, timeout=profile["sessions"] + 60)
    measured = merge(answers.values(), profile["sessions"])
    procs = len(pool.procs)
    row = f"kazoo session connect+close | {procs} process{'es' if procs > 1 else ''}"
    results[row] = {"group": "sessions", "metric": "sessions/s", **measured}
    log(f"  {row}: {measured['value']:.1f}/s, p50 {two_decimals(measured['p50_ms'])} ms")


def measure_loadgen(order, profile, results, workdir, system):
    for procs, seconds in profile["loadgen"]:
        host_lists = []
        for i in range(procs):
            first = i % len(order)
            rotated = order[first:] + order[:first]
            host_lists.append(",".join(s.hosts for s in rotated))
        measured = loadgen.run_load_gen(host_lists, profile["loadgen_children"], seconds,
                                        workdir, tag=f"{system}-{procs}")
        depth = profile["loadgen_children"]
        for phase in (*loadgen.PHASES, "all"):
            row = f"load_gen {phase} | {procs} conn x {depth} in flight"
            results[row] = {"group": "loadgen", "metric": "ops/s", "value": measured[phase],
                            "phases": measured["phases"], "seconds": measured["seconds"]}
        log(f"  load_gen x{procs}: " + ", ".join(
            f"{phase} {measured[phase]:.0f}/s" if measured[phase] else f"{phase} -"
            for phase in (*loadgen.PHASES, "all")) +
            f" ({measured['phases']} phases in {measured['seconds']:.1f} s)")


def one_failover(ensemble, tag):
    """kill -9 the leader; seconds until a survivor says Mode: leader, and
    until a create sent by a client already connected to a survivor is
    acknowledged (the client reconnects every 10 ms, keeping its session)."""
    leader = ensemble.leader()
    survivors = [s for s in ensemble.servers.values() if s is not leader]
    client = KazooClient(hosts=survivors[0].hosts, timeout=10, randomize_hosts=False,
                         connection_retry={"max_tries": -1, "delay": 0.01, "backoff": 1,
                                           "max_jitter": 0.0, "max_delay": 0.01})
    client.start(timeout=10)
    client.create(f"/bench/failover-{tag}-before", b"")
    outcome = {}

    def write_until_acknowledged():
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            try:
                client.create_async(f"/bench/failover-{tag}-{attempt}", b"").get(timeout=5)
            except NodeExistsError:
                pass
            except Exception:
                time.sleep(0.005)
                continue
            outcome["written"] = time.monotonic() - killed_at
            return

    killed_at = time.monotonic()
    deadline = killed_at + 60
    leader.proc.send_signal(signal.SIGKILL)
    writer = threading.Thread(target=write_until_acknowledged, daemon=True)
    writer.start()
    leader.proc.wait(timeout=10)
    elected = None
    try:
        while elected is None and time.monotonic() < deadline:
            if any(mode_or_none(s.port, timeout=0.2) == "leader" for s in survivors):
                elected = time.monotonic() - killed_at
            else:
                time.sleep(0.005)
        writer.join(max(0.0, deadline - time.monotonic()))
    finally:
        client.stop()
        client.close()
    return leader, elected, outcome.get("written")


def measure_failover(ensemble, profile, results):
    elections, writes = [], []
    for rep in range(profile["failovers"]):
        killed, elected, written = one_failover(ensemble, rep)
        elections.append(elected)
        writes.append(written)
        log(f"  failover {rep + 1}: new leader after {two_decimals(elected)} s, "
            f"first write after {two_decimals(written)} s")
        if rep + 1 < profile["failovers"]:
            killed.launch()
            killed.wait_serving(60)
    for row, values in (("failover: kill -9 leader -> survivor says leader", elections),
                        ("failover: kill -9 leader -> first write acknowledged", writes)):
        known = [v for v in values if v is not None]
        results[row] = {"group": "failover", "metric": "s", "runs": values,
                        "value": sorted(known)[len(known) // 2] if known else None}


def bench_system(system, profile, sections, workdir):
    """Every row for one system; the ensemble is gone when this returns."""
    results = {}
    meta = {}
    max_conns = max(profile["conns"])
    conns = max(max_conns, 2)   # the watch row needs a watcher and a writer
    began = time.monotonic()
    ensemble, order = started(system, workdir / "servers")
    meta["start_s"] = time.monotonic() - began
    meta["version"] = version_of(order[0])
    meta["leader_port"] = order[-1].port
    meta["pids"] = [s.proc.pid for s in ensemble.servers.values()]
    log(f"{system}: 3 servers serving after {meta['start_s']:.1f} s ({meta['version']})")
    pool = None
    try:
        prepare_tree(order[0].hosts, conns)
        if {"kazoo", "watch", "sessions"} & sections:
            pool = WorkerPool(min(profile["workers"], max_conns), workdir)
            pool.connect(order, conns)
            pool.run("mix", max_conns, inflight_per_conn("many", max_conns), 0.0,
                     profile["prewarm"], tag="prewarm")
            if "kazoo" in sections:
                measure_kazoo(pool, profile, results)
            if "watch" in sections:
                measure_watch(pool, profile, results, conns)
            if "sessions" in sections:
                measure_sessions(pool, order, profile, results)
            pool.close()
            pool = None
        if "loadgen" in sections:
            missing = loadgen.missing_load_gen()
            if missing:
                log(f"  load_gen rows skipped: {missing}")
            else:
                measure_loadgen(order, profile, results, workdir, system)
        meta["rss_mib_after_run"] = [memory.rss_mib(s.proc.pid) for s in ensemble.servers.values()]
        if "failover" in sections:
            measure_failover(ensemble, profile, results)
    finally:
        if pool is not None:
            pool.close()
        ensemble.kill_all()
    return results, meta


# ---------------------------------------------------------------- the table

TARGETS = {
    # group: (ratio of the main figure, higher is better?, p99 ratio checked?)
    "kazoo": (1.0, True, True),
    "sessions": (1.0, True, False),
    "loadgen": (0.7, True, False),
    "watch": (None, False, True),
    "failover": (1.0, False, False),
    "memory": (1.0, False, False),
    "info": (None, True, False),
}


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_rows(per_system):
    ids = dict.fromkeys(row_id for results in per_system.values() for row_id in results)
    rows = []
    for row_id in ids:
        nk = per_system.get("nookeeper", {}).get(row_id)
        zk = per_system.get("zookeeper", {}).get(row_id)
        sample = nk or zk
        group = sample["group"]
        main_target, higher_better, p99_checked = TARGETS[group]
        row = {"id": row_id, "group": group, "metric": sample["metric"],
               "nookeeper": nk, "zookeeper": zk,
               "ratio": ratio(nk and nk["value"], zk and zk["value"]),
               "p99_ratio": ratio(nk and nk.get("p99_ms"), zk and zk.get("p99_ms")),
               "targets": {}, "met": {}}
        if main_target is not None and row["ratio"] is not None:
            if higher_better:
                row["targets"]["ratio_at_least"] = main_target
                row["met"]["ratio"] = row["ratio"] >= main_target
            else:
                row["targets"]["ratio_at_most"] = main_target
                row["met"]["ratio"] = row["ratio"] <= main_target
        if p99_checked and row["p99_ratio"] is not None:
            row["targets"]["p99_ratio_at_most"] = 1.0
            row["met"]["p99"] = row["p99_ratio"] <= 1.0
        rows.append(row)
    return rows


def two_decimals(value):
    """A latency, duration or ratio for the log and the table; "-" if not measured."""
    return "-" if value is None else f"{value:.2f}"


def fmt_value(value):
    """A main figure: whole numbers from 100 up, where decimals are noise."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def render_table(rows):
    header = ("row", "metric", "nookeeper", "ZooKeeper", "nk/zk",
              "p50 nk", "p50 zk", "p99 nk", "p99 zk", "p99 nk/zk", "target")
    lines = []
    for row in rows:
        nk, zk = row["nookeeper"] or {}, row["zookeeper"] or {}
        verdicts = []
        for key, name in (("ratio", "main"), ("p99", "p99")):
            if key in row["met"]:
                verdicts.append(f"{name} {'ok' if row['met'][key] else 'MISS'}")
        lines.append((
            row["id"], row["metric"], fmt_value(nk.get("value")),
            fmt_value(zk.get("value")), two_decimals(row["ratio"]),
            two_decimals(nk.get("p50_ms")), two_decimals(zk.get("p50_ms")),
            two_decimals(nk.get("p99_ms")), two_decimals(zk.get("p99_ms")),
            two_decimals(row["p99_ratio"]), ", ".join(verdicts)))
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]

    def render(line):
        cells = [str(cell).ljust(widths[0]) if i == 0 else str(cell).rjust(widths[i])
                 for i, cell in enumerate(line)]
        return "  ".join(cells[:-1]) + "  " + str(line[-1])

    out = [render(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out.extend(render(line) for line in lines)
    return "\n".join(out)


# ---------------------------------------------------------------- main

def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    return parse


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--long", action="store_true", help="5 s per row instead of 0.6 s (about 12 minutes)")
    length.add_argument("--tiny", action="store_true", help="a few seconds per system, for the smoke test")
    parser.add_argument("--big", action="store_true",
                        help=f"also the {memory.BIG_COUNT:,}-znode memory and restart measurement")
    parser.add_argument("--big-count", type=positive(int), default=memory.BIG_COUNT,
                        help=argparse.SUPPRESS)
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated: nookeeper,zookeeper (default both)")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--time-limit", type=positive(float), default=None,
                        help="abort after this many seconds (default: 600, --long 3600, --big +7200)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # kazoo's reconnect warnings (expected during failover) go nowhere.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    profile_name = "long" if args.long else "tiny" if args.tiny else "short"
    profile = PROFILES[profile_name]
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        sys.exit(f"unknown system(s): {', '.join(sorted(unknown))}")
    sections = set(args.sections.split(",")) if args.sections else set(SECTIONS) - {"big"}
    if args.big:
        sections.add("big")
    unknown = sections - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown section(s): {', '.join(sorted(unknown))}")
    notes = []
    if "zookeeper" in systems and (missing := missing_zookeeper()):
        notes.append(f"ZooKeeper not run: {missing}")
        systems.remove("zookeeper")
    if "loadgen" in sections and (missing := loadgen.missing_load_gen()):
        notes.append(f"load_gen rows not run: {missing}")
    for note in notes:
        log(note)

    time_limit = args.time_limit or profile["time_limit"] + (7200 if "big" in sections else 0)

    def on_alarm(signum, frame):
        raise BenchTimeout(f"the bench ran longer than {time_limit:.0f} s")

    def on_term(signum, frame):
        raise SystemExit(f"stopped by {signal.Signals(signum).name}")

    # Set explicitly: a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.alarm(int(math.ceil(time_limit)))

    workdir = Path(tempfile.mkdtemp(prefix="nk-bench-"))
    load_at_start = os.getloadavg()
    began = time.monotonic()
    per_system, metas = {}, {}
    try:
        for system in systems:
            system_began = time.monotonic()
            if sections - {"big"}:
                per_system[system], metas[system] = bench_system(
                    system, profile, sections, workdir / system)
            else:
                per_system[system], metas[system] = {}, {}
            if "big" in sections:
                big_results, big_meta = memory.measure_big(
                    system, functools.partial(started, system, big=True),
                    args.big_count, workdir / f"{system}-big", log)
                per_system[system].update(big_results)
                metas[system]["big"] = big_meta
            metas[system]["seconds"] = time.monotonic() - system_began
            log(f"{system}: done in {metas[system]['seconds']:.0f} s")
    finally:
        signal.alarm(0)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = build_rows(per_system)
    elapsed = time.monotonic() - began
    table = render_table(rows)
    print()
    print(table)
    print()
    document = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": profile_name,
        "profile_settings": profile,
        "sections": sorted(sections),
        "seconds": elapsed,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {"zab": ZAB_SETTINGS, "zookeeper_jvm": ZK_SETTINGS,
                     "payload_bytes": len(PAYLOAD), "children": CHILD_COUNT,
                     "total_inflight": TOTAL_INFLIGHT},
        "systems": metas,
        "workdir": str(workdir),
        "load_average": {"start": load_at_start, "end": os.getloadavg()},
        "notes": notes,
        "rows": rows,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    log(f"{len(rows)} rows in {elapsed:.0f} s; JSON in {args.out}")
    return document


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench interrupted; the processes it started are stopped")
    except (BenchTimeout, RuntimeError, AssertionError) as e:
        sys.exit(f"bench failed: {e}")
