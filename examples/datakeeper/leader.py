"""One leadership term: the write path, the links to the replicas, and the fence.

A write is taken one at a time. It gets the next sequence number, goes into
the term's log, is streamed to every live replica (every other member of
the live-node directory), and is acknowledged only when

1. every one of them has confirmed it (so whichever replica wins the next
   election already holds every acknowledged write), and
2. nookeeper confirms that this node still leads: a sync, then the leader
   znode, which must still be this term's and owned by this session. A
   leader that was SIGSTOPped, or cut off until its session expired,
   fails here even if its own view of the cluster is stale.

The leader applies a write to its own copy once the replicas have it,
whatever the fence says next: its copy must stay the history it streams.
A replica that does not confirm in time (it is still in the directory,
but silent) gets the write later; the client is told the write was not
acknowledged (504). A failed fence deposes the term (503).
"""

import collections
import itertools
import logging
import threading
import time

from nookeeper.client.exceptions import (
    ConnectionLoss,
    KeeperTimeoutError,
    OperationTimeoutError,
    SessionExpiredError,
)

from examples.datakeeper.replica_link import ReplicaLink
from examples.datakeeper.store import DELETE, Entry, OutOfOrder

log = logging.getLogger("datakeeper.leader")

# Entries kept for replicas that are a little behind; further behind, a full copy.
LOG_WINDOW = 10_000
# At most this many entries per replication call.
BATCH = 500
# While nookeeper is out of reach, look again this often.
RECHECK_S = 0.05


class NotLeader(Exception):
    """This node cannot take the write: it does not lead, or no longer does."""


class NotAcknowledged(Exception):
    """The write is on the leader, but not every live replica confirmed it in time."""


class Leader:
    """Created when the election is won; `serving` once recovery is done."""

    def __init__(self, *, name, epoch, session_id, client, layout, store, ack_timeout,
                 on_deposed):
        self.name = name
        self.epoch = epoch
        self.session_id = session_id
        self.store = store
        self._client = client
        self._layout = layout
        self._ack_timeout = ack_timeout
        self._on_deposed = on_deposed
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._log = collections.deque(maxlen=LOG_WINDOW)
        self._last_seq = store.seq
        self._links = {}
        self.serving = False
        self.seen_in_view = False
        self.deposed = None          # why, once this term is over

    def begin_serving(self):
        """Recovery is done: the store's copy goes on as this term's history."""
        with self._cond:
            if self.deposed:
                raise NotLeader(self.deposed)
            self.store.continue_as(self.epoch)
            self._last_seq = self.store.seq
            self.serving = True

    # -- the replicas ------------------------------------------------------

    def update_replicas(self, members):
        """Follow the directory: {name: url} of every live node but this one."""
        with self._cond:
            if self.deposed:
                return
            for name, link in list(self._links.items()):
                if members.get(name) != link.url:
                    link.stop()
                    del self._links[name]
                    log.info("%s left the directory; no longer waiting for it", name)
            for name, url in members.items():
                if name not in self._links:
                    self._links[name] = ReplicaLink(self, name, url).start()
                    log.info("streaming to replica %s at %s", name, url)
            self._cond.notify_all()

    def wait_for_work(self, link, timeout):
        """For a link: wait until it has something to send; False once it should end."""
        with self._cond:
            self._cond.wait_for(
                lambda: (link.stopped or self.deposed or link.needs_copy
                         or link.acked is None or link.acked < self._last_seq), timeout)
            return not (link.stopped or self.deposed)

    def pause(self, link, seconds):
        with self._cond:
            self._cond.wait_for(lambda: link.stopped or self.deposed, seconds)

    def entries_after(self, seq):
        """The logged entries after seq (at most BATCH), or None if the log no longer has them."""
        with self._cond:
            if seq >= self._last_seq:
                return []
            first = self._log[0].seq if self._log else self._last_seq + 1
            if seq + 1 < first:
                return None
            start = seq + 1 - first
            return list(itertools.islice(self._log, start, start + BATCH))

    def acknowledged(self, link, seq):
        with self._cond:
            link.acked = seq
            self._cond.notify_all()

    # -- the term's end ----------------------------------------------------

    def depose(self, reason):
        """End this term (idempotent); the leadership thread steps down."""
        with self._cond:
            if self.deposed:
                return
            self.deposed = reason
            self.serving = False
            for link in self._links.values():
                link.stop()
            self._cond.notify_all()
        log.warning("no longer leading term %#x: %s", self.epoch, reason)
        self._on_deposed()

    def wait_deposed(self):
        with self._cond:
            self._cond.wait_for(lambda: self.deposed)
            return self.deposed

    def session_changed(self):
        """The client's state moved: wake whoever waits for a connection."""
        with self._cond:
            self._cond.notify_all()

    # -- writes ------------------------------------------------------------

    def write(self, op, key, value=None):
        """Apply, replicate and confirm one write; its Entry.

        KeyError: deleting a key that is not there. NotLeader: not serving
        (503). NotAcknowledged: on the leader, unconfirmed by a replica (504).
        """
        deadline = time.monotonic() + self._ack_timeout
        with self._write_lock:
            self._wait_connected(deadline)
            if op == DELETE and key not in self.store:
                raise KeyError(key)
            with self._cond:
                if not self.serving:
                    raise NotLeader(self.deposed or f"{self.name} is still taking over")
                entry = Entry(self.epoch, self._last_seq + 1, op, key, value)
                self._log.append(entry)
                self._last_seq = entry.seq
                self._cond.notify_all()
                self._cond.wait_for(lambda: self.deposed or not self._lagging(entry.seq),
                                    max(deadline - time.monotonic(), 0))
                lagging = self._lagging(entry.seq)
            try:
                self.store.apply(entry)
            except OutOfOrder as exc:
                self.depose(f"our copy was replaced by a newer leader's ({exc})")
                raise NotLeader(self.deposed) from None
            if lagging and not self.deposed:
                raise NotAcknowledged(
                    f"write {entry.seq} is on the leader {self.name}, but "
                    f"{', '.join(sorted(lagging))} did not confirm it within "
                    f"{self._ack_timeout:.1f}s; it will reach them, but was not acknowledged")
            self._confirm(deadline)
            return entry

    def _lagging(self, seq):
        return [name for name, link in self._links.items()
                if link.acked is None or link.acked < seq]

    def _wait_connected(self, deadline):
        with self._cond:
            connected = self._cond.wait_for(
                lambda: self.deposed or self._client.connected,
                max(deadline - time.monotonic(), 0))
        if self.deposed:
            raise NotLeader(self.deposed)
        if not connected:
            raise NotLeader(f"{self.name} has no connection to nookeeper")

    def _confirm(self, deadline):
        """Raise NotLeader unless nookeeper confirms, now, that this term goes on.

        It gets at least a session timeout, whatever the replicas took: by
        then a dropped connection has come back or the session has expired.
        """
        deadline = max(deadline, time.monotonic() + (self._client.session_timeout or 1.0))
        path = self._layout.leader
        while True:
            if self.deposed:
                raise NotLeader(self.deposed)
            remaining = deadline - time.monotonic()
            try:
                synced = self._client.sync_async(path)
                read = self._client.exists_async(path)
                synced.get(timeout=max(remaining, 0.01))
                stat = read.get(timeout=max(remaining, 0.01))
            except SessionExpiredError:
                self.depose("the nookeeper session expired")
                raise NotLeader(self.deposed) from None
            except (ConnectionLoss, OperationTimeoutError, KeeperTimeoutError) as exc:
                if time.monotonic() >= deadline:
                    self.depose(f"leadership could not be confirmed in time ({exc!r})")
                    raise NotLeader(self.deposed) from None
                with self._cond:
                    self._cond.wait_for(lambda: self.deposed, RECHECK_S)
                continue
            if stat is None or stat.czxid != self.epoch or stat.ephemeralOwner != self.session_id:
                self.depose("the leader znode is no longer this term's")
                raise NotLeader(self.deposed)
            return
