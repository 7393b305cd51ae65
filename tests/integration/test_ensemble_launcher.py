"""bin/nk-ensemble: starts, reports, and above all stops every server it started.

Each server here runs standalone (no members), which is enough to exercise the
launcher's mechanics: child output, the srvr wait, the banner, signals and
child exits.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading

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

    def __init__(self, cwd, configs):
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *map(str, configs)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
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

    def make(configs):
        launcher = Launcher(tmp_path, configs)
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


def test_a_child_dying_stops_the_others_and_exits_1(tmp_path, launch):
    configs, ports = write_configs(tmp_path, 3)
    launcher = launch(configs)
    launcher.wait_for_line(r"connect string: ")
    pids = launcher.child_pids()
    assert set(pids) == {"node1", "node2", "node3"}, launcher.output

    os.kill(pids["node2"], signal.SIGKILL)
    assert launcher.wait() == 1, launcher.output
    assert "node2 exited with code -9 (killed by SIGKILL)" in launcher.output
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
