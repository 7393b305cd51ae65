"""Coordination recipes built on KeeperClient: locks, elections, barriers,
counters, queues and parties.

Each takes the client as its first argument, and KeeperClient offers them
as attributes bound to itself, as kazoo does:

    lock = client.Lock("/locks/report", "worker-7")    # Lock(client, ...)

Node layouts and names follow kazoo's recipes, so the two interoperate.
"""

from nookeeper.client.recipes.barrier import Barrier, DoubleBarrier
from nookeeper.client.recipes.counter import Counter
from nookeeper.client.recipes.election import Election
from nookeeper.client.recipes.errors import (  # noqa: F401  (re-exported)
    CancelledError,
    LockTimeout,
    UnknownOutcomeError,
)
from nookeeper.client.recipes.lock import Lock, ReadLock, Semaphore, WriteLock
from nookeeper.client.recipes.party import Party, ShallowParty
from nookeeper.client.recipes.queue import LockingQueue, Queue

# name -> recipe class, for binding to a client (client.Lock(path) == Lock(client, path)).
RECIPES = {
    "Lock": Lock,
    "ReadLock": ReadLock,
    "WriteLock": WriteLock,
    "Semaphore": Semaphore,
    "Election": Election,
    "Barrier": Barrier,
    "DoubleBarrier": DoubleBarrier,
    "Counter": Counter,
    "Queue": Queue,
    "LockingQueue": LockingQueue,
    "Party": Party,
    "ShallowParty": ShallowParty,
}

# Only the recipes: KeeperClient binds every name listed here to itself.
__all__ = list(RECIPES)
