"""DataKeeper nodes as real processes for tests: bin/datakeeper node on free ports.

Requests never follow redirects by themselves, so a test sees the 307 a
replica answers; `write` follows one, as a client would.
"""

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path
from urllib.parse import quote, urlsplit

from harness import ROOT, free_port, wait_for

DATAKEEPER_BIN = ROOT / "bin" / "datakeeper"


class Answer(namedtuple("Answer", "status headers body")):
    """One HTTP answer: status, headers (a dict, names lower-cased), decoded JSON body."""

    __slots__ = ()

    @property
    def node(self):
        return self.headers.get("x-datakeeper-node")

    @property
    def role(self):
        return self.headers.get("x-datakeeper-role")

    @property
    def seq(self):
        return int(self.headers["x-datakeeper-seq"])


def request(url, method, path, body=None, timeout=10.0):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, headers, json.loads(raw) if raw else None)


class DataKeeperProcess:
    """One node; `workdir/<name>.log` has its log, printed by the fixture when a test fails."""

    def __init__(self, workdir, name, hosts, root="/datakeeper", session_timeout=3.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.hosts = hosts
        self.root = root
        self.session_timeout = session_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.stopped = False

    def launch(self):
        command = [sys.executable, str(DATAKEEPER_BIN), "node", "--name", self.name,
                   "--listen", f"127.0.0.1:{self.port}", "--zk", self.hosts,
                   "--root", self.root, "--session-timeout", str(self.session_timeout)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.stopped = False
        return self

    def wait_healthy(self, timeout=20.0):
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                return self.health().status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=timeout, interval=0.05, message=f"{self.name} healthy")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- HTTP ----------------------------------------------------------------

    def request(self, method, path, body=None, timeout=10.0):
        return request(self.url, method, path, body, timeout)

    def health(self):
        return self.request("GET", "/health", timeout=2.0)

    def role(self):
        """"leader", "taking over", "replica", or None if the node does not answer."""
        try:
            return self.health().body.get("role")
        except OSError:
            return None

    def get(self, key):
        return self.request("GET", "/keys/" + quote(key, safe=""))

    def put(self, key, value, timeout=15.0):
        return self.request("PUT", "/keys/" + quote(key, safe=""), value.encode("utf-8"),
                            timeout=timeout)

    def delete(self, key, timeout=15.0):
        return self.request("DELETE", "/keys/" + quote(key, safe=""), timeout=timeout)

    def keys(self):
        """{key: value} of this node's copy."""
        return self.request("GET", "/keys").body["keys"]

    def write(self, key, value, timeout=15.0):
        """PUT here, following a 307 to the leader once; the final Answer."""
        answer = self.put(key, value, timeout)
        if answer.status == 307:
            location = urlsplit(answer.headers["location"])
            answer = request(f"http://{location.netloc}", "PUT", location.path,
                             value.encode("utf-8"), timeout)
        return answer

    # -- signals ---------------------------------------------------------------

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def restart(self):
        self.kill()
        return self.launch()

    def log_tail(self, lines=80):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class DataKeeperCluster:
    """Several nodes on one coordination ensemble (nookeeper's or ZooKeeper's)."""

    def __init__(self, workdir, hosts, names=("node1", "node2", "node3"), root="/datakeeper",
                 session_timeout=3.0):
        self.session_timeout = session_timeout
        self.nodes = {name: DataKeeperProcess(workdir, name, hosts, root, session_timeout)
                      for name in names}

    def start(self, timeout=30.0):
        for node in self.nodes.values():
            node.launch()
        for node in self.nodes.values():
            node.wait_healthy(timeout)
        self.leader(timeout)
        return self

    def live(self):
        return [node for node in self.nodes.values() if node.alive() and not node.stopped]

    def leader(self, timeout=20.0, among=None):
        """The node that says it leads, once every live node names it as leader."""
        def agreed():
            nodes = among if among is not None else self.live()
            answers = {}
            for node in nodes:
                try:
                    answers[node.name] = node.health().body
                except OSError:
                    return None
            leaders = [n for n in nodes if answers[n.name]["role"] == "leader"]
            if len(leaders) != 1:
                return None
            named = {body.get("leader") for body in answers.values()}
            return leaders[0] if named == {leaders[0].name} else None

        return wait_for(agreed, timeout=timeout, interval=0.05, message="one agreed leader")

    def replicas(self):
        leader = self.leader()
        return [node for node in self.live() if node is not leader]

    def wait_converged(self, expected, nodes=None, timeout=20.0):
        """Wait until every node (default: every live one) holds exactly `expected`."""
        def converged():
            for node in nodes if nodes is not None else self.live():
                try:
                    if node.keys() != expected:
                        return False
                except OSError:
                    return False
            return True

        wait_for(converged, timeout=timeout, interval=0.05, message="every node converged")

    def kill_all(self):
        for node in self.nodes.values():
            node.kill()

    def log_tails(self, lines=80):
        return "\n".join(f"=== {name} ({node.log_path})\n{node.log_tail(lines)}"
                         for name, node in self.nodes.items())


class Writer:
    """A client writing <prefix>-0, <prefix>-1, ... through whichever live node
    answers (following the 307 to the leader) until stopped.

    Each key gets one value, and a failed write is tried again with the same
    value, so `acked` ({key: value} of every write answered 200) is exactly
    what the cluster promised to keep.
    """

    def __init__(self, cluster, prefix, pause=0.005):
        self.cluster = cluster
        self.prefix = prefix
        self.pause = pause
        self.acked = {}
        self.acked_at = []           # time.monotonic() of each acknowledgement
        self.refusals = []           # (status or error, node) of each failed attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the writer did not stop"
        return self

    def acked_since(self, moment):
        return sum(1 for t in self.acked_at if t > moment)

    def wait_acked_since(self, moment, count, timeout=20.0):
        wait_for(lambda: self.acked_since(moment) >= count, timeout=timeout,
                 message=f"{count} writes acknowledged")

    def _run(self):
        index, turn = 0, 0
        while not self._stop.is_set():
            key, value = f"{self.prefix}-{index}", f"value-{index}"
            nodes = self.cluster.live()
            if not nodes:
                time.sleep(0.05)
                continue
            node = nodes[turn % len(nodes)]
            try:
                answer = node.write(key, value)
            except OSError as exc:
                self.refusals.append((type(exc).__name__, node.name))
                turn += 1
                time.sleep(0.02)
                continue
            if answer.status == 200:
                self.acked[key] = value
                self.acked_at.append(time.monotonic())
                index += 1
                time.sleep(self.pause)
            else:
                self.refusals.append((answer.status, node.name))
                turn += 1
                time.sleep(0.05)
