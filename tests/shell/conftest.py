"""Fixtures for bin/nk's tests: one server per backend and test module, and ways to run nk.

backend   a started server, parametrized nookeeper | zookeeper (tests/harness.py's
          ServerProcess or tests/zookeeper_harness.py's ZooKeeperProcess, both with
          their default settings). Unlike tests/client/conftest.py's `backend` it is
          started once per test module: nk's tests only add nodes under their own `base`
          path, so they can share a server and the run stays fast.
nk        run `bin/nk -s <backend> ARGS...` once; a CompletedProcess (text).
client    a started nookeeper.client.KeeperClient on the backend, for set-up and checks.
base      a fresh node path for this test ("/t-<test name>"), already created.
terminal  start interactive nk on a pseudo-terminal (nkprocess.Terminal).
"""

import os
import re

import pytest

from harness import ServerProcess
from nkprocess import Terminal, run_nk
from nookeeper.client import KeeperClient
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper


@pytest.fixture(scope="module", params=["nookeeper", "zookeeper"])
def backend(request, tmp_path_factory):
    if request.param == "zookeeper":
        reason = missing_zookeeper()
        if reason:
            pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
        server = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper"))
    else:
        server = ServerProcess(tmp_path_factory.mktemp("nookeeper"))
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def nk(backend):
    def run(*args, **kwargs):
        return run_nk("-s", backend.hosts, *args, **kwargs)
    return run


@pytest.fixture
def client(backend):
    keeper = KeeperClient(backend.hosts, timeout=10)
    keeper.start(timeout=15)
    yield keeper
    keeper.stop()


@pytest.fixture
def base(client, request):
    path = "/t-" + re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    client.create(path, b"")
    return path


@pytest.fixture
def terminal(backend, tmp_path):
    """Start interactive nk sessions on a pseudo-terminal; each is killed at teardown.

    The readline history goes to a file of this test (its path is `.history`),
    and no ~/.inputrc can change the key bindings.
    """
    env = {**os.environ, "NK_HISTFILE": str(tmp_path / "nk_history"),
           "INPUTRC": os.devnull, "TERM": "xterm"}
    started = []

    def start(*args):
        term = Terminal("-s", backend.hosts, *args, env=env)
        term.history = tmp_path / "nk_history"
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()
