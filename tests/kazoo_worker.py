"""A kazoo client in its own process, driven by the tests: `python kazoo_worker.py HOSTS ROLE ARGS`.

Prints "ready" once its work is set up, then one line per result.
"""

import os
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError, NoNodeError, SessionExpiredError


def hold(zk, holder):
    """Mark the critical section; another holder's mark means exclusion broke."""
    try:
        zk.create("/lockcheck/holder", holder.encode(), ephemeral=True, makepath=True)
    except NodeExistsError:
        owner = zk.retry(zk.get, "/lockcheck/holder")[0].decode()
        if owner != holder:
            print(f"VIOLATION: {holder} holds the lock while {owner} does", flush=True)
            sys.exit(3)
    time.sleep(0.01)
    delete_mark(zk)


def delete_mark(zk, version=-1):
    """Delete our mark; a retried delete finding nothing means the first one landed.

    A server that loses its leader drops its clients, so a delete can commit and
    still end in ConnectionLoss, as on ZooKeeper.
    """
    try:
        zk.delete("/lockcheck/holder", version=version)
    except ConnectionLoss:
        try:
            zk.retry(zk.delete, "/lockcheck/holder", version=version)
        except NoNodeError:
            pass


def drop_own_mark(zk, holder):
    """A create whose reply was lost may have left our mark behind."""
    try:
        data, stat = zk.retry(zk.get, "/lockcheck/holder")
    except NoNodeError:
        return
    if data.decode() == holder:
        delete_mark(zk, version=stat.version)


def main():
    hosts, role, *args = sys.argv[1:]
    timeout = float(os.environ.get("NK_WORKER_TIMEOUT", "10"))
    zk = KazooClient(hosts=hosts, timeout=timeout)
    zk.start(timeout=15)
    if role == "ephemeral":
        zk.create(args[0], b"", ephemeral=True, makepath=True)
        print("ready", flush=True)
        time.sleep(3600)
    elif role == "lock":
        path, rounds, holder = args[0], int(args[1]), args[2]
        print("ready", flush=True)
        done = 0
        while done < rounds:
            lock = zk.Lock(path, holder)
            try:
                with lock:
                    try:
                        hold(zk, holder)
                    except (ConnectionLoss, SessionExpiredError):
                        # Still inside the lock: clear our mark before releasing.
                        drop_own_mark(zk, holder)
                        raise
                done += 1
            except (ConnectionLoss, SessionExpiredError):
                time.sleep(0.2)
                zk.retry(lock.release)
        print("done", flush=True)
    elif role == "counter":
        path, rounds = args[0], int(args[1])
        counter = zk.Counter(path)
        print("ready", flush=True)
        for _ in range(rounds):
            counter += 1
        print("done", flush=True)
    elif role == "election":
        path, name = args[0], args[1]
        election = zk.Election(path, name)
        print("ready", flush=True)

        def lead():
            print(f"leader {name}", flush=True)
            time.sleep(3600)

        election.run(lead)
    elif role == "queue-put":
        path, count = args[0], int(args[1])
        queue = zk.Queue(path)
        print("ready", flush=True)
        for i in range(count):
            queue.put(f"item-{i}".encode())
        print("done", flush=True)
    else:
        raise SystemExit(f"unknown role {role}")
    zk.stop()
    zk.close()


if __name__ == "__main__":
    main()
