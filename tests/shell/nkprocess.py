"""bin/nk as a child process: once with pipes, or interactive on a pseudo-terminal."""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

from harness import ROOT

NK = ROOT / "bin" / "nk"

# Terminal control sequences readline writes (bracketed paste, cursor moves), and bells.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07|\r")


def run_nk(*args, input=None, env=None, timeout=30):
    """bin/nk with this interpreter, never a terminal: stdin is `input` or empty."""
    return subprocess.run(
        [sys.executable, str(NK), *args], input=input if input is not None else "",
        capture_output=True, text=True, timeout=timeout, env=env,
    )


class Terminal:
    """bin/nk with stdin, stdout and stderr on a pty, as a person at a terminal would run it.

    expect() reads until a regex matches the output seen since the last match,
    with terminal control sequences and carriage returns removed.
    """

    def __init__(self, *args, env=None, columns=250):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, str(NK), *args], stdin=slave, stdout=slave, stderr=slave,
            env=env, close_fds=True, start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.output = ""
        self._seen = 0

    def send(self, text):
        os.write(self.master, text.encode())

    def expect(self, pattern, timeout=10.0):
        """The match of `pattern` in the output after the previous match; AssertionError if none."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(
                    f"no {pattern!r} in nk's output after {timeout}s; since the last match:\n"
                    f"{self.output[self._seen:]!r}")

    def _read(self, timeout):
        """False once nk has closed the terminal."""
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

    def wait(self, timeout=10.0):
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
