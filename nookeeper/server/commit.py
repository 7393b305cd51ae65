"""The commit stage: committed txns applied in zxid order, and the answers.

It runs what ZAB hands over (events.Committed, SyncReached, TreeInstalled,
ServingChanged), on the apply thread or on the thread that stepped ZAB to
the commit (server/applier.py). Applying a txn changes the tree, queues the
watch events it fires on the watchers' connections, keeps the local session
table, and completes the write if one of this server's clients sent it:
those are remembered in `InFlightWrites` when submitted, so the reply is
built from the request decoded then.
"""

import collections
import logging
import threading

from nookeeper import snapshot
from nookeeper.server.connection import replies_held
from nookeeper.server.events import (
    Committed,
    ReadOnlyChanged,
    ServingChanged,
    SyncReached,
    TreeInstalled,
)
from nookeeper.server.state import now_ms
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.tree import DataTree
from nookeeper.wire.ops import CLOSE_SESSION, CREATE_SESSION
from nookeeper.wire.txn import decode_txn, is_stamped, txn_header
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.commit")


class InFlightWrites:
    """Writes this server's clients sent and this server has not applied yet,
    each with whoever waits for it; keyed by (session, cxid)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_key = {}

    def add(self, payload, txn, done):
        with self._lock:
            self._by_key.setdefault((txn.session, txn.cxid), collections.deque()).append(
                (payload, txn, done))

    def take(self, zxid, payload):
        """(txn, done) for a committed entry: the write as submitted, once the
        bytes show the leader stamped that very write (a decode saved); any
        other txn is decoded, and done is None."""
        _zxid, time_ms, session, cxid, _type = txn_header(payload)
        key = (session, cxid)
        with self._lock:
            sent = self._by_key.get(key)
            if not sent or not is_stamped(sent[0][0], payload):
                return decode_txn(payload), None
            _, txn, done = sent.popleft()
            if not sent:
                del self._by_key[key]
        return txn._replace(zxid=zxid, time=time_ms), done

    def clear(self):
        with self._lock:
            self._by_key.clear()


class CommitStage:
    def __init__(self, state, stats, fatal, membership=b""):
        self.state = state
        self.membership = membership  # /zookeeper/config's data, set on every tree installed
        self.stats = stats
        self.fatal = fatal
        self.in_flight = InFlightWrites()
        self.on_applied = None  # on_applied(count) after each batch: the snapshotter
        self._sync_waits = []
        self._run_by_type = {
            Committed: self._committed,
            SyncReached: self._sync_reached,
            TreeInstalled: self._tree_installed,
            ServingChanged: self._serving_changed,
            ReadOnlyChanged: self._read_only_changed,
        }

    def run(self, item):
        self._run_by_type[type(item)](item)

    def _committed(self, item):
        with replies_held():
            for zxid, payload in item.entries:
                txn, done = self.in_flight.take(zxid, payload)
                outcome = self.apply(txn)
                if done is not None:
                    self._complete(done, txn, outcome)
            self._release_syncs()
        if self.on_applied is not None:
            self.on_applied(len(item.entries))

    def apply(self, txn):
        state = self.state
        with state.tree_lock:
            tree = state.tree
            outcome = tree.apply(txn)
            for event_type, path in outcome.events:
                for conn in state.watches.trigger(event_type, path):
                    conn.send_event(event_type, path)
            if tree.quota_warnings:
                for zxid, overrun in tree.quota_warnings:
                    log.warning("%s (session %#x, zxid %s)", overrun, txn.session, fmt(zxid))
                tree.quota_warnings.clear()
        self.stats.applied(txn.zxid)
        if txn.type == CREATE_SESSION and outcome.err == 0:
            with state.lock:
                state.sessions.track(txn.session, txn.request.timeOut, now_ms())
        elif txn.type == CLOSE_SESSION:
            with state.lock:
                state.sessions.forget(txn.session)
                conn = state.bound.get(txn.session)
            if conn is not None and not conn.closing_session:
                # Expired by the leader: the client hears nothing, as with ZooKeeper.
                conn.close(flush=False)
            log.info("session %#x closed at zxid %#x", txn.session, txn.zxid)
        return outcome

    def _complete(self, done, txn, outcome):
        try:
            done(txn, outcome)
        except Exception:
            log.exception("completing session %#x cxid %d at zxid %s failed",
                          txn.session, txn.cxid, fmt(txn.zxid))

    def _sync_reached(self, item):
        self._sync_waits.append((item.zxid, item.done))
        with replies_held():
            self._release_syncs()

    def _release_syncs(self):
        applied = self.state.tree.last_zxid
        ready = [done for zxid, done in self._sync_waits if zxid <= applied]
        self._sync_waits = [(z, d) for z, d in self._sync_waits if z > applied]
        for done in ready:
            done()

    def _tree_installed(self, item):
        try:
            tree = snapshot.decode(item.chunks) if item.chunks else DataTree()
        except CorruptSnapshot as e:
            self.fatal(f"the leader's snapshot at zxid {fmt(item.zxid)} is damaged: {e}")
        tree.set_config(self.membership)
        self.state.reset_tree(tree)

    def _serving_changed(self, item):
        state = self.state
        if item.serving:
            count = state.start_serving(item.leader)
            log.info("serving clients at zxid %#x (epoch %d), %d sessions",
                     state.tree.last_zxid, item.epoch, count)
            return
        # Their connections are being closed; clients retry elsewhere.
        self.in_flight.clear()
        self._sync_waits.clear()
        conns = state.stop_serving()
        for conn in conns:
            conn.close(flush=False)
        log.warning("not serving clients: no leader; closed %d client connections", len(conns))

    def _read_only_changed(self, item):
        """read_only_mode: read-only clients are served from the tree as it is
        applied now, until a leader is found; then their connections are
        closed (as ZooKeeper's ReadOnlyZooKeeperServer.shutdown closes them)
        and their sessions, local to this server, end."""
        state = self.state
        if item.read_only:
            state.start_read_only()
            log.warning("read-only mode: serving read-only clients at zxid %#x; writes "
                        "answered NOTREADONLY", state.tree.last_zxid)
            return
        conns = state.stop_read_only()
        for conn in conns:
            conn.close(flush=False)
        log.warning("leaving read-only mode: closed %d read-only client connections", len(conns))
