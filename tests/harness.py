"""Real server processes for tests: free ports on 127.0.0.1, killed on teardown."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from nookeeper.client.fourletter import four_letter_word as ask_four_letter_word

ROOT = Path(__file__).resolve().parent.parent
SERVER_BIN = ROOT / "bin" / "nookeeper-server"


def _ephemeral_floor():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_FLOOR = _ephemeral_floor()
_handed_out = set()


def _port_range():
    """The 12000 ports below the ephemeral range, or this pytest-xdist
    worker's own share of them: a port is chosen well before its server binds
    it, so two workers drawing from one pool could both be handed it."""
    low = max(1024, _EPHEMERAL_FLOOR - 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2:
        return low, _EPHEMERAL_FLOOR
    share = (_EPHEMERAL_FLOOR - low) // workers
    start = low + share * int(worker[2:])
    return start, start + share


def free_port():
    """A port free on 127.0.0.1 now, never handed out before by this process.

    Chosen below the kernel's ephemeral range: a port from bind(0) is released
    before the server binds it, and in that gap any client connecting out
    (kazoo, the tests' own sockets) could be given it as its local port."""
    rng = random.Random()
    low, high = _port_range()
    for _ in range(1000):
        port = rng.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high - 1}")


def four_letter_word(port, word, timeout=2.0, host="127.0.0.1"):
    """The tests' argument order (a port on loopback first) for the client's helper."""
    return ask_four_letter_word(host, port, word, timeout)


class ServerProcess:
    """One nookeeper-server process with its own config, data dir and log file.

    host, command_prefix and server_root let a test run it elsewhere: in a
    network namespace (`ip netns exec NS` as prefix), or from another checkout."""

    def __init__(self, workdir, host="127.0.0.1", command_prefix=(), server_root=None,
                 **settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.command_prefix = list(command_prefix)
        self.server_root = Path(server_root) if server_root is not None else None
        self.port = free_port()
        self.config_path = self.workdir / "server.yaml"
        self.log_path = self.workdir / "server.log"
        config = {
            "server_id": 1,
            "client_address": f"{host}:{self.port}",
            "data_dir": str(self.workdir / "data"),
            "tick_ms": 200,
            "min_session_timeout_ms": 400,
            "max_session_timeout_ms": 30000,
            "log_level": "DEBUG",
            "four_letter_words": "*",
        }
        config.update(settings)
        # A setting of None leaves the key out: the server's own default applies.
        config = {key: value for key, value in config.items() if value is not None}
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc = None

    @property
    def hosts(self):
        return f"{self.host}:{self.port}"

    def start(self, timeout=20.0):
        self.launch()
        return self.wait_serving(timeout)

    def launch(self):
        server_bin, env = SERVER_BIN, None
        if self.server_root is not None:
            server_bin = self.server_root / "bin" / "nookeeper-server"
            env = {**os.environ, "PYTHONPATH": str(self.server_root)}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.command_prefix, sys.executable, str(server_bin), str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir), env=env,
        )
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def safe_mode(self):
        try:
            return self.mode()
        except OSError:
            return None

    def wait_serving(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.is_serving():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer ruok in {timeout}s:\n{self.log_tail()}")

    def is_serving(self):
        return four_letter_word(self.port, "srvr", timeout=0.5, host=self.host).startswith(
            "Zookeeper version")

    def mode(self):
        for line in four_letter_word(self.port, "srvr", timeout=2, host=self.host).splitlines():
            if line.startswith("Mode: "):
                return line[6:]
        return None

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self):
        self.kill(signal.SIGTERM)

    def restart(self):
        self.kill()
        return self.start()

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def command(self, word):
        return four_letter_word(self.port, word, host=self.host)


def wait_for(predicate, timeout=10.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


__all__ = ["ServerProcess", "free_port", "four_letter_word", "wait_for"]


class ClientProcess:
    """A kazoo client in a separate process (tests/kazoo_worker.py)."""

    def __init__(self, hosts, role, *args, timeout=None):
        argv = [sys.executable, str(ROOT / "tests" / "kazoo_worker.py"), hosts, role,
                *[str(a) for a in args]]
        env = dict(os.environ)
        if timeout is not None:
            env["NK_WORKER_TIMEOUT"] = str(timeout)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def readline(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited: {self.proc.stderr.read()}")
        return line.strip()

    def wait_ready(self):
        line = self.readline()
        assert line == "ready", line

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def wait(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class Ensemble:
    """N server processes forming one ensemble on loopback, with free ports.

    A subclass places servers elsewhere by overriding placement()."""

    def __init__(self, workdir, size=3, **settings):
        peer_ports = {sid: free_port() for sid in range(1, size + 1)}
        members = {sid: f"{self.placement(sid).get('host', '127.0.0.1')}:{port}"
                   for sid, port in peer_ports.items()}
        self.servers = {}
        for sid in range(1, size + 1):
            self.servers[sid] = ServerProcess(
                Path(workdir) / f"node{sid}", server_id=sid, members=members,
                **self.placement(sid),
                **{"tick_ms": 100, "init_limit": 20, "sync_limit": 5, **settings},
            )

    def placement(self, sid):
        """Extra ServerProcess arguments for server sid (host, command_prefix, ...)."""
        return {}

    @property
    def hosts(self):
        return ",".join(server.hosts for server in self.servers.values())

    def start(self, timeout=30.0):
        for server in self.servers.values():
            server.launch()
        for server in self.servers.values():
            server.wait_serving(timeout)
        return self

    def leader(self, timeout=20.0):
        return wait_for(lambda: self._find("leader"), timeout=timeout, message="a leader")

    def followers(self):
        return [s for s in self.servers.values() if s.alive() and s.safe_mode() == "follower"]

    def _find(self, mode):
        for server in self.servers.values():
            if server.alive() and server.safe_mode() == mode:
                return server
        return None

    def kill_all(self):
        for server in self.servers.values():
            server.kill()
