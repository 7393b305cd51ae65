"""Wakes the page's event streams when anything they show has changed.

Changes only bump a counter; each stream sends the whole status again when
it sees a new one, so a burst of changes costs one message per stream.
"""

import threading


class StatusFeed:
    def __init__(self):
        self._cond = threading.Condition()
        self._version = 0
        self._closed = False

    def changed(self):
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, seen, timeout):
        """The version once it differs from `seen` (or `seen` after `timeout`); None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._version != seen, timeout)
            return None if self._closed else self._version

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
