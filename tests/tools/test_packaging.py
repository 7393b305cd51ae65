"""Packaging and first contact: `pip install .` into a clean virtualenv and every
command's --version there; bin/ from a checkout without the virtualenv active;
the sample configs; a port in use; systemd's READY=1; the first log line and
srvr's build line; start-up and nk-dump --verify saying how far they are."""

import configparser
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient

from harness import ROOT, ServerProcess, four_letter_word, free_port, wait_for
from nookeeper import ZOOKEEPER_COMPAT_VERSION, __version__, build_stamp
from nookeeper.config import load_config
from nookeeper.examples import EXAMPLES, example_config
from nookeeper.server import main as server_main

COMMANDS = ("nookeeper-server", "nk", "nk-dump", "nk-ensemble")
VERSION = f"nookeeper {__version__}"
# Built into the wheel by setup.py (SOURCE_DATE_EPOCH), shown by srvr: 2023-11-14 22:13 UTC.
BUILD_EPOCH = 1700000000
PACKAGE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")


def _clean_env(**extra):
    """The environment of someone who never activated the project's virtualenv."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "NOTIFY_SOCKET")}
    env["PATH"] = "/usr/bin:/bin"
    env.update(extra)
    return env


# ---- pip install . into a clean virtualenv -----------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtualenv with the package pip-installed from a copy of the
    checkout (so the build leaves nothing behind in it); its bin/ directory."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "nookeeper", source / "nookeeper",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_build.py"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=300,
        env=_clean_env(SOURCE_DATE_EPOCH=str(BUILD_EPOCH), PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    return venv / "bin"


@pytest.mark.timeout(400)
def test_every_installed_command_says_its_version(installed, tmp_path):
    for command in COMMANDS:
        result = subprocess.run([str(installed / command), "--version"], capture_output=True,
                                text=True, timeout=60, cwd=tmp_path, env=_clean_env())
        assert (result.returncode, result.stdout, result.stderr) == (0, VERSION + "\n", ""), \
            command


@pytest.mark.timeout(400)
def test_installed_metadata(installed, tmp_path):
    script = ("import importlib.metadata as m, nookeeper; d = m.distribution('nookeeper'); "
              "print(nookeeper.__file__); print(nookeeper.build_time()); "
              "print(d.version); print(d.metadata['License-Expression']); "
              "print(d.metadata['Requires-Python']); print(repr(d.requires)); "
              "print(sorted(str(f) for f in d.files if 'LICENSE' in str(f)))")
    result = subprocess.run([str(installed / "python"), "-c", script], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env=_clean_env())
    assert result.returncode == 0, result.stderr
    location, built, version, license_, python, requires, licenses = result.stdout.splitlines()
    assert "site-packages" in location and not location.startswith(str(ROOT))
    assert built == f"({BUILD_EPOCH}, 'built')"
    assert version == __version__
    assert license_ == "Apache-2.0"
    assert python == ">=3.11"
    for requirement in ("construct>=2.10.58", "sqlite-utils>=3.24", "pyyaml>=6.0.1",
                        "prometheus-client>=0.14.1"):
        assert repr(requirement) in requires
    assert "licenses/LICENSE" in licenses
    for name in EXAMPLES:
        shown = subprocess.run([str(installed / "nookeeper-server"), "--example-config", name],
                               capture_output=True, text=True, timeout=60, cwd=tmp_path,
                               env=_clean_env())
        assert shown.stdout == example_config(name)


@pytest.mark.timeout(400)
def test_an_installed_server_runs_outside_the_checkout(installed, tmp_path):
    """Started by the installed nk-ensemble (no bin/ to find: `python -m`),
    answering srvr with the wheel's build time, which kazoo parses."""
    port = free_port()
    config = tmp_path / "standalone.yaml"
    config.write_text(yaml.safe_dump({
        "server_id": 1, "client_address": f"127.0.0.1:{port}", "data_dir": "data",
        "tick_ms": 200, "four_letter_words": "*"}))
    launcher = subprocess.Popen([str(installed / "nk-ensemble"), str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=tmp_path, env=_clean_env(), start_new_session=True)
    try:
        srvr = wait_for(lambda: _serving(port), timeout=30, message="the server serving")
        assert srvr.splitlines()[0] == (f"Zookeeper version: {ZOOKEEPER_COMPAT_VERSION}"
                                        f"-nookeeper-{__version__}, built on 2023-11-14 22:13 UTC")
        zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        zk.start(timeout=10)
        try:
            assert zk.server_version() == tuple(map(int, ZOOKEEPER_COMPAT_VERSION.split(".")))
        finally:
            zk.stop()
            zk.close()
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert (tmp_path / "data" / "nookeeper.db").exists()


def _serving(port):
    """srvr's answer once the server serves, else None."""
    try:
        answer = four_letter_word(port, "srvr", timeout=0.5)
    except OSError:
        return None
    return answer if answer.startswith("Zookeeper version") else None


# ---- bin/ from a checkout, virtualenv not active -------------------------------

@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("plain"), log_level="INFO").start()
    yield server
    server.kill()


def _base_python():
    """An interpreter without the project's dependencies: the one .venv was made from."""
    base = getattr(sys, "_base_executable", None)
    if not base or sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtualenv: no bare interpreter at hand")
    return base


def test_bin_scripts_work_without_the_virtualenv(plain_server, tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in this checkout (make venv makes it)")
    base = _base_python()
    lacks = subprocess.run([base, "-c", "import construct, sqlite_utils"], capture_output=True,
                           env=_clean_env(), timeout=30)
    assert lacks.returncode != 0, f"{base} has the dependencies: this test proves nothing"
    env = _clean_env()
    # By the shebang (python3 on a PATH without .venv), and with a bare interpreter.
    for prefix in ([], [base]):
        for command in COMMANDS:
            result = subprocess.run([*prefix, str(ROOT / "bin" / command), "--version"],
                                    capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                    env=env)
            assert (result.returncode, result.stdout) == (0, VERSION + "\n"), \
                (prefix, command, result.stderr)
    created = subprocess.run(
        [base, str(ROOT / "bin" / "nk"), "-s", plain_server.hosts, "create", "/bare", "v1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    got = subprocess.run([str(ROOT / "bin" / "nk"), "-s", plain_server.hosts, "get", "/bare"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert (got.returncode, got.stdout) == (0, "v1\n"), got.stderr


def test_a_checkout_without_a_virtualenv_says_how_to_get_one(tmp_path):
    base = _base_python()
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "bin", checkout / "bin")
    shutil.copytree(ROOT / "nookeeper", checkout / "nookeeper",
                    ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([base, str(checkout / "bin" / "nk"), "--version"],
                            capture_output=True, text=True, timeout=60, env=_clean_env())
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "lacks construct" in result.stderr and f"make venv` in {checkout}" in result.stderr


# ---- sample configs ------------------------------------------------------------

@pytest.mark.parametrize("name, etc", [("standalone", "standalone.yaml"), ("node", "node1.yaml")])
def test_the_packaged_sample_configs_are_the_checkouts(name, etc):
    packaged = ROOT / "nookeeper" / "examples" / EXAMPLES[name]
    assert packaged.read_text() == (ROOT / "etc" / etc).read_text(), \
        f"copy etc/{etc} to {packaged.relative_to(ROOT)}"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_config_prints_a_config_that_loads(name, tmp_path, monkeypatch):
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "nookeeper-server"),
                             "--example-config", name], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == example_config(name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(result.stdout)
    monkeypatch.chdir(tmp_path)  # its data_dir is relative
    config = load_config(path)
    assert config.server_id == 1 and config.client_port == 2181
    assert (len(config.members) == 3) == (name == "node")


def test_example_config_defaults_to_standalone_and_refuses_others():
    server = [sys.executable, str(ROOT / "bin" / "nookeeper-server")]
    shown = subprocess.run([*server, "--example-config"], capture_output=True, text=True,
                           timeout=60)
    assert shown.stdout == example_config("standalone")
    refused = subprocess.run([*server, "--example-config", "huge"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "invalid choice: 'huge'" in refused.stderr
    missing = subprocess.run(server, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "the config file is required" in missing.stderr


# ---- a port in use -------------------------------------------------------------

@pytest.mark.parametrize("taken", ["client_address", "peer", "metrics_address",
                                   "admin_address"])
def test_a_port_in_use_is_one_line_naming_it(taken, tmp_path):
    ports = {"client_address": free_port(), "peer": free_port(),
             "metrics_address": free_port(), "admin_address": free_port()}
    config = {
        "server_id": 1,
        "client_address": f"127.0.0.1:{ports['client_address']}",
        "members": {1: f"127.0.0.1:{ports['peer']}", 2: f"127.0.0.1:{free_port()}"},
        "metrics_address": f"127.0.0.1:{ports['metrics_address']}",
        "admin_address": f"127.0.0.1:{ports['admin_address']}",
        "data_dir": str(tmp_path / "data"),
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    port = ports[taken]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = subprocess.run([sys.executable, str(ROOT / "bin" / "nookeeper-server"),
                                 str(path)], capture_output=True, text=True, timeout=60)
    key = "members.1" if taken == "peer" else taken
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # the first log line, then why it stops
    assert lines[1].startswith(f"nookeeper-server: {path}: cannot start: port {port} of "
                               f"{key} 127.0.0.1:{port} is in use"), lines[1]
    assert not (tmp_path / "data" / "nookeeper.db").exists()  # said before loading anything


# ---- systemd, the first log line, srvr -----------------------------------------

def test_systemd_hears_ready_once_the_port_is_open_and_stopping_on_sigterm(tmp_path,
                                                                            monkeypatch):
    with tempfile.TemporaryDirectory(prefix="nk-") as short:  # a unix socket path is short
        address = os.path.join(short, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            monkeypatch.setenv("NOTIFY_SOCKET", address)
            server = ServerProcess(tmp_path / "server").launch()
            try:
                ready = _datagram(notify, "READY=1")
                assert four_letter_word(server.port, "ruok", timeout=2) == "imok"
                assert "STATUS=" in ready
                _datagram(notify, "STATUS=standalone of epoch")  # serving, as it changes
                server.stop()
                assert server.proc.returncode == 0
                assert "STOPPING=1" in _datagram(notify, "STOPPING=1", timeout=5)
            finally:
                server.kill()


def test_the_example_unit_runs_the_installed_server_as_notify():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd's keys are case-sensitive
    unit.read(ROOT / "etc" / "nookeeper.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    command = service["ExecStart"].split()
    assert Path(command[0]).name == "nookeeper-server" and command[1].endswith(".yaml")
    assert service["RestartPreventExitStatus"] == "2"  # a bad config; a port in use is 1
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _datagram(sock, wanted, timeout=20.0):
    """The first datagram holding `wanted`, as text."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(deadline - time.monotonic(), 0))
        if readable:
            seen.append(sock.recv(4096).decode())
            if wanted in seen[-1]:
                return seen[-1]
    raise AssertionError(f"no {wanted!r} in {seen}")


def test_the_first_log_line_and_srvr_say_what_runs(plain_server):
    first = plain_server.log_path.read_text().splitlines()[0]
    assert f"nookeeper {__version__} (ZooKeeper {ZOOKEEPER_COMPAT_VERSION} protocol" in first
    assert f"starting server 1 with config {plain_server.config_path}, pid " in first
    assert build_stamp() in first
    srvr = plain_server.command("srvr").splitlines()[0]
    assert srvr == (f"Zookeeper version: {ZOOKEEPER_COMPAT_VERSION}-nookeeper-{__version__}, "
                    f"built on {build_stamp()}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", build_stamp())


# ---- long operations say how far they are ---------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A stopped server's data dir holding snapshots and the log after the newest."""
    server = ServerProcess(tmp_path_factory.mktemp("written"), log_level="INFO",
                           snapshot_every_txns=20).start()
    try:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=10)
        try:
            for i in range(50):
                zk.create(f"/n{i}", b"x")
        finally:
            zk.stop()
            zk.close()
        wait_for(lambda: "nookeeper.snapshot: snapshot at zxid" in server.log_path.read_text(),
                 message="a snapshot")
    finally:
        server.stop()
    return server


def test_a_restart_says_what_it_loads_and_replays(written):
    written.log_path.write_text("")
    written.start()
    try:
        log = wait_for(lambda: "replayed the log:" in written.log_path.read_text()
                       and written.log_path.read_text(), message="the replay's end")
    finally:
        written.stop()
    loading = log.index("loading its newest snapshot (zxid ")
    assert loading < log.index("loaded the snapshot at zxid") < log.index("replayed the log:")
    assert re.search(r"replayed the log: (\d+) of its \1 txns applied, up to zxid \d+:\d+", log)


def test_replay_progress_is_logged_while_it_lasts(monkeypatch, caplog):
    """_follow on a stand-in server whose apply advances a txn per poll."""
    monkeypatch.setattr(server_main, "PROGRESS_S", 0.05)
    zxids = [(1 << 32) | counter for counter in range(1, 41)]
    node = types.SimpleNamespace(state=types.SimpleNamespace(serving=False, read_only=False),
                                 replication=types.SimpleNamespace(mode="standalone", epoch=1))
    applied = iter([0] + zxids)

    class Pipeline:
        @property
        def last_zxid(self):
            return next(applied, zxids[-1])

    node.pipeline = Pipeline()
    stop = types.SimpleNamespace(wait=lambda timeout: time.sleep(0.01) or False)
    caplog.set_level("INFO", logger="nookeeper.server")
    server_main._follow(node, stop, server_main.Systemd({}), zxids)
    lines = [r.getMessage() for r in caplog.records]
    progress = [line for line in lines if line.startswith("replaying the log: ")]
    assert progress and all(re.fullmatch(r"replaying the log: \d+ of 40 txns applied "
                                         r"\(\d+%\), at zxid 1:\d+", line) for line in progress)
    assert lines[-1].startswith("replayed the log: 40 of its 40 txns applied, up to zxid 1:40")


def test_nk_dump_verify_shows_progress_on_a_terminal_only(written):
    command = [sys.executable, str(ROOT / "bin" / "nk-dump"), str(written.workdir / "data"),
               "--verify"]
    piped = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout.startswith("ok: ")
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=secondary)
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        os.close(primary)
    assert proc.returncode == 0 and out == piped.stdout
    text = terminal.decode()
    assert "nk-dump: verifying the log: " in text and "nk-dump: verifying snapshot 1 of " in text
    assert text.endswith("\r\x1b[K")  # the line is wiped before the result
