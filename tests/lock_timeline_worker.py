"""A Lock user that records when it held the lock, for tests/lock_timeline.py to check.

    python lock_timeline_worker.py {kazoo|nookeeper} HOSTS LOCKPATH NAME DURATION_S OUTFILE

For DURATION_S seconds, or until its stdin is closed, it takes the Lock
(kazoo's zk.Lock or nookeeper's client.Lock), holds it and gives it back,
again and again, retrying through lost connections and sessions as an
application would. Most holds last a few tens of ms; one in three lasts
longer than a session timeout, as a real job's critical section sometimes
does: a lock that breaks when an old session ends under its holder only
shows it to a holder still inside at that moment.

OUTFILE gets one JSON object a line, written and flushed as it happens:
every acquire that returned (and which session owns the node it holds by),
every release called and its outcome, every failed attempt, and every
connection state the client's listener heard, with the session id. Times
are time.monotonic(), which on Linux is the system-wide CLOCK_MONOTONIC, so
timelines of different processes can be compared. Prints "ready" once
connected and started. NK_WORKER_TIMEOUT sets the session timeout (s).
"""

import json
import logging
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SESSION_TIMEOUT_S = float(os.environ.get("NK_WORKER_TIMEOUT", "8"))
ACQUIRE_TIMEOUT_S = 10.0


class Timeline:
    """Appends events to OUTFILE; the clock is read under the file lock so the
    file is in time order even with the listener thread writing too."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, event, **fields):
        with self._lock:
            self._file.write(json.dumps({"t": time.monotonic(), "event": event, **fields}) + "\n")
            self._file.flush()


def session_hex(client_id):
    return f"{client_id[0] & 0xFFFFFFFFFFFFFFFF:#x}" if client_id else None


def hold_time(rng):
    if rng.random() < 1 / 3:
        return rng.uniform(1.0, 1.5) * SESSION_TIMEOUT_S
    return rng.uniform(0.02, 0.06)


def kazoo_client(hosts):
    """kazoo, configured so that a client given a single server keeps up with restarts.

    By default kazoo doubles its pause between connection attempts up to an
    hour, and its command retry likewise: a client with one host would sleep
    through whole restarts and outlive its session timeout. A cap of 1 s is
    kazoo's documented `connection_retry`/`command_retry` setting."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException

    retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0}
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S,
                     connection_retry=dict(retry), command_retry=dict(retry))
    return zk, KazooException


def nookeeper_client(hosts):
    from nookeeper.client import KeeperClient
    from nookeeper.client.exceptions import ClientError, ZooKeeperError

    return KeeperClient(hosts, timeout=SESSION_TIMEOUT_S), (ClientError, ZooKeeperError)


def main():
    kind, hosts, path, name, duration, outfile = sys.argv[1:]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    timeline = Timeline(outfile)
    zk, errors = {"kazoo": kazoo_client, "nookeeper": nookeeper_client}[kind](hosts)

    known = {"session": None}

    def listener(state):
        # kazoo has already forgotten the session when it reports it lost.
        current = session_hex(zk.client_id)
        timeline.record("state", state=str(state), session=current or known["session"])
        known["session"] = current or known["session"]

    zk.add_listener(listener)
    zk.start(timeout=30)
    timeline.record("start", session=session_hex(zk.client_id), hosts=hosts)

    stop = threading.Event()
    lock = zk.Lock(path, name)

    def stop_when_stdin_closes():
        sys.stdin.read()
        stop.set()
        lock.cancel()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    rng = random.Random(name)
    deadline = time.monotonic() + float(duration)
    print("ready", flush=True)
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            got = lock.acquire(timeout=ACQUIRE_TIMEOUT_S)
        except errors as exc:
            timeline.record("acquire_error", error=type(exc).__name__)
            time.sleep(0.1)
            continue
        if not got:
            timeline.record("acquire_error", error="not acquired in time")
            continue
        held_for = hold_time(rng)
        timeline.record("acquired", node=lock.node, session=session_hex(zk.client_id),
                        hold=round(held_for, 3))
        record_owner(zk, lock, timeline, errors)
        time.sleep(held_for)
        release(lock, timeline, errors, deadline=time.monotonic() + 60)
    timeline.record("stopped")
    zk.stop()
    zk.close()


def record_owner(zk, lock, timeline, errors):
    """Which session owns the node we hold by: after a lost session, a Lock
    may have taken up the node its old session created."""
    try:
        stat = zk.exists(f"{lock.path}/{lock.node}")
    except errors as exc:
        timeline.record("owner", error=type(exc).__name__)
        return
    owner = f"{stat.ephemeralOwner & 0xFFFFFFFFFFFFFFFF:#x}" if stat is not None else None
    timeline.record("owner", owner=owner, session=session_hex(zk.client_id))


def release(lock, timeline, errors, deadline):
    """Give the lock back, trying again while it fails: a Lock left marked as
    held would make the next acquire wait for itself."""
    while True:
        timeline.record("release_called", node=lock.node)
        try:
            timeline.record("released", result=lock.release())
            return
        except errors as exc:
            timeline.record("release_error", error=type(exc).__name__)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    main()
