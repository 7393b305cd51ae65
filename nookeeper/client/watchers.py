"""Client-side watches and the one thread that runs user callbacks.

The server keeps one-shot watches per connection in a data table and a child
table (spec §9.3); the client mirrors them, with exists-on-a-missing-node
watches kept apart so that SetWatches can say which ones they are (§9.5).
Persistent watches (addWatch) have two tables of their own: they fire on
every matching event and stay, and a recursive one also fires for every
descendant of its path. Only the I/O thread adds and pops watches: it
registers a watch when the reply that set it arrives and pops one-shot
watches when their event arrives, so an event always finds the watches of
the replies before it.
"""

import logging
import queue
import threading

from nookeeper.client.states import EventType
from nookeeper.wire.ops import (
    WATCHER_ANY,
    WATCHER_CHILDREN,
    WATCHER_DATA,
    WATCHER_PERSISTENT,
    WATCHER_PERSISTENT_RECURSIVE,
)

log = logging.getLogger("nookeeper.client")

DATA = "data"
EXIST = "exist"
CHILD = "child"
PERSISTENT = "persistent"
RECURSIVE = "recursive"
TABLES = (DATA, EXIST, CHILD, PERSISTENT, RECURSIVE)

# Which tables an event type consumes (Java's ZKWatchManager rules).
_TABLES_FOR_EVENT = {
    EventType.CREATED: (DATA, EXIST),
    EventType.CHANGED: (DATA, EXIST),
    EventType.DELETED: (DATA, EXIST, CHILD),
    EventType.CHILD: (CHILD,),
}

# removeWatches' WatcherType (wire/ops.py) -> the tables it empties, as Java's
# ZKWatchManager empties them: Data takes exists watches too, Any everything.
TABLES_FOR_WATCHER_TYPE = {
    WATCHER_CHILDREN: (CHILD,),
    WATCHER_DATA: (DATA, EXIST),
    WATCHER_ANY: TABLES,
    WATCHER_PERSISTENT: (PERSISTENT,),
    WATCHER_PERSISTENT_RECURSIVE: (RECURSIVE,),
}


def _ancestors(path):
    """The path itself, then each ancestor up to the root."""
    yield path
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        yield path


class WatchRegistry:
    """path -> callbacks, per table; a callback is called once per event."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tables = {table: {} for table in TABLES}

    def add(self, table, path, callback):
        with self._lock:
            self._tables[table].setdefault(path, {})[callback] = None

    def fired(self, event_type, path):
        """The callbacks an event of this type on `path` fires; one-shot ones are unregistered.

        Persistent watches on the path stay, and so do recursive ones on it
        or an ancestor; recursive watches never hear of children changing
        (the server may still send those for a child watch on a descendant).
        """
        fired = {}
        with self._lock:
            for table in _TABLES_FOR_EVENT.get(event_type, ()):
                fired.update(self._tables[table].pop(path, {}))
            fired.update(self._tables[PERSISTENT].get(path, {}))
            recursive = self._tables[RECURSIVE]
            if recursive and event_type != EventType.CHILD:
                for ancestor in _ancestors(path):
                    fired.update(recursive.get(ancestor, {}))
        return list(fired)

    def remove(self, tables, path):
        """Forget every callback of these tables on `path`; how many watches went."""
        removed = 0
        with self._lock:
            for table in tables:
                removed += len(self._tables[table].pop(path, {}))
        return removed

    def discard(self, table, path, callback):
        """Forget one callback; True if others still watch `path` in that table.

        Unlike add and fired, any thread may call this: a callback dropped
        between an event's arrival and its delivery is still called once.
        """
        with self._lock:
            callbacks = self._tables[table].get(path)
            if callbacks is None:
                return False
            callbacks.pop(callback, None)
            if not callbacks:
                del self._tables[table][path]
            return bool(callbacks)

    def paths(self):
        """(data, exist, child, persistent, recursive) path lists, for SetWatches(2)."""
        with self._lock:
            return tuple(list(self._tables[t]) for t in TABLES)

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
