"""The ZAB driver: the pure Peer stepped under one lock, its actions carried out.

Everything that happens to ZAB (a tick, a peer message, a broken link, a
batch on disk, a client write) is an event. The thread that has it steps the
core itself when the core is free and no event is waiting, which saves a
thread hand-off per event on a quiet server; otherwise the event joins a
queue that whoever holds the core drains, the zab thread included. Events of
one thread keep their order either way. Actions go out to the peer links
(Send), the log writer (Persist, Truncate, InstallSnapshot, SaveEpochs) and
the apply thread (Apply, SyncDone, a snapshot to install), which applies
committed txns in zxid order and then answers whoever was waiting for them
on this server. A commit stepped by a peer reader, the log writer or the
zab thread is applied by that thread once it lets go of the core, when the
apply thread has nothing to do (server/applier.py).
"""

import collections
import gc
import logging
import threading
import time

from nookeeper import snapshot
from nookeeper.server.applier import Applier
from nookeeper.server.logwriter import LogWriter, to_record
from nookeeper.server.peerport import PeerPort
from nookeeper.server.snapshotter import Snapshotter
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.snapstore import SnapshotStore
from nookeeper.tree import DataTree
from nookeeper.txn import Txn
from nookeeper.wire.txn import decode_txn, encode_txn, is_stamped, stamp, txn_header
from nookeeper.zab import actions as act
from nookeeper.zab.messages import FOLLOWING, LEADING, LOOKING, Snap
from nookeeper.zab.peer import Limits, Peer
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.zab")

ROLE_NAMES = {LOOKING: "looking", FOLLOWING: "follower", LEADING: "leader"}
META_ACCEPTED = "acceptedEpoch"
META_CURRENT = "currentEpoch"
ELECTION_TICK_S = 0.1
# Actions carried out through LogWriter.run_sync, which blocks until the log writer has done them.
_WAITS_FOR_DISK = (act.Truncate, act.InstallSnapshot, act.SaveEpochs)
# Events whose posting thread may apply the commits they lead to: peer readers
# and the log writer hold no other lock; a client's reader holds its
# connection's order lock, which applying a write of that connection takes.
_MAY_APPLY = ("receive", "logged")


class Replication:
    def __init__(self, node, wal):
        config = node.config
        self.node = node
        self.sid = config.server_id
        self.wal = wal
        members = config.members or {config.server_id: None}
        self.standalone = len(members) == 1
        self.store = SnapshotStore(wal)
        snap_zxid = self._load_snapshot()
        entries = [(record.zxid, record.body) for record in wal.records(after_zxid=snap_zxid)]
        accepted = int(wal.get_meta(META_ACCEPTED, 0))
        current = int(wal.get_meta(META_CURRENT, 0))
        self.core = Peer(self.sid, members, accepted, current, entries,
                         Limits(init=config.init_limit, sync=config.sync_limit, finalize=1,
                                diff_window=config.snapshot_every_txns),
                         snap_zxid=snap_zxid)
        log.info("log holds %d txns after the snapshot at zxid %s, up to zxid %s; "
                 "accepted epoch %d, current epoch %d",
                 len(entries), fmt(snap_zxid), fmt(self.core.last_zxid), accepted, current)
        self.snapshotter = Snapshotter(node, self.store, config.snapshot_every_txns,
                                       config.snapshot_retain_count, self._snapshot_saved)
        self._events = collections.deque()  # popped only by whoever holds _core_lock
        self._core_lock = threading.Lock()
        self._wake = threading.Event()
        self._touched = set()
        self.applier = Applier(self._apply_item)
        self._may_keep = False  # set by whoever holds _core_lock
        self.writer = LogWriter(wal, self._logged, node.fatal)
        self.peers = None
        if not self.standalone:
            self.peers = PeerPort(self.sid, members, (config.peer_host, config.peer_port),
                                  self._peer_message, self._peer_down)
        self.role = LOOKING
        self.leader = 0
        self.epoch = current
        self.serving = False
        self._submitted_lock = threading.Lock()
        self._syncs = {}
        # (session, cxid) -> [(payload, Txn, done)]: what this server's clients sent, not yet applied here
        self._submitted = {}
        self._sync_waits = []
        self._next_sync = 0
        self._stopping = threading.Event()
        self._retick = threading.Event()
        self._threads = []

    def _load_snapshot(self):
        """The tree starts as the newest readable snapshot; the log after it is replayed by ZAB."""
        started = time.monotonic()
        zxid, tree = self.store.load_newest()
        if tree is None:
            return 0
        self.node.reset_tree(tree)
        # Everything loaded lives as long as the server: keep it out of the collector's scans.
        gc.freeze()
        log.info("loaded the snapshot at zxid %s: %d nodes in %.2f s",
                 fmt(zxid), tree.node_count, time.monotonic() - started)
        return zxid

    # -- lifetime -------------------------------------------------------------

    def start(self):
        self.writer.start()
        if self.peers is not None:
            self.peers.start()
        for target, name in ((self._events_until_stopped, "zab"),
                             (self.applier.run_until_stopped, "apply"), (self._tick_loop, "ticker")):
            thread = threading.Thread(target=self._fatal_on_error, args=(target, name),
                                      name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._post(("start",))

    def stop(self):
        self._stopping.set()
        self._retick.set()
        self._wake.set()
        self.applier.stop()
        if self.peers is not None:
            self.peers.stop()
        self.writer.stop()

    def _fatal_on_error(self, target, name):
        """A dead ZAB or apply thread would leave a zombie server: stop the process."""
        try:
            target()
        except Exception as exc:
            log.exception("%s thread failed", name)
            self.node.fatal(f"{name} thread failed: {exc!r}")

    @property
    def mode(self):
        if self.standalone:
            return "standalone"
        return ROLE_NAMES[self.role]

    # -- inputs (any thread) --------------------------------------------------

    def _peer_message(self, sid, message):
        self._post(("receive", sid, message))

    def _peer_down(self, sid):
        self._post(("disconnected", sid))

    def _logged(self, zxid, generation):
        self._post(("logged", zxid, generation))

    def _snapshot_saved(self, zxid, generation):
        self._post(("snapshotted", zxid, generation))

    def _tick_loop(self):
        """Elections only resend votes and wait out a better one on ticks, so
        while looking a tick is short (as ZooKeeper's 200 ms finalize wait);
        the leader's and followers' limits count ticks of tick_ms."""
        normal = self.node.config.tick_ms / 1000.0
        looking = min(normal, ELECTION_TICK_S)
        while not self._stopping.is_set():
            if self._retick.wait(looking if self.role == LOOKING else normal):
                # We started looking: the first election tick must not wait
                # out what was left of a tick_ms tick (up to 2 s by default).
                self._retick.clear()
                continue
            self._post(("tick",))

    def submit(self, session, cxid, txn_type, ids, request, done=None, request_bytes=None):
        """A client write: done(txn, outcome) runs on the apply thread once it is applied here.

        Encoded here, on the caller's thread, so the ZAB thread only stamps it;
        request_bytes is the request as the client sent it, if at hand."""
        txn = Txn(zxid=0, time=0, session=session, cxid=cxid, type=txn_type,
                  ids=tuple(ids), request=request)
        payload = encode_txn(txn, request_bytes)
        with self._submitted_lock:
            self._submitted.setdefault((session, cxid), collections.deque()).append(
                (payload, txn, done))
        self._post(("write", payload))

    def sync(self, done):
        """done() runs once this server has applied everything a leader that a
        quorum still follows had proposed (a confirmed Peer.sync): a client's
        sync and a session's resume both need that leader, not a cut-off one.
        It never runs if this server stops serving first."""
        self._post(("sync", done))

    def touch(self, session_id):
        self._post(("touch", session_id))

    # -- stepping the core ----------------------------------------------------

    def _post(self, event):
        if self._stopping.is_set():
            return
        if not self._events and self._core_lock.acquire(blocking=False):
            on_writer = self.writer.on_its_thread()
            self._may_keep = event[0] in _MAY_APPLY
            try:
                # Whatever queued since our look goes first: it may be the rest of an earlier step.
                if self._drain(on_writer):
                    self._step(event, on_writer)
                    self._drain(on_writer)
                else:
                    self._events.append(event)
            finally:
                self._may_keep = False
                self._core_lock.release()
            self._run_kept()
        else:
            self._events.append(event)
            self._wake.set()

    def _events_until_stopped(self):
        """The zab thread: steps the events that found the core busy."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._core_lock:
                self._may_keep = True
                try:
                    self._drain()
                finally:
                    self._may_keep = False
            self._run_kept()

    def _run_kept(self):
        try:
            self.applier.run_kept()
        except Exception as exc:
            log.exception("applying committed txns failed")
            self.node.fatal(f"applying committed txns failed: {exc!r}")

    def _drain(self, on_writer=False):
        """Steps the queued events in order; False if the next must wait for the zab thread."""
        events = self._events
        while events:
            if not self._step(events.popleft(), on_writer):
                return False
        return True

    def _step(self, event, on_writer):
        try:
            actions = event[1] if event[0] == "actions" else self._actions_for(event)
            if on_writer and any(type(a) in _WAITS_FOR_DISK for a in actions):
                # The log writer would wait for itself: these actions go first, on the zab thread.
                self._events.appendleft(("actions", actions))
                self._wake.set()
                return False
            self._execute(actions)
            return True
        except Exception as exc:
            # On whichever thread stepped it, a failed step leaves ZAB in an unknown state.
            log.exception("zab step %s failed", event[0])
            self.node.fatal(f"zab step {event[0]} failed: {exc!r}")

    def _actions_for(self, event):
        core = self.core
        kind = event[0]
        if kind == "receive":
            return core.receive(event[1], event[2])
        if kind == "logged":
            return core.logged(event[1], event[2])
        if kind == "write":
            return self._write(event[1])
        if kind == "touch":
            self._touched.add(event[1])
            return ()
        if kind == "tick":
            if self._touched:
                core.touch_sessions(self._touched)
                self._touched = set()
            return core.tick()
        if kind == "disconnected":
            return core.disconnected(event[1])
        if kind == "sync":
            if not core.serving:
                return ()  # never answered: the waiter gives up on its own
            self._next_sync += 1
            self._syncs[self._next_sync] = event[1]
            return core.sync(self._next_sync, confirm=True)
        if kind == "snapshotted":
            return self._snapshotted(event[1], event[2])
        return core.start()

    def _snapshotted(self, zxid, generation):
        if generation != self.snapshotter.generation:
            return []  # a leader's snapshot was installed while this one was written
        actions = self.core.snapshotted(zxid)
        threading.Thread(target=self.snapshotter.purge, name="purge", daemon=True).start()
        return actions

    def _write(self, payload):
        core = self.core
        if core.role == LEADING:
            return self._propose(payload)
        if core.role == FOLLOWING:
            return core.forward(payload)
        return []

    def _propose(self, payload):
        now = int(time.time() * 1000)
        zxid, actions = self.core.propose(lambda zxid: stamp(payload, zxid, now))
        self.node.stats.proposed(zxid)
        return actions

    def _execute(self, actions):
        for action in actions:
            kind = type(action)
            if kind is act.Send:
                self.peers.send(action.to, action.message, inline=not self._events)
            elif kind is act.Persist:
                self.writer.persist(action.entries, action.generation, action.upto)
            elif kind is act.Apply:
                self.applier.hand_over(("apply", action.entries), self._may_keep)
            elif kind is act.ProposeForwarded:
                self._execute(self._propose(action.payload))
            elif kind is act.SessionsAlive:
                self.node.sessions_alive(action.sessions)
            elif kind is act.SyncDone:
                done = self._syncs.pop(action.id, None)
                if done is not None:
                    self.applier.hand_over(("sync", action.zxid, done))
            elif kind is act.Truncate:
                log.warning("truncating the log after zxid %s (an uncommitted tail)",
                            fmt(action.zxid))
                self.writer.run_sync(lambda wal, z=action.zxid: wal.truncate_after(z))
            elif kind is act.SendSnapshot:
                self._send_snapshot(action)
            elif kind is act.InstallSnapshot:
                log.warning("installing the leader's snapshot at zxid %s and %d txns after it",
                            fmt(action.zxid), len(action.entries))
                records = [to_record(zxid, payload) for zxid, payload in action.entries]
                self.writer.run_sync(lambda wal, a=action, r=records:
                                     self.snapshotter.install(a.zxid, a.snapshot, r))
                self.applier.hand_over(("install", action.zxid, action.snapshot))
            elif kind is act.SaveEpochs:
                self.writer.run_sync(lambda wal, a=action: _save_epochs(wal, a))
            elif kind is act.RoleChanged:
                self._role_changed(action)

    def _send_snapshot(self, action):
        chunks = ()
        if action.zxid:
            try:
                chunks = tuple(self.store.chunks(action.zxid))
            except CorruptSnapshot as e:
                self.node.fatal(f"cannot send the snapshot at zxid {fmt(action.zxid)} "
                                f"to server {action.to}: {e}")
        log.info("sending server %d the snapshot at zxid %s (%d bytes) and %d txns",
                 action.to, fmt(action.zxid), sum(map(len, chunks)), len(action.entries))
        self.peers.send(action.to, Snap(action.epoch, action.zxid, chunks, action.entries))

    def _role_changed(self, action):
        was_serving = self.serving
        self.role, self.leader, self.epoch, self.serving = (
            action.role, action.leader, action.epoch, action.serving)
        name = ROLE_NAMES[action.role]
        if action.role == LOOKING:
            self._retick.set()
            log.info("looking for a leader (%s), epoch %d", action.reason, action.epoch)
        elif action.serving:
            log.info("%s of epoch %d (leader %d): serving clients (%s)",
                     name, action.epoch, action.leader, action.reason)
        else:
            log.info("elected: %s, leader %d; synchronising", name, action.leader)
        if was_serving and not action.serving:
            self._syncs.clear()  # the role that would have answered them is gone
            self.applier.hand_over(("stop-serving",))
        if action.serving:
            self.applier.hand_over(("serving", action.role == LEADING))

    # -- applying (the apply thread, or a thread that kept a commit) ----------

    def _apply_item(self, item):
        node = self.node
        kind = item[0]
        if kind == "apply":
            with node.replies_held():
                for zxid, payload in item[1]:
                    txn, done = self._submitted_here(zxid, payload)
                    outcome = node.apply_txn(txn)
                    if done is not None:
                        self._complete(done, txn, outcome)
                self._release_syncs()
            self.snapshotter.applied(len(item[1]))
        elif kind == "sync":
            self._sync_waits.append((item[1], item[2]))
            with node.replies_held():
                self._release_syncs()
        elif kind == "install":
            self._install_tree(item[1], item[2])
        elif kind == "stop-serving":
            self._abandon_waiters()
            node.stop_serving()
        elif kind == "serving":
            node.start_serving(leader=item[1])

    def _install_tree(self, zxid, chunks):
        try:
            tree = snapshot.decode(chunks) if chunks else DataTree()
        except CorruptSnapshot as e:
            self.node.fatal(f"the leader's snapshot at zxid {fmt(zxid)} is damaged: {e}")
        self.node.reset_tree(tree)

    def _submitted_here(self, zxid, payload):
        """(txn, done): a write one of this server's clients sent, once the bytes
        show it is that write as the leader stamped it, is applied from the
        request decoded then (a decode saved, some 25 us on a quiet server) and
        answered through its done; any other txn is decoded, and done is None."""
        _zxid, time_ms, session, cxid, _type = txn_header(payload)
        key = (session, cxid)
        with self._submitted_lock:
            sent = self._submitted.get(key)
            if not sent or not is_stamped(sent[0][0], payload):
                return decode_txn(payload), None
            _, txn, done = sent.popleft()
            if not sent:
                del self._submitted[key]
        return txn._replace(zxid=zxid, time=time_ms), done

    def _complete(self, done, txn, outcome):
        try:
            done(txn, outcome)
        except Exception:
            log.exception("completing session %#x cxid %d at zxid %s failed",
                          txn.session, txn.cxid, fmt(txn.zxid))

    def _release_syncs(self):
        applied = self.node.tree.last_zxid
        ready = [done for zxid, done in self._sync_waits if zxid <= applied]
        self._sync_waits = [(z, d) for z, d in self._sync_waits if z > applied]
        for done in ready:
            done()

    def _abandon_waiters(self):
        """Their connections are being closed; clients retry elsewhere."""
        with self._submitted_lock:
            self._submitted.clear()
        self._sync_waits.clear()


def _save_epochs(wal, action):
    wal.set_meta(META_ACCEPTED, action.accepted_epoch)
    wal.set_meta(META_CURRENT, action.current_epoch)
