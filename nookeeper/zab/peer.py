"""Peer: one server's view of ZAB, driven by events, answering with actions.

It owns what ZAB must know about this server (accepted and current epoch,
the log, how much is on disk, committed and applied) and delegates to the
role of the moment. The log it holds starts after `base`: everything up to
the newest snapshot (`snap_zxid`) is in that snapshot, and only a window of
entries before it is kept so that a follower a little behind still gets a
DIFF rather than a whole snapshot. The roles are an Election while looking, then a LeaderRole or a
FollowerRole. Links between servers are assumed FIFO (TCP): a broken link
is reported with `disconnected` and nothing sent on it before is delivered
after.
"""

import bisect
from dataclasses import dataclass

from nookeeper.zab import actions as act
from nookeeper.zab.election import Election
from nookeeper.zab.follower import FollowerRole
from nookeeper.zab.leader import LeaderRole
from nookeeper.zab.messages import FOLLOWING, LEADING, LOOKING, FollowerInfo, Vote


@dataclass(frozen=True)
class Limits:
    """Timeouts in ticks, as ZooKeeper's initLimit and syncLimit."""

    init: int = 10
    sync: int = 5
    finalize: int = 1
    diff_window: int = 10000  # entries kept before the newest snapshot, for DIFFs


def _unstamped(payload, zxid, now_ms):
    return payload


class Peer:
    def __init__(self, sid, members, accepted_epoch=0, current_epoch=0, log=(), limits=Limits(),
                 snap_zxid=0, stamp=_unstamped):
        """log: the entries after the snapshot at snap_zxid, which the shell has loaded.

        stamp(payload, zxid, now_ms) -> payload: how the leader writes its
        zxid and clock into a proposal; the payload format is the shell's, so
        the shell supplies it, while the core decides when and with what."""
        self.sid = sid
        self.stamp = stamp
        self.now_ms = 0
        self.members = tuple(sorted(members))
        self.quorum = len(self.members) // 2 + 1
        self.limits = limits
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.snap_zxid = snap_zxid
        self.base = snap_zxid
        self._set_log([entry for entry in log if entry[0] > snap_zxid])
        self.logged_zxid = self.last_zxid
        self.generation = 0
        self.applied_zxid = snap_zxid
        self.commit_zxid = snap_zxid
        self.round = 0
        self.role = LOOKING
        self.leader = None
        self.state = None
        # FollowerInfo that came while we were still looking: a server that
        # decided on us first would otherwise resend it only on its next tick.
        self.early_infos = {}
        self.touched = set()
        self._out = []

    # -- facts --------------------------------------------------------------

    @property
    def entries(self):
        """The log window as (zxid, payload) pairs.

        Held as two parallel lists, not a tuple per entry: a busy leader adds
        thousands of entries a second, and every tuple would be a container
        for the cycle collector to count and scan; ints and bytes are not."""
        return list(zip(self.zxids, self.payloads))

    def _set_log(self, entries):
        self.zxids = [zxid for zxid, _ in entries]
        self.payloads = [payload for _, payload in entries]

    @property
    def last_zxid(self):
        return self.zxids[-1] if self.zxids else self.base

    def has(self, zxid):
        """Whether our history ends at zxid or holds it where we can DIFF from."""
        if zxid == self.base:
            return True
        i = bisect.bisect_left(self.zxids, zxid)
        return i < len(self.zxids) and self.zxids[i] == zxid

    def entries_after(self, zxid, upto=None):
        if zxid < self.base:
            raise ValueError(f"entries after {zxid:#x} were compacted (base {self.base:#x})")
        start = bisect.bisect_right(self.zxids, zxid)
        end = len(self.zxids) if upto is None else bisect.bisect_right(self.zxids, upto)
        return tuple(zip(self.zxids[start:end], self.payloads[start:end]))

    def floor(self, zxid):
        """The largest zxid in our history that is <= zxid and >= base, or None."""
        i = bisect.bisect_right(self.zxids, zxid)
        if i:
            return self.zxids[i - 1]
        return self.base if self.base <= zxid else None

    @property
    def serving(self):
        return self.state is not None and getattr(self.state, "serving", False)

    # -- events -------------------------------------------------------------

    def start(self):
        self.look()
        return self._take()

    def tick(self, now_ms=None):
        self._clock(now_ms)
        if self.role == LOOKING:
            sends, decided = self.state.tick()
            self._send_all(sends)
            if decided is not None:
                self._decided(decided)
        else:
            self.state.tick()
        return self._take()

    def receive(self, frm, message, now_ms=None):
        """now_ms: the shell's clock when the message arrived; a leader stamps
        a write forwarded to it with that time, as ZooKeeper's leader does."""
        if frm == self.sid or frm not in self.members or self.state is None:
            return []  # before start(): the sender says it again on its next tick
        self._clock(now_ms)
        if isinstance(message, Vote):
            self._on_vote(frm, message)
        elif self.role == LOOKING:
            if isinstance(message, FollowerInfo):
                self.early_infos[frm] = message
        else:
            if self.role == FOLLOWING and isinstance(message, FollowerInfo):
                # It took us for its leader: say whom we follow, so that it
                # looks again at once instead of waiting out the init limit.
                self.send(frm, self._established_vote(self.round))
            self.state.receive(frm, message)
        return self._take()

    def disconnected(self, peer):
        self.early_infos.pop(peer, None)
        if self.state is not None and hasattr(self.state, "disconnected"):
            self.state.disconnected(peer)
        return self._take()

    def logged(self, zxid, generation):
        if generation == self.generation and zxid > self.logged_zxid:
            self.logged_zxid = zxid
            if hasattr(self.state, "on_logged"):
                self.state.on_logged()
        return self._take()

    def propose(self, payload, now_ms=None):
        """Leader only: stamp a write with the next zxid and the clock. Returns (zxid or None, actions)."""
        self._clock(now_ms)
        if self.role != LEADING or not self.serving:
            return None, []
        zxid = self.state.propose(payload)
        return zxid, self._take()

    def forward(self, payload):
        """Follower only: hand a client write to the leader."""
        if self.role == FOLLOWING and self.serving:
            self.state.forward(payload)
        return self._take()

    def sync(self, sync_id, confirm=False):
        """Ask for SyncDone(sync_id, zxid): the leader's last proposed zxid when
        the request reached it. With confirm, only once a quorum has shown that
        leader still leads, so that applying up to zxid brings in every txn
        committed before the request (what a session's end needs). Nothing
        comes if this server stops serving first."""
        if self.serving:
            self.state.sync(sync_id, confirm)
        return self._take()

    def touch_sessions(self, session_ids):
        self.touched.update(session_ids)

    def snapshotted(self, zxid):
        """The shell has a durable snapshot at zxid (an applied zxid): keep only
        a window of the entries it covers."""
        if zxid > self.applied_zxid:
            raise ValueError(f"snapshot at {zxid:#x} is past applied {self.applied_zxid:#x}")
        self.snap_zxid = max(self.snap_zxid, zxid)
        covered = bisect.bisect_right(self.zxids, self.snap_zxid)
        drop = covered - self.limits.diff_window
        if drop > 0:
            self.base = self.zxids[drop - 1]
            del self.payloads[:drop]
            del self.zxids[:drop]
        return self._take()

    # -- helpers for the roles ----------------------------------------------

    def _clock(self, now_ms):
        if now_ms is not None:
            self.now_ms = now_ms

    def emit(self, action):
        self._out.append(action)

    def send(self, to, message):
        self._out.append(act.Send(to, message))

    def _take(self):
        out, self._out = self._out, []
        return out

    def append(self, entries):
        if not entries:
            return
        for zxid, payload in entries:
            self.payloads.append(payload)
            self.zxids.append(zxid)
        self.emit(act.Persist(tuple(entries), self.generation, self.last_zxid))

    def truncate(self, zxid):
        if zxid < self.applied_zxid:
            # Applied means committed, and ZAB never cuts a committed txn.
            raise ValueError(f"truncating to {zxid:#x} below applied {self.applied_zxid:#x}")
        i = bisect.bisect_right(self.zxids, zxid)
        del self.payloads[i:]
        del self.zxids[i:]
        self.generation += 1
        self.logged_zxid = min(self.logged_zxid, zxid)
        self.emit(act.Truncate(zxid))
        self.emit(act.Persist((), self.generation, self.last_zxid))

    def install(self, zxid, snapshot, entries):
        """The leader's snapshot and log replace ours (SNAP)."""
        self.snap_zxid = self.base = zxid
        kept = tuple(entry for entry in entries if entry[0] > zxid)
        self._set_log(kept)
        self.generation += 1
        self.logged_zxid = zxid
        self.applied_zxid = zxid
        self.commit_zxid = max(self.commit_zxid, zxid)
        self.emit(act.InstallSnapshot(zxid, snapshot, kept))
        self.emit(act.Persist((), self.generation, self.last_zxid))

    def save_epochs(self):
        self.emit(act.SaveEpochs(self.accepted_epoch, self.current_epoch))

    def advance_apply(self):
        upto = min(self.commit_zxid, self.logged_zxid)
        if upto > self.applied_zxid:
            entries = self.entries_after(self.applied_zxid, upto)
            if entries:
                self.applied_zxid = entries[-1][0]
                self.emit(act.Apply(entries))

    def vote_for_me(self):
        return Vote(self.round, self.sid, self.last_zxid, self.current_epoch, LOOKING)

    # -- role changes -------------------------------------------------------

    def look(self, reason="starting"):
        self.early_infos = {}
        self.round += 1
        self.role = LOOKING
        self.leader = None
        self.state = Election(self.sid, self.members, self.quorum, self.round,
                              self.current_epoch, self.last_zxid, self.limits.finalize)
        self.emit(act.RoleChanged(LOOKING, 0, self.current_epoch, False, reason))
        sends, decided = self.state.start()
        self._send_all(sends)
        if decided is not None:
            self._decided(decided)

    def _send_all(self, sends):
        for to, message in sends:
            self.send(to, message)

    def _decided(self, leader):
        self.round = self.state.round
        self.leader = leader
        if leader == self.sid:
            self.role = LEADING
            self.state = LeaderRole(self)
        else:
            self.role = FOLLOWING
            self.state = FollowerRole(self, leader)
        self.emit(act.RoleChanged(self.role, leader, self.current_epoch, False, "elected"))
        self.state.begin()
        early, self.early_infos = self.early_infos, {}
        if self.role == LEADING:
            for frm, info in early.items():
                self.state.receive(frm, info)

    def _on_vote(self, frm, vote):
        if self.role == LOOKING:
            sends, decided = self.state.receive(frm, vote)
            self._send_all(sends)
            if decided is not None:
                self._decided(decided)
        elif vote.state == LOOKING and self.role == FOLLOWING and frm == self.leader \
                and vote.round > self.round:
            # Our leader looks again, in a round after the one that made it
            # leader: it stepped down, and its links stay open to tell us.
            self.look("the leader is looking again")
            self._on_vote(frm, vote)
        elif vote.state == FOLLOWING and self.role == FOLLOWING and frm == self.leader:
            # The server we follow follows another: it does not lead (any
            # more). Links are FIFO, so this is newer than its leadership.
            self.look(f"server {frm} follows server {vote.leader}")
            self._on_vote(frm, vote)
        elif vote.state == LOOKING:
            # Tell a looking server who leads, so it can join.
            self.send(frm, self._established_vote(vote.round))

    def _established_vote(self, round_):
        epoch = getattr(self.state, "epoch", None) or self.current_epoch
        return Vote(round_, self.leader, self.last_zxid, epoch, self.role)

