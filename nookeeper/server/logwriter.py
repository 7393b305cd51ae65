"""The log writer: every disk operation of ZAB, in order, on one thread.

Appends queue up and are written together, in one SQLite transaction and
one fsync (group commit); each batch is reported back so ZAB can ack and
commit. Truncations, log replacements and epoch changes wait their turn in
the same queue and the caller blocks until they are durable, because ZAB
may only speak (ack an epoch, ack NEWLEADER) after them.
"""

import logging
import queue
import threading
import time

from nookeeper.server.events import Append, DiskTask
from nookeeper.wal import LogRecord
from nookeeper.wire.txn import txn_header
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.logwriter")

_STOP = object()


def to_record(zxid, payload):
    _zxid, time_ms, session, cxid, type_ = txn_header(payload)
    return LogRecord(zxid, time_ms, session, cxid, type_, payload)


class LogWriter:
    def __init__(self, wal, on_logged, on_fatal, max_batch=2000):
        self._wal = wal
        self._on_logged = on_logged
        self._on_fatal = on_fatal
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self.batches = 0
        self.logged = 0
        self.last_batch_size = 0
        self.fsync_ms_total = 0.0
        # on_batch(seconds, txns) after each group commit: the server's stats.
        self.on_batch = None

    def start(self):
        self._thread.start()

    def stop(self):
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def on_its_thread(self):
        return threading.current_thread() is self._thread

    def persist(self, entries, generation, upto):
        self._queue.put(Append(entries, generation, upto))

    def run_sync(self, operation):
        """Run operation(wal) after everything queued before it; block until done."""
        done = threading.Event()
        box = {}
        self._queue.put(DiskTask(operation, done, box))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _run(self):
        pending = None
        while True:
            item = pending if pending is not None else self._queue.get()
            pending = None
            if item is _STOP:
                return
            if type(item) is DiskTask:
                try:
                    item.box["result"] = item.operation(self._wal)
                except Exception as exc:
                    item.box["error"] = exc
                    self._on_fatal(f"log operation failed: {exc!r}")
                item.done.set()
                continue
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if type(nxt) is not Append:
                    pending = nxt
                    break
                batch.append(nxt)
            records = [to_record(zxid, payload) for append in batch
                       for zxid, payload in append.entries]
            started = time.perf_counter()
            try:
                self._wal.append(records)
            except Exception as exc:
                span = f" of zxids {fmt(records[0].zxid)}..{fmt(records[-1].zxid)}" if records else ""
                self._on_fatal(f"write-ahead log append{span} failed: {exc!r}")
                return
            seconds = time.perf_counter() - started
            self.fsync_ms_total += seconds * 1000
            if records:
                self.batches += 1
                self.logged += len(records)
                self.last_batch_size = len(records)
            # Generations change only at synchronous operations, which end a
            # batch, so the last report covers the whole batch.
            last = batch[-1]
            self._on_logged(last.upto, last.generation)
            if records and self.on_batch is not None:
                self.on_batch(seconds, len(records))
