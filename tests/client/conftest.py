"""Fixtures running real Apache ZooKeeper (tests/zookeeper_harness.py) next to nookeeper.

zookeeper            a started standalone ZooKeeper, killed at teardown (pass or fail)
zookeeper_factory    start more on demand, with other settings; all killed at teardown
zookeeper_ensemble   a started 3-server ZooKeeper quorum, killed at teardown
backend              parametrized over nookeeper and zookeeper: `.name`, `.hosts`, `.server`
freezable_proxy      a FreezableProxy in front of the backend's server, to cut a client off

All skip, with the reason, when java or the ZooKeeper jars are missing
(`make compat-deps` installs Debian's zookeeper package).

The standalone ZooKeeper is configured like tests/conftest.py's `server`
(nookeeper) fixture: tick 200 ms, session timeouts 400..30000 ms, so the same
test sees the same negotiated timeouts and expiry granularity on both backends.
"""

import pytest

from freezable_proxy import FreezableProxy
from zookeeper_harness import ZooKeeperEnsemble, ZooKeeperProcess, missing_zookeeper

# Mirrors ServerProcess's defaults in tests/harness.py.
STANDALONE_SETTINGS = {"tick_ms": 200, "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}
ENSEMBLE_SETTINGS = {"tick_ms": 200, "init_limit": 25, "sync_limit": 10,
                     "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}


def _skip_without_zookeeper():
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")


def _failed(request):
    report = getattr(request.node, "rep_call", None)
    return report is not None and report.failed


@pytest.fixture
def zookeeper_factory(tmp_path, request):
    """Start standalone ZooKeepers on demand; every one is killed at teardown, pass or fail."""
    _skip_without_zookeeper()
    started = []

    def make(name="zookeeper", **settings):
        zk = ZooKeeperProcess(tmp_path / name, **{**STANDALONE_SETTINGS, **settings})
        started.append(zk)
        return zk.start()

    try:
        yield make
    finally:
        for zk in started:
            zk.kill()
        if _failed(request):
            for zk in started:
                print(f"=== ZooKeeper {zk.hosts} ({zk.workdir})\n{zk.log_tail()}")


@pytest.fixture
def zookeeper(zookeeper_factory):
    """A started standalone Apache ZooKeeper (`.hosts`, `.port`, `.kill()`, `.restart()`...)."""
    return zookeeper_factory()


@pytest.fixture
def zookeeper_ensemble(tmp_path, request):
    """A started 3-server Apache ZooKeeper quorum (`.hosts`, `.servers`, `.leader()`)."""
    _skip_without_zookeeper()
    ensemble = ZooKeeperEnsemble(tmp_path / "zk-ensemble", 3, **ENSEMBLE_SETTINGS)
    try:
        yield ensemble.start()
    finally:
        ensemble.kill_all()
        if _failed(request):
            print(ensemble.log_tails())


class Backend:
    """A started server of either implementation, for tests that must pass on both."""

    def __init__(self, name, server):
        self.name = name
        self.server = server          # harness.ServerProcess or ZooKeeperProcess

    @property
    def hosts(self):
        return self.server.hosts

    def __repr__(self):
        return f"<Backend {self.name} {self.hosts}>"


@pytest.fixture(params=["nookeeper", "zookeeper"])
def backend(request):
    """nookeeper (tests/conftest.py's `server`) or Apache ZooKeeper (`zookeeper`);
    only the one this parameter needs is started."""
    fixture = "server" if request.param == "nookeeper" else "zookeeper"
    return Backend(request.param, request.getfixturevalue(fixture))


@pytest.fixture
def freezable_proxy(backend):
    """A client given `freezable_proxy.hosts` reaches the backend through a proxy the
    test can freeze (tests/freezable_proxy.py): the server stops hearing from it."""
    host, port = backend.hosts.rsplit(":", 1)
    proxy = FreezableProxy(host, int(port))
    yield proxy
    proxy.close()
