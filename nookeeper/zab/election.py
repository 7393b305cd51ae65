"""Fast leader election: agree on the server with the most recent history.

Each looking server backs the best vote it has seen, ordered by (epoch of
its history, last zxid, server id), and tells everyone. Once a quorum backs
the same vote and nothing better arrives for a short wait, the vote wins.
A server that finds a working leader (others answer FOLLOWING or LEADING for
it) joins that leader instead. Votes carry a round so that votes of an
abandoned election cannot decide a new one.
"""

from nookeeper.zab.messages import LEADING, LOOKING, Vote


def _rank(vote):
    return (vote.epoch, vote.zxid, vote.leader)


class Election:
    def __init__(self, sid, members, quorum, round_, epoch, zxid, finalize_ticks):
        self.sid = sid
        self.members = members
        self.quorum = quorum
        self.round = round_
        self.finalize_ticks = finalize_ticks
        self.own = Vote(round_, sid, zxid, epoch, LOOKING)
        self.vote = self.own
        self.received = {sid: self.vote}
        self.established = {}
        self._finalize_in = None

    def _broadcast(self):
        return [(peer, self.vote) for peer in self.members if peer != self.sid]

    def start(self):
        self._check_quorum()
        return self._broadcast(), self.decision()

    def tick(self):
        """Resend our vote (votes may be lost) and see whether the wait is over."""
        if self._finalize_in is not None:
            self._finalize_in -= 1
        self._check_quorum()
        return self._broadcast(), self.decision()

    def _adopt(self, candidate):
        self.vote = Vote(self.round, candidate.leader, candidate.zxid, candidate.epoch, LOOKING)
        self.received[self.sid] = self.vote
        self._finalize_in = None

    def receive(self, frm, vote):
        """Returns (messages to send, decided leader or None)."""
        out = []
        if vote.state == LOOKING:
            if vote.round > self.round:
                self.round = vote.round
                self.received = {}
                best = vote if _rank(vote) > _rank(self.own) else self.own
                self._adopt(best)
                self.received[frm] = vote
                out = self._broadcast()
            elif vote.round == self.round:
                self.received[frm] = vote
                if _rank(vote) > _rank(self.vote):
                    self._adopt(vote)
                    out = self._broadcast()
            else:
                out = [(frm, self.vote)]
        else:
            self.established[frm] = vote
            joined = self._join_established()
            if joined is not None:
                return out, joined
        self._check_quorum()
        return out, self.decision()

    def _check_quorum(self):
        backers = sum(1 for v in self.received.values() if v.leader == self.vote.leader
                      and v.zxid == self.vote.zxid and v.epoch == self.vote.epoch)
        if backers >= self.quorum and self._finalize_in is None:
            self._finalize_in = self.finalize_ticks

    def _join_established(self):
        """A leader that is already working, backed by a quorum counting us."""
        for frm, vote in self.established.items():
            if vote.state != LEADING or vote.leader != frm:
                continue
            backers = 1 + sum(1 for v in self.established.values() if v.leader == frm)
            if backers >= self.quorum:
                return frm
        return None

    def decision(self):
        if self._finalize_in is not None and self._finalize_in <= 0:
            return self.vote.leader
        return None
