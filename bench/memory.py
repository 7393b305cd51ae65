"""The big-tree rows (run.py --big): 1,000,000 znodes of 100 bytes.

On a fresh 3-server ensemble: fill the tree through kazoo from several
worker processes (1,000 parents of 1,000 children, many creates in flight),
read every server's resident memory, then kill -9 the whole ensemble,
start it again and time it until every server serves and the last znode
reads back; then read the memory again. ZooKeeper gets a 2 GB heap here
(its 1000 MB default is tight for a million znodes and would make it
collect all the time); its RSS is what the JVM took from that.
"""

import time
from pathlib import Path

from kazoo.client import KazooClient

from workerpool import WorkerPool
from workloads import BIG_FANOUT, BIG_PARENT, big_path

BIG_COUNT = 1_000_000
BIG_SIZE = 100
ZK_BIG_HEAP = "2g"
FILL_WORKERS = 4
FILL_CONNS_PER_WORKER = 2
FILL_INFLIGHT = 200             # per connection
RESTART_TIMEOUT_S = 600.0


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def disk_mib(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def make_parents(hosts, count):
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=20)
    try:
        client.create(BIG_PARENT, b"")
        parents = (count + BIG_FANOUT - 1) // BIG_FANOUT
        pending = [client.create_async(f"{BIG_PARENT}/{p:04d}", b"") for p in range(parents)]
        for result in pending:
            result.get(timeout=60)
    finally:
        client.stop()
        client.close()


def read_back(hosts, path, deadline):
    while time.monotonic() < deadline:
        client = KazooClient(hosts=hosts, timeout=10)
        try:
            client.start(timeout=5)
            data, _ = client.get(path)
            return len(data)
        except Exception:
            time.sleep(0.05)
        finally:
            client.stop()
            client.close()
    raise RuntimeError(f"{path} did not read back before the deadline")


def measure_big(system, start_ensemble, count, workdir, log):
    """Rows for one system, and a few facts about the run. start_ensemble(dir)
    returns a started ensemble and its servers in connection order."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ensemble, order = start_ensemble(workdir / "servers")
    meta = {"count": count, "size": BIG_SIZE}
    pool = None
    try:
        servers = list(ensemble.servers.values())
        meta["rss_mib_empty"] = [rss_mib(s.proc.pid) for s in servers]
        make_parents(order[0].hosts, count)
        conns = FILL_WORKERS * FILL_CONNS_PER_WORKER
        pool = WorkerPool(FILL_WORKERS, workdir)
        pool.connect(order, conns)
        log(f"{system}: creating {count:,} znodes of {BIG_SIZE} bytes")
        began = time.monotonic()
        commands = {worker: {"cmd": "populate", "conns": gs,
                             "first": count * worker // FILL_WORKERS,
                             "last": count * (worker + 1) // FILL_WORKERS,
                             "inflight": FILL_INFLIGHT, "size": BIG_SIZE}
                    for worker, gs in pool.conns_by_worker(conns).items()}
        answers = pool.ask(commands, timeout=6000)
        pool.close()
        pool = None
        meta["fill_s"] = time.monotonic() - began
        meta["created"] = sum(a["count"] for a in answers.values())
        meta["fill_errors"] = sum(a["errors"] for a in answers.values())
        log(f"{system}: {meta['created']:,} created in {meta['fill_s']:.0f} s "
            f"({meta['created'] / meta['fill_s']:.0f}/s), {meta['fill_errors']} errors")
        loaded = [rss_mib(s.proc.pid) for s in servers]
        meta["rss_mib_loaded"] = loaded
        meta["disk_mib"] = [disk_mib(s.workdir) for s in servers]

        ensemble.kill_all()
        restart_began = time.monotonic()
        ensemble.start(RESTART_TIMEOUT_S)
        read_back(ensemble.hosts, big_path(count - 1), restart_began + RESTART_TIMEOUT_S)
        restart_s = time.monotonic() - restart_began
        time.sleep(1.0)
        restarted = [rss_mib(s.proc.pid) for s in servers]
        meta["rss_mib_restarted"] = restarted
        meta["restart_s"] = restart_s
        log(f"{system}: RSS per server {fmt_list(loaded)} MiB loaded, "
            f"{fmt_list(restarted)} MiB after restart; restart {restart_s:.1f} s")
    finally:
        if pool is not None:
            pool.close()
        ensemble.kill_all()
    label = f"{count:,} znodes x {BIG_SIZE} B"
    results = {
        f"{label}: RSS per server, filled (MiB, largest of 3)": {
            "group": "memory", "metric": "MiB", "value": max(loaded), "per_server": loaded},
        f"{label}: RSS per server, after restart (MiB, largest of 3)": {
            "group": "memory", "metric": "MiB", "value": max(restarted), "per_server": restarted},
        f"{label}: restart, kill -9 all -> all serve, last znode read (s)": {
            "group": "memory", "metric": "s", "value": restart_s},
        f"{label}: fill rate through kazoo (info)": {
            "group": "info", "metric": "creates/s", "value": meta["created"] / meta["fill_s"]},
    }
    return results, meta


def fmt_list(values):
    return "/".join("-" if v is None else f"{v:.0f}" for v in values)
