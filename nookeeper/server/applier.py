"""Committed work run in the order ZAB hands it over, on the apply thread or
on the thread that committed it.

Normally the apply thread runs each item. When it has nothing queued or
running, the thread that stepped ZAB to the commit (a peer reader, the log
writer, the zab thread) may keep the item and run it itself right after it
lets go of the ZAB core: on a quiet server that saves a thread hand-off on
the critical path of every write (docs/performance.md has the trace).
Whoever runs an item holds `_running`, so an item queued behind a kept one
waits for it.
"""

import queue
import threading

_STOP = object()


class _Kept(threading.local):
    item = None  # the item this thread kept, until run_kept()


class Applier:
    def __init__(self, run_item):
        self._run_item = run_item
        self._queue = queue.SimpleQueue()
        self._running = threading.Lock()
        self._count_lock = threading.Lock()
        self._unfinished = 0  # queued for the apply thread and not yet run
        self._kept = _Kept()

    def hand_over(self, item, may_keep=False):
        """Called with the ZAB core locked, so items arrive in order. may_keep:
        the caller holds no lock the item's callbacks take (a connection's
        order lock) and will call run_kept() once it has released the core."""
        if (may_keep and self._unfinished == 0 and self._kept.item is None
                and self._running.acquire(blocking=False)):
            self._kept.item = item
            return
        with self._count_lock:
            self._unfinished += 1
        self._queue.put(item)

    def run_kept(self):
        item = self._kept.item
        if item is None:
            return
        self._kept.item = None
        try:
            self._run_item(item)
        finally:
            self._running.release()

    def run_until_stopped(self):
        """The apply thread."""
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            with self._running:
                self._run_item(item)
            with self._count_lock:
                self._unfinished -= 1

    def stop(self):
        self._queue.put(_STOP)
