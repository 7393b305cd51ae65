"""A kazoo load worker: one process holding a few client connections.

The driver (bench/run.py) starts several of these so that the client side
is not one GIL. A worker reads one JSON command per line on stdin and
answers with one JSON line on stdout; it exits when stdin closes.

Timing uses time.monotonic(), which on Linux is one clock for every
process: the driver hands all workers the same window (start, measure
from, end) and each counts only the requests completed inside it.

Commands:
  connect   {"conns": [{"g": 0, "hosts": "127.0.0.1:p"}, ...]}
  run       {"op", "conns": [g...], "inflight", "start", "measure", "end", "tag"}
  watch     {"watcher": g, "writer": g, "count", "path"}
  sessions  {"hosts", "start", "measure", "end"}
  populate  {"conns": [g...], "first", "last", "inflight", "size"}
  close     {}
"""

import json
import logging
import random
import sys
import threading
import time

from kazoo.client import KazooClient

PAYLOAD = b"x" * 100            # the data of every create and set
DATA_PATH = "/bench/data/{g}"   # one node per connection, made by the driver
CHILDREN_PATH = "/bench/children"
CREATE_PARENT = "/bench/create"
BIG_PARENT = "/big"
BIG_FANOUT = 1000               # children per parent in the 1M-znode tree
WRITE_SHARE = 0.10              # the mix: 90 % get, 10 % set
CLIENT_TIMEOUT_S = 10.0


def big_path(index):
    """Where znode `index` of the big tree lives: 1,000 parents of 1,000 children."""
    return f"{BIG_PARENT}/{index // BIG_FANOUT:04d}/{index:07d}"


def connect(hosts):
    client = KazooClient(hosts=hosts, timeout=CLIENT_TIMEOUT_S, randomize_hosts=False)
    client.start(timeout=CLIENT_TIMEOUT_S)
    return client


def issue(client, op, g, tag, sequence, rng):
    """Send one request of workload `op` without waiting for it."""
    data_path = DATA_PATH.format(g=g)
    if op == "create":
        return client.create_async(f"{CREATE_PARENT}/{tag}-{g}-{sequence}", PAYLOAD)
    if op == "set":
        return client.set_async(data_path, PAYLOAD)
    if op == "get":
        return client.get_async(data_path)
    if op == "exists":
        return client.exists_async(data_path)
    if op == "children":
        return client.get_children_async(CHILDREN_PATH)
    if op == "mix":
        if rng.random() < WRITE_SHARE:
            return client.set_async(data_path, PAYLOAD)
        return client.get_async(data_path)
    raise ValueError(f"unknown workload {op!r}")


class Window:
    """Requests kept `inflight` deep on one connection until `end`; the
    completions inside [measure, end) are counted and timed."""

    def __init__(self, client, op, g, tag, inflight, start, measure, end, seed):
        self.client, self.op, self.g, self.tag = client, op, g, tag
        self.inflight = inflight
        self.start, self.measure, self.end = start, measure, end
        self.rng = random.Random(seed)
        self.slots = threading.Semaphore(inflight)
        self.latencies_us = []
        self.errors = []
        self.thread = threading.Thread(target=self.drive, daemon=True)

    def drive(self):
        delay = self.start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sequence = 0
        while True:
            self.slots.acquire()
            sent = time.monotonic()
            if sent >= self.end:
                self.slots.release()
                break
            try:
                result = issue(self.client, self.op, self.g, self.tag, sequence, self.rng)
            except Exception as e:  # a closed connection refuses new requests at once
                self.errors.append(repr(e))
                self.slots.release()
                time.sleep(0.01)
                continue
            sequence += 1
            result.rawlink(lambda res, sent=sent: self.done(res, sent))
        for _ in range(self.inflight):   # wait for the requests still out
            if not self.slots.acquire(timeout=CLIENT_TIMEOUT_S):
                self.errors.append("requests still outstanding at the end")
                break

    def done(self, result, sent):
        now = time.monotonic()
        if result.exception is not None:
            self.errors.append(repr(result.exception))
        elif self.measure <= now < self.end:
            self.latencies_us.append(int((now - sent) * 1e6))
        self.slots.release()


class Worker:
    def __init__(self):
        self.clients = {}

    def connect(self, conns):
        for spec in conns:
            self.clients[spec["g"]] = connect(spec["hosts"])
        return {"connected": len(self.clients)}

    def run(self, op, conns, inflight, start, measure, end, tag):
        windows = [Window(self.clients[g], op, g, tag, inflight, start, measure, end, seed=g)
                   for g in conns]
        for window in windows:
            window.thread.start()
        for window in windows:
            window.thread.join()
        latencies = [lat for window in windows for lat in window.latencies_us]
        errors = [err for window in windows for err in window.errors]
        return {"count": len(latencies), "lat_us": latencies,
                "errors": len(errors), "error_sample": errors[:3]}

    def watch(self, watcher, writer, count, path):
        """Sequential notifications: latency from just before the writer's
        set until the watcher's callback runs (a different connection,
        normally on a different server)."""
        watching, writing = self.clients[watcher], self.clients[writer]
        fired = threading.Event()
        seen = {}

        def on_change(event):
            seen["at"] = time.monotonic()
            fired.set()

        latencies, write_latencies, lost = [], [], 0
        for _ in range(count):
            fired.clear()
            watching.get(path, watch=on_change)
            sent = time.monotonic()
            writing.set(path, PAYLOAD)
            acked = time.monotonic()
            if fired.wait(CLIENT_TIMEOUT_S):
                latencies.append(int((seen["at"] - sent) * 1e6))
                write_latencies.append(int((acked - sent) * 1e6))
            else:
                lost += 1
        return {"count": len(latencies), "lat_us": latencies, "write_lat_us": write_latencies,
                "errors": lost}

    def sessions(self, hosts, start, measure, end):
        """New session, then close it, again and again, for the window."""
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        latencies, errors = [], []
        while True:
            began = time.monotonic()
            if began >= end:
                break
            try:
                client = connect(hosts)
                client.stop()
                client.close()
            except Exception as e:
                errors.append(repr(e))
                continue
            finished = time.monotonic()
            if measure <= finished < end:
                latencies.append(int((finished - began) * 1e6))
        return {"count": len(latencies), "lat_us": latencies, "errors": len(errors),
                "error_sample": errors[:3]}

    def populate(self, conns, first, last, inflight, size):
        """Create big_path(first) .. big_path(last - 1), the range split over `conns`."""
        payload = b"y" * size
        span = last - first
        threads, results = [], []
        for i, g in enumerate(conns):
            lo = first + span * i // len(conns)
            hi = first + span * (i + 1) // len(conns)
            thread = threading.Thread(
                target=self._fill, args=(self.clients[g], lo, hi, inflight, payload, results),
                daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        return {"count": sum(r[0] for r in results), "errors": sum(r[1] for r in results)}

    @staticmethod
    def _fill(client, lo, hi, inflight, payload, results):
        slots = threading.Semaphore(inflight)
        failed = []

        def done(result):
            if result.exception is not None:
                failed.append(repr(result.exception))
            slots.release()

        for index in range(lo, hi):
            slots.acquire()
            client.create_async(big_path(index), payload).rawlink(done)
        for _ in range(inflight):
            slots.acquire(timeout=60)
        results.append((hi - lo - len(failed), len(failed)))

    def close(self):
        for client in self.clients.values():
            try:
                client.stop()
                client.close()
            except Exception:
                pass
        self.clients.clear()
        return {"closed": True}


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker()
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        try:
            answer = getattr(worker, name)(**command)
        except Exception as e:
            answer = {"failed": f"{name}: {e!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if name == "close":
            break
    worker.close()


if __name__ == "__main__":
    main()
