"""A deterministic simulation of an ensemble running the pure ZAB core.

Everything a real deployment would do with threads, sockets, disks and clocks
is played out here from one seeded random.Random, as a queue of timed events:
ticks, message deliveries, disk writes, connection-loss notices, crashes and
client writes. A seed therefore replays exactly, and a failing seed is a
complete bug report.

The model is the contract the core assumes (see nookeeper/zab/peer.py and
actions.py):

* Links are FIFO per direction (TCP). A reset drops what is in flight both
  ways and each end later hears `disconnected`. What an end sends before it
  has heard that is lost, or (in half the runs) goes on the new connection;
  a message on the new connection is never delivered before the receiver
  has heard about the old one. Votes alone may also be duplicated and
  reordered (the core must take that).
* The disk is a FIFO queue: Persists are written later, several at a time
  (group commit), then reported with `logged`; Truncate, InstallSnapshot and
  SaveEpochs first wait for what is queued, then are durable at once.
  A crash loses the queue and keeps what was written.
* Servers snapshot their applied history at random and purge as the real
  one does (keep two, and the log after the older); a short DIFF window
  then makes lagging followers need a SNAP of a snapshot.
* A crash can hit between any two actions of a server, so it lands in the
  middle of DIFF/TRUNC/SNAP sync, right after NEWLEADER, and so on.
* A server can stall (SIGSTOP, a long GC pause): it neither ticks nor hears
  anything until it wakes, then takes what came meanwhile, in order. A
  leader woken within its sync limit still believes it leads while the
  others may have elected a successor.

The safety checks run as the actions happen; `settle` checks liveness and
that no acknowledged write was lost.

Sessions ride on the writes: some are createSession(S) or closeSession(S),
and a server's applied history gives the sessions it holds. Clients
reconnect at random times and ask a server whether a session lives; the
server answers as the real shell does (a confirmed sync, then its applied
state), and an "expired" answer must come only once the session's
closeSession is committed, since a client takes it as final (issue 12).

With trees=True every server also keeps a real DataTree (nookeeper/tree.py):
some client writes are real txns on containers and TTL nodes, stamped by the
leader's core as the server stamps them, and the serving leader proposes
deleteContainer txns for what tree.reapable(now) gives, every few ticks, as
the real reaper does. Snapshots carry the tree in the real snapshot format,
/zookeeper/config is set on every tree a server starts from or installs, as
the server sets it. Every member must get the same result for each txn, and
after settling every member's tree must be the one the final history builds.
"""

import heapq
import itertools
import random
from collections import Counter, deque
import dataclasses
from dataclasses import dataclass

from construct import Container

from nookeeper import snapshot as snapshot_codec
from nookeeper.tree import DataTree
from nookeeper.txn import Txn
from nookeeper.wire.ops import NAMES, OpCode
from nookeeper.wire.txn import decode_txn, encode_txn, stamp
from nookeeper.zab import actions as act
from nookeeper.zab.messages import (
    FOLLOWING,
    LEADING,
    LOOKING,
    AckNewLeader,
    Diff,
    NewLeader,
    Snap,
    Trunc,
    UpToDate,
    Vote,
)
from nookeeper.zab.peer import Limits, Peer
from nookeeper.zab.zxid import fmt

TICK = 10  # time units between two ticks of a server; message delays are a few units
SYNC_MESSAGES = (Diff, Trunc, Snap, NewLeader, AckNewLeader, UpToDate)
DURABLE_ACTIONS = (act.Truncate, act.InstallSnapshot, act.SaveEpochs)
SNAPSHOTS_KEPT = 2
CREATE = b"create"
CLOSE = b"close"
VALIDATIONS = ("confirmed", "plain", "local")
UPHEAVAL = 10 * TICK  # an answer this soon after a crash or a new leader counts as given around it
TREE = b"T"  # a tree write's payload: TREE, then the txn as the log holds it
OPEN_ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]
REAPERS = ("log", "local")


class Violation(AssertionError):
    """An invariant of ZAB did not hold."""


class Crashed(Exception):
    """Unwinds a server's action loop: it crashed between two actions."""


@dataclass
class Profile:
    """How hostile a run is; each seed draws one, so runs differ in kind, not only in luck."""

    net_delay: int = 4  # usual message delay is 1..net_delay
    slow_messages: float = 0.05  # share of messages that take up to 3 ticks
    vote_copies: float = 0.1  # share of votes delivered twice
    disk_delay: int = 8  # usual disk write delay is 1..disk_delay
    notice_delay: int = 5  # a reset is noticed after 1..notice_delay
    storminess: float = 0.02  # chance per chaos event that a storm starts
    crash_rates: tuple = (0.0, 0.001, 0.005)  # chance of a crash after each action, in storms
    aim_at_leader: float = 0.5  # share of crashes and partitions aimed at the leader
    leaky_resets: bool = False  # what is sent before a reset is noticed goes on the new connection

    @classmethod
    def draw(cls, rng):
        return cls(net_delay=rng.choice((2, 4, 4, TICK)),
                   slow_messages=rng.choice((0.0, 0.05, 0.2)),
                   vote_copies=rng.choice((0.0, 0.1, 0.3)),
                   disk_delay=rng.choice((2, 8, 8, 2 * TICK)),
                   notice_delay=rng.choice((5, 5, 2 * TICK)),
                   storminess=rng.choice((0.01, 0.02, 0.05)),
                   crash_rates=rng.choice(((0.0, 0.001, 0.005), (0.002, 0.01))),
                   aim_at_leader=rng.choice((0.2, 0.5, 0.8)),
                   leaky_resets=rng.random() < 0.5)


@dataclass
class Write:
    """A client write: where it was submitted, when, and when the client heard back."""

    sid: int
    incarnation: int
    submitted: int
    acked: int = None  # time, once the client heard back


def session_op(payload):
    """(CREATE or CLOSE, session) for a session write, None for another write:
    a payload is b"w<n>", or b"w<n> create <session>" / b"w<n> close <session>"
    (or a tree write, TREE + txn)."""
    if payload[:1] != b"w":
        return None
    parts = payload.split()
    if len(parts) == 3:
        return parts[1], int(parts[2])
    return None


def sessions_in(entries):
    """The sessions a state holds: each from its createSession to its closeSession."""
    live = set()
    for _zxid, payload in entries:
        op = session_op(payload)
        if op is not None:
            if op[0] == CREATE:
                live.add(op[1])
            else:
                live.discard(op[1])
    return live


def tree_txn(payload):
    """The Txn of a tree write, None for another write."""
    return decode_txn(payload[1:]) if payload[:1] == TREE else None


def unstamped(payload):
    """A payload as its client submitted it, before the leader stamped it."""
    return TREE + stamp(payload[1:], 0, 0) if payload[:1] == TREE else payload


def describe(payload):
    """A payload for the trace: a tree write as its type and path."""
    txn = tree_txn(payload)
    if txn is None:
        return repr(payload)
    return f"{NAMES.get(txn.type, txn.type)} {txn.request.path} (cxid {txn.cxid})"


def tree_state(tree):
    """Everything a client could read of a tree, to compare trees."""
    return {path: (node.data, node.acl, node.stat(), node.ephemeral_owner, node.child_creates)
            for path, node in ((path, tree.node(path)) for path in tree.paths())}


def membership_of(members):
    """/zookeeper/config's data for these members (pipeline.membership's format,
    made-up addresses): every server sets it on each tree it starts from."""
    return "\n".join([f"server.{sid}=10.0.0.{sid}:2888:2888:participant;10.0.0.{sid}:2181"
                      for sid in members] + ["version=0"]).encode()


class Snapshot(tuple):
    """A snapshot: the entries applied up to it (what the checks compare) and,
    with trees, the tree in the server's snapshot format (`chunks`)."""

    chunks = ()


@dataclass
class SyncAsked:
    """What a SyncDone is checked against: its zxid must cover what the server
    had applied when it asked and, confirmed, all committed by then."""

    sid: int
    incarnation: int
    applied: int
    confirm: bool
    committed: int


@dataclass
class Validation:
    """A client reconnecting with a session asks a server whether it still
    lives; the server answers once it has applied up to `zxid` (from its
    SyncDone), or drops the request."""

    id: int
    sid: int
    session: int
    asked: int  # time
    zxid: int = None
    answer: str = None  # "live" or "expired"
    dropped: str = None  # why there was no answer


class Disk:
    """What survives a crash: the epochs and the written log. `queue` holds
    Persists not yet written; a crash loses them."""

    def __init__(self):
        self.accepted = 0
        self.current = 0
        self.log = []
        self.index = {}  # zxid -> payload, for the log above
        self.queue = deque()
        # zxid -> the applied entries up to it: a snapshot is the state, and
        # the state of a replica is the history it applied.
        self.snapshots = {}

    @property
    def newest_snapshot(self):
        return max(self.snapshots, default=0)

    def purge(self):
        """Keep SNAPSHOTS_KEPT snapshots and the log after the oldest of them."""
        kept = sorted(self.snapshots)[-SNAPSHOTS_KEPT:]
        for zxid in list(self.snapshots):
            if zxid not in kept:
                del self.snapshots[zxid]
        if len(kept) == SNAPSHOTS_KEPT:
            while self.log and self.log[0][0] <= kept[0]:
                del self.index[self.log.pop(0)[0]]

    def covers(self, zxid, payload):
        """Whether this disk holds the entry, in its log or in a snapshot."""
        if self.index.get(zxid) == payload:
            return True
        newest = self.newest_snapshot
        return zxid <= newest and (zxid, payload) in self.snapshots[newest]

    def append(self, entries, where):
        for zxid, payload in entries:
            if self.log and zxid <= self.log[-1][0]:
                raise Violation(f"{where}: log zxids must increase: {fmt(zxid)} "
                                f"written after {fmt(self.log[-1][0])}")
            self.log.append((zxid, payload))
            self.index[zxid] = payload

    def install(self, zxid, snapshot, entries):
        self.snapshots = {zxid: snapshot} if zxid else {}
        self.log = list(entries)
        self.index = dict(entries)

    def truncate(self, zxid):
        while self.log and self.log[-1][0] > zxid:
            del self.index[self.log.pop()[0]]


class Server:
    """One machine: the disk outlives crashes, the Peer and the rest do not."""

    def __init__(self, sid):
        self.sid = sid
        self.disk = Disk()
        self.peer = None  # None while down
        self.incarnation = 0
        self.applied = []  # the history this server's state holds (from a snapshot, then applied)
        self.notices = deque()  # (upto, generation) written but not yet reported
        self.disk_busy = False
        self.leader = None  # from the last RoleChanged
        self.received = []  # (kind, detail) of sync steps, for the scenario tests
        self.paused = False
        self.held = []  # (fn, args) of events that came while it was paused
        self.sessions = set()  # the sessions its applied state holds
        self.validations = {}  # id -> Validation it has not answered yet
        self.tree = None  # with trees: the DataTree its applied state is

    @property
    def up(self):
        return self.peer is not None

    @property
    def serving(self):
        return self.peer is not None and self.peer.serving

    @property
    def takes_clients(self):
        """Serves and is awake: a client sending it a write hears back."""
        return self.serving and not self.paused


class Cluster:
    """n servers, a network and a disk per server, driven by one seeded RNG.

    With chaos=True a background process crashes and restarts servers, resets
    and cuts links and submits client writes; with chaos=False nothing happens
    unless a test asks for it (the scenario tests).
    """

    def __init__(self, seed, n=3, limits=Limits(), chaos=True, calm_bound=60,
                 start=True, validation="confirmed", trees=False, reaping=True, reaper="log"):
        """validation: how a server checks a reconnecting session: "confirmed"
        as the real shell does, or, to show the checks catch the old bugs,
        "plain" (an unconfirmed sync) or "local" (its applied state, no sync).
        trees: servers keep DataTrees, clients write containers and TTL nodes;
        reaping: the serving leader runs the reaper every few ticks (else only
        when a test calls reap); reaper: "log" proposes deleteContainer txns as
        the real one does, "local" (a bug, to show the checks catch it) deletes
        from the leader's own tree without a txn."""
        assert validation in VALIDATIONS, validation
        assert reaper in REAPERS, reaper
        self.seed = seed
        self.validation = validation
        self.n = n
        self.rng = random.Random(seed)
        self.profile = Profile.draw(self.rng) if chaos else Profile()
        # A short DIFF window makes lagging followers need a SNAP of a snapshot.
        self.limits = dataclasses.replace(limits, diff_window=self.rng.choice((1, 4, 30, 10000))) \
            if chaos else limits
        self.members = tuple(range(1, n + 1))
        self.quorum = n // 2 + 1
        self.servers = {sid: Server(sid) for sid in self.members}
        self.now = 0
        self._events = []
        self._seq = itertools.count()
        # network
        self.session = {}  # (a, b) with a < b -> connection number
        self.cut = set()  # pairs (a, b), a < b, that drop everything
        self.arrival = {}  # (frm, to) -> time the last message arrives, for FIFO
        self.unnoticed = {}  # (x, other) -> incarnation of x that has not heard of a reset
        # what the checks remember
        self.history = []  # the one order of committed entries every server must follow
        self.proposed = {}  # zxid -> payload, over the whole run
        self.leaders = {}  # epoch -> (sid, incarnation) that led it, serving
        self.writes = {}  # payload -> Write
        self.syncs = {}  # id -> SyncAsked
        self.created = []  # sessions whose createSession is committed, in that order
        self.closed = set()  # sessions whose closeSession is committed
        self.closing = set()  # sessions with a closeSession written, not yet committed
        self.next_session = 0
        self.last_crash = self.last_election = -UPHEAVAL - 1  # times, for the stats
        self.crash_hooks = []  # f(sid, action) -> bool: crash sid right after that action
        self.disk_delay = {}  # sid -> fixed write delay, for tests that need a slow disk
        self.trace = deque(maxlen=60)
        self.reasons = Counter()  # why roles changed, to see what a run exercised
        self.stats = dict(events=0, crashes=0, resets=0, partitions=0, pauses=0, writes=0,
                          acked=0, elections=0, truncs=0, snaps=0, snaps_of_snapshots=0,
                          snapshots=0, slowest_recovery=0, crashes_mid_actions=0,
                          # reconnects: answers, a "live" for a session closed meanwhile,
                          # answers given in hard times, and requests that got no answer
                          validations=0, answered_live=0, answered_expired=0,
                          live_after_close=0, answered_in_storms=0, answered_soon_after_crash=0,
                          answered_soon_after_election=0, dropped_not_serving=0,
                          dropped_crash=0, dropped_role_change=0, dropped_timeout=0,
                          # trees: client writes of txns, the reaper's deleteContainer
                          # proposals, and what they did when first applied
                          tree_writes=0, reap_proposals=0, reaped_containers=0, reaped_ttl=0,
                          reap_refused=0, reaps_across_leaders=0, tree_snapshots_installed=0)
        # chaos
        self.chaos = chaos
        self.calm_bound = calm_bound  # calm ticks, a quorum connected, before a leader must serve
        self.last_fault = 0
        self.leaderless_since = None
        self.storm_until = 0
        self.crash_rate = 0.0
        # Clocks drift: with chaos, a server's tick comes every TICK-1..TICK+1 units.
        self.tick_period = {sid: TICK + (self.rng.randint(-1, 1) if chaos else 0)
                            for sid in self.members}
        for sid in self.members:
            self._at(self.rng.randint(1, TICK), self._tick, sid)
        if chaos:
            self._at(1, self._chaos)
            self._at(TICK, self._monitor)
        # trees
        self.trees = trees
        self.reaper = reaper
        self.membership = membership_of(self.members)
        self.outcomes = {}  # zxid -> err of a tree txn, as the first member to apply it got it
        self.reap_every, self.reap_batch, self.never_used_ms = 5 * TICK, 1000, 0
        if trees and chaos:
            self.reap_every = self.rng.choice((2, 5, 20)) * TICK
            self.reap_batch = self.rng.choice((1, 3, 1000))  # the per-check bound
            self.never_used_ms = self.rng.choice((0, 0, 30 * TICK))
        if trees and reaping:
            self._at(self.reap_every, self._reap_tick)
        if start:
            for sid in self.members:
                self.restart(sid)

    # -- the event loop -------------------------------------------------------

    def _at(self, delay, fn, *args):
        heapq.heappush(self._events, (self.now + delay, next(self._seq), fn, args))

    def _at_server(self, delay, sid, fn, *args):
        """An event sid's process must handle: held while sid is paused."""
        self._at(delay, self._handle, sid, fn, args)

    def _handle(self, sid, fn, args):
        s = self.servers[sid]
        if s.paused:
            s.held.append((fn, args))
        else:
            fn(*args)

    def step(self):
        """Carry out the next event; False when nothing is left to do."""
        if not self._events:
            return False
        self.now, _, fn, args = heapq.heappop(self._events)
        self.stats["events"] += 1
        try:
            fn(*args)
        except Crashed:
            pass
        except Violation as e:
            raise Violation(self.report(str(e))) from None
        return True

    def run_for(self, ticks):
        end = self.now + ticks * TICK
        while self._events and self._events[0][0] <= end:
            self.step()
        self.now = max(self.now, end)

    def run_until(self, predicate, ticks):
        """Step until predicate() holds; False if it did not within `ticks` ticks."""
        end = self.now + ticks * TICK
        while not predicate():
            if not self._events or self._events[0][0] > end:
                return False
            self.step()
        return True

    def _guarded(self, fn, *args):
        """Run fn as the event loop would: a crash ends it, a violation is reported."""
        try:
            return fn(*args)
        except Crashed:
            return None
        except Violation as e:
            raise Violation(self.report(str(e))) from None

    def report(self, message):
        """The message, how to replay this run, and what happened last."""
        if "replay with:" in message:
            return message
        mode = "" if self.validation == "confirmed" else f" NK_SIM_VALIDATION={self.validation}"
        mode += " NK_SIM_TREES=1" if self.trees else ""
        lines = [f"{message}",
                 f"seed={self.seed} n={self.n} t={self.now}; replay with: "
                 f"NK_SIM_SEED={self.seed} NK_SIM_SIZE={self.n}{mode} pytest tests/sim -k replay",
                 "last events:"]
        for t, *parts in self.trace:
            text = " ".join(str(p) for p in parts)
            lines.append(f"  t={t} {text if len(text) < 300 else text[:300] + '...'}")
        return "\n".join(lines)

    def _note(self, *parts):
        """Remember an event for the failure report; formatted only if needed."""
        self.trace.append((self.now, *parts))

    # -- servers ---------------------------------------------------------------

    def restart(self, sid):
        """Start sid from what its disk holds (an empty disk for a new server)."""
        self._guarded(self._start, sid)

    def _start(self, sid):
        s = self.servers[sid]
        assert not s.up
        d = s.disk
        snap = d.newest_snapshot
        s.peer = Peer(sid, self.members, d.accepted, d.current, list(d.log), self.limits,
                      snap_zxid=snap, stamp=self._stamp)
        s.applied = list(d.snapshots[snap]) if snap else []
        s.tree = self._tree_from(d.snapshots[snap] if snap else None)
        s.sessions = sessions_in(s.applied)
        s.leader = None
        self._note(f"s{sid} starts: epochs {d.accepted}/{d.current}, "
                   f"last {fmt(d.log[-1][0]) if d.log else '0:0'}")
        self.last_fault = self.now
        self.run(sid, s.peer.start())

    def crash(self, sid):
        """sid loses its memory and its unwritten Persists; all its links reset."""
        s = self.servers[sid]
        if not s.up:
            return
        self._note(f"s{sid} CRASHES")
        self.stats["crashes"] += 1
        self.last_crash = self.now
        s.peer = None
        s.incarnation += 1
        s.disk.queue.clear()
        s.notices.clear()
        s.disk_busy = False
        s.applied = []
        s.tree = None
        s.sessions = set()
        s.paused = False
        s.held = []  # all for this incarnation, which is gone
        self._drop_validations(s, "crash")
        for other in self.members:
            if other != sid:
                self.unnoticed.pop((sid, other), None)
                self._reset(sid, other)
        self.last_fault = self.now

    def run(self, sid, actions):
        """Carry out a server's actions in order, as its shell would."""
        s = self.servers[sid]
        for action in actions:
            self._do(s, action)
            if self._crash_now(sid, action):
                self.stats["crashes_mid_actions"] += 1
                self.crash(sid)
                raise Crashed()

    def _crash_now(self, sid, action):
        for hook in self.crash_hooks:
            if hook(sid, action):
                return True
        if not self.crash_rate or self.now >= self.storm_until:
            return False
        rate = self.crash_rate
        if isinstance(action, DURABLE_ACTIONS) or (
                isinstance(action, act.Send) and isinstance(action.message, SYNC_MESSAGES)):
            rate *= 20
        return self.rng.random() < rate

    def _do(self, s, a):
        sid = s.sid
        if isinstance(a, act.Send):
            self._send(sid, a.to, a.message)
        elif isinstance(a, act.Persist):
            s.disk.queue.append(a)
            if not s.disk_busy:
                s.disk_busy = True
                self._at_server(self._disk_delay(sid), sid, self._disk_write, sid, s.incarnation)
        elif isinstance(a, act.Truncate):
            self._flush(s)
            what = f"Truncate({fmt(a.zxid)})"
            self._check_removal(s, [e for e in s.disk.log if e[0] > a.zxid], what)
            if s.applied and s.applied[-1][0] > a.zxid:
                raise Violation(f"s{sid}: {what} below applied {fmt(s.applied[-1][0])}")
            s.disk.truncate(a.zxid)
            s.received.append(("Truncate", a.zxid))
            self.stats["truncs"] += 1
            self._note(f"s{sid} truncates after {fmt(a.zxid)}")
        elif isinstance(a, act.InstallSnapshot):
            self._flush(s)
            snapshot = tuple(a.snapshot)
            if list(snapshot) != self.history[:len(snapshot)]:
                raise Violation(f"s{sid}: installs a snapshot at {fmt(a.zxid)} that is not "
                                f"a prefix of the history")
            kept = set(a.entries) | set(snapshot)
            self._check_removal(s, [e for e in s.disk.log if e not in kept], "InstallSnapshot")
            s.disk.install(a.zxid, a.snapshot, a.entries)
            s.applied = list(snapshot)
            s.tree = self._tree_from(a.snapshot if a.zxid else None)
            self.stats["tree_snapshots_installed"] += bool(a.zxid and self.trees)
            s.sessions = sessions_in(snapshot)
            s.received.append(("InstallSnapshot", (a.zxid, len(a.entries))))
            self.stats["snaps"] += 1
            self.stats["snaps_of_snapshots"] += bool(a.zxid)
            self._note(f"s{sid} installs a snapshot at {fmt(a.zxid)} "
                       f"and {len(a.entries)} entries")
        elif isinstance(a, act.SendSnapshot):
            snapshot = s.disk.snapshots.get(a.zxid, ()) if a.zxid else ()
            if a.zxid and a.zxid not in s.disk.snapshots:
                raise Violation(f"s{sid}: asked to send a snapshot at {fmt(a.zxid)} it lacks")
            self._send(sid, a.to, Snap(a.epoch, a.zxid, snapshot, a.entries))
        elif isinstance(a, act.SaveEpochs):
            self._flush(s)
            d = s.disk
            if a.accepted_epoch < d.accepted or a.current_epoch < d.current \
                    or a.current_epoch > a.accepted_epoch:
                raise Violation(f"s{sid}: epochs {d.accepted}/{d.current} -> "
                                f"{a.accepted_epoch}/{a.current_epoch}")
            d.accepted, d.current = a.accepted_epoch, a.current_epoch
        elif isinstance(a, act.Apply):
            self._apply(s, a.entries)
        elif isinstance(a, act.RoleChanged):
            self._role_changed(s, a)
        elif isinstance(a, act.SyncDone):
            asked = self.syncs.pop(a.id, None)
            if asked is None or (asked.sid, asked.incarnation) != (sid, s.incarnation):
                raise Violation(f"s{sid}: SyncDone for a sync it was not asked: {a}")
            if a.zxid < asked.applied:
                raise Violation(f"s{sid}: sync answered {fmt(a.zxid)}, below {fmt(asked.applied)} "
                                f"already applied when it was asked")
            if asked.confirm and a.zxid < asked.committed:
                raise Violation(f"s{sid}: confirmed sync answered {fmt(a.zxid)}, below "
                                f"{fmt(asked.committed)} committed before it was asked")
            v = s.validations.get(a.id)
            if v is not None:
                v.zxid = a.zxid
                self._answer_validations(s)
        elif isinstance(a, act.SessionsAlive):
            pass
        else:
            raise Violation(f"s{sid}: unknown action {a!r}")

    # -- invariants checked as actions happen ------------------------------------

    def _apply(self, s, entries):
        """Invariant 2: every server applies a prefix of one history. The first
        time an entry is applied anywhere it must be on a quorum of disks (3)."""
        for zxid, payload in entries:
            i = len(s.applied)
            entry = (zxid, payload)
            first = i == len(self.history)
            if not s.disk.covers(zxid, payload):
                raise Violation(f"s{s.sid} applies {fmt(zxid)} that is not on its own disk")
            if i < len(self.history):
                if self.history[i] != entry:
                    raise Violation(f"s{s.sid} applies {fmt(zxid)}={payload!r} as entry #{i}, "
                                    f"history has {fmt(self.history[i][0])}={self.history[i][1]!r}")
            elif i == len(self.history):
                self.history.append(entry)
                self._check_on_quorum(entry)
                self._committed(payload)
            else:
                raise Violation(f"s{s.sid} applies entry #{i} but history has {len(self.history)}")
            s.applied.append(entry)
            if self.trees:
                self._apply_to_tree(s, zxid, payload, first)
            op = session_op(payload)
            if op is not None:
                if op[0] == CREATE:
                    s.sessions.add(op[1])
                else:
                    s.sessions.discard(op[1])
            w = self.writes.get(unstamped(payload))
            if w and w.acked is None and (w.sid, w.incarnation) == (s.sid, s.incarnation):
                w.acked = self.now  # its server applied it: the client hears back
                self.stats["acked"] += 1
        if s.validations:
            self._answer_validations(s)

    def _apply_to_tree(self, s, zxid, payload, first):
        """Apply a tree write to s's tree: every member must get the result the
        first one got. The first application counts what the reaper did."""
        txn = tree_txn(payload)
        if txn is None:
            return
        picked = s.tree.node(txn.request.path) if txn.type == OpCode.DELETE_CONTAINER else None
        kind = "containers" if picked is not None and picked.is_container else "ttl"
        outcome = s.tree.apply(txn)
        seen = self.outcomes.setdefault(zxid, outcome.err)
        if seen != outcome.err:
            raise Violation(f"s{s.sid} applies {fmt(zxid)} (type {txn.type}) with result "
                            f"{outcome.err}, another member got {seen}")
        if first and txn.type == OpCode.DELETE_CONTAINER:
            self.stats["reaped_" + kind if outcome.err == 0 else "reap_refused"] += 1
            # proposed by a leader, first applied once a newer one took over
            self.stats["reaps_across_leaders"] += zxid >> 32 < s.peer.accepted_epoch

    def _tree_from(self, snap):
        """The tree a server starts from: its snapshot's (the empty tree
        without one), with /zookeeper/config from its own config, as
        pipeline.py and commit.py set it."""
        if not self.trees:
            return None
        tree = snapshot_codec.decode(snap.chunks) if snap else DataTree()
        tree.set_config(self.membership)
        return tree

    def check_trees(self):
        """Every member's tree is the one the final history builds from the
        empty tree: they agree, and no snapshot, restore or SNAP lost anything."""
        if not self.trees:
            return
        reference = DataTree()
        reference.set_config(self.membership)
        for _zxid, payload in self.servers[self.serving_leader()].applied:
            txn = tree_txn(payload)
            if txn is not None:
                reference.apply(txn)
        expected = tree_state(reference)
        for sid, s in self.servers.items():
            got = tree_state(s.tree)
            if got != expected:
                paths = sorted(set(got) | set(expected))
                differ = [path for path in paths if got.get(path) != expected.get(path)]
                raise Violation(f"trees differ: s{sid}'s differs from the history's "
                                f"at {differ[:5]}")

    def _committed(self, payload):
        """The ensemble's session table, from the committed history."""
        op = session_op(payload)
        if op is None:
            return
        kind, session = op
        if kind == CREATE:
            self.created.append(session)
        else:
            self.closed.add(session)
            self.closing.discard(session)

    def _check_on_quorum(self, entry):
        zxid, payload = entry
        on = [sid for sid, s in self.servers.items() if s.disk.covers(zxid, payload)]
        if len(on) < self.quorum:
            raise Violation(f"committed {fmt(zxid)}={payload!r} is on the disks of {on} only")

    def _check_removal(self, s, removed, what):
        """Invariant 5: a committed entry is never cut from any log."""
        committed = set(self.history)
        for entry in removed:
            if entry in committed:
                raise Violation(f"s{s.sid}: {what} removes committed {fmt(entry[0])}={entry[1]!r}")

    def _role_changed(self, s, a):
        """Invariant 1: one established leader per epoch."""
        s.leader = a.leader if a.role != LOOKING else None
        self.reasons[a.reason] += 1
        self._note(f"s{s.sid} role {('LOOKING', 'FOLLOWING', 'LEADING')[a.role]} "
                   f"leader={a.leader} epoch={a.epoch} serving={a.serving} ({a.reason})")
        if not a.serving and s.validations:
            # As the shell does: the role that would have answered them is gone.
            self._drop_validations(s, "role_change")
        if a.role == LEADING and a.serving:
            self.stats["elections"] += 1
            self.last_election = self.now
            who = self.leaders.setdefault(a.epoch, (s.sid, s.incarnation))
            if who != (s.sid, s.incarnation):
                raise Violation(f"two leaders for epoch {a.epoch}: s{who[0]} and s{s.sid}")

    def _proposed(self, zxid, payload):
        """One payload per zxid, ever (a consequence of one leader per epoch)."""
        if self.proposed.setdefault(zxid, payload) != payload:
            raise Violation(f"zxid {fmt(zxid)} proposed twice: "
                            f"{self.proposed[zxid]!r} and {payload!r}")

    def check_all(self):
        """The expensive checks: every committed entry is on a quorum of disks
        (invariant 3) and every up server's log is its disk plus its queue."""
        for entry in self.history:
            self._check_on_quorum(entry)
        for s in self.servers.values():
            if not s.up:
                continue
            log = list(s.disk.log)
            for p in s.disk.queue:
                log.extend(p.entries)
            # Memory holds a window before the newest snapshot, disk what purging kept.
            cut = max(s.peer.base, log[0][0] - 1 if log else s.peer.base)
            if [e for e in log if e[0] > cut] != [e for e in s.peer.entries if e[0] > cut]:
                raise Violation(f"s{s.sid}: in-memory log differs from disk + queue")
            if any(a >= b for a, b in zip(s.peer.zxids, s.peer.zxids[1:])):
                raise Violation(f"s{s.sid}: log zxids do not increase")

    # -- the network -------------------------------------------------------------

    @staticmethod
    def _pair(a, b):
        return (a, b) if a < b else (b, a)

    def _send(self, frm, to, message):
        pair = self._pair(frm, to)
        if pair in self.cut or not self.servers[to].up:
            return
        if (frm, to) in self.unnoticed and not self.profile.leaky_resets:
            return  # frm writes into the connection that broke
        session = self.session.get(pair, 0)
        if isinstance(message, Vote):
            # Votes may be reordered and duplicated: no FIFO for them.
            copies = 2 if self.rng.random() < self.profile.vote_copies else 1
            for _ in range(copies):
                self._at_server(self._net_delay(), to, self._deliver, frm, to, message, session)
            return
        when = max(self.now + self._net_delay(), self.arrival.get((frm, to), 0))
        self.arrival[(frm, to)] = when
        self._at_server(when - self.now, to, self._deliver, frm, to, message, session)

    def _deliver(self, frm, to, message, session):
        s = self.servers[to]
        if session != self.session.get(self._pair(frm, to), 0) or not s.up:
            return
        if (to, frm) in self.unnoticed:
            # A new connection from frm: to's shell drops the old one first.
            self._notice(to, frm, s.incarnation)
        self._note(f"s{frm}->s{to}", message)
        if isinstance(message, SYNC_MESSAGES[:3]):
            s.received.append((type(message).__name__, message))
        self.run(to, s.peer.receive(frm, message, self.now))

    def _reset(self, a, b):
        """Drop what is in flight between a and b; each end hears of it later."""
        pair = self._pair(a, b)
        self.session[pair] = self.session.get(pair, 0) + 1
        for x, y in ((a, b), (b, a)):
            s = self.servers[x]
            if s.up:
                self.unnoticed[(x, y)] = s.incarnation
                self._at_server(self.rng.randint(1, self.profile.notice_delay), x, self._notice,
                                x, y, s.incarnation)

    def _notice(self, x, y, incarnation):
        s = self.servers[x]
        if self.unnoticed.get((x, y)) != incarnation or s.incarnation != incarnation:
            return
        del self.unnoticed[(x, y)]
        self._note(f"s{x} hears its link to s{y} broke")
        self.run(x, s.peer.disconnected(y))

    def reset_link(self, a, b):
        self._note(f"link s{a}-s{b} resets")
        self.stats["resets"] += 1
        self.last_fault = self.now
        self._reset(a, b)

    def pause(self, sid, ticks):
        """sid stalls for `ticks` ticks; its links stay up."""
        s = self.servers[sid]
        if not s.up or s.paused:
            return
        self._note(f"s{sid} PAUSES for {ticks} ticks")
        self.stats["pauses"] += 1
        s.paused = True
        self.last_fault = self.now
        self._at(ticks * TICK, self.wake, sid, s.incarnation)

    def wake(self, sid, incarnation=None):
        s = self.servers[sid]
        if not s.paused or incarnation not in (None, s.incarnation):
            return
        self._note(f"s{sid} wakes, {len(s.held)} events held")
        s.paused = False
        self.last_fault = self.now
        held, s.held = s.held, []
        for fn, args in held:
            self._guarded(fn, *args)

    def partition(self, *groups):
        """Cut every link between different groups until heal()."""
        side = {sid: i for i, g in enumerate(groups) for sid in g}
        self._note(f"partition {groups}")
        self.stats["partitions"] += 1
        for a, b in itertools.combinations(self.members, 2):
            if side.get(a, -1) != side.get(b, -2):
                self.cut_link(a, b)

    def cut_link(self, a, b):
        pair = self._pair(a, b)
        if pair not in self.cut:
            self.cut.add(pair)
            self._reset(a, b)
        self.last_fault = self.now

    def heal(self):
        if self.cut:
            self._note("heal")
            self.cut.clear()
            self.last_fault = self.now

    def _net_delay(self):
        if self.rng.random() < self.profile.slow_messages:
            return self.rng.randint(1, 3 * TICK)
        return self.rng.randint(1, self.profile.net_delay)

    # -- the disks -----------------------------------------------------------------

    def _disk_delay(self, sid):
        if sid in self.disk_delay:
            return self.disk_delay[sid]
        if self.rng.random() < 0.05:
            return self.rng.randint(1, 4 * TICK)
        return self.rng.randint(1, self.profile.disk_delay)

    def _write(self, s, persist):
        s.disk.append(persist.entries, f"s{s.sid}")
        s.notices.append((persist.upto, persist.generation))

    def _disk_write(self, sid, incarnation):
        """Group commit: write some of the queued Persists, then report them."""
        s = self.servers[sid]
        if s.incarnation != incarnation:
            return
        s.disk_busy = False
        if s.disk.queue:
            for _ in range(self.rng.randint(1, len(s.disk.queue))):
                self._write(s, s.disk.queue.popleft())
        if s.disk.queue:
            s.disk_busy = True
            self._at_server(self._disk_delay(sid), sid, self._disk_write, sid, incarnation)
        self._report_logged(sid, incarnation)

    def _flush(self, s):
        """A synchronous operation waits for every queued write before it."""
        while s.disk.queue:
            self._write(s, s.disk.queue.popleft())
        if s.notices:
            self._at_server(self.rng.randint(0, 2), s.sid, self._report_logged, s.sid,
                            s.incarnation)

    def _report_logged(self, sid, incarnation):
        s = self.servers[sid]
        while s.notices and s.incarnation == incarnation:
            upto, generation = s.notices.popleft()
            self.run(sid, s.peer.logged(upto, generation))

    # -- clients -------------------------------------------------------------------

    def write(self, sid, op=b""):
        """A client submits a write to sid, if sid serves; returns its payload.
        op makes it a session write: b"create 7" or b"close 7"."""
        s = self.servers[sid]
        if not s.serving:
            return None
        self.stats["writes"] += 1
        payload = b"w%d %s" % (self.stats["writes"], op) if op else b"w%d" % self.stats["writes"]
        return self._submit(sid, payload)

    def tree_write(self, sid, txn_type, **request):
        """A client sends sid a write of the tree (a Txn of this type with this
        request record), if sid serves; returns its payload."""
        s = self.servers[sid]
        if not s.serving:
            return None
        self.stats["writes"] += 1
        self.stats["tree_writes"] += 1
        txn = Txn(0, 0, 0, self.stats["writes"], txn_type, (), Container(**request))
        return self._submit(sid, TREE + encode_txn(txn))

    def create(self, sid, path, flags=0, ttl=None, container=False):
        op = OpCode.CREATE_CONTAINER if container else OpCode.CREATE if ttl is None \
            else OpCode.CREATE_TTL
        extra = {} if ttl is None else {"ttl": ttl}
        return self.tree_write(sid, op, path=path, data=b"", acl=OPEN_ACL,
                               flags=4 if container else flags, **extra)

    def delete(self, sid, path):
        return self.tree_write(sid, OpCode.DELETE, path=path, version=-1)

    def set_data(self, sid, path, data=b"x"):
        return self.tree_write(sid, OpCode.SET_DATA, path=path, data=data, version=-1)

    def _submit(self, sid, payload):
        s = self.servers[sid]
        self.writes[payload] = Write(sid, s.incarnation, self.now)
        self._note(f"client writes {describe(payload)} at s{sid}")
        if s.peer.role == LEADING:
            self._guarded(self._propose, sid, payload)
        else:
            self._guarded(lambda: self.run(sid, s.peer.forward(payload)))
        return payload

    def _propose(self, sid, payload):
        _zxid, actions = self.servers[sid].peer.propose(payload, self.now)
        self.run(sid, actions)

    def _stamp(self, payload, zxid, now_ms):
        """Every proposal, the leader's own and forwarded ones, passes here; a
        tree write gets the zxid and the clock as the server's stamp gives them."""
        if payload[:1] == TREE:
            payload = TREE + stamp(payload[1:], zxid, now_ms)
        self._proposed(zxid, payload)
        return payload

    def _reap_tick(self):
        self._at(self.reap_every, self._reap_tick)
        for sid in self.members:
            self.reap(sid)

    def reap(self, sid, due=None):
        """The reaper's check on sid (ContainerReaper.check): on the serving
        leader, a deleteContainer for each node reapable now (or in `due`, as
        picked earlier), up to the per-check bound. Returns the paths."""
        s = self.servers[sid]
        if not (s.takes_clients and s.peer.role == LEADING):
            return []
        if due is None:
            due = s.tree.reapable(self.now, self.never_used_ms)
        due = due[:self.reap_batch]
        for path in due:
            txn = Txn(0, 0, 0, 0, OpCode.DELETE_CONTAINER, (), Container(path=path))
            if self.reaper == "local":
                s.tree.apply(txn._replace(time=self.now))
                continue
            self.stats["reap_proposals"] += 1
            self._note(f"s{sid} reaper proposes deleteContainer {path}")
            self._guarded(self._propose, sid, TREE + encode_txn(txn))
        return due

    def sync(self, sid, confirm=True):
        """A client's sync; confirmed, as the shell asks for one (ServerNode.submit_sync)."""
        s = self.servers[sid]
        if not s.serving:
            return
        sync_id = next(self._seq)
        self._ask_sync(s, sync_id, confirm)
        self._guarded(lambda: self.run(sid, s.peer.sync(sync_id, confirm)))

    def _ask_sync(self, s, sync_id, confirm):
        self.syncs[sync_id] = SyncAsked(s.sid, s.incarnation, s.applied[-1][0] if s.applied else 0,
                                        confirm, self.history[-1][0] if self.history else 0)

    def create_session(self, sid):
        """A client opens a new session at sid; returns the session, or None
        if sid does not serve."""
        session = self.next_session + 1
        if self.write(sid, b"%s %d" % (CREATE, session)) is None:
            return None
        self.next_session = session
        return session

    def close_session(self, sid, session):
        """The session ends (its client closes it, or the leader expires it)."""
        if self.write(sid, b"%s %d" % (CLOSE, session)) is None:
            return None
        if session not in self.closed:
            self.closing.add(session)
        return session

    def validate(self, sid, session, timeout=None):
        """A client reconnects to sid with a session whose createSession is
        committed. sid answers as the real shell does (ServerNode._resume_session):
        a sync (confirmed by a quorum, unless self.validation says otherwise),
        then its applied state once it has applied up to the sync's zxid; a
        crash, a role change or the client's timeout (in ticks) drops the
        request. A paused sid takes the request when it wakes, as a stopped
        process finds the connection in its backlog. Returns the Validation."""
        s = self.servers[sid]
        v = Validation(next(self._seq), sid, session, self.now)
        self.stats["validations"] += 1
        self._note(f"client validates session {session} at s{sid} (request {v.id})")
        if timeout is None:
            timeout = self.rng.randint(1, 3 * self.limits.sync)
        self._at(timeout * TICK, self._validation_timeout, v)
        self._guarded(self._handle, sid, self._take_validation, (v, s.incarnation))
        return v

    def _take_validation(self, v, incarnation):
        s = self.servers[v.sid]
        if v.dropped or s.incarnation != incarnation:
            return  # the client gave up, or the process it connected to is gone
        if not s.serving:
            v.dropped = "not_serving"  # it takes no clients
            self.stats["dropped_not_serving"] += 1
            return
        if self.validation == "local":
            self._answer(s, v)
            return
        s.validations[v.id] = v
        confirm = self.validation == "confirmed"
        self._ask_sync(s, v.id, confirm)
        self.run(s.sid, s.peer.sync(v.id, confirm))

    def _answer_validations(self, s):
        """Answer those whose sync came back and whose zxid s has applied."""
        applied = s.applied[-1][0] if s.applied else 0
        for v in [v for v in s.validations.values() if v.zxid is not None and v.zxid <= applied]:
            del s.validations[v.id]
            self._answer(s, v)

    def _answer(self, s, v):
        """The check of issue 12: only the leader ends a session, so "expired"
        is said only once the ensemble committed its closeSession. "live" for
        a session closed meanwhile is allowed (ZooKeeper allows it too)."""
        live = v.session in s.sessions
        v.answer = "live" if live else "expired"
        self._note(f"s{s.sid} answers request {v.id}: session {v.session} is {v.answer}")
        self.stats["answered_" + v.answer] += 1
        self.stats["answered_in_storms"] += self.now < self.storm_until
        self.stats["answered_soon_after_crash"] += self.now - self.last_crash <= UPHEAVAL
        self.stats["answered_soon_after_election"] += self.now - self.last_election <= UPHEAVAL
        if live:
            self.stats["live_after_close"] += v.session in self.closed
        elif v.session not in self.closed:
            applied = s.applied[-1][0] if s.applied else 0
            synced = "" if v.zxid is None else f", synced to {fmt(v.zxid)}"
            raise Violation(f"s{s.sid} told a client that session {v.session} expired, but its "
                            f"closeSession is not committed ({self.validation} validation asked "
                            f"at t={v.asked}{synced}; s{s.sid} applied up to {fmt(applied)})")

    def _drop_validations(self, s, why):
        for v in s.validations.values():
            v.dropped = why
            self.stats["dropped_" + why] += 1
        s.validations.clear()

    def _validation_timeout(self, v):
        """The client gives up and tries elsewhere: an answer after this is not heard."""
        if v.answer is None and v.dropped is None:
            v.dropped = "timeout"
            self.stats["dropped_timeout"] += 1
            self.servers[v.sid].validations.pop(v.id, None)
            self._note(f"request {v.id} at s{v.sid} times out")

    def _session_to_validate(self):
        """A committed session the client knows of: live, closed, or with its
        close in flight, most often a recent one (where servers disagree)."""
        live, closing, closed = [], [], []
        for session in self.created:
            kind = closed if session in self.closed else closing if session in self.closing \
                else live
            kind.append(session)
        kinds = [kind for kind in (live, closing, closed) if kind]
        if not kinds:
            return None
        kind = self.rng.choice(kinds)
        return self.rng.choice(kind[-3:] if self.rng.random() < 0.5 else kind)

    def _client_write(self, sid):
        """Mostly plain writes; some open a session, some close one (or close
        it again, if the first close was lost) and then often reconnect with
        it at once, while its close is in flight."""
        r = self.rng.random()
        if r < 0.1:
            self.create_session(sid)
            return
        open_sessions = [x for x in self.created if x not in self.closed]
        if r < 0.18 and open_sessions:
            session = self.close_session(sid, self.rng.choice(open_sessions))
            taking = [x for x in self.members if self.servers[x].takes_clients]
            if session is not None and taking and self.rng.random() < 0.5:
                self.validate(self.rng.choice(taking), session)
            return
        if self.trees and self.rng.random() < 0.7:
            self._tree_client_write(sid)
            return
        self.write(sid)

    def _tree_client_write(self, sid):
        """Containers /c<k> that get children and lose them, TTL nodes /t<k>
        that are touched, get a child and lose it: a few names, so creates
        collide, deletes miss and the reaper keeps finding work."""
        rng = self.rng
        k, j = rng.randint(0, 2), rng.randint(0, 1)
        r = rng.random()
        if r < 0.15:
            self.create(sid, f"/c{k}", container=True)
        elif r < 0.35:
            self.create(sid, f"/c{k}/x{j}")
        elif r < 0.55:
            self.delete(sid, f"/c{k}/x{j}")
        elif r < 0.7:
            ttl = rng.randint(1, 30) * TICK
            if rng.random() < 0.2:  # persistent-sequential with a TTL, inside a container
                self.create(sid, f"/c{k}/s-", flags=6, ttl=ttl)
            else:
                self.create(sid, f"/t{k}", flags=5, ttl=ttl)
        elif r < 0.8:
            self.set_data(sid, f"/t{k}")
        elif r < 0.9:
            self.create(sid, f"/t{k}/y")
        else:
            self.delete(sid, f"/t{k}/y")

    # -- time, chaos and liveness ------------------------------------------------------

    def _tick(self, sid):
        self._at(self.tick_period[sid], self._tick, sid)
        s = self.servers[sid]
        if s.up and not s.paused:  # a stalled process does not catch up on ticks
            self.run(sid, s.peer.tick(self.now))

    def _chaos(self):
        """Alternate storms (faults of every kind) with calm spells (writes only)."""
        if not self.chaos:
            return
        rng = self.rng
        self._at(rng.randint(1, 2 * TICK), self._chaos)
        if self.now >= self.storm_until and rng.random() < self.profile.storminess:
            self.storm_until = self.now + rng.randint(5, 40) * TICK
            self.crash_rate = rng.choice(self.profile.crash_rates)
        up = [sid for sid in self.members if self.servers[sid].up]
        down = [sid for sid in self.members if not self.servers[sid].up]
        awake = [sid for sid in up if not self.servers[sid].paused]
        r = rng.random()
        if r < 0.5 or self.now >= self.storm_until:
            if r < 0.05 and awake:
                self.sync(rng.choice(awake))
            elif r < 0.1 and awake:
                sid = rng.choice(awake)
                self.servers[sid].peer.touch_sessions((sid * 100 + rng.randint(0, 3),))
            elif r < 0.14 and awake:
                self.snapshot(rng.choice(awake))
            elif r < 0.25 and self.created:
                # A stalled server's port still accepts: clients may queue on it.
                serving = [sid for sid in up if self.servers[sid].serving]
                if serving:
                    self.validate(rng.choice(serving), self._session_to_validate())
            else:
                for _ in range(rng.choice((1, 1, 1, 2, 5))):
                    taking = [sid for sid in up if self.servers[sid].takes_clients]
                    if taking:
                        self._client_write(rng.choice(taking))
        elif r < 0.62 and down:
            self.restart(rng.choice(down))
        elif r < 0.72 and up:
            self.crash(self._victim(up))
        elif r < 0.76 and awake:
            # Mostly the leader: woken, it may still believe it leads.
            leader = self.serving_leader()
            victim = leader if leader in awake and rng.random() < 0.75 else self._victim(awake)
            self.pause(victim, rng.randint(1, 4 * self.limits.sync))
        elif r < 0.85:
            self.reset_link(*rng.sample(self.members, 2))
        elif r < 0.92:
            if self.cut:
                self.heal()
            else:
                members = list(self.members)
                rng.shuffle(members)
                k = rng.randint(1, self.n - 1)
                leader = self._victim(self.members)
                members.remove(leader)
                members.insert(0, leader)  # often cut the leader off, with or without a quorum
                self.partition(members[:k], members[k:])
        else:
            self.cut_link(*rng.sample(self.members, 2))

    def snapshot(self, sid):
        """sid writes its applied state as a snapshot, purges, and tells its core."""
        s = self.servers[sid]
        if not s.up or not s.applied:
            return
        zxid = s.applied[-1][0]
        snap = Snapshot(s.applied)
        if self.trees:
            snap.chunks = tuple(snapshot_codec.encode(s.tree))
        s.disk.snapshots[zxid] = snap
        s.disk.purge()
        self.stats["snapshots"] += 1
        self._note(f"s{sid} snapshots at {fmt(zxid)}")
        self._guarded(self.run, sid, s.peer.snapshotted(zxid))

    def _victim(self, candidates):
        leaders = [sid for sid in candidates
                   if self.servers[sid].up and self.servers[sid].peer.role == LEADING]
        if leaders and self.rng.random() < self.profile.aim_at_leader:
            return self.rng.choice(leaders)
        return self.rng.choice(candidates)

    def connected_quorum(self):
        """A quorum of up servers that all talk to each other and to no other
        up server, or None. Liveness is only promised then: with a server that
        sees part of the quorum only (one cut link), elections can keep
        failing, as in ZooKeeper."""
        up = [sid for sid in self.members if self.servers[sid].up]
        linked = {a: {b for b in up if b != a and self._pair(a, b) not in self.cut} for a in up}
        for sid in up:
            group = linked[sid] | {sid}
            if len(group) >= self.quorum and all(linked[x] | {x} == group for x in group):
                return tuple(sorted(group))
        return None

    def serving_leader(self):
        """The leader that serves with a quorum of serving followers, or None."""
        for sid, s in self.servers.items():
            if s.serving and s.peer.role == LEADING:
                followers = [f for f, x in self.servers.items()
                             if x.serving and x.peer.role == FOLLOWING and x.leader == sid]
                if 1 + len(followers) >= self.quorum:
                    return sid
        return None

    def _monitor(self):
        """Invariant 6: with a quorum up and connected, once faults stop a
        leader serves with a quorum behind it within calm_bound ticks."""
        self._at(TICK, self._monitor)
        if self.now // TICK % 50 == 0:
            self.check_all()  # a backstop: removals and first applies are checked as they happen
        if self.serving_leader() is not None:
            if self.leaderless_since is not None and self.connected_quorum():
                waited = (self.now - max(self.leaderless_since, self.last_fault)) // TICK
                self.stats["slowest_recovery"] = max(self.stats["slowest_recovery"], waited)
            self.leaderless_since = None
            return
        if self.leaderless_since is None:
            self.leaderless_since = self.now
        if self.now < self.storm_until:
            return
        waited = (self.now - max(self.leaderless_since, self.last_fault)) // TICK
        if waited >= self.calm_bound and self.connected_quorum():
            raise Violation(f"no serving leader after {waited} calm ticks with "
                            f"{self.connected_quorum()} up and connected")

    def converged(self):
        """All servers up and serving one leader, every log fully applied everywhere."""
        leader = self.serving_leader()
        if leader is None:
            return False
        last = self.servers[leader].peer.last_zxid
        applied = self.servers[leader].applied
        cut = max(s.peer.base for s in self.servers.values() if s.up)
        tails = set()
        for s in self.servers.values():
            if not s.serving or (s.sid != leader and s.leader != leader):
                return False
            if s.applied != applied or s.peer.last_zxid != last or \
                    (applied[-1][0] if applied else 0) != last:
                return False
            tails.add(tuple(e for e in s.peer.entries if e[0] > cut))
        return len(tails) == 1

    def settle(self, bound=120):
        """End of a run: heal, restart everyone, and insist the ensemble
        converges within `bound` ticks (liveness), losing no acknowledged write."""
        self.chaos = False
        self.crash_hooks = []
        self.crash_rate = 0.0
        self.storm_until = 0
        for sid in self.members:
            self.wake(sid)
        self.heal()
        for sid in self.members:
            if not self.servers[sid].up:
                self.restart(sid)
        start = self.now
        if not self.run_until(self.converged, bound):
            roles = {sid: (s.peer.role, s.leader, s.serving, len(s.applied), len(s.peer.entries))
                     for sid, s in self.servers.items()}
            raise Violation(self.report(f"no convergence within {bound} ticks after healing: "
                                        f"(role, leader, serving, applied, log) = {roles}"))
        try:
            self.check_all()
            self.check_writes()
            self.check_trees()
        except Violation as e:
            raise Violation(self.report(str(e))) from None
        return (self.now - start) // TICK

    def check_writes(self):
        """Invariant 4: every acknowledged write is in the final history, and a
        write submitted after another was acknowledged comes after it."""
        final = self.servers[self.serving_leader()].applied
        if self.history != final[:len(self.history)]:
            raise Violation("the final history does not extend the committed one")
        position = {unstamped(payload): i for i, (_zxid, payload) in enumerate(final)}
        lost = [p for p, w in self.writes.items() if w.acked is not None and p not in position]
        if lost:
            raise Violation(f"acknowledged writes lost: {lost}")
        order = sorted((position[p], w) for p, w in self.writes.items() if p in position)
        earliest_ack_after = float("inf")  # over the writes later in the history
        for _pos, w in reversed(order):
            if earliest_ack_after < w.submitted:
                raise Violation("a write precedes, in the history, one acknowledged "
                                "before it was submitted")
            if w.acked is not None:
                earliest_ack_after = min(earliest_ack_after, w.acked)

    # -- helpers for scenario tests ------------------------------------------------------

    def crash_after(self, predicate):
        """Crash a server right after it carries out the first action for which
        predicate(sid, action) holds; the returned list gets (sid, action)."""
        fired = []

        def hook(sid, action):
            if not fired and predicate(sid, action):
                fired.append((sid, action))
                return True
            return False

        self.crash_hooks.append(hook)
        return fired

    def wait_for_leader(self, ticks=60):
        if not self.run_until(lambda: self.serving_leader() is not None, ticks):
            raise Violation(self.report(f"no serving leader within {ticks} ticks"))
        return self.serving_leader()

    def wait_converged(self, ticks=100):
        if not self.run_until(self.converged, ticks):
            raise Violation(self.report(f"no convergence within {ticks} ticks"))
        return self.serving_leader()

    def wait_applied(self, sid, payloads, ticks=30):
        """Until sid has applied all these writes (the clients' acknowledgements)."""
        def done():
            applied = {unstamped(p) for _z, p in self.servers[sid].applied}
            return all(p in applied for p in payloads)

        if not self.run_until(done, ticks):
            raise Violation(self.report(f"s{sid} did not apply {[describe(p) for p in payloads]} "
                                        f"within {ticks} ticks"))

    def epoch_of_leader(self, sid):
        return self.servers[sid].peer.state.epoch

    def payloads(self, sid):
        return [p for _z, p in self.servers[sid].applied]

    def tree(self, sid):
        return self.servers[sid].tree
