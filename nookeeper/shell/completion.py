"""Tab completion: command names, then znode paths asked of the server as you type.

A word starting with "/" completes against the children of its parent
node (one getChildren per Tab, with a short timeout so a slow server never
freezes the prompt). Python's readline appends nothing to a completion,
so command names carry their own trailing space and paths none, ready for
the next "/". A few arguments come from a fixed set: printwatches on|off,
addauth's scheme, addWatch -m's modes.
"""

import readline

from nookeeper.client.exceptions import ClientError, ZooKeeperError
from nookeeper.shell.commands import COMMANDS, WATCH_MODES

# Arguments that are words from a fixed set, by command.
_WORD_CHOICES = {
    "printwatches": ("on", "off"),
    "addauth": ("digest",),
}

# Option values from a fixed set, by (command, option).
_OPTION_CHOICES = {
    ("addWatch", "-m"): WATCH_MODES,
}


class Completer:
    """readline's completer for one ShellSession."""

    def __init__(self, session, timeout=2.0):
        self.session = session
        self.timeout = timeout
        self._matches = []

    def install(self):
        readline.set_completer_delims(" \t\n")
        readline.set_completer(self.complete)
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")

    def complete(self, text, state):
        """readline's protocol: called with state 0, 1, 2... until it gets None."""
        if state == 0:
            self._matches = self.candidates(readline.get_line_buffer(),
                                            readline.get_begidx(), text)
        return self._matches[state] if state < len(self._matches) else None

    def candidates(self, line, begidx, text):
        before = line[:begidx].split()
        if not before:
            return [f"{name} " for name in sorted(COMMANDS) if name.startswith(text)]
        if text.startswith("/"):
            return self.paths(text)
        values = _OPTION_CHOICES.get((before[0], before[-1]))
        if values is not None:
            return [f"{word} " for word in values if word.startswith(text)]
        choices = _WORD_CHOICES.get(before[0], ())
        if len(before) == 1:
            return [f"{word} " for word in choices if word.startswith(text)]
        return []

    def paths(self, text):
        client = self.session.client
        if client is None or not client.connected:
            return []
        parent, _, prefix = text.rpartition("/")
        try:
            names = client.get_children_async(parent or "/").get(timeout=self.timeout)
        except (ZooKeeperError, ClientError, ValueError):
            return []
        return [f"{parent}/{name}" for name in sorted(names) if name.startswith(prefix)]
