"""The ZAB stage: the pure Peer stepped under one lock, its actions carried out.

Everything that happens to ZAB is an event (server/events.py): a tick, a
peer message, a broken link, a batch on disk, a client write or sync. The
thread that has it steps the core itself when the core is free and no event
is waiting, which saves a thread hand-off per event on a quiet server;
otherwise the event joins a queue that whoever holds the core drains, the
zab thread included. Events of one thread keep their order either way.
Actions go out to the peer links (Send), the log writer (Persist, Truncate,
InstallSnapshot, SaveEpochs) and the commit stage (Apply, SyncDone, a
snapshot to install, serving or not), handed over in ZAB's order. A commit
stepped by a peer reader, the log writer or the zab thread is applied by
that thread once it lets go of the core, when the apply thread has nothing
to do (server/applier.py).
"""

import collections
import logging
import threading
import time

from nookeeper.server.events import (
    ClientSync,
    ClientWrite,
    Committed,
    Deferred,
    LinkDown,
    Logged,
    PeerMessage,
    ReadOnlyChanged,
    ServingChanged,
    SessionTouched,
    Snapshotted,
    Start,
    SyncReached,
    Tick,
    TreeInstalled,
)
from nookeeper.server.logwriter import to_record
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.zab import actions as act
from nookeeper.zab.messages import FOLLOWING, LEADING, LOOKING, Snap
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
_MAY_APPLY = (PeerMessage, Logged)


def _now_ms():
    return int(time.time() * 1000)


class Replication:
    def __init__(self, core, tick_ms, writer, applier, store, snapshotter, stats, fatal,
                 on_sessions_alive, peers=None, read_only_grace_s=None):
        """read_only_grace_s: with read_only_mode, how long this server looks
        for a leader before it serves read-only clients (None: never)."""
        self.core = core
        self.standalone = peers is None
        self.tick_ms = tick_ms
        self.writer = writer
        self.applier = applier
        self.store = store
        self.snapshotter = snapshotter
        self.stats = stats
        self.fatal = fatal
        self.on_sessions_alive = on_sessions_alive
        self.peers = peers
        self._events = collections.deque()  # popped only by whoever holds _core_lock
        self._core_lock = threading.Lock()
        self._wake = threading.Event()
        self._touched = set()
        self._may_keep = False  # set by whoever holds _core_lock
        self._may_keep_append = False  # likewise
        self.role = LOOKING
        self.leader = 0
        self.epoch = core.current_epoch
        self.serving = False
        self.read_only_grace_s = read_only_grace_s
        self.read_only = False  # serving read-only clients (set by whoever holds the core)
        self._looking_since = time.monotonic()
        self._syncs = {}
        self._next_sync = 0
        self._stopping = threading.Event()
        self._retick = threading.Event()
        self._threads = []
        self._actions_by_event = {
            PeerMessage: self._on_peer_message,
            Logged: self._on_logged,
            ClientWrite: self._on_client_write,
            SessionTouched: self._on_session_touched,
            Tick: self._on_tick,
            LinkDown: self._on_link_down,
            ClientSync: self._on_client_sync,
            Snapshotted: self._on_snapshotted,
            Start: self._on_start,
            Deferred: self._on_deferred,
        }

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
        self.post(Start())

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
            self.fatal(f"{name} thread failed: {exc!r}")

    @property
    def mode(self):
        if self.standalone:
            return "standalone"
        return ROLE_NAMES[self.role]

    def _tick_loop(self):
        """Elections only resend votes and wait out a better one on ticks, so
        while looking a tick is short (as ZooKeeper's 200 ms finalize wait);
        the leader's and followers' limits count ticks of tick_ms."""
        normal = self.tick_ms / 1000.0
        looking = min(normal, ELECTION_TICK_S)
        while not self._stopping.is_set():
            if self._retick.wait(looking if self.role == LOOKING else normal):
                # We started looking: the first election tick must not wait
                # out what was left of a tick_ms tick (up to 2 s by default).
                self._retick.clear()
                continue
            self.post(Tick())

    # -- stepping the core (any thread) ---------------------------------------

    def post(self, event):
        """Step event now if the core is free, else queue it for whoever holds it."""
        if self._stopping.is_set():
            return
        if not self._events and self._core_lock.acquire(blocking=False):
            on_writer = self.writer.on_its_thread()
            kind = type(event)
            self._may_keep = kind in _MAY_APPLY
            # A peer reader with nothing more in hand may write the append
            # itself; one in a burst leaves it to the group commit.
            self._may_keep_append = kind is PeerMessage and not event.more
            try:
                # Whatever queued since our look goes first: it may be the rest of an earlier step.
                if self._drain(on_writer):
                    self._step(event, on_writer)
                    self._drain(on_writer)
                else:
                    self._events.append(event)
            finally:
                self._may_keep = self._may_keep_append = False
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
        """What this thread kept while it held the core: an append first (it
        is on a write's critical path), then a commit to apply."""
        try:
            self.writer.run_kept()
        except Exception as exc:
            log.exception("writing a kept append failed")
            self.fatal(f"writing a kept append failed: {exc!r}")
        try:
            self.applier.run_kept()
        except Exception as exc:
            log.exception("applying committed txns failed")
            self.fatal(f"applying committed txns failed: {exc!r}")

    def _drain(self, on_writer=False):
        """Steps the queued events in order; False if the next must wait for the zab thread."""
        events = self._events
        while events:
            if not self._step(events.popleft(), on_writer):
                return False
        return True

    def _step(self, event, on_writer):
        try:
            actions = self._actions_by_event[type(event)](event)
            if on_writer and any(type(a) in _WAITS_FOR_DISK for a in actions):
                # The log writer would wait for itself: these actions go first, on the zab thread.
                self._events.appendleft(Deferred(actions))
                self._wake.set()
                return False
            self._execute(actions)
            return True
        except Exception as exc:
            # On whichever thread stepped it, a failed step leaves ZAB in an unknown state.
            name = type(event).__name__
            log.exception("zab step %s failed", name)
            self.fatal(f"zab step {name} failed: {exc!r}")

    # -- events to core steps -------------------------------------------------

    def _on_peer_message(self, event):
        return self.core.receive(event.sid, event.message, _now_ms())

    def _on_logged(self, event):
        return self.core.logged(event.zxid, event.generation)

    def _on_client_write(self, event):
        core = self.core
        if core.role == LEADING:
            _zxid, actions = core.propose(event.payload, _now_ms())
            return actions
        if core.role == FOLLOWING:
            return core.forward(event.payload)
        return []

    def _on_session_touched(self, event):
        self._touched.add(event.session)
        return ()

    def _on_tick(self, event):
        self._maybe_read_only()
        core = self.core
        if self._touched:
            core.touch_sessions(self._touched)
            self._touched = set()
        return core.tick(_now_ms())

    def _on_link_down(self, event):
        return self.core.disconnected(event.sid)

    def _on_client_sync(self, event):
        """Always confirmed: a client's sync and a session's resume both need a
        leader that a quorum still follows, not a cut-off one. Never answered
        if this server is not serving (the waiter gives up on its own)."""
        core = self.core
        if not core.serving:
            return ()
        self._next_sync += 1
        self._syncs[self._next_sync] = event.done
        return core.sync(self._next_sync, confirm=True)

    def _on_snapshotted(self, event):
        if event.generation != self.snapshotter.generation:
            return []  # a leader's snapshot was installed while this one was written
        actions = self.core.snapshotted(event.zxid)
        threading.Thread(target=self.snapshotter.purge, name="purge", daemon=True).start()
        return actions

    def _on_start(self, event):
        return self.core.start()

    def _on_deferred(self, event):
        return event.actions

    # -- carrying out actions -------------------------------------------------

    def _execute(self, actions):
        for action in actions:
            kind = type(action)
            if kind is act.Send:
                self.peers.send(action.to, action.message, inline=not self._events)
            elif kind is act.Persist:
                if self.role == LEADING:
                    for zxid, _payload in action.entries:
                        self.stats.proposed(zxid)
                # Kept only while nothing logged awaits its commit: a reader
                # busy with an fsync would hold back the Commits (or Acks) of
                # the other writes in flight, and with them their replies.
                core = self.core
                self.writer.persist(action.entries, action.generation, action.upto,
                                    self._may_keep_append and core.commit_zxid >= core.logged_zxid)
            elif kind is act.Apply:
                self.applier.hand_over(Committed(action.entries), self._may_keep)
            elif kind is act.SessionsAlive:
                self.on_sessions_alive(action.sessions)
            elif kind is act.SyncDone:
                done = self._syncs.pop(action.id, None)
                if done is not None:
                    self.applier.hand_over(SyncReached(action.zxid, done))
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
                self.applier.hand_over(TreeInstalled(action.zxid, action.snapshot))
            elif kind is act.SaveEpochs:
                self.writer.run_sync(lambda wal, a=action: save_epochs(wal, a))
            elif kind is act.RoleChanged:
                self._role_changed(action)

    def _send_snapshot(self, action):
        chunks = ()
        if action.zxid:
            try:
                chunks = tuple(self.store.chunks(action.zxid))
            except CorruptSnapshot as e:
                self.fatal(f"cannot send the snapshot at zxid {fmt(action.zxid)} "
                           f"to server {action.to}: {e}")
        log.info("sending server %d the snapshot at zxid %s (%d bytes) and %d txns",
                 action.to, fmt(action.zxid), sum(map(len, chunks)), len(action.entries))
        self.peers.send(action.to, Snap(action.epoch, action.zxid, chunks, action.entries))

    def _maybe_read_only(self):
        """ZooKeeper's QuorumPeer starts its ReadOnlyZooKeeperServer once it has
        been looking for max(2 s, tickTime). Checked on a tick, with the core
        held, so that it comes in ZAB's order before any role change after it."""
        if (self.read_only_grace_s is None or self.read_only or self.role != LOOKING
                or time.monotonic() - self._looking_since < self.read_only_grace_s):
            return
        self.read_only = True
        log.warning("no leader for %.1fs: serving read-only clients from the tree as applied "
                    "(read_only_mode)", time.monotonic() - self._looking_since)
        self.applier.hand_over(ReadOnlyChanged(True))

    def _role_changed(self, action):
        if action.role == LOOKING and self.role != LOOKING:
            self._looking_since = time.monotonic()
        if self.read_only and action.role != LOOKING:
            # Elected: the read-only server goes before synchronising (a SNAP
            # may replace the tree), as ZooKeeper shuts its one down.
            self.read_only = False
            log.info("a leader is found (%s, leader %d): leaving read-only mode",
                     ROLE_NAMES[action.role], action.leader)
            self.applier.hand_over(ReadOnlyChanged(False))
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
            self.applier.hand_over(ServingChanged(False, False, action.epoch))
        if action.serving:
            self.applier.hand_over(ServingChanged(True, action.role == LEADING, action.epoch))


def save_epochs(wal, action):
    wal.set_meta(META_ACCEPTED, action.accepted_epoch)
    wal.set_meta(META_CURRENT, action.current_epoch)
