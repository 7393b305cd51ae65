"""`nk-ensemble CONFIG...`: run a local ensemble in the foreground, like a Procfile runner.

One bin/nookeeper-server child per config, their output interleaved line by
line behind a `node1 | ` tag, a banner saying how to connect once every
server answers ruok, and one Ctrl-C to stop them all. The children stay in the
launcher's process group, so killing that group never leaves a server behind.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nookeeper import version_text
from nookeeper.client.fourletter import four_letter_word
from nookeeper.config import ConfigError, load_config

PROG = "nk-ensemble"
ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = ROOT / "bin" / "nookeeper-server"
# How a server is started: the checkout's bin/ script when there is one (it
# runs the checkout's code), else the installed package's module.
SERVER_COMMAND = ([str(SERVER_BIN)] if SERVER_BIN.exists()
                  else ["-m", "nookeeper.server.main"])
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
STOP_GRACE_S = 10.0      # SIGTERM, then SIGKILL after this long
LEADER_WAIT_S = 30.0     # how long to keep asking who leads after the banner
SLOW_START_S = 30.0      # when to say which server has still not answered ruok
POLL_S = 0.1
LEADER_POLL_S = 0.5
_COLORS = ("36", "33", "35", "32", "34", "31")  # cyan, yellow, magenta, green, blue, red
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class Member:
    """One server of the ensemble: its config, its process and its output reader."""

    def __init__(self, name, path, config):
        self.name = name
        self.path = path
        self.config = config
        self.proc = None
        self.reader = None
        self.ready = False

    @property
    def dial_host(self):
        """A server listening on every interface is reached through loopback."""
        return _WILDCARDS.get(self.config.client_host, self.config.client_host)

    @property
    def hostport(self):
        host = self.dial_host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.config.client_port}"

    def describe(self):
        return f"{self.name} (server {self.config.server_id}, {self.hostport})"

    def ask(self, word):
        """The server's answer to a four-letter word, or None while it cannot answer."""
        try:
            return four_letter_word(self.dial_host, self.config.client_port, word,
                                    timeout=1.0)
        except OSError:
            return None

    def mode(self):
        for line in (self.ask("srvr") or "").splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):].strip()
        return None


class Output:
    """One lock around stdout, so lines from different children never mix mid-line."""

    def __init__(self, stream):
        self._lock = threading.Lock()
        self._stream = stream
        self.color = stream.isatty() and "NO_COLOR" not in os.environ

    def tag(self, name, width, index):
        text = f"{name:<{width}} | "
        if not self.color:
            return text
        return f"\x1b[{_COLORS[index % len(_COLORS)]}m{text}\x1b[0m"

    def write(self, data: bytes):
        with self._lock:
            try:
                self._stream.buffer.write(data)
                self._stream.buffer.flush()
            except (OSError, ValueError):
                pass  # stdout is gone (a closed pipe); the children must still be drained

    def say(self, text):
        self.write(f"{PROG}: {text}\n".encode())


def _exit_text(code):
    if code < 0:
        try:
            return f"exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"exited with code {code}"


class Ensemble:
    """The launcher proper; signal handlers only count, the main loop decides."""

    def __init__(self, members, out):
        self.members = members
        self.out = out
        self._signals = 0

    def _on_signal(self, signum, frame):
        self._signals += 1

    def run(self):
        """Start every server, watch them until a signal or one exits; 0 or 1."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        try:
            return self._watch() if self._start() else 1
        finally:
            self._stop()

    def _started(self):
        return [m for m in self.members if m.proc is not None]

    def _start(self):
        """Start the children in order; False (and said why) if one cannot be started."""
        width = max(len(m.name) for m in self.members)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for index, member in enumerate(self.members):
            if self._signals:
                break
            try:
                proc = subprocess.Popen(
                    [sys.executable, *SERVER_COMMAND, member.path],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env=env,
                )
            except OSError as exc:
                self.out.say(f"cannot start {member.name}: {exc}")
                return False
            member.proc = proc
            member.reader = threading.Thread(
                target=self._pump, args=(proc, self.out.tag(member.name, width, index).encode()),
                name=f"output-{member.name}", daemon=True,
            )
            member.reader.start()
            self.out.say(f"started {member.name} (pid {proc.pid}): {member.path}")
        return True

    def _pump(self, proc, prefix):
        for line in iter(proc.stdout.readline, b""):
            self.out.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
        proc.stdout.close()

    def _watch(self):
        started_at = time.monotonic()
        warned_slow = False
        banner_at = None
        leader_pending = False
        next_leader_poll = 0.0
        while True:
            if self._signals:
                self.out.say("stopping every server")
                return 0
            gone = next((m for m in self.members if m.proc.poll() is not None), None)
            if gone is not None:
                # A Ctrl-C reaches the children too; their exit is then no failure.
                if self._signals:
                    continue
                gone.reader.join(timeout=2)
                self.out.say(f"{gone.name} {_exit_text(gone.proc.returncode)}; stopping the others")
                return 1
            now = time.monotonic()
            if banner_at is None:
                for member in self.members:
                    if not member.ready:
                        # srvr: the one word a server answers whatever its four_letter_words.
                        member.ready = member.ask("srvr") is not None
                if all(m.ready for m in self.members):
                    leader = self._leader_text()
                    self._banner(leader)
                    banner_at = now
                    leader_pending = leader is None
                    next_leader_poll = now + LEADER_POLL_S
                elif not warned_slow and now - started_at > SLOW_START_S:
                    waiting = ", ".join(m.name for m in self.members if not m.ready)
                    self.out.say(f"still waiting for {waiting} to answer srvr")
                    warned_slow = True
            elif leader_pending and now >= next_leader_poll:
                leader = self._leader_text()
                if leader is not None:
                    self.out.say(f"leader: {leader}")
                    leader_pending = False
                elif now - banner_at > LEADER_WAIT_S:
                    modes = ", ".join(f"{m.name} {m.mode() or 'no answer'}" for m in self.members)
                    self.out.say(f"no leader after {LEADER_WAIT_S:.0f} s ({modes})")
                    leader_pending = False
                next_leader_poll = now + LEADER_POLL_S
            time.sleep(POLL_S)

    def _leader_text(self):
        """Who leads, or None while the ensemble has no leader; standalone leads itself."""
        modes = [(m, m.mode()) for m in self.members]
        leaders = [m for m, mode in modes if mode == "leader"]
        if leaders:
            return ", ".join(m.describe() for m in leaders)
        if all(mode == "standalone" for _, mode in modes):
            if len(modes) == 1:
                return f"{self.members[0].name} is standalone and leads itself"
            return "every server is standalone and leads itself"
        return None

    def _banner(self, leader):
        hosts = ",".join(m.hostport for m in self.members)
        count = len(self.members)
        ready = "the server answers ruok" if count == 1 else f"all {count} servers answer ruok"
        lines = [
            "",
            f"{PROG}: {ready}",
            f"  connect string: {hosts}",
            f'  kazoo:          KazooClient(hosts="{hosts}")',
            f"  zkCli.sh:       {ZKCLI} -server {hosts}",
            f"  leader:         {leader or 'none yet; printed here once elected'}",
            "  Ctrl-C stops every server.",
            "",
        ]
        self.out.write("\n".join(lines).encode() + b"\n")

    def _stop(self):
        """SIGTERM every live child, SIGKILL after STOP_GRACE_S or on a second signal."""
        signals_before = self._signals
        running = [m for m in self._started() if m.proc.poll() is None]
        for member in running:
            try:
                member.proc.terminate()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        killed = False
        while any(m.proc.poll() is None for m in running):
            if not killed and (time.monotonic() >= deadline or self._signals > signals_before):
                for member in running:
                    if member.proc.poll() is None:
                        self.out.say(f"{member.name} did not stop; sending SIGKILL")
                        member.proc.kill()
                killed = True
            time.sleep(0.05)
        for member in self._started():
            member.reader.join(timeout=2)
        if running:
            self.out.say("every server has stopped")


def _check_distinct(members):
    """Two members sharing an id, a client port or a data dir would fight, so refuse early."""
    seen = {}
    for member in members:
        config = member.config
        for key, value, shown in (
            ("server_id", config.server_id, config.server_id),
            ("client_address", (config.client_host, config.client_port), member.hostport),
            ("data_dir", config.data_dir, config.data_dir),
        ):
            other = seen.setdefault((key, value), member)
            if other is not member:
                raise ConfigError(member.path, key, f"{shown} is also used by {other.path}")


def _names(configs):
    """The tag of each child: its file's stem, unless two files share one."""
    stems = [c.source.stem for c in configs]
    if len(set(stems)) == len(stems):
        return stems
    return [f"server{c.server_id}" for c in configs]


def _parser():
    return argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run a local nookeeper ensemble in the foreground: one bin/nookeeper-server\n"
            "per CONFIG, their output interleaved behind a `node1 | ` tag. Once every\n"
            "server answers ruok, prints the connect string, how to connect with kazoo\n"
            "and zkCli.sh, and which server leads."
        ),
        epilog=(
            "Every config is checked before any server starts; a bad one exits 2.\n"
            "Ctrl-C or SIGTERM stops every server (SIGTERM, then SIGKILL after 10 s;\n"
            "a second Ctrl-C kills at once) and exits 0. If a server exits on its own,\n"
            "the others are stopped and the exit status is 1.\n"
            "\n"
            "example:\n"
            "  bin/nk-ensemble etc/node1.yaml etc/node2.yaml etc/node3.yaml"
        ),
    )


def main(argv=None):
    parser = _parser()
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("configs", metavar="CONFIG", nargs="+",
                        help="a server's YAML config, e.g. etc/node1.yaml")
    args = parser.parse_args(argv)
    try:
        configs = [load_config(path) for path in args.configs]
        members = [Member(name, path, config)
                   for name, path, config in zip(_names(configs), args.configs, configs)]
        _check_distinct(members)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return Ensemble(members, Output(sys.stdout)).run()


if __name__ == "__main__":
    sys.exit(main())
