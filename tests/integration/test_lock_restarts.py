"""A Lock keeps mutual exclusion while every server of the ensemble is killed
with kill -9 and restarted, again and again.

Three worker processes (tests/lock_timeline_worker.py), each connected to a
different server, take and give back the same Lock and record when they
held it and every connection state they heard; tests/lock_timeline.py then
looks for two processes holding it at once.

What this guards against: a restarted server that tells a reconnecting
client its session expired while the ensemble still has the session. The
client starts a new session and its Lock recipe takes up the node the old
session created (it finds it by its prefix); when the old session really
expires that node goes, and the next contender gets the lock while the
first still holds it. The old session expires one session timeout after a
leader starts, if no restart comes first, so the schedule pauses longer
than that every few restarts, and the workers sometimes hold the lock
longer than a session timeout: a hold of a few tens of ms is almost never
still running when the node goes. A small `snapshot_every_txns` puts
createSession txns inside snapshots and sends lagging followers SNAPs, so
restarted servers must know sessions they learnt only from a snapshot.
"""

import math
import os
import random
import re
import subprocess
import sys
import threading
import time

import pytest

import lock_timeline
from harness import ROOT
from lock_timeline import Hold

WORKER = ROOT / "tests" / "lock_timeline_worker.py"
# A restart and a reconnect take about a second here, so a client keeps its
# session with room to spare. The long holds and the pauses scale with it:
# 8 s would make the test twice as long for nothing more.
SESSION_TIMEOUT_S = 4.0
# The issue asks for at least 20; `make soak` runs more (NK_LOCK_RESTARTS).
RESTARTS = int(os.environ.get("NK_LOCK_RESTARTS", "20"))
PAUSE_EVERY = 2
SEED = 20240611
ENSEMBLE_SETTINGS = {"tick_ms": 100, "snapshot_every_txns": 5}


# -- the checker, on hand-made timelines ----------------------------------------------


def ev(t, event, **fields):
    return {"t": t, "event": event, **fields}


def test_checker_finds_two_processes_holding_at_once():
    timelines = {
        "a": [ev(1.0, "acquired"), ev(2.0, "release_called"), ev(2.1, "released")],
        "b": [ev(1.5, "acquired"), ev(2.5, "release_called")],
    }
    assert lock_timeline.overlaps(timelines) == [
        (Hold("a", 1.0, 2.0, "release_called"), Hold("b", 1.5, 2.5, "release_called"))]
    text = lock_timeline.report(timelines)
    assert "a held 1.000-2.000" in text and "b held 1.500-2.500" in text
    assert "1.500    b acquired" in text, text


def test_checker_ends_a_hold_at_the_first_suspended_or_lost():
    for state in ("SUSPENDED", "LOST"):
        timelines = {
            "a": [ev(1.0, "acquired"), ev(1.2, "state", state=state),
                  ev(1.3, "state", state="CONNECTED"), ev(3.0, "release_called")],
            "b": [ev(1.4, "acquired"), ev(1.6, "release_called")],
        }
        assert lock_timeline.overlaps(timelines) == [], state
        assert lock_timeline.holds("a", timelines["a"]) == [Hold("a", 1.0, 1.2, state)]
    # ...but only from the event on: b acquiring before it is a violation.
    timelines["b"] = [ev(1.1, "acquired"), ev(1.15, "release_called")]
    assert len(lock_timeline.overlaps(timelines)) == 1


def test_checker_passes_holds_one_after_another_and_reads_a_state_before_acquiring_as_no_cut():
    timelines = {
        "a": [ev(0.5, "state", state="SUSPENDED"), ev(1.0, "acquired"),
              ev(2.0, "release_called"), ev(4.0, "acquired")],
        "b": [ev(2.0, "acquired"), ev(3.0, "release_called"), ev(3.5, "state", state="LOST")],
    }
    assert lock_timeline.overlaps(timelines, end=5.0) == []
    assert lock_timeline.holds("a", timelines["a"], end=5.0)[-1] == Hold("a", 4.0, 5.0,
                                                                        "end of timeline")
    timelines["b"].append(ev(4.5, "acquired"))
    assert [(x.process, y.process) for x, y in lock_timeline.overlaps(timelines)] == [("a", "b")]
    assert lock_timeline.holds("c", [ev(1.0, "acquired")])[0].end == math.inf


def test_checker_reads_back_what_the_worker_writes(tmp_path):
    path = tmp_path / "w0.jsonl"
    path.write_text('{"t": 2.0, "event": "release_called"}\n\n{"t": 1.0, "event": "acquired"}\n')
    assert lock_timeline.holds("w0", lock_timeline.load(path)) == [
        Hold("w0", 1.0, 2.0, "release_called")]


# -- the workers and the restarts ----------------------------------------------------


class Worker:
    """One lock_timeline_worker process; stopped by closing its stdin."""

    def __init__(self, kind, hosts, name, workdir):
        self.name = name
        self.timeline_path = workdir / f"{name}.jsonl"
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), kind, hosts, "/locks/restarts", name, "600",
                 str(self.timeline_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "NK_WORKER_TIMEOUT": str(SESSION_TIMEOUT_S)})

    def wait_ready(self):
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"{self.name} did not start: {line!r}\n{self.log_tail()}"

    def stop(self, timeout):
        """Ask it to finish its turn and close its session; True if it did in time."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return self.proc.returncode == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def log_tail(self, lines=40):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def workers(tmp_path):
    """Start workers on demand; every one is killed at teardown, pass or fail."""
    started = []

    def make(kind, hosts, name):
        worker = Worker(kind, hosts, name, tmp_path)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.kill()


def restart_all(ensemble):
    """kill -9 every server, start them all again, and wait until all three serve."""
    ensemble.kill_all()
    for server in ensemble.servers.values():
        server.launch()
    for server in ensemble.servers.values():
        server.wait_serving(timeout=30)
    ensemble.leader(timeout=30)


TOLD_EXPIRED = re.compile(r"session 0x[0-9a-f]+ is .*; telling .*")


def told_expired(ensemble):
    """How often each server answered a reconnect with "session expired"."""
    return {server.config_path.parent.name:
            len(TOLD_EXPIRED.findall(server.log_path.read_text(errors="replace")))
            for server in ensemble.servers.values()}


def lock_story(ensemble, workers, kind):
    """One ensemble, three workers of one client kind, RESTARTS kill -9s of
    every server; the failure messages, none when the lock held."""
    ensemble.leader()
    # One server each, so that after a restart every client must reconnect to
    # that same server (a follower as often as not) and resume its session there.
    team = [workers(kind, server.hosts, f"{kind}-w{sid}")
            for sid, server in ensemble.servers.items()]
    for worker in team:
        worker.wait_ready()
    began = time.monotonic()
    rng = random.Random(SEED)
    time.sleep(1.0)
    for restart in range(1, RESTARTS + 1):
        time.sleep(rng.uniform(0.3, 1.5))
        restart_all(ensemble)
        if restart % PAUSE_EVERY == 0:
            # Every restart gives each session a fresh timeout on the new
            # leader; only a pause longer than one lets a session that nobody
            # resumed expire, as it would once the restarts are over, and
            # with the workers still taking turns.
            time.sleep(SESSION_TIMEOUT_S + 0.5)
    took = time.monotonic() - began
    stopped = {worker.name: worker.stop(timeout=30) for worker in team}

    timelines = {worker.name: lock_timeline.load(worker.timeline_path) for worker in team}

    def per_worker(measure, *args):
        return {name: measure(events, *args) for name, events in timelines.items()}

    acquired = per_worker(lock_timeline.count, "acquired")
    lost = per_worker(lock_timeline.count, "state", "LOST")
    suspended = per_worker(lock_timeline.count, "state", "SUSPENDED")
    foreign = per_worker(lock_timeline.foreign_holds)
    print(f"{kind}: {RESTARTS} restarts in {took:.1f}s; acquired {acquired}; "
          f"SUSPENDED {suspended}; LOST {lost}; held by an old session's node {foreign}; "
          f"servers said expired {told_expired(ensemble)}")

    failures = []
    violations = lock_timeline.report(timelines)
    if violations:
        failures.append(f"two holders at once ({kind}):\n{violations}")
    if not all(stopped.values()):
        failures.append("workers that did not stop cleanly: " + ", ".join(
            f"{w.name}\n{w.log_tail()}" for w in team if not stopped[w.name]))
    if not all(n >= 5 for n in acquired.values()):
        failures.append(f"a worker hardly got the lock ({kind}): {acquired}")
    return failures


@pytest.mark.timeout(200 + 10 * max(0, RESTARTS - 20))
def test_lock_keeps_mutual_exclusion_through_repeated_kill_9_of_every_server(
        ensemble_factory, workers):
    """kazoo's Lock and our client's, each on an ensemble of its own, side by
    side: the stories mostly sleep, so together they take the time of one."""
    kinds = ("kazoo", "nookeeper")
    ensembles = {kind: ensemble_factory(**ENSEMBLE_SETTINGS) for kind in kinds}
    outcomes = {}

    def tell(kind):
        try:
            outcomes[kind] = lock_story(ensembles[kind], workers, kind)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            outcomes[kind] = exc

    storytellers = [threading.Thread(target=tell, args=(kind,)) for kind in kinds]
    for thread in storytellers:
        thread.start()
    for thread in storytellers:
        thread.join()
    for kind, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            raise outcome
    failures = [failure for outcome in outcomes.values() for failure in outcome]
    assert not failures, "\n".join(failures)
