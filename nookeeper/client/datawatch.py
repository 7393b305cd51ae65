"""DataWatch and ChildrenWatch: a function kept up to date with a node.

Each re-arms its one-shot watch on every firing. The fetch and the call to
the user's function both happen on the watcher thread, so calls arrive in
the order of the changes and never overlap. Watches survive reconnects
(SetWatches); when the session is lost the registry fires a NONE event,
which makes these fetch again on the next session.

The first call also runs on the watcher thread; the constructor waits for
it, so it returns only after the function has seen the node once (and it
waits behind any callback the watcher thread is running).
"""

import inspect
import logging
import threading

from nookeeper.client.exceptions import ConnectionClosedError, NoNodeError
from nookeeper.client.retry import KeeperRetry
from nookeeper.client.states import EventType, KeeperState

log = logging.getLogger("nookeeper.client")

_NEVER = object()


def _positional_count(func):
    """How many positional arguments func accepts (None: any number)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return 2
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind == parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class _Watch:
    """What both helpers share: one function, a stop flag, retries that end with the client."""

    def __init__(self, client, path):
        self._client = client
        self._path = path
        self._func = None
        self._stopped = False
        self._lock = threading.Lock()
        self._retry = KeeperRetry(max_tries=None, max_delay=1.0,
                                  interrupt=lambda: self._stopped)

    def __call__(self, func):
        """Use as a decorator: @client.DataWatch("/path")."""
        self._begin(func)
        return func

    def _begin(self, func):
        if self._func is not None:
            raise RuntimeError("this watch already has a function")
        self._func = func
        self._prepare(func)
        self._client._run_as_callback(self._fetch, None)

    def _prepare(self, func):
        pass

    def _watcher(self, event):
        self._fetch(event)

    def _deliver(self, *args):
        """Call the user's function; False from it stops the watch."""
        if self._func(*args) is False:
            self._stopped = True
            self._func = None

    def _fetch(self, event):
        with self._lock:
            if self._stopped:
                return
            try:
                self._refresh(event)
            except ConnectionClosedError:
                self._stopped = True
            except Exception:
                if not self._stopped:
                    log.exception("watch on %s failed", self._path)


class DataWatch(_Watch):
    """Calls func(data, stat) now and on every change of the node's data.

    A function taking a third argument also gets the WatchedEvent (None on
    the first call). A missing node gives (None, None); the watch stays and
    fires when the node is created.
    """

    def __init__(self, client, path, func=None):
        super().__init__(client, path)
        self._version = _NEVER
        self._pass_event = False
        if func is not None:
            self._begin(func)

    def _prepare(self, func):
        count = _positional_count(func)
        self._pass_event = count is None or count >= 3

    def _refresh(self, event):
        client = self._client
        while True:
            try:
                data, stat = self._retry(client.get, self._path, self._watcher)
                break
            except NoNodeError:
                stat = self._retry(client.exists, self._path, self._watcher)
                if stat is None:
                    data = None
                    break
        version = stat.mzxid if stat is not None else None
        if version == self._version:
            return
        self._version = version
        if self._pass_event:
            self._deliver(data, stat, event)
        else:
            self._deliver(data, stat)


class ChildrenWatch(_Watch):
    """Calls func(children) now and on every change of the node's children.

    With send_event=True it is func(children, event). It stops when the node
    is deleted (or missing at the start), and, unless allow_session_lost, when
    the session is lost.
    """

    def __init__(self, client, path, func=None, allow_session_lost=True, send_event=False):
        super().__init__(client, path)
        self._allow_session_lost = allow_session_lost
        self._send_event = send_event
        self._children = None
        if func is not None:
            self._begin(func)

    def _refresh(self, event):
        if (event is not None and event.type == EventType.NONE
                and event.state == KeeperState.LOST and not self._allow_session_lost):
            self._stopped = True
            return
        try:
            children = self._retry(self._client.get_children, self._path, self._watcher)
        except NoNodeError:
            self._stopped = True
            return
        if event is not None and event.type == EventType.NONE and children == self._children:
            return
        self._children = children
        if self._send_event:
            self._deliver(children, event)
        else:
            self._deliver(children)
