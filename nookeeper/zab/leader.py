"""The leader's side of discovery, synchronization and broadcast.

Discovery: a quorum reports its accepted epochs and the leader picks a new
epoch above all of them. Each follower then reports its history; one that
is ahead of the leader means the election went wrong, and the leader steps
down. Sync: each follower gets what it lacks (DIFF), loses an uncommitted
tail (TRUNC) or gets the leader's newest snapshot and the log after it
(SNAP), then NEWLEADER. Once a
quorum has acknowledged NEWLEADER the leader's history is committed and it
broadcasts: proposals are committed, in zxid order, when a quorum (the
leader included) has them on disk.

A leader that has been cut off goes on believing it leads until its sync
limit runs out, while the others may already have elected a successor. What
only the current leader can answer (whether a session has ended, above all)
is therefore answered by a confirmed sync: once a quorum has answered a Ping
round sent after the request, no newer epoch can have committed anything
before it.
"""

from nookeeper.zab import actions as act
from nookeeper.zab.messages import (
    Ack,
    AckEpoch,
    AckNewLeader,
    Commit,
    Diff,
    FollowerInfo,
    LeaderInfo,
    NewLeader,
    Ping,
    PingReply,
    Proposal,
    Request,
    SyncReply,
    SyncRequest,
    Trunc,
    UpToDate,
)
from nookeeper.zab.zxid import epoch_of, make_zxid

DISCOVERY = "discovery"
SYNC = "sync"
BROADCAST = "broadcast"


class _Follower:
    __slots__ = ("accepted_epoch", "history", "synced", "acked", "heard", "round")

    def __init__(self, accepted_epoch):
        self.accepted_epoch = accepted_epoch
        self.history = None  # (current_epoch, last_zxid) from AckEpoch
        self.synced = False  # NEWLEADER acknowledged
        self.acked = 0
        self.heard = 0
        self.round = 0  # the newest Ping round it answered


class _Confirmation:
    """A sync waiting for a quorum to answer Ping round `round`; origin is
    the server that asked (the leader itself for its own clients)."""

    __slots__ = ("origin", "id", "zxid", "round")

    def __init__(self, origin, sync_id, zxid, round_):
        self.origin = origin
        self.id = sync_id
        self.zxid = zxid
        self.round = round_


class LeaderRole:
    def __init__(self, peer):
        self.peer = peer
        self.phase = DISCOVERY
        self.epoch = None
        self.ticks = 0
        self.phase_start = 0
        self.followers = {}
        self.infos = {peer.sid: peer.accepted_epoch}
        self.counter = 0
        self.newleader_zxid = None
        self.sync_sent = set()
        self.ping_round = 0
        self.confirming = []

    @property
    def serving(self):
        return self.phase == BROADCAST

    def begin(self):
        self._maybe_pick_epoch()

    def _step_down(self, why):
        self.peer.look(why)

    # -- discovery ----------------------------------------------------------

    def _maybe_pick_epoch(self):
        if self.epoch is not None or len(self.infos) < self.peer.quorum:
            return
        peer = self.peer
        self.epoch = max(self.infos.values()) + 1
        peer.accepted_epoch = self.epoch
        peer.save_epochs()
        for sid in self.infos:
            if sid != peer.sid:
                peer.send(sid, LeaderInfo(self.epoch))
        self._maybe_start_sync()

    def _on_follower_info(self, frm, message):
        follower = _Follower(message.accepted_epoch)
        follower.heard = self.ticks
        self.followers[frm] = follower
        self.sync_sent.discard(frm)
        self._forget_confirmations(frm)
        if self.epoch is None:
            self.infos[frm] = message.accepted_epoch
            self._maybe_pick_epoch()
        elif message.accepted_epoch > self.epoch:
            self._step_down("a follower accepted a newer epoch")
        else:
            self.peer.send(frm, LeaderInfo(self.epoch))

    def _on_ack_epoch(self, frm, message):
        follower = self.followers.get(frm)
        if follower is None or message.epoch != self.epoch or follower.history is not None:
            return
        follower.history = (message.current_epoch, message.last_zxid)
        # Our history as it is now: once we sync, a follower we synced before
        # has our epoch as its current one and is not ahead of us.
        if follower.history > (self.peer.current_epoch, self.peer.last_zxid):
            self._step_down("a follower has a more recent history")
            return
        if self.phase == DISCOVERY:
            self._maybe_start_sync()
        else:
            self._sync_follower(frm, follower)

    def _maybe_start_sync(self):
        """The leader's own history counts as one of the quorum's reports."""
        ready = 1 + sum(1 for f in self.followers.values() if f.history is not None)
        if self.phase == DISCOVERY and self.epoch is not None and ready >= self.peer.quorum:
            self._start_sync()

    # -- sync ---------------------------------------------------------------

    def _start_sync(self):
        peer = self.peer
        self.phase = SYNC
        self.phase_start = self.ticks
        peer.current_epoch = self.epoch
        peer.save_epochs()
        self.newleader_zxid = make_zxid(self.epoch, 0)
        for sid, follower in self.followers.items():
            if follower.history is not None:
                self._sync_follower(sid, follower)
        self._maybe_establish()

    def _sync_follower(self, sid, follower):
        peer = self.peer
        _epoch, last = follower.history
        if peer.has(last):
            peer.send(sid, Diff(self.epoch, peer.entries_after(last)))
        else:
            cut = peer.floor(last)
            if cut is not None and epoch_of(cut) == epoch_of(last) and last > 0:
                peer.send(sid, Trunc(self.epoch, cut))
                peer.send(sid, Diff(self.epoch, peer.entries_after(cut)))
            else:
                peer.emit(act.SendSnapshot(sid, self.epoch, peer.snap_zxid,
                                           peer.entries_after(peer.snap_zxid)))
        peer.send(sid, NewLeader(self.epoch, peer.last_zxid))
        self.sync_sent.add(sid)

    def _on_ack_new_leader(self, frm, message):
        follower = self.followers.get(frm)
        if follower is None or message.epoch != self.epoch or frm not in self.sync_sent:
            return
        follower.synced = True
        follower.acked = max(follower.acked, message.zxid)
        if self.phase == BROADCAST:
            self.peer.send(frm, UpToDate(self.epoch, self.peer.commit_zxid))
            # It may complete a quorum for proposals it got with its DIFF.
            self._advance_commit()
        else:
            self._maybe_establish()

    def _maybe_establish(self):
        peer = self.peer
        if self.phase != SYNC or peer.logged_zxid < peer.last_zxid:
            return
        synced = 1 + sum(1 for f in self.followers.values() if f.synced)
        if synced < peer.quorum:
            return
        self.phase = BROADCAST
        self.phase_start = self.ticks
        peer.commit_zxid = peer.last_zxid
        peer.advance_apply()
        for sid, follower in self.followers.items():
            if follower.synced:
                follower.heard = self.ticks
                peer.send(sid, UpToDate(self.epoch, peer.commit_zxid))
        peer.emit(act.RoleChanged(peer.role, peer.sid, self.epoch, True, "quorum synchronised"))

    # -- broadcast ----------------------------------------------------------

    def propose(self, payload):
        peer = self.peer
        self.counter += 1
        zxid = make_zxid(self.epoch, self.counter)
        payload = peer.stamp(payload, zxid, peer.now_ms)
        peer.append(((zxid, payload),))
        for sid in self.sync_sent:
            peer.send(sid, Proposal(self.epoch, zxid, payload))
        return zxid

    def _on_ack(self, frm, zxid):
        follower = self.followers.get(frm)
        if follower is None or not follower.synced:
            return
        if zxid > follower.acked:
            follower.acked = zxid
            self._advance_commit()

    def on_logged(self):
        if self.phase == SYNC:
            self._maybe_establish()
        elif self.phase == BROADCAST:
            self._advance_commit()
            # The followers may have committed this before our own write finished.
            self.peer.advance_apply()

    def _advance_commit(self):
        peer = self.peer
        acks = sorted([peer.logged_zxid] + [f.acked for f in self.followers.values() if f.synced],
                      reverse=True)
        if len(acks) < peer.quorum:
            return
        candidate = acks[peer.quorum - 1]
        if candidate > peer.commit_zxid and candidate >= self.newleader_zxid:
            peer.commit_zxid = candidate
            for sid, follower in self.followers.items():
                if follower.synced:
                    peer.send(sid, Commit(self.epoch, candidate))
            peer.advance_apply()

    def sync(self, sync_id, confirm=False):
        if confirm:
            self._confirm(self.peer.sid, sync_id)
        else:
            self.peer.emit(act.SyncDone(sync_id, self.peer.last_zxid))

    def _confirm(self, origin, sync_id):
        self.confirming.append(_Confirmation(origin, sync_id, self.peer.last_zxid,
                                             self._ping_all()))
        self._answer_confirmed()

    def _ping_all(self):
        self.ping_round += 1
        for sid in self.sync_sent:
            self.peer.send(sid, Ping(self.epoch, self.peer.commit_zxid, self.ping_round))
        return self.ping_round

    def _forget_confirmations(self, sid):
        """What sid asked before it went away: a restarted server may reuse the
        id for another sync, which an old answer must not complete."""
        if self.confirming:
            self.confirming = [c for c in self.confirming if c.origin != sid]

    def _answer_confirmed(self):
        peer = self.peer
        waiting = []
        for c in self.confirming:
            answered = 1 + sum(1 for sid in self.sync_sent
                               if self.followers[sid].round >= c.round)
            if answered < peer.quorum:
                waiting.append(c)
            elif c.origin == peer.sid:
                peer.emit(act.SyncDone(c.id, c.zxid))
            elif c.origin in self.sync_sent:
                peer.send(c.origin, SyncReply(self.epoch, c.id, c.zxid))
        self.confirming = waiting

    # -- messages and time --------------------------------------------------

    def receive(self, frm, message):
        follower = self.followers.get(frm)
        if follower is not None:
            follower.heard = self.ticks
        if isinstance(message, FollowerInfo):
            self._on_follower_info(frm, message)
        elif getattr(message, "epoch", None) != self.epoch:
            return
        elif isinstance(message, AckEpoch):
            self._on_ack_epoch(frm, message)
        elif isinstance(message, AckNewLeader):
            self._on_ack_new_leader(frm, message)
        elif isinstance(message, Ack):
            self._on_ack(frm, message.zxid)
        elif isinstance(message, PingReply):
            self._on_ack(frm, message.logged_zxid)
            if message.sessions:
                self.peer.emit(act.SessionsAlive(tuple(message.sessions)))
            if follower is not None and message.round > follower.round:
                follower.round = message.round
                if self.confirming:
                    self._answer_confirmed()
        elif isinstance(message, Request):
            if self.phase == BROADCAST and follower is not None and follower.synced:
                self.propose(message.payload)
        elif isinstance(message, SyncRequest):
            if self.phase != BROADCAST:
                return
            if message.confirm:
                self._confirm(frm, message.id)
            else:
                self.peer.send(frm, SyncReply(self.epoch, message.id, self.peer.last_zxid))

    def disconnected(self, peer_sid):
        self.followers.pop(peer_sid, None)
        self.sync_sent.discard(peer_sid)
        self._forget_confirmations(peer_sid)
        if self.epoch is None:
            self.infos.pop(peer_sid, None)

    def tick(self):
        peer = self.peer
        self.ticks += 1
        if self.phase != BROADCAST:
            if self.ticks - self.phase_start > peer.limits.init:
                self._step_down("no quorum synchronised within the init limit")
            return
        self._ping_all()
        alive = 1 + sum(1 for f in self.followers.values()
                        if f.synced and self.ticks - f.heard <= peer.limits.sync)
        if alive < peer.quorum:
            self._step_down("lost the quorum")
