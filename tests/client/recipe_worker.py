"""A nookeeper.client recipe user in its own process, driven by tests/client/test_recipes.py.

    python recipe_worker.py HOSTS ROLE ARGS...

Prints "ready" once set up, then one line per result. NK_WORKER_TIMEOUT sets
the session timeout (seconds), so a killed worker's session soon expires.
"""

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nookeeper.client import KeeperClient  # noqa: E402
from nookeeper.client.exceptions import NodeExistsError  # noqa: E402


class CountingClient(KeeperClient):
    """Counts the watch notifications this process receives (for the no-herd check)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notifications = 0
        self._wrapped = {}
        self._count_lock = threading.Lock()

    def _counting(self, watch):
        if watch is None:
            return None
        # The same function must map to the same wrapper, or re-registering
        # a watch would add a second one.
        with self._count_lock:
            if watch not in self._wrapped:
                def counted(event, watch=watch):
                    with self._count_lock:
                        self.notifications += 1
                    watch(event)
                self._wrapped[watch] = counted
            return self._wrapped[watch]

    def get_async(self, path, watch=None):
        return super().get_async(path, self._counting(watch))

    def exists_async(self, path, watch=None):
        return super().exists_async(path, self._counting(watch))

    def get_children_async(self, path, watch=None, include_data=False):
        return super().get_children_async(path, self._counting(watch), include_data)


def say(*words):
    print(*words, flush=True)


def mark_exclusive(client, marker, holder):
    """Claim the marker node while inside the lock; someone else's claim is a violation."""
    try:
        client.create(marker, holder.encode(), ephemeral=True, makepath=True)
    except NodeExistsError:
        owner = client.get(marker)[0].decode()
        say(f"VIOLATION {holder} inside while {owner} is")
        sys.exit(3)
    time.sleep(0.005)
    client.delete(marker)


def main():
    hosts, role, *args = sys.argv[1:]
    timeout = float(os.environ.get("NK_WORKER_TIMEOUT", "10"))
    client = CountingClient(hosts, timeout=timeout)
    client.start(timeout=15)
    if role == "lock-rounds":
        # Many short turns at the lock, checking nobody else is inside.
        path, rounds, holder = args[0], int(args[1]), f"{args[2]}-{os.getpid()}"
        say("ready")
        for _ in range(rounds):
            with client.Lock(path, holder):
                mark_exclusive(client, path + "-marker", holder)
        say("done")
    elif role == "lock-once":
        # Queue once behind the lock, hold it briefly, report the notifications it took.
        path, holder = args[0], args[1]
        lock = client.Lock(path, holder)
        say("ready")
        lock.acquire(timeout=30)
        say("acquired", holder, client.notifications)
        mark_exclusive(client, path + "-marker", holder)
        time.sleep(0.05)
        lock.release()
    elif role == "rwlock-rounds":
        # Turns at a ReadLock or WriteLock: a writer inside excludes everyone,
        # readers only exclude writers. Each announces itself, then looks.
        path, rounds, kind, holder = args[0], int(args[1]), args[2], f"{args[3]}-{os.getpid()}"
        writer_mark, readers = path + "-writer", path + "-readers"
        client.ensure_path(readers)
        say("ready")
        most = 0
        for _ in range(rounds):
            lock = (client.WriteLock if kind == "write" else client.ReadLock)(path, holder)
            with lock:
                if kind == "write":
                    client.create(writer_mark, holder.encode(), ephemeral=True)
                    inside = client.get_children(readers)
                    if inside:
                        say(f"VIOLATION writer {holder} inside with readers {inside}")
                        sys.exit(3)
                    time.sleep(0.005)
                    client.delete(writer_mark)
                else:
                    mine = client.create(readers + "/r-", ephemeral=True, sequence=True)
                    if client.exists(writer_mark) is not None:
                        say(f"VIOLATION reader {holder} inside with a writer")
                        sys.exit(3)
                    most = max(most, len(client.get_children(readers)))
                    time.sleep(0.01)
                    client.delete(mine)
        say("done", most)
    elif role == "semaphore":
        path, rounds, holder, leases = args[0], int(args[1]), args[2], int(args[3])
        say("ready")
        most = 0
        for _ in range(rounds):
            with client.Semaphore(path, holder, max_leases=leases) as semaphore:
                inside = len(semaphore.lease_holders())
                most = max(most, inside)
                if inside > leases:
                    say(f"VIOLATION {inside} holders of {leases} leases")
                    sys.exit(3)
                time.sleep(0.01)
        say("done", most)
    elif role == "counter":
        path, rounds, kind = args[0], int(args[1]), args[2]
        step = 1 if kind == "int" else 0.5
        counter = client.Counter(path, default=type(step)(0))
        say("ready")
        for _ in range(rounds):
            counter += step
        say("done")
    elif role == "election":
        path, name = args[0], args[1]
        election = client.Election(path, name)
        say("ready")

        def lead():
            say("leader", name)
            time.sleep(3600)

        election.run(lead)
    elif role == "queue-put":
        path, count, tag = args[0], int(args[1]), args[2]
        queue = client.Queue(path)
        say("ready")
        for i in range(count):
            queue.put(f"{tag}-{i:03d}".encode())
        say("done")
    elif role == "queue-get":
        # Take entries until the queue stays empty for a while; print each one.
        path = args[0]
        queue = client.Queue(path)
        say("ready")
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.0:
            value = queue.get()
            if value is None:
                time.sleep(0.02)
                continue
            idle_since = time.monotonic()
            say("got", value.decode())
        say("done")
    elif role == "lockingqueue-take":
        # Lock one entry, report it, and never consume it: the test kills us.
        path = args[0]
        queue = client.LockingQueue(path)
        say("ready")
        value = queue.get(timeout=20)
        say("took", value.decode() if value is not None else "-")
        time.sleep(3600)
    elif role == "lockingqueue-consume":
        path = args[0]
        queue = client.LockingQueue(path)
        say("ready")
        # Until the queue is empty: entries locked by others count until consumed.
        while True:
            value = queue.get(timeout=0.3)
            if value is None:
                if len(queue) == 0:
                    break
                continue
            if queue.consume():
                say("consumed", value.decode())
        say("done")
    elif role == "double-barrier":
        path, count, name = args[0], int(args[1]), args[2]
        barrier = client.DoubleBarrier(path, count, name)
        say("ready")
        entered = barrier.enter(timeout=20)
        say("entered", name, entered, f"{time.time():.3f}")
        time.sleep(float(args[3]) if len(args) > 3 else 0.0)
        say("leaving", name, f"{time.time():.3f}")
        left = barrier.leave(timeout=20)
        say("left", name, left, f"{time.time():.3f}")
    elif role == "barrier-wait":
        path = args[0]
        barrier = client.Barrier(path)
        say("ready")
        say("passed", barrier.wait(timeout=20), f"{time.time():.3f}")
    elif role == "party":
        path, name, kind = args[0], args[1], args[2]
        party = (client.ShallowParty if kind == "shallow" else client.Party)(path, name)
        party.join()
        say("ready")
        time.sleep(3600)
    else:
        raise SystemExit(f"unknown role {role}")
    client.stop()


if __name__ == "__main__":
    main()
