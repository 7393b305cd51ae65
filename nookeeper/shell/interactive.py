"""The interactive shell: a readline prompt, a history file, watch events between prompts.

Events arrive on the client's watcher thread while the main thread sits in
readline; the console prints them under one lock and redraws the prompt
with whatever the user had typed so far.

Without a terminal (commands piped in) there is no prompt, no greeting and
no session-state event, so stdout holds only what the commands print and the
watch events they asked for; with --json, one JSON document per line.
"""

import os
import readline
import threading

from nookeeper.client import EventType
from nookeeper.shell import render
from nookeeper.shell.commands import CommandFailure, Shell
from nookeeper.shell.completion import Completer

HISTORY_LENGTH = 1000


def history_path():
    """$NK_HISTFILE, else ~/.nk_history."""
    return os.environ.get("NK_HISTFILE") or os.path.join(os.path.expanduser("~"), ".nk_history")


class Console:
    """Output of the main thread and of the watcher thread, never interleaved mid-line."""

    def __init__(self, stdin, stdout, stderr, as_json=False, terminal=False):
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json
        self.terminal = terminal
        self._lock = threading.Lock()
        self._prompt = None

    def read(self, prompt):
        """One line without its newline; EOFError at the end of input."""
        if not self.terminal:
            line = self.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")
        # The prompt counts as on screen only once readline has drawn it: an
        # event printed before that needs no redraw, readline draws it next.
        readline.set_pre_input_hook(lambda: self._prompt_drawn(prompt))
        try:
            return input(prompt)
        finally:
            readline.set_pre_input_hook(None)
            with self._lock:
                self._prompt = None

    def _prompt_drawn(self, prompt):
        with self._lock:
            self._prompt = prompt

    def result(self, result):
        shown = render.result_output(result, self.as_json)
        if shown is not None:
            self._write(self.stdout, shown + "\n")

    def failure(self, failure):
        shown = render.failure_output(failure, self.as_json)
        self._write(self.stderr, shown + "\n")

    def line(self, text):
        self._write(self.stdout, text + "\n")

    def event(self, event):
        """Called on the watcher thread."""
        if event.type == EventType.NONE and not self.terminal:
            return
        shown = render.event_output(event, self.as_json)
        with self._lock:
            if self._prompt is None:
                self.stdout.write(shown + "\n")
            else:
                # The cursor sits after the prompt: end that line, then draw it again.
                self.stdout.write("\n" + shown + "\n" + self._prompt + readline.get_line_buffer())
            self.stdout.flush()

    def _write(self, stream, text):
        with self._lock:
            stream.write(text)
            stream.flush()


def prompt_for(session):
    return f"[nk: {session.hosts}({session.state_name}) {session.next_number}] "


def run(session, console):
    """Read and run commands until quit or end of input; the exit status (always 0)."""
    session.on_event = console.event
    shell = Shell(session)
    if console.terminal:
        _load_history()
        Completer(session).install()
    try:
        if console.terminal:
            console.line(f"Connecting to {session.hosts}")
        try:
            shell.run(["connect"])
        except CommandFailure as failure:
            console.failure(failure)
        while not shell.finished:
            try:
                line = console.read(prompt_for(session) if console.terminal else "")
            except EOFError:
                if console.terminal:
                    console.line("")
                break
            except KeyboardInterrupt:
                console.line("")
                continue
            try:
                result = shell.run_line(line)
            except CommandFailure as failure:
                console.failure(failure)
                continue
            except KeyboardInterrupt:
                console.failure(CommandFailure("KeyboardInterrupt", None, "interrupted"))
                continue
            if result is not None:
                console.result(result)
    finally:
        session.on_event = None
        session.close()
        if console.terminal:
            _save_history()
    return 0


def _load_history():
    """A missing or unreadable history file only means starting without one."""
    readline.set_history_length(HISTORY_LENGTH)
    try:
        readline.read_history_file(history_path())
    except OSError:
        pass


def _save_history():
    """An unwritable history file must not turn quit into an error."""
    try:
        readline.write_history_file(history_path())
    except OSError:
        pass
