"""The driver's side of bench/workloads.py: worker processes and their answers."""

import json
import math
import select
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = Path(__file__).resolve().parent / "workloads.py"


def percentile(sorted_values, fraction):
    """Nearest rank."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_us):
    ordered = sorted(latencies_us)
    p50, p99 = percentile(ordered, 0.50), percentile(ordered, 0.99)
    return {"p50_ms": p50 / 1000 if p50 is not None else None,
            "p99_ms": p99 / 1000 if p99 is not None else None}


class WorkerPool:
    """Worker processes running bench/workloads.py; connection g lives in worker g % size."""

    def __init__(self, size, workdir):
        self.procs = []
        for i in range(size):
            with open(Path(workdir) / f"worker{i}.log", "ab") as err:
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(WORKLOADS)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=err, text=True, cwd=str(workdir)))

    def owner(self, g):
        return g % len(self.procs)

    def conns_by_worker(self, conns):
        """{worker index: [g, ...]} for connections 0..conns-1."""
        by_worker = {}
        for g in range(conns):
            by_worker.setdefault(self.owner(g), []).append(g)
        return by_worker

    def ask(self, commands, timeout):
        """commands: {worker index: command}; all sent first, then all answers read."""
        for index, command in commands.items():
            self.procs[index].stdin.write(json.dumps(command) + "\n")
            self.procs[index].stdin.flush()
        answers = {}
        deadline = time.monotonic() + timeout
        for index in commands:
            out = self.procs[index].stdout
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            line = out.readline() if ready else ""
            if not line:
                raise RuntimeError(f"worker {index} gave no answer to {commands[index]['cmd']}")
            answer = json.loads(line)
            if "failed" in answer:
                raise RuntimeError(f"worker {index}: {answer['failed']}")
            answers[index] = answer
        return answers

    def connect(self, order, conns):
        self.ask({i: {"cmd": "connect",
                      "conns": [{"g": g, "hosts": order[g % len(order)].hosts} for g in gs]}
                  for i, gs in self.conns_by_worker(conns).items()}, timeout=60)

    def run(self, op, conns, inflight, warmup, duration, tag):
        start = time.monotonic() + 0.05
        window = {"start": start, "measure": start + warmup, "end": start + warmup + duration}
        answers = self.ask({i: {"cmd": "run", "op": op, "conns": gs, "inflight": inflight,
                                "tag": tag, **window}
                           for i, gs in self.conns_by_worker(conns).items()},
                           timeout=warmup + duration + 30)
        return merge(answers.values(), duration)

    def close(self):
        for proc in self.procs:
            try:
                if proc.poll() is None:
                    proc.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                    proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def merge(answers, duration):
    latencies, errors, samples = [], 0, []
    for answer in answers:
        latencies.extend(answer["lat_us"])
        errors += answer.get("errors", 0)
        samples.extend(answer.get("error_sample", []))
    result = {"value": len(latencies) / duration, "count": len(latencies), "errors": errors,
              **latency_summary(latencies)}
    if samples:
        result["error_sample"] = samples[:3]
    return result
