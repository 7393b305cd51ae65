"""A kazoo client in its own process, driven by the tests: `python kazoo_worker.py HOSTS ROLE ARGS`.

Prints "ready" once its work is set up, then one line per result.
"""

import os
import sys
import time

from kazoo.client import KazooClient


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
        lock = zk.Lock(path, holder)
        print("ready", flush=True)
        for _ in range(rounds):
            with lock:
                zk.create("/lockcheck/holder", holder.encode(), ephemeral=True, makepath=True)
                time.sleep(0.01)
                zk.delete("/lockcheck/holder")
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
