"""A pytest plugin that runs kazoo-based tests with nookeeper.client in kazoo's place.

It shows that whatever the kazoo-based tests do, our client does too. Not
part of the default run (it repeats other suites with our client):

    PYTHONPATH=tests/client python -m pytest -p kazoo_stand_in tests/integration

kazoo.client.KazooClient becomes a KeeperClient, and each kazoo exception
class that has a namesake in nookeeper.client.exceptions becomes that class,
so `pytest.raises(NoNodeError)` in those tests catches what our client raises.
Tests that run kazoo in another process (tests/kazoo_worker.py) still use
kazoo there, and a test reaching into kazoo's internals (`zk._connection`)
or to kazoo-only attributes (`zk.handler`) cannot pass.
"""

import kazoo.client
import kazoo.exceptions

from nookeeper.client import KeeperClient, exceptions


class KazooStandIn(KeeperClient):
    """KeeperClient, accepting (and ignoring) the kazoo-only keyword arguments."""

    def __init__(self, hosts="127.0.0.1:2181", timeout=10.0, connection_retry=None,
                 handler=None, **kwargs):
        super().__init__(hosts, timeout=timeout, **kwargs)


kazoo.client.KazooClient = KazooStandIn
for _name in dir(kazoo.exceptions):
    _ours = getattr(exceptions, _name, None)
    if isinstance(_ours, type) and issubclass(_ours, BaseException):
        setattr(kazoo.exceptions, _name, _ours)
