import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import ServerProcess  # noqa: E402


@pytest.fixture
def server_factory(tmp_path):
    """Start servers on demand; every one is killed at teardown, pass or fail."""
    started = []

    def make(name="server", **settings):
        server = ServerProcess(tmp_path / name, **settings)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def zk(server):
    """A started kazoo client on the server fixture's server."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def server(server_factory, request):
    srv = server_factory()
    yield srv
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(srv.log_tail())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def ensemble_factory(tmp_path):
    """Start ensembles on demand; every process is killed at teardown, pass or fail."""
    from harness import Ensemble

    made = []

    def make(size=3, **settings):
        ensemble = Ensemble(tmp_path / f"ensemble{len(made)}", size, **settings)
        made.append(ensemble)
        return ensemble.start()

    yield make
    for ensemble in made:
        ensemble.kill_all()
