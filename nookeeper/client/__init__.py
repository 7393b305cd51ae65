"""nookeeper's own ZooKeeper client: synchronous, threaded, kazoo-shaped.

    from nookeeper.client import KeeperClient
    client = KeeperClient("127.0.0.1:2181")
    client.start()
"""

from nookeeper.client import exceptions, security
from nookeeper.client.asyncresult import AsyncResult
from nookeeper.client.client import KeeperClient
from nookeeper.client.datawatch import ChildrenWatch, DataWatch
from nookeeper.client.retry import ForceRetryError, KeeperRetry
from nookeeper.client.states import EventType, KeeperState, WatchedEvent, ZnodeStat
from nookeeper.client.transaction import Transaction
from nookeeper.client.treewatch import TreeWatch

__all__ = [
    "AsyncResult",
    "ChildrenWatch",
    "DataWatch",
    "EventType",
    "ForceRetryError",
    "KeeperClient",
    "KeeperRetry",
    "KeeperState",
    "Transaction",
    "TreeWatch",
    "WatchedEvent",
    "ZnodeStat",
    "exceptions",
    "security",
]
