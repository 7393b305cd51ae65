"""The standalone write path: stamp, log with group commit, apply in order.

Writes are stamped with the next zxid under one lock, so zxid order is queue
order. The log thread takes everything waiting, writes it in one SQLite
transaction (one fsync), and only then passes the batch to the apply thread:
a write is never applied, and so never acknowledged, before it is on disk.
Logging batch N+1 overlaps applying batch N.
"""

import logging
import queue
import threading
import time

from nookeeper.txn import Txn
from nookeeper.wal import LogRecord
from nookeeper.wire.txn import encode_txn

log = logging.getLogger("nookeeper.commit")

_STOP = object()


class CommitPipeline:
    def __init__(self, wal, apply_txn, last_zxid, on_fatal, max_batch=1000):
        self._wal = wal
        self._apply_txn = apply_txn
        self._on_fatal = on_fatal
        self._max_batch = max_batch
        self._next_zxid = last_zxid + 1
        self._stamp_lock = threading.Lock()
        self._to_log = queue.SimpleQueue()
        self._to_apply = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._log_loop, name="wal-writer", daemon=True),
            threading.Thread(target=self._apply_loop, name="apply", daemon=True),
        ]
        self.batches = 0
        self.logged = 0
        self.last_batch_size = 0
        self.fsync_ms_total = 0.0

    def start(self):
        for thread in self._threads:
            thread.start()

    def stop(self):
        self._to_log.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)

    def submit(self, session, cxid, txn_type, ids, request, done=None):
        """Stamp a write with the next zxid and queue it; done(txn, outcome) runs after apply."""
        with self._stamp_lock:
            txn = Txn(
                zxid=self._next_zxid,
                time=int(time.time() * 1000),
                session=session,
                cxid=cxid,
                type=txn_type,
                ids=tuple(ids),
                request=request,
            )
            self._next_zxid += 1
            self._to_log.put((txn, done))
        return txn

    def _log_loop(self):
        while True:
            first = self._to_log.get()
            if first is _STOP:
                self._to_apply.put(_STOP)
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._to_log.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            records = [
                LogRecord(
                    zxid=txn.zxid, time=txn.time, session=txn.session,
                    cxid=txn.cxid, type=txn.type, body=encode_txn(txn),
                )
                for txn, _done in batch
            ]
            started = time.perf_counter()
            try:
                self._wal.append(records)
            except Exception as exc:  # a write we cannot log must not be acknowledged
                self._on_fatal(
                    f"write-ahead log append failed at zxid {records[0].zxid:#x}: {exc}"
                )
                return
            self.fsync_ms_total += (time.perf_counter() - started) * 1000
            self.batches += 1
            self.logged += len(batch)
            self.last_batch_size = len(batch)
            self._to_apply.put(batch)
            if stopping:
                self._to_apply.put(_STOP)
                return

    def _apply_loop(self):
        while True:
            batch = self._to_apply.get()
            if batch is _STOP:
                return
            for txn, done in batch:
                try:
                    outcome = self._apply_txn(txn)
                except Exception as exc:
                    self._on_fatal(f"applying zxid {txn.zxid:#x} failed: {exc!r}")
                    return
                if done is not None:
                    try:
                        done(txn, outcome)
                    except Exception:
                        log.exception("reply for zxid %#x session %#x failed", txn.zxid, txn.session)
