"""`nk-ensemble CONFIG...`: run a local ensemble in the foreground, like a Procfile runner.

One bin/nookeeper-server child per config, their output interleaved line by
line behind a `node1 | ` tag, a banner saying how to connect once every
server answers ruok, and one Ctrl-C to stop them all. The children stay in the
launcher's process group, so killing that group never leaves a server behind.

It supervises: a server that exits once the ensemble is up is reported and
the others keep running, and commands restart (`r N`) or kill (`k N`) server
N, or quit (`q`). On a terminal, `nk status`'s table (shell/status.py) stays
at the bottom of the screen, asked of every server each second, below the
servers' scrolling output, and keys are read one by one (no echo; the table's
last line shows what is typed). Otherwise the output is plain lines (a line
whenever a role changes) and commands are read a line at a time from stdin.
"""

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

from nookeeper import version_text
from nookeeper.client.fourletter import four_letter_word
from nookeeper.config import ConfigError, load_config
from nookeeper.shell import status as status_table

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
REFRESH_S = 1.0          # how often the status table is asked for
PROBE_TIMEOUT_S = 1.0    # a server that takes longer to answer srvr or mntr is "no answer"
KEYS_HELP = "r N restarts server N, k N kills it (SIGKILL), q quits"
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
        self.index = 0             # its colour
        self.exit_reported = True  # no process yet, so none to report
        self.restarting = False    # `r N`: start it again once it has exited
        self.stop_deadline = None  # and SIGKILL it if it has not by then
        self.started_at = None     # its latest start (time.monotonic)

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
    """One lock around stdout, so lines from different children never mix mid-line.

    live (stdout is a terminal): a footer, the status table, is kept drawn
    below everything written. Writing erases it first; the main loop draws it
    again (refresh_footer) a moment later, so a burst of log lines costs one
    redraw, and the scrollback holds the log lines only.
    """

    def __init__(self, stream, live=None):
        self._lock = threading.Lock()
        self._stream = stream
        terminal = stream.isatty()
        self.color = terminal and "NO_COLOR" not in os.environ
        self.live = (terminal and os.environ.get("TERM") != "dumb") if live is None else live
        self._footer = []
        self._drawn = 0  # rows of the footer on the screen now

    def tag(self, name, width, index):
        text = f"{name:<{width}} | "
        if not self.color:
            return text
        return f"\x1b[{_COLORS[index % len(_COLORS)]}m{text}\x1b[0m"

    def write(self, data: bytes):
        with self._lock:
            self._emit(self._erase() + data)

    def say(self, text):
        self.write(f"{PROG}: {text}\n".encode())

    def columns(self):
        return self._size().columns

    def footer(self, lines):
        """Show `lines` at the bottom from now on (live only)."""
        with self._lock:
            self._footer = list(lines)
            self._emit(self._erase() + self._draw())

    def refresh_footer(self):
        with self._lock:
            if not self._drawn and self._footer:
                self._emit(self._draw())

    def clear_footer(self):
        with self._lock:
            self._emit(self._erase())
            self._footer = []

    def _size(self):
        try:
            return os.get_terminal_size(self._stream.fileno())
        except (OSError, ValueError):
            return os.terminal_size((200, 50))

    def _erase(self):
        """The bytes that take the footer off the screen: up to its first row, clear below."""
        if not self._drawn:
            return b""
        rows, self._drawn = self._drawn, 0
        return b"\r" + (f"\x1b[{rows - 1}A".encode() if rows > 1 else b"") + b"\x1b[J"

    def _draw(self):
        """The footer, each line cut to the terminal's width (a wrapped line would leave
        rows behind at the next erase), the cursor left at the end of its last line."""
        if not self.live or not self._footer:
            return b""
        size = self._size()
        lines = [line[:size.columns - 1] for line in self._footer][:max(1, size.lines - 1)]
        self._drawn = len(lines)
        return "\n".join(lines).encode()

    def _emit(self, data):
        if not data:
            return
        try:
            self._stream.buffer.write(data)
            self._stream.buffer.flush()
        except (OSError, ValueError):
            pass  # stdout is gone (a closed pipe); the children must still be drained


class Keys:
    """Commands typed to the launcher: `r N`, `k N`, `q`.

    On a terminal (when the launcher is in the foreground and draws its
    table): key by key, without echo, the line being typed shown by the
    table's last line; Enter runs it, `q` on an empty line quits at once,
    Ctrl-C still signals. Anywhere else (a pipe, a file): one command per
    line; the end of the input ends the commands, not the launcher.
    """

    def __init__(self, stream, keystrokes):
        self.fd = stream.fileno()
        self.keystrokes = keystrokes
        self.buffer = ""
        self._pending = ""
        self._closed = False
        self._saved = None
        if keystrokes:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # ISIG stays: Ctrl-C is still a SIGINT

    @classmethod
    def open(cls, stream, live):
        """Keys on `stream`, or None when nothing can be read from it safely."""
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            return None
        if not os.isatty(fd):
            return cls(stream, keystrokes=False)
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                return None  # in the background: reading the terminal would stop us (SIGTTIN)
        except OSError:
            pass  # not our controlling terminal: no job control to fear
        return cls(stream, keystrokes=live)

    def wait(self, timeout):
        """Sleep up to `timeout`, waking early when something was typed."""
        if self._closed:
            time.sleep(timeout)
            return
        try:
            select.select([self.fd], [], [], timeout)
        except (OSError, ValueError):
            self._closed = True

    def commands(self):
        """The commands typed since the last call, each stripped; never blocks."""
        found = []
        while not self._closed:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0)
                if not ready:
                    break
                chunk = os.read(self.fd, 1024)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                self._closed = True  # the end of a pipe: no more commands, keep running
                break
            text = chunk.decode("utf-8", "replace")
            if self.keystrokes:
                found += self._keys(text)
            else:
                self._pending += text
                *lines, self._pending = self._pending.split("\n")
                found += [line.strip() for line in lines if line.strip()]
        return found

    def _keys(self, text):
        found = []
        if "\x1b" in text:  # an arrow or function key: its sequence is no command
            text = text[:text.index("\x1b")]
        for char in text:
            if char in "\r\n":
                if self.buffer.strip():
                    found.append(self.buffer.strip())
                self.buffer = ""
            elif char in "\x7f\b":
                self.buffer = self.buffer[:-1]
            elif char == "\x15":  # Ctrl-U
                self.buffer = ""
            elif char == "q" and not self.buffer.strip():
                found.append("q")
            elif char.isprintable() and len(self.buffer) < 20:
                self.buffer += char
        return found

    def close(self):
        if self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except (OSError, termios.error):
                pass
            self._saved = None


def _exit_text(code):
    if code < 0:
        try:
            return f"exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"exited with code {code}"


class Ensemble:
    """The launcher proper; signal handlers only count, the main loop decides."""

    def __init__(self, members, out, keys=None):
        self.members = members
        self.out = out
        self.keys = keys
        self._signals = 0
        self._width = max(len(m.name) for m in members)
        for index, member in enumerate(members):
            member.index = index
        self._up = False            # every server has answered once: the banner is out
        self._snapshot = None       # the newest EnsembleStatus from the poller
        self._generation = 0        # bumped with each new snapshot
        self._shown = (-1, None)    # (generation, typed text) the footer was drawn from
        self._roles_said = None
        self._polling = threading.Event()
        self._poll_stop = threading.Event()

    def _on_signal(self, signum, frame):
        self._signals += 1

    def run(self):
        """Start every server, supervise them until a signal or `q`; 0, or 1 if one
        could not start."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        poller = threading.Thread(target=self._poll, name="status", daemon=True)
        try:
            if not self._start():
                return 1
            poller.start()
            return self._watch()
        finally:
            self._poll_stop.set()
            if self.keys is not None:
                self.keys.close()
            self.out.clear_footer()
            self._stop()

    def _started(self):
        return [m for m in self.members if m.proc is not None]

    def _start(self):
        """Start the children in order; False (and said why) if one cannot be started."""
        for member in self.members:
            if self._signals:
                break
            if not self._spawn(member):
                return False
        return True

    def _spawn(self, member):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
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
        member.started_at = time.monotonic()
        member.exit_reported = False
        member.restarting = False
        member.reader = threading.Thread(
            target=self._pump,
            args=(proc, self.out.tag(member.name, self._width, member.index).encode()),
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
            verdict = self._reap_all()
            if verdict is not None:
                return verdict
            if self._signals:
                continue  # a Ctrl-C reaches the children too; their exit is then no failure
            for command in (self.keys.commands() if self.keys is not None else ()):
                if self._command(command) == "quit":
                    self.out.say("stopping every server")
                    return 0
            self._kill_slow_restarts()
            now = time.monotonic()
            if banner_at is None:
                for member in self.members:
                    if not member.ready:
                        # srvr: the one word a server answers whatever its four_letter_words.
                        member.ready = member.ask("srvr") is not None
                if all(m.ready for m in self.members):
                    leader = self._leader_text()
                    self._banner(leader)
                    self._up = True
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
            self._show()
            self.out.refresh_footer()
            if self.keys is not None:
                self.keys.wait(POLL_S)
            else:
                time.sleep(POLL_S)

    # -- children that exit, and the commands ----------------------------------

    def _reap_all(self):
        """Say which children exited; 1 when one did before every server had answered
        (a server that cannot start: the others are stopped), else None."""
        for member in self.members:
            if member.proc is None or member.exit_reported or member.proc.poll() is None:
                continue
            if self._signals:
                return None
            if not self._up and not member.restarting:
                member.reader.join(timeout=2)
                member.exit_reported = True
                self.out.say(f"{member.name} {_exit_text(member.proc.returncode)}; "
                             "stopping the others")
                return 1
            self._reap(member)
        return None

    def _reap(self, member):
        """Report a child's exit once; start it again if that exit was a restart's."""
        member.reader.join(timeout=2)
        member.exit_reported = True
        text = _exit_text(member.proc.returncode)
        if member.restarting:
            self.out.say(f"{member.name} {text}; starting it again")
            self._spawn(member)
        else:
            self.out.say(f"{member.name} {text}; the others keep running "
                         f"(r {member.config.server_id} starts it again)")

    def _command(self, text):
        """Run one typed command; "quit" for q."""
        match = re.fullmatch(r"([a-z?]+)\s*(\d+)?", text.strip().lower())
        verb, number = (match.group(1), match.group(2)) if match else (text, None)
        if verb in ("q", "quit"):
            return "quit"
        if verb not in ("r", "k") or number is None:
            self.out.say(f"unknown command {text!r}: {KEYS_HELP}")
            return None
        member = next((m for m in self.members if m.config.server_id == int(number)), None)
        if member is None:
            ids = ", ".join(str(m.config.server_id) for m in self.members)
            self.out.say(f"no server {number} (the servers are {ids})")
            return None
        alive = member.proc is not None and member.proc.poll() is None
        if not alive and member.proc is not None and not member.exit_reported:
            self._reap(member)
            alive = member.proc.poll() is None  # a restart's exit has just started it again
        if verb == "k":
            if not alive:
                self.out.say(f"{member.name} is not running")
                return None
            self.out.say(f"killing {member.describe()}, pid {member.proc.pid} (SIGKILL)")
            member.restarting = False
            member.proc.kill()
        elif member.restarting:
            self.out.say(f"{member.name} is already restarting")
        elif alive:
            self.out.say(f"restarting {member.describe()}: SIGTERM, then it starts again")
            member.restarting = True
            member.stop_deadline = time.monotonic() + STOP_GRACE_S
            member.proc.terminate()
        else:
            self._spawn(member)
        return None

    def _kill_slow_restarts(self):
        for member in self.members:
            if (member.restarting and member.proc.poll() is None
                    and time.monotonic() >= member.stop_deadline):
                self.out.say(f"{member.name} did not stop; sending SIGKILL")
                member.proc.kill()
                member.stop_deadline = float("inf")

    # -- the status table ---------------------------------------------------------

    def _poll(self):
        """Ask every server srvr and mntr (at once) each REFRESH_S, for the table."""
        targets = [(m.dial_host, m.config.client_port, m.config.server_id) for m in self.members]
        while not self._poll_stop.is_set():
            snapshot = status_table.gather(targets, timeout=PROBE_TIMEOUT_S)
            self._snapshot = snapshot
            self._generation += 1
            self._poll_stop.wait(REFRESH_S)

    def _status(self):
        """The newest snapshot, with what the launcher knows better: exited children."""
        snapshot = self._snapshot
        members = []
        for member, seen in zip(self.members, snapshot.members):
            proc = member.proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                seen = status_table.MemberStatus(
                    seen.host, seen.port, server_id=member.config.server_id,
                    role="exited", error="is not started" if code is None else _exit_text(code))
            elif member.restarting:
                seen = status_table.MemberStatus(
                    seen.host, seen.port, server_id=member.config.server_id,
                    role="restarting", error="is restarting")
            elif not seen.answered and time.monotonic() - member.started_at < SLOW_START_S:
                seen.role = "starting"
            members.append(seen)
        return status_table.EnsembleStatus(members)

    def _role(self, seen):
        return seen.role or status_table.NO_ANSWER

    def _show(self):
        """A line when roles change (once the servers are up), and the live table."""
        if self._snapshot is None:
            return
        typed = self.keys.buffer if self.keys is not None else ""
        if self._shown == (self._generation, typed):
            return
        self._shown = (self._generation, typed)
        status = self._status()
        roles = tuple(self._role(seen) for seen in status.members)
        if self._up and roles != self._roles_said:
            self._roles_said = roles
            self.out.say("roles: " + ", ".join(
                f"{m.name} {role}" for m, role in zip(self.members, roles)))
        if self.out.live:
            self.out.footer(self._table(status, typed))

    def _table(self, status, typed):
        pids = [str(m.proc.pid) if m.proc is not None and m.proc.poll() is None else "-"
                for m in self.members]
        extra = (("MEMBER", [m.name for m in self.members]), ("PID", pids))
        lines = status_table.table_lines(status, width=self.out.columns() - 1, extra=extra)
        lines.append(status.health_line())
        if self.keys is not None and self.keys.keystrokes:
            lines.append(f"{time.strftime('%H:%M:%S')}  {KEYS_HELP}, or Ctrl-C > {typed}")
        else:
            lines.append(f"{time.strftime('%H:%M:%S')}  Ctrl-C stops every server")
        return lines

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
        if self.keys is not None and self.keys.keystrokes:
            keys = f"  keys: {KEYS_HELP} (Ctrl-C quits too); the table below is live"
        elif self.keys is not None:
            keys = f"  Ctrl-C stops every server; commands from stdin, a line each: {KEYS_HELP}"
        else:
            keys = "  Ctrl-C stops every server."
        lines = [
            "",
            f"{PROG}: {ready}",
            f"  connect string: {hosts}",
            f'  kazoo:          KazooClient(hosts="{hosts}")',
            f"  zkCli.sh:       {ZKCLI} -server {hosts}",
            f"  status:         bin/nk -s {hosts} status",
            f"  leader:         {leader or 'none yet; printed here once elected'}",
            keys,
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
            "Ctrl-C, SIGTERM or `q` stops every server (SIGTERM, then SIGKILL after\n"
            "10 s; a second Ctrl-C kills at once) and exits 0. A server that exits\n"
            "before every server has answered stops the others (exit status 1); one\n"
            "that exits later is reported and the others keep running.\n"
            "\n"
            "On a terminal, `nk status`'s table of the servers stays at the bottom,\n"
            "refreshed every second, and keys act at once: r N restarts server N\n"
            "(SIGTERM, then start), k N kills it (SIGKILL), q quits. When stdout is not\n"
            "a terminal the output is plain lines (one whenever a role changes), and\n"
            "the same commands are read from stdin, one per line.\n"
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
    out = Output(sys.stdout)
    return Ensemble(members, out, Keys.open(sys.stdin, out.live)).run()


if __name__ == "__main__":
    sys.exit(main())
