"""`bin/datakeeper local` (what `make datakeeper` runs): three DataKeeper nodes
on this machine, against the local ensemble of `make run`.

That ensemble (127.0.0.1:2181-2183) is used when a quorum of it answers;
otherwise this starts it (bin/nk-ensemble etc/node*.yaml, its output in
data/datakeeper/ensemble.log, in a session of its own so that only we stop
it) and stops it again at the end. The nodes' log lines are shown behind a
"node1 | " tag. A node that dies (kill -9 from another terminal) is started
again after --restart-after seconds and comes back as a replica. Ctrl-C
stops the nodes, then the ensemble if it was started here.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from nookeeper.client.fourletter import four_letter_word

ROOT = Path(__file__).resolve().parents[2]
DATAKEEPER_BIN = ROOT / "bin" / "datakeeper"
ENSEMBLE_BIN = ROOT / "bin" / "nk-ensemble"
ENSEMBLE_CONFIGS = [ROOT / "etc" / f"node{i}.yaml" for i in (1, 2, 3)]
LOCAL_HOSTS = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
ENSEMBLE_LOG = ROOT / "data" / "datakeeper" / "ensemble.log"
ENSEMBLE_START_S = 60.0
NODE_START_S = 30.0
STOP_GRACE_S = 10.0
# A node that dies sooner than this after starting is not started again (a bad
# argument, a port in use): restarting it would only repeat the failure.
MIN_RUN_S = 5.0
POLL_S = 0.2


class Output:
    """Whole lines from several threads, never interleaved."""

    def __init__(self):
        self._lock = threading.Lock()

    def say(self, text):
        with self._lock:
            try:
                print(text, flush=True)
            except (OSError, ValueError):
                pass  # stdout is gone (a closed pipe); the children must still be stopped


def _serving(host, port):
    try:
        answer = four_letter_word(host, port, "srvr", timeout=1.0)
    except OSError:
        return False
    return any(line.startswith("Mode: ") for line in answer.splitlines())


def quorum_serving(hosts):
    """Whether a majority of `hosts` (host:port,...) answers srvr with a mode."""
    pairs = [h.rsplit(":", 1) for h in hosts.split(",")]
    up = sum(1 for host, port in pairs if _serving(host, int(port)))
    return up > len(pairs) // 2


def port_free(host, port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class NodeProcess:
    """One `bin/datakeeper node` child and the thread that tags its output."""

    def __init__(self, name, port, args, out):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._args = args
        self._out = out
        self.proc = None
        self.started_at = None
        self.restart_at = None

    def start(self):
        command = [sys.executable, str(DATAKEEPER_BIN), "node", "--name", self.name,
                   "--listen", f"127.0.0.1:{self.port}", "--zk", self._args.zk,
                   "--root", self._args.root,
                   "--session-timeout", str(self._args.session_timeout)]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.started_at = time.monotonic()
        self.restart_at = None
        threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()

    def _relay(self, proc):
        for line in proc.stdout:
            self._out.say(f"{self.name} | {line.rstrip()}")

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1.0) as answer:
                return answer.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def signal(self, signum):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)


def _exit_text(code):
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class LocalCluster:
    def __init__(self, args):
        self.args = args
        self.out = Output()
        self.ensemble = None
        self.nodes = [NodeProcess(f"node{i + 1}", args.first_port + i, args, self.out)
                      for i in range(args.nodes)]
        self._signals = 0

    def _on_signal(self, signum, frame):
        self._signals += 1

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            if not self._start():
                return 1
            self._supervise()
            return 0
        finally:
            self._stop()

    def _start(self):
        taken = [n.port for n in self.nodes if not port_free("127.0.0.1", n.port)]
        if taken:
            self.out.say(f"datakeeper local: port {taken[0]} is in use (another "
                         f"`make datakeeper`?); choose others with --first-port")
            return False
        if not self._ensure_ensemble():
            return False
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + NODE_START_S
        while not all(node.healthy() for node in self.nodes):
            if self._signals:
                return False
            dead = [node for node in self.nodes if node.proc.poll() is not None]
            if dead:
                self.out.say(f"datakeeper local: {dead[0].name} "
                             f"{_exit_text(dead[0].proc.returncode)} while starting")
                return False
            if time.monotonic() > deadline:
                self.out.say(f"datakeeper local: the nodes did not all answer /health "
                             f"within {NODE_START_S:.0f}s")
                return False
            time.sleep(POLL_S)
        self._banner()
        return True

    def _ensure_ensemble(self):
        if self.args.zk != LOCAL_HOSTS or quorum_serving(LOCAL_HOSTS):
            return True
        ENSEMBLE_LOG.parent.mkdir(parents=True, exist_ok=True)
        self.out.say(f"datakeeper local: no ensemble at {LOCAL_HOSTS}; starting one "
                     f"(bin/nk-ensemble etc/node1.yaml etc/node2.yaml etc/node3.yaml, "
                     f"log: {ENSEMBLE_LOG.relative_to(ROOT)})")
        with open(ENSEMBLE_LOG, "ab") as log_file:
            self.ensemble = subprocess.Popen(
                [sys.executable, str(ENSEMBLE_BIN), *map(str, ENSEMBLE_CONFIGS)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=str(ROOT), start_new_session=True)
        deadline = time.monotonic() + ENSEMBLE_START_S
        while not quorum_serving(LOCAL_HOSTS):
            if self._signals:
                return False
            if self.ensemble.poll() is not None or time.monotonic() > deadline:
                tail = ENSEMBLE_LOG.read_text(errors="replace").splitlines()[-15:]
                self.out.say("datakeeper local: the ensemble did not start; the end of its log:\n"
                             + "\n".join(tail))
                return False
            time.sleep(POLL_S)
        return True

    def _banner(self):
        started = "started here" if self.ensemble is not None else "already running"
        lines = [f"\nDataKeeper: {len(self.nodes)} nodes, nookeeper at {self.args.zk} "
                 f"({started}), cluster znode {self.args.root}"]
        for node in self.nodes:
            lines.append(f"  {node.name}  {node.url}/   pid {node.proc.pid}")
        lines.append("Open any of them in a browser. From another terminal, kill -9 the "
                     "leader's pid (the page shows it) and watch a replica take over.")
        if self.args.restart_after > 0:
            lines.append(f"A node that dies is started again after "
                         f"{self.args.restart_after:g}s, as a replica.")
        lines.append("Ctrl-C stops everything.\n")
        self.out.say("\n".join(lines))

    def _supervise(self):
        while not self._signals:
            now = time.monotonic()
            for node in self.nodes:
                code = node.proc.poll()
                if code is None or node.restart_at == float("inf"):
                    continue
                if node.restart_at is None:
                    ran = now - node.started_at
                    if self.args.restart_after > 0 and ran >= MIN_RUN_S:
                        node.restart_at = now + self.args.restart_after
                        self.out.say(f"datakeeper local: {node.name} (pid {node.proc.pid}) "
                                     f"{_exit_text(code)}; starting it again in "
                                     f"{self.args.restart_after:g}s")
                    else:
                        node.restart_at = float("inf")
                        self.out.say(f"datakeeper local: {node.name} (pid {node.proc.pid}) "
                                     f"{_exit_text(code)}; not starting it again")
                elif now >= node.restart_at:
                    node.start()
                    self.out.say(f"datakeeper local: started {node.name} again "
                                 f"(pid {node.proc.pid}) at {node.url}/")
            time.sleep(POLL_S)

    def _stop(self):
        """The nodes first (they step down and close their sessions), then the ensemble."""
        try:
            self._stop_nodes()
        finally:
            self._stop_ensemble()

    def _stop_nodes(self):
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()

    def _stop_ensemble(self):
        if self.ensemble is not None and self.ensemble.poll() is None:
            self.out.say("datakeeper local: stopping the ensemble started here")
            self.ensemble.send_signal(signal.SIGTERM)
            try:
                self.ensemble.wait(STOP_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                os.killpg(self.ensemble.pid, signal.SIGKILL)
                self.ensemble.wait()


def run(args):
    return LocalCluster(args).run()
