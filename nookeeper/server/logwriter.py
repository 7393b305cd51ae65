"""The log writer: every disk operation of ZAB, in order.

Appends queue up and are written together, in one SQLite transaction and
one fsync (group commit); each batch is reported back so ZAB can ack and
commit. Truncations, log replacements and epoch changes wait their turn in
the same queue and the caller blocks until they are durable, because ZAB
may only speak (ack an epoch, ack NEWLEADER) after them.

Normally the wal-writer thread does all of it. When nothing is queued or
being written, the thread that stepped ZAB to an append may keep it and
write it itself once it has let go of the ZAB core (as the Applier lets it
keep a commit): on a quiet follower the Proposal's fsync then starts
without a thread hand-off. Whoever writes holds `_writing`, so an append
queued behind a kept one waits for it. Which appends are kept is ZAB's
shell's choice (server/replication.py): only on a quiet server, so that
the appends of a burst still share one group commit.
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


class _Kept(threading.local):
    append = None  # the Append this thread kept, until run_kept()


class LogWriter:
    def __init__(self, wal, on_logged, on_fatal, max_batch=2000):
        self._wal = wal
        self._on_logged = on_logged
        self._on_fatal = on_fatal
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._writing = threading.Lock()
        self._count_lock = threading.Lock()
        self._unfinished = 0  # queued for the wal-writer thread and not yet done
        self._kept = _Kept()
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

    def persist(self, entries, generation, upto, may_keep=False):
        """Called with the ZAB core locked, so appends arrive in order. may_keep:
        the caller will call run_kept() once it has released the core."""
        item = Append(entries, generation, upto)
        if (may_keep and self._unfinished == 0 and self._kept.append is None
                and self._writing.acquire(blocking=False)):
            self._kept.append = item
            return
        self._put(item)

    def run_kept(self):
        item = self._kept.append
        if item is None:
            return
        self._kept.append = None
        try:
            report = self._commit([item])
        finally:
            self._writing.release()
        if report is not None:
            self._report(*report)

    def run_sync(self, operation):
        """Run operation(wal) after everything queued before it; block until done."""
        done = threading.Event()
        box = {}
        self._put(DiskTask(operation, done, box))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _put(self, item):
        with self._count_lock:
            self._unfinished += 1
        self._queue.put(item)

    def _done(self, count):
        with self._count_lock:
            self._unfinished -= count

    def _run(self):
        pending = None
        while True:
            item = pending if pending is not None else self._queue.get()
            pending = None
            if item is _STOP:
                return
            if type(item) is DiskTask:
                with self._writing:
                    try:
                        item.box["result"] = item.operation(self._wal)
                    except Exception as exc:
                        item.box["error"] = exc
                        self._on_fatal(f"log operation failed: {exc!r}")
                self._done(1)
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
            with self._writing:
                report = self._commit(batch)
            self._done(len(batch))
            if report is None:
                return
            self._report(*report)

    def _commit(self, batch):
        """One group commit; (upto, generation, seconds, count) to report, None if it failed."""
        records = [to_record(zxid, payload) for append in batch
                   for zxid, payload in append.entries]
        started = time.perf_counter()
        try:
            self._wal.append(records)
        except Exception as exc:
            span = f" of zxids {fmt(records[0].zxid)}..{fmt(records[-1].zxid)}" if records else ""
            self._on_fatal(f"write-ahead log append{span} failed: {exc!r}")
            return None
        seconds = time.perf_counter() - started
        self.fsync_ms_total += seconds * 1000
        if records:
            self.batches += 1
            self.logged += len(records)
            self.last_batch_size = len(records)
        # Generations change only at synchronous operations, which end a
        # batch, so the last report covers the whole batch.
        last = batch[-1]
        return last.upto, last.generation, seconds, len(records)

    def _report(self, upto, generation, seconds, count):
        self._on_logged(upto, generation)
        if count and self.on_batch is not None:
            self.on_batch(seconds, count)
