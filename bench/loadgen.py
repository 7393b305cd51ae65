"""Drives `load_gen`, the C client's load generator from Debian's zookeeper-bin.

load_gen HOSTS ROOT N connects once (to the first host: it asks for a
deterministic host order) and then loops forever: create ROOT/0..N-1
(data "first"), set them all ("second"), get them all, delete them all,
each phase with all N requests sent asynchronously at once, the next
phase starting when the last reply is in. It prints one log line at the
start of every phase, with a millisecond timestamp; we time the phases
from those lines and stop the process after the run.
"""

import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

LOAD_GEN = Path(os.environ.get("NK_LOAD_GEN", "/usr/lib/zookeeper/bin/load_gen"))
PHASES = ("create", "set", "get", "delete")

_PHASE_OF = {
    "Creating children": "create",
    "Starting the write cycle": "set",
    "Starting the read cycle": "get",
    "Starting the delete cycle": "delete",
}
_PHASE_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):.*?"
    r"(" + "|".join(map(re.escape, _PHASE_OF)) + ")")


def missing_load_gen():
    if not os.access(LOAD_GEN, os.X_OK):
        return f"{LOAD_GEN} is missing (Debian package zookeeper-bin)"
    return None


def phase_times(log_text):
    """[(phase, seconds)] of every phase whose end is in the log."""
    marks = []
    for line in log_text.splitlines():
        match = _PHASE_LINE.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            marks.append((_PHASE_OF[match.group(2)], stamp))
    return [(phase, end - begin) for (phase, begin), (_, end) in zip(marks, marks[1:])]


def _full_cycle(log_path):
    try:
        done = {phase for phase, _ in phase_times(log_path.read_text(errors="replace"))}
    except OSError:
        return False
    return done >= set(PHASES)


def run_load_gen(host_lists, children, duration, workdir, tag):
    """One load_gen process per entry of host_lists (its first host is the
    one it uses), all at once for `duration` seconds and then until every
    process has completed each phase once (at most four times `duration`).

    Returns {phase: ops/s summed over processes, "all": ops/s of all phases,
    "phases": completed phases, "seconds": time run}. Each
    process's rate for a phase is N * phases completed / time spent in them;
    the processes' phases overlap unaligned, so with several processes a
    per-phase figure is the sum of what each achieved while the others did
    whatever they did.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    began = time.monotonic()
    try:
        for i, hosts in enumerate(host_lists):
            log_path = workdir / f"load_gen-{tag}-{i}.log"
            logs.append(log_path)
            with open(log_path, "wb") as log:
                procs.append(subprocess.Popen(
                    [str(LOAD_GEN), hosts, f"/lg-{tag}-{i}", str(children)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        soft_end = began + duration
        hard_end = began + 4 * duration
        while time.monotonic() < hard_end:
            if any(proc.poll() is not None for proc in procs):
                break
            if time.monotonic() >= soft_end and all(_full_cycle(path) for path in logs):
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    ran_for = time.monotonic() - began
    totals = {phase: 0.0 for phase in PHASES}
    overall = 0.0
    completed = 0
    for log_path in logs:
        phases = phase_times(log_path.read_text(errors="replace"))
        completed += len(phases)
        spent = {phase: 0.0 for phase in PHASES}
        count = {phase: 0 for phase in PHASES}
        for phase, took in phases:
            spent[phase] += took
            count[phase] += 1
        for phase in PHASES:
            if spent[phase] > 0:
                totals[phase] += children * count[phase] / spent[phase]
        if phases:
            overall += children * len(phases) / sum(took for _, took in phases)
    result = {phase: (totals[phase] or None) for phase in PHASES}
    result.update({"all": overall or None, "phases": completed, "seconds": ran_for})
    return result
