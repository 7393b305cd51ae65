"""Servers in their own network namespaces, so that a test can really cut a
server off (peer and client traffic alike) and let it back.

Each server k gets namespace <prefix>k with one veth whose root-side end is a
port of a bridge in the root namespace; the bridge holds .254 of a private /24,
so the test process reaches every server directly. Names and the subnet are
random per test: a namespace left behind by a crashed run never collides.
"""

import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import Ensemble

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args, check=True):
    result = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def unavailable_reason():
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not os.access(IP, os.X_OK):
        return f"{IP} (iproute2) is not installed"
    result = _ip("netns", "list", check=False)
    if result.returncode != 0:
        return f"`ip netns` is unavailable: {result.stderr.strip()}"
    return None


def _subnet_in_use(net):
    """Whether any route of the root namespace other than the default covers net."""
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        for token in line.split()[:2]:
            try:
                route = ipaddress.ip_network(token, strict=False)
            except ValueError:
                continue
            if route.prefixlen > 0 and route.overlaps(net):
                return True
            break
    return False


class Network:
    """count namespaces on one bridge; isolate(k)/heal(k) cut and restore server k."""

    def __init__(self, count=3):
        rng = random.Random()
        suffix = f"{rng.randrange(16 ** 6):06x}"
        self.bridge = f"nkb{suffix}"
        self.namespaces = {k: f"nk{suffix}{k}" for k in range(1, count + 1)}
        self.root_ends = {k: f"nkv{suffix}{k}" for k in range(1, count + 1)}
        self.inner_ends = {k: f"nkp{suffix}{k}" for k in range(1, count + 1)}
        for _ in range(100):
            net = ipaddress.ip_network(f"10.{rng.randrange(1, 255)}.{rng.randrange(256)}.0/24")
            if not _subnet_in_use(net):
                break
        else:
            raise RuntimeError("no free 10.x.y.0/24 for the test network")
        self.subnet = net
        self._made_bridge = False

    def address(self, k):
        return str(self.subnet.network_address + k)

    def exec_prefix(self, k):
        return [IP, "netns", "exec", self.namespaces[k]]

    def setup(self):
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        _ip("addr", "add", f"{self.subnet.network_address + 254}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for k, ns in self.namespaces.items():
            _ip("netns", "add", ns)
            _ip("link", "add", self.root_ends[k], "type", "veth",
                "peer", "name", self.inner_ends[k], "netns", ns)
            _ip("link", "set", self.root_ends[k], "master", self.bridge)
            _ip("link", "set", self.root_ends[k], "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(k)}/24", "dev", self.inner_ends[k])
            _ip("-n", ns, "link", "set", self.inner_ends[k], "up")
        return self

    def isolate(self, k):
        """Drop every frame to and from server k: its bridge port goes down."""
        _ip("link", "set", self.root_ends[k], "down")

    def heal(self, k):
        _ip("link", "set", self.root_ends[k], "up")

    def teardown(self):
        """Remove everything, whatever state setup reached; processes still in a
        namespace (started by this test) are killed by pid first."""
        existing = set(_ip("netns", "list", check=False).stdout.split())
        for ns in self.namespaces.values():
            if ns not in existing:
                continue
            for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", ns, check=False)
        for end in self.root_ends.values():
            if _ip("link", "show", end, check=False).returncode == 0:
                _ip("link", "del", end, check=False)
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)


class NetnsEnsemble(Ensemble):
    """An ensemble whose server k runs in namespace k, on that namespace's address.

    NK_SERVER_ROOT=DIR runs the servers from another checkout (DIR/bin, with
    DIR on PYTHONPATH), e.g. the code before a fix, against the same tests."""

    def __init__(self, network, workdir, size=3, **settings):
        self.network = network
        self.server_root = os.environ.get("NK_SERVER_ROOT") or None
        super().__init__(workdir, size, **settings)

    def placement(self, sid):
        return {"host": self.network.address(sid),
                "command_prefix": self.network.exec_prefix(sid),
                "server_root": self.server_root}

    @property
    def root(self):
        if self.server_root:
            return Path(self.server_root)
        return Path(__file__).resolve().parent.parent

    def dump(self, sid, *args):
        """bin/nk-dump of server sid's data dir, from the code the servers run."""
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        result = subprocess.run(
            [sys.executable, str(self.root / "bin" / "nk-dump"), *args,
             str(self.servers[sid].workdir / "data")],
            capture_output=True, text=True, env=env, timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"nk-dump failed: {result.stderr}")
        return result.stdout


@pytest.fixture
def netns_ensemble_factory(tmp_path):
    """Make NetnsEnsembles (started) on a fresh network; at teardown, pass or
    fail, every server is killed and the namespaces and bridge are removed."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    made = []
    network = Network(3)
    try:
        network.setup()

        def make(**settings):
            ensemble = NetnsEnsemble(network, tmp_path / f"ensemble{len(made)}", 3, **settings)
            made.append(ensemble)
            return ensemble.start()

        yield make
    finally:
        try:
            for ensemble in made:
                ensemble.kill_all()
        finally:
            network.teardown()


__all__ = ["Network", "NetnsEnsemble", "netns_ensemble_factory", "unavailable_reason"]
