"""Client-side watches and the one thread that runs user callbacks.

The server keeps one-shot watches per connection in a data table and a child
table (spec §9.3); the client mirrors them, with exists-on-a-missing-node
watches kept apart so that SetWatches can say which ones they are (§9.5).
Only the I/O thread changes the registry: it registers a watch when the
reply that set it arrives and pops watches when their event arrives, so an
event always finds the watches of the replies before it.
"""

import logging
import queue
import threading

from nookeeper.client.states import EventType

log = logging.getLogger("nookeeper.client")

DATA = "data"
EXIST = "exist"
CHILD = "child"

# Which tables an event type consumes (Java's ZKWatchManager rules).
_TABLES_FOR_EVENT = {
    EventType.CREATED: (DATA, EXIST),
    EventType.CHANGED: (DATA, EXIST),
    EventType.DELETED: (DATA, EXIST, CHILD),
    EventType.CHILD: (CHILD,),
}


class WatchRegistry:
    """path -> callbacks, per table; a callback is called once per event."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tables = {DATA: {}, EXIST: {}, CHILD: {}}

    def add(self, table, path, callback):
        with self._lock:
            self._tables[table].setdefault(path, {})[callback] = None

    def pop(self, event_type, path):
        """The callbacks an event of this type on `path` fires, now unregistered."""
        fired = {}
        with self._lock:
            for table in _TABLES_FOR_EVENT.get(event_type, ()):
                fired.update(self._tables[table].pop(path, {}))
        return list(fired)

    def paths(self):
        """(data, exist, child) path lists, for SetWatches."""
        with self._lock:
            return tuple(list(self._tables[t]) for t in (DATA, EXIST, CHILD))

    def drain(self):
        """Every (path, callback), now forgotten: the session that held them is over."""
        with self._lock:
            entries = {}
            for table in self._tables.values():
                for path, callbacks in table.items():
                    for callback in callbacks:
                        entries.setdefault((path, callback), None)
                table.clear()
        return list(entries)

    def __len__(self):
        with self._lock:
            return sum(len(t) for t in self._tables.values())


class CallbackThread:
    """Runs every user callback, one at a time, in the order they were posted.

    Watch functions, state listeners and rawlinks all go through here, never
    on the I/O thread, so a slow callback delays other callbacks but not
    pings, replies or synchronous calls.
    """

    _STOP = object()

    def __init__(self, name):
        self._name = name
        self._queue = queue.SimpleQueue()
        self._thread = None

    def start(self):
        # A fresh queue per thread: a previous thread still busy in a slow
        # callback keeps its own queue and its stop mark, and never shares work.
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                        name=self._name, daemon=True)
        self._thread.start()

    def post(self, fn, *args):
        """Queue `fn(*args)`; run it right here if the thread is not running."""
        if self._thread is None or not self._thread.is_alive():
            self._call(fn, args)
        else:
            self._queue.put((fn, args))

    def in_thread(self):
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout=None):
        """Run what is queued, then end; never waits on itself."""
        if self._thread is None:
            return
        self._queue.put((self._STOP, ()))
        if not self.in_thread():
            self._thread.join(timeout)

    def _run(self, work):
        while True:
            fn, args = work.get()
            if fn is self._STOP:
                return
            self._call(fn, args)

    @staticmethod
    def _call(fn, args):
        try:
            fn(*args)
        except (Exception, SystemExit):
            # SystemExit too: it would only end this thread, and the callbacks
            # after it would then have no thread to run on. KeyboardInterrupt,
            # possible only when run inline on the main thread, goes through.
            log.exception("callback %r failed", fn)
