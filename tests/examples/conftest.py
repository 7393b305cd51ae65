"""Fixtures for the example applications (examples/): DataKeeper clusters on real
coordination ensembles, every process killed at teardown, pass or fail.

nookeeper_ensemble   a 3-server nookeeper ensemble (tests/harness.py, tick 100 ms)
zookeeper_ensemble   a 3-server Apache ZooKeeper 3.8 quorum (tick 200 ms); skips,
                     with the reason, without java or the ZooKeeper jars
coordination         either of them, by parameter: `.name`, `.hosts`, `.ensemble`
datakeeper           make(hosts, ...): a started DataKeeperCluster (three nodes)
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datakeeper_harness import DataKeeperCluster  # noqa: E402
from zookeeper_harness import ZooKeeperEnsemble, missing_zookeeper  # noqa: E402

# As tests/client/conftest.py's ENSEMBLE_SETTINGS: sessions from 400 ms up.
ZOOKEEPER_SETTINGS = {"tick_ms": 200, "init_limit": 25, "sync_limit": 10,
                      "min_session_timeout_ms": 400, "max_session_timeout_ms": 30000}


def _failed(request):
    report = getattr(request.node, "rep_call", None)
    return report is not None and report.failed


@pytest.fixture
def nookeeper_ensemble(ensemble_factory):
    return ensemble_factory(3)


@pytest.fixture
def zookeeper_ensemble(tmp_path, request):
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
    ensemble = ZooKeeperEnsemble(tmp_path / "zookeeper", 3, **ZOOKEEPER_SETTINGS)
    try:
        yield ensemble.start()
    finally:
        ensemble.kill_all()
        if _failed(request):
            print(ensemble.log_tails())


class Coordination:
    """The ensemble DataKeeper runs on, whichever implementation it is."""

    def __init__(self, name, ensemble):
        self.name = name
        self.ensemble = ensemble

    @property
    def hosts(self):
        return self.ensemble.hosts

    def __repr__(self):
        return f"<Coordination {self.name} {self.hosts}>"


@pytest.fixture(params=["nookeeper", "zookeeper"])
def coordination(request):
    """nookeeper or Apache ZooKeeper; only the one this parameter needs is started."""
    return Coordination(request.param, request.getfixturevalue(f"{request.param}_ensemble"))


@pytest.fixture
def datakeeper(tmp_path, request):
    """make(hosts, **settings): three started DataKeeper nodes; all killed at teardown
    (a SIGSTOPped one too), their logs printed when the test failed."""
    made = []

    def make(hosts, **settings):
        cluster = DataKeeperCluster(tmp_path / f"datakeeper{len(made)}", hosts, **settings)
        made.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        for cluster in made:
            cluster.kill_all()
        if _failed(request):
            for cluster in made:
                print(cluster.log_tails())
