"""bin/nk-ensemble: starts, reports, supervises, and above all stops every server it started.

Most servers here run standalone (no members), which is enough to exercise the
launcher's mechanics: child output, the srvr wait, the banner, signals, child
exits and commands on stdin. The live table is driven on a pseudo-terminal
with a real 3-member ensemble: kill the leader, see another take over,
restart it, quit.
"""

import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest
import yaml

from harness import ROOT, free_port, four_letter_word, wait_for

LAUNCHER = ROOT / "bin" / "nk-ensemble"


def write_configs(tmp_path, count):
    paths, ports = [], []
    for sid in range(1, count + 1):
        port = free_port()
        path = tmp_path / f"node{sid}.yaml"
        path.write_text(yaml.safe_dump({
            "server_id": sid,
            "client_address": f"127.0.0.1:{port}",
            "data_dir": str(tmp_path / f"node{sid}" / "data"),
            "tick_ms": 200,
        }))
        paths.append(path)
        ports.append(port)
    return paths, ports


def refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def group_is_gone(pgid):
    """True once no process at all is left in the launcher's process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


class Launcher:
    """nk-ensemble in its own session, its output collected by a thread."""

    def __init__(self, cwd, configs, stdin=subprocess.DEVNULL):
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *map(str, configs)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=stdin,
            cwd=str(cwd), start_new_session=True, text=True,
        )
        self.pgid = self.proc.pid
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self):
        return "\n".join(self.lines)

    def wait_for_line(self, pattern, timeout=30.0):
        regex = re.compile(pattern)

        def found():
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"launcher exited with {self.proc.returncode}")
            return next((m for m in map(regex.search, list(self.lines)) if m), None)
        try:
            return wait_for(found, timeout=timeout, message=pattern)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- launcher output ---\n{self.output}") from None

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def child_pids(self):
        regex = re.compile(r"started (\S+) \(pid (\d+)\)")
        return {m.group(1): int(m.group(2)) for m in map(regex.search, list(self.lines)) if m}

    def wait(self, timeout=30.0):
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill_group(self):
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def launch(tmp_path):
    """Start launchers; each one's whole process group is killed at teardown, pass or fail."""
    started = []

    def make(configs, **options):
        launcher = Launcher(tmp_path, configs, **options)
        started.append(launcher)
        return launcher

    yield make
    for launcher in started:
        launcher.kill_group()


def test_banner_then_sigint_stops_everything(tmp_path, launch):
    configs, ports = write_configs(tmp_path, 3)
    launcher = launch(configs)
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)

    launcher.wait_for_line(rf"connect string: {re.escape(hosts)}$")
    assert f'KazooClient(hosts="{hosts}")' in launcher.output
    assert f"zkCli.sh -server {hosts}" in launcher.output
    # In the banner if already known, else on a line of its own soon after.
    launcher.wait_for_line(r"leader: +every server is standalone and leads itself$")
    for port in ports:
        assert "Mode: standalone" in four_letter_word(port, "srvr")
    # Each child's own output comes through behind its fixed-width tag.
    for sid in (1, 2, 3):
        tagged = rf"^node{sid} \| nookeeper server {sid}:"
        assert re.search(tagged, launcher.output, re.M), launcher.output

    # As a terminal's Ctrl-C does: the whole foreground group gets SIGINT, the
    # children included, and their exit must not count as a failure.
    os.killpg(launcher.pgid, signal.SIGINT)
    assert launcher.wait() == 0, launcher.output
    assert "every server has stopped" in launcher.output
    assert "exited with code" not in launcher.output
    for port in ports:
        assert refuses(port)
    assert group_is_gone(launcher.pgid)


def test_a_child_dying_is_reported_and_the_others_keep_running(tmp_path, launch):
    """Once up, a server that dies is said to have, and nothing else stops; commands
    on stdin (not a terminal: a line each) start it again and quit."""
    configs, ports = write_configs(tmp_path, 3)
    launcher = launch(configs, stdin=subprocess.PIPE)
    launcher.wait_for_line(r"connect string: ")
    launcher.wait_for_line(r"roles: node1 standalone, node2 standalone, node3 standalone$")
    pids = launcher.child_pids()
    assert set(pids) == {"node1", "node2", "node3"}, launcher.output

    os.kill(pids["node2"], signal.SIGKILL)
    launcher.wait_for_line(r"node2 exited with code -9 \(killed by SIGKILL\); "
                           r"the others keep running \(r 2 starts it again\)$")
    launcher.wait_for_line(r"roles: node1 standalone, node2 exited, node3 standalone$")
    assert launcher.proc.poll() is None, launcher.output
    assert "stopping the others" not in launcher.output
    assert refuses(ports[1])
    for port in (ports[0], ports[2]):
        assert "Mode: standalone" in four_letter_word(port, "srvr")
    # No screen drawing when stdout is not a terminal: plain lines only.
    assert "\x1b[" not in launcher.output and "+----" not in launcher.output

    launcher.send("r 2")
    wait_for(lambda: launcher.child_pids()["node2"] != pids["node2"], timeout=10,
             message="node2 started again")
    launcher.wait_for_line(r"roles: node1 standalone, node2 standalone, node3 standalone$")
    launcher.send("k 7")
    launcher.wait_for_line(r"no server 7 \(the servers are 1, 2, 3\)$")
    launcher.send("q")
    assert launcher.wait() == 0, launcher.output
    assert "every server has stopped" in launcher.output
    for port in ports:
        assert refuses(port)
    assert group_is_gone(launcher.pgid)


def test_sigterm_to_the_launcher_alone_stops_everything(tmp_path, launch):
    configs, ports = write_configs(tmp_path, 2)
    launcher = launch(configs)
    launcher.wait_for_line(r"connect string: ")
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.wait() == 0, launcher.output
    assert group_is_gone(launcher.pgid)
    for port in ports:
        assert refuses(port)


def test_a_bad_config_exits_2_with_one_line_before_starting_anything(tmp_path):
    configs, ports = write_configs(tmp_path, 2)
    configs[1].write_text(configs[1].read_text() + "tick_ms_typo: 5\n")
    result = subprocess.run([sys.executable, str(LAUNCHER), *map(str, configs)],
                            capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"nk-ensemble: {configs[1]}: tick_ms_typo: unknown key"), lines[0]
    assert refuses(ports[0])


def test_two_members_on_one_client_port_is_a_config_error(tmp_path):
    configs, _ = write_configs(tmp_path, 2)
    first = yaml.safe_load(configs[0].read_text())
    second = yaml.safe_load(configs[1].read_text())
    second["client_address"] = first["client_address"]
    configs[1].write_text(yaml.safe_dump(second))
    result = subprocess.run([sys.executable, str(LAUNCHER), *map(str, configs)],
                            capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "client_address" in result.stderr and str(configs[0]) in result.stderr


def test_help():
    result = subprocess.run([sys.executable, str(LAUNCHER), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: nk-ensemble")
    assert "Ctrl-C" in result.stdout


def test_no_output_is_lost_when_a_child_fails_at_start(tmp_path, launch):
    """A server that cannot bind says why; that line must reach the user before the verdict."""
    configs, ports = write_configs(tmp_path, 2)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports[1]))
    blocker.listen()
    try:
        launcher = launch(configs)
        assert launcher.wait() == 1, launcher.output
    finally:
        blocker.close()
    text = launcher.output
    assert re.search(r"^node2 \| nookeeper-server: .*cannot start", text, re.M), text
    assert text.index("cannot start") < text.index("node2 exited with code 1")
    assert refuses(ports[0])
    assert group_is_gone(launcher.pgid)


# -- the live table, on a terminal ---------------------------------------------------

# Terminal control sequences (cursor moves, erasing) and carriage returns.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07|\r")


class TerminalLauncher:
    """nk-ensemble on a pseudo-terminal that is its controlling terminal, as under
    `make run` at a shell: keys, the live table, Ctrl-C."""

    def __init__(self, cwd, configs, columns=250):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *map(str, configs)],
            stdin=slave, stdout=slave, stderr=slave, cwd=str(cwd), close_fds=True,
            start_new_session=True, preexec_fn=_take_terminal,
            env={**os.environ, "TERM": "xterm"},
        )
        os.close(slave)
        self.master = master
        self.pgid = self.proc.pid
        self.output = ""
        self._seen = 0

    def send(self, text):
        os.write(self.master, text.encode())

    def expect(self, pattern, timeout=20.0):
        """The match of `pattern` in the output after the previous match, with the
        terminal's control sequences taken out."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no {pattern!r} after {timeout}s; since the last match:\n"
                                     f"{self.output[self._seen:][-6000:]}")

    def _read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], min(timeout, 0.5))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        self.output += _CONTROL.sub("", chunk.decode("utf-8", "replace"))
        return True

    def drain(self):
        while self._read(0.2):
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                return

    def close(self):
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        os.close(self.master)


def _take_terminal():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def write_ensemble_configs(tmp_path, count):
    """Members of one ensemble, allowing the four-letter words etc/ allows."""
    peers = {sid: free_port() for sid in range(1, count + 1)}
    paths, ports = [], []
    for sid in peers:
        port = free_port()
        path = tmp_path / f"node{sid}.yaml"
        path.write_text(yaml.safe_dump({
            "server_id": sid,
            "client_address": f"127.0.0.1:{port}",
            "members": {other: f"127.0.0.1:{peer}" for other, peer in peers.items()},
            "data_dir": str(tmp_path / f"node{sid}" / "data"),
            "tick_ms": 100, "init_limit": 20, "sync_limit": 5,
            "four_letter_words": ["ruok", "srvr", "stat", "mntr", "conf", "isro", "cons",
                                  "wchs", "envi"],
        }))
        paths.append(path)
        ports.append(port)
    return paths, ports


def table_row(name, role, pid=r"\d+"):
    """A row of the live table: member, pid, id, address, role."""
    return rf"^\| {name} +\| {pid} +\| +\d+ \| 127\.0\.0\.1:\d+ +\| {role} +\|"


@pytest.fixture
def terminal_launch(tmp_path):
    started = []

    def make(configs):
        launcher = TerminalLauncher(tmp_path, configs)
        started.append(launcher)
        return launcher

    yield make
    for launcher in started:
        launcher.close()


def test_live_table_follows_a_failover_and_keys_restart_and_quit(tmp_path, terminal_launch):
    configs, ports = write_ensemble_configs(tmp_path, 3)
    term = terminal_launch(configs)
    term.expect(r"all 3 servers answer ruok")
    term.expect(r"keys: r N restarts server N, k N kills it \(SIGKILL\), q quits")
    leader = term.expect(table_row(r"(node\d)", "leader")).group(1)
    sid = leader[-1]

    term.send(f"k {sid}\r")
    term.expect(rf"{leader} exited with code -9 \(killed by SIGKILL\); the others keep running")
    term.expect(table_row(leader, "exited", pid="-"))
    # Another member takes over, and the table says so while the old leader is still down.
    match = term.expect(table_row(rf"((?!{leader})node\d)", "leader"))
    end = term.expect(r"^\+-+\+").end()  # the table's last rule
    table = term.output[term.output.rindex("+\n", 0, match.start()):end]
    assert re.search(table_row(leader, "exited", pid="-"), table, re.M), table
    new_leader = match.group(1)
    assert term.proc.poll() is None

    term.send(f"r {sid}\r")
    term.expect(rf"started {leader} \(pid \d+\)")
    term.expect(table_row(leader, "follower"))
    term.expect(table_row(new_leader, "leader"))
    term.expect(rf"^healthy: 3/3 members, leader {new_leader[-1]}$")

    term.send("q")
    term.expect(r"every server has stopped")
    assert term.proc.wait(timeout=20) == 0
    term.drain()
    for port in ports:
        assert refuses(port)
    assert group_is_gone(term.pgid)
    # The terminal is given back as it was: line editing and echo on again.
    lflag = termios.tcgetattr(term.master)[3]
    assert lflag & termios.ICANON and lflag & termios.ECHO
