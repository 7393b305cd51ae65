"""The handle an *_async call returns.

Waiters block on a threading.Event that the I/O thread sets directly, so a
synchronous call never depends on the watcher thread being free; rawlink
callbacks, being user code, are handed to the watcher thread instead.
"""

import threading

from nookeeper.client.exceptions import KeeperTimeoutError

_UNSET = object()


class AsyncResult:
    """A value or an exception that will arrive later, exactly once."""

    def __init__(self, dispatch):
        # dispatch(fn, *args) runs fn on the watcher thread.
        self._dispatch = dispatch
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._links = []
        self._value = _UNSET
        self._exception = None

    @property
    def value(self):
        return None if self._value is _UNSET else self._value

    @property
    def exception(self):
        return self._exception

    def ready(self):
        return self._done.is_set()

    def successful(self):
        return self._done.is_set() and self._exception is None

    def set(self, value=None):
        self._finish(value, None)

    def set_exception(self, exception):
        self._finish(_UNSET, exception)

    def _finish(self, value, exception):
        with self._lock:
            if self._done.is_set():
                return
            self._value = value
            self._exception = exception
            self._done.set()
            links, self._links = self._links, []
        for callback in links:
            self._dispatch(callback, self)

    def wait(self, timeout=None):
        """True once the result is in; False if `timeout` passed first."""
        return self._done.wait(timeout)

    def get(self, block=True, timeout=None):
        """The value, or raise the exception; KeeperTimeoutError if not in time."""
        if not self._done.wait(timeout if block else 0):
            raise KeeperTimeoutError("result not ready")
        if self._exception is not None:
            # One instance may be raised by many get() calls; start its traceback afresh.
            raise self._exception.with_traceback(None)
        return self._value

    def get_nowait(self):
        return self.get(block=False)

    def rawlink(self, callback):
        """Call `callback(self)` on the watcher thread once the result is in."""
        with self._lock:
            if not self._done.is_set():
                self._links.append(callback)
                return
        self._dispatch(callback, self)

    def unlink(self, callback):
        with self._lock:
            if callback in self._links:
                self._links.remove(callback)
