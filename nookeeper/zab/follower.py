"""The follower's side: join the leader, take its history, then log and ack.

A follower persists the new epoch before acknowledging it, and its synced
history before acknowledging NEWLEADER, and only then records the epoch as
current: a crash in between leaves it with an older epoch, never with a new
epoch over a history it does not have. It serves clients only after
UPTODATE and gives up on a leader that falls silent for the sync limit.
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
    Snap,
    SyncReply,
    SyncRequest,
    Trunc,
    UpToDate,
)
from nookeeper.zab.zxid import epoch_of, make_zxid

DISCOVERY = "discovery"
SYNC = "sync"
BROADCAST = "broadcast"


class FollowerRole:
    def __init__(self, peer, leader):
        self.peer = peer
        self.leader = leader
        self.phase = DISCOVERY
        self.epoch = None
        self.ticks = 0
        self.heard = 0
        self.newleader_zxid = None
        self.acked_newleader = False

    @property
    def serving(self):
        return self.phase == BROADCAST

    def begin(self):
        self._send_info()

    def _send_info(self):
        peer = self.peer
        peer.send(self.leader, FollowerInfo(peer.accepted_epoch, peer.last_zxid))

    def _give_up(self, why):
        self.peer.look(why)

    # -- messages -----------------------------------------------------------

    def receive(self, frm, message):
        if frm != self.leader:
            return
        if isinstance(message, LeaderInfo):
            self.heard = self.ticks
            self._on_leader_info(message)
            return
        if getattr(message, "epoch", None) != self.epoch or self.epoch is None:
            # Not a sign of life: a server we took for the leader but which
            # follows us sends FollowerInfo, and must not keep us waiting.
            return
        self.heard = self.ticks
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            handler(self, message)

    def _on_leader_info(self, message):
        peer = self.peer
        if self.phase != DISCOVERY:
            return
        if message.epoch < peer.accepted_epoch:
            self._give_up("the leader offered an epoch older than one we accepted")
            return
        if message.epoch > peer.accepted_epoch:
            peer.accepted_epoch = message.epoch
            peer.save_epochs()
        self.epoch = message.epoch
        self.phase = SYNC
        peer.send(self.leader, AckEpoch(self.epoch, peer.current_epoch, peer.last_zxid))

    def _on_diff(self, message):
        if self.phase != SYNC:
            return
        last = self.peer.last_zxid
        self.peer.append(tuple(e for e in message.entries if e[0] > last))

    def _on_trunc(self, message):
        if self.phase == SYNC:
            self.peer.truncate(message.zxid)

    def _on_snap(self, message):
        if self.phase == SYNC:
            self.peer.install(message.zxid, message.snapshot, message.entries)

    def _on_new_leader(self, message):
        if self.phase != SYNC or self.newleader_zxid is not None:
            return
        self.newleader_zxid = message.zxid
        self._maybe_ack_new_leader()

    def _maybe_ack_new_leader(self):
        peer = self.peer
        if self.acked_newleader or self.newleader_zxid is None:
            return
        if peer.logged_zxid < self.newleader_zxid or peer.logged_zxid < peer.last_zxid:
            return
        peer.current_epoch = self.epoch
        peer.save_epochs()
        self.acked_newleader = True
        peer.send(self.leader, AckNewLeader(self.epoch, peer.logged_zxid))

    def _on_up_to_date(self, message):
        peer = self.peer
        if self.phase != SYNC or not self.acked_newleader:
            return
        self.phase = BROADCAST
        peer.commit_zxid = max(peer.commit_zxid, message.commit_zxid)
        peer.advance_apply()
        peer.emit(act.RoleChanged(peer.role, self.leader, self.epoch, True, "up to date"))

    def _on_proposal(self, message):
        peer = self.peer
        last = peer.last_zxid
        if message.zxid <= last:
            return
        expected = last + 1 if epoch_of(last) == self.epoch else make_zxid(self.epoch, 1)
        if message.zxid != expected:
            self._give_up(f"proposal gap: expected {expected:#x}, got {message.zxid:#x}")
            return
        peer.append(((message.zxid, message.payload),))

    def _on_commit(self, message):
        peer = self.peer
        if message.zxid > peer.commit_zxid:
            peer.commit_zxid = message.zxid
        if self.phase == BROADCAST:
            peer.advance_apply()

    def _on_ping(self, message):
        peer = self.peer
        self._on_commit(Commit(message.epoch, message.commit_zxid))
        sessions = tuple(sorted(peer.touched))
        peer.touched.clear()
        logged = peer.logged_zxid if self.acked_newleader else 0
        peer.send(self.leader, PingReply(self.epoch, logged, sessions, message.round))

    def _on_sync_reply(self, message):
        self.peer.emit(act.SyncDone(message.id, message.zxid))

    # -- local events -------------------------------------------------------

    def on_logged(self):
        peer = self.peer
        if not self.acked_newleader:
            self._maybe_ack_new_leader()
            return
        peer.send(self.leader, Ack(self.epoch, peer.logged_zxid))
        if self.phase == BROADCAST:
            peer.advance_apply()

    def forward(self, payload):
        self.peer.send(self.leader, Request(self.epoch, payload))

    def sync(self, sync_id, confirm=False):
        self.peer.send(self.leader, SyncRequest(self.epoch, sync_id, confirm))

    def disconnected(self, peer_sid):
        if peer_sid == self.leader:
            self._give_up("lost the link to the leader")

    def tick(self):
        self.ticks += 1
        limit = self.peer.limits.sync if self.phase == BROADCAST else self.peer.limits.init
        if self.ticks - self.heard > limit:
            self._give_up("the leader fell silent")
        elif self.phase == DISCOVERY:
            # The leader may still have been deciding when our first one came.
            self._send_info()


_HANDLERS = {
    Diff: FollowerRole._on_diff,
    Trunc: FollowerRole._on_trunc,
    Snap: FollowerRole._on_snap,
    NewLeader: FollowerRole._on_new_leader,
    UpToDate: FollowerRole._on_up_to_date,
    Proposal: FollowerRole._on_proposal,
    Commit: FollowerRole._on_commit,
    Ping: FollowerRole._on_ping,
    SyncReply: FollowerRole._on_sync_reply,
}
