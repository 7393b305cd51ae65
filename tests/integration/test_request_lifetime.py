"""A finished request is freed by reference counting, not left in a cycle.

The server raises the cycle collector's thresholds (nookeeper/server/main.py)
on the strength of this: if each write left a cycle behind, garbage would
pile up between the now rare collections and each would have far more to
scan. The server runs in this process so its garbage can be inspected.
"""

import gc

import pytest

from harness import ServerProcess, wait_for
from nookeeper.client import KeeperClient
from nookeeper.config import load_config
from nookeeper.server.node import ServerNode
from nookeeper.server.ordering import Request
from nookeeper.txn import Txn


@pytest.fixture
def node(tmp_path):
    config = load_config(ServerProcess(tmp_path, log_level="INFO").config_path)
    server = ServerNode(config)
    server.start()
    try:
        wait_for(lambda: server.state.serving, timeout=20, message="the server serving")
        yield server
    finally:
        server.stop()


def test_writes_syncs_and_reads_leave_no_cyclic_garbage(node):
    host, port = node.client_address
    with KeeperClient(hosts=f"{host}:{port}") as client:
        client.create("/lifetime", b"")
        gc.collect()
        gc.disable()
        try:
            for i in range(100):
                client.create(f"/lifetime/n{i}", b"x" * 100)
                client.set(f"/lifetime/n{i}", b"y" * 100)
                client.get(f"/lifetime/n{i}")
            client.sync("/lifetime")
            futures = [client.set_async("/lifetime", b"z") for _ in range(100)]
            for future in futures:
                future.get(timeout=10)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, (Request, Txn))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert left == [], f"{len(left)} requests were only freeable by the cycle collector"
