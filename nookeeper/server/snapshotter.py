"""Taking snapshots without stopping the server: a forked child writes them.

Encoding a large tree takes seconds of Python, and the tree must not change
while it is read. A fork gives the child a frozen copy of the whole heap in
the time it takes to copy page tables, so the apply thread pauses for a
blink, not for the encoding. The child only encodes and writes length-
prefixed chunks to a pipe (it takes no lock and touches no SQLite handle it
inherited); a thread here reads them into the snapshot store.

A snapshot that is being written when ZAB installs a leader's snapshot is
thrown away: `generation` tells the ZAB thread which reports are stale.
"""

import logging
import os
import signal
import struct
import threading
import time

from nookeeper import snapshot
from nookeeper.snapstore import SnapshotStore
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.snapshot")

_LENGTH = struct.Struct(">I")
_PURGE_BATCH = 20000


class Snapshotter:
    def __init__(self, state, store: SnapshotStore, every: int, retain: int, on_saved):
        self.state = state  # the applied tree, read under its lock for the fork
        self.store = store
        self.every = every
        self.retain = retain
        self.on_saved = on_saved  # (zxid, generation), from the snapshot thread
        self.generation = 0
        self.lock = threading.Lock()  # held while a snapshot is saved or installed
        self._since = 0
        self._busy = False
        self.last_duration = None
        self.last_fork_ms = None
        self.taken = 0

    # -- the apply thread -----------------------------------------------------

    def applied(self, count):
        self._since += count
        if self._since >= self.every and not self._busy:
            self.take()

    def take(self):
        """Forks the writer; returns at once. On the apply thread, so the tree is still."""
        state = self.state
        self._busy = True
        self._since = 0
        started = time.monotonic()
        with state.tree_lock:
            tree = state.tree
            zxid, nodes = tree.last_zxid, tree.node_count
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(tree, read_end, write_end)
        os.close(write_end)
        self.last_fork_ms = (time.monotonic() - started) * 1000
        generation = self.generation
        thread = threading.Thread(target=self._save, name="snapshot", daemon=True,
                                  args=(pid, read_end, zxid, nodes, generation, started))
        thread.start()

    # -- the snapshot thread --------------------------------------------------

    def _save(self, pid, read_end, zxid, nodes, generation, started):
        saved = False
        try:
            with os.fdopen(read_end, "rb", buffering=1 << 20) as pipe, self.lock:
                if generation == self.generation:
                    info = self.store.save(zxid, int(time.time() * 1000), nodes, _read_chunks(pipe))
                    saved = True
        except Exception:
            log.exception("snapshot at zxid %s failed", fmt(zxid))
            self._discard(zxid)
        finally:
            _, status = os.waitpid(pid, 0)
        if saved and os.waitstatus_to_exitcode(status) != 0:
            log.error("snapshot writer for zxid %s exited with status %d; discarding it",
                      fmt(zxid), os.waitstatus_to_exitcode(status))
            self._discard(zxid)
            saved = False
        if not saved:
            self._busy = False
            return
        self.last_duration = time.monotonic() - started
        self.taken += 1
        log.info("snapshot at zxid %s: %d nodes, %d bytes in %d chunks, %.2f s "
                 "(the apply thread paused %.1f ms)", fmt(zxid), info.nodes, info.size,
                 info.chunks, self.last_duration, self.last_fork_ms)
        self.on_saved(zxid, generation)

    def _discard(self, zxid):
        with self.lock, self.store.wal.writing() as conn:
            conn.execute("DELETE FROM snapshots WHERE zxid = ?", (zxid,))
            conn.execute("DELETE FROM snapshot_chunks WHERE zxid = ?", (zxid,))

    def purge(self):
        """Called once ZAB knows of the newest snapshot, so it never loses the one it would send."""
        try:
            with self.lock:
                snapshots, rows = self.store.purge(self.retain, batch=_PURGE_BATCH)
            if snapshots or rows:
                log.info("purged %d old snapshots and %d log rows they cover", snapshots, rows)
        except Exception:
            log.exception("purging old snapshots failed")
        finally:
            self._busy = False

    # -- the log writer thread ------------------------------------------------

    def install(self, zxid, chunks, records):
        """SNAP from the leader: its snapshot and log replace ours."""
        with self.lock:
            self.generation += 1
            self.store.install(zxid, int(time.time() * 1000), list(chunks), records)
        self._since = 0


def _read_chunks(pipe):
    while True:
        head = pipe.read(_LENGTH.size)
        if not head:
            return
        if len(head) != _LENGTH.size:
            raise EOFError("snapshot writer stopped inside a chunk length")
        (length,) = _LENGTH.unpack(head)
        chunk = pipe.read(length)
        if len(chunk) != length:
            raise EOFError("snapshot writer stopped inside a chunk")
        yield chunk


def _child(tree, read_end, write_end):
    """In the forked child: encode, write, exit. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.close(read_end)
        # The parent's sockets must not outlive it in us (a restarted server
        # could not bind its ports while we held them).
        os.closerange(3, write_end)
        os.closerange(write_end + 1, os.sysconf("SC_OPEN_MAX"))
        with os.fdopen(write_end, "wb", buffering=1 << 20) as pipe:
            for chunk in snapshot.encode(tree):
                pipe.write(_LENGTH.pack(len(chunk)))
                pipe.write(chunk)
        code = 0
    except BaseException:
        code = 1
    finally:
        os._exit(code)
