"""Deterministic simulation tests of the ZAB core (nookeeper/zab).

test_random_* run whole ensembles through seeded storms of crashes, link
resets, partitions, slow disks and client writes, checking safety all along
and liveness at the end (see simulation.py). NK_SIM_SEEDS=N runs N seeds per
size instead of the default; NK_SIM_SEED=S NK_SIM_SIZE=n replays one seed
(test_replay; NK_SIM_TRACE=lines lengthens the trace a failure prints;
NK_SIM_VALIDATION=plain|local replays a run of a weaker session check;
NK_SIM_TREES=1 one with trees). test_random_trees_* run other seeds with
real DataTrees: containers and TTL nodes reaped by the leader through the log.

The scenario tests drive one situation each, deterministically.
"""

import os

import pytest

from nookeeper.zab import actions as act
from nookeeper.zab.messages import (
    FOLLOWING,
    LEADING,
    LOOKING,
    AckNewLeader,
    FollowerInfo,
    NewLeader,
    Vote,
)
from nookeeper.zab.peer import Limits, Peer
from nookeeper.zab.zxid import make_zxid
from .simulation import TICK, Cluster, Violation, sessions_in

# Seeds per size in the default run, and ticks per run: about 35 s in all;
# with trees, about 7 s more. NK_SIM_SEEDS scales both alike.
DEFAULT_SEEDS = {3: 300, 5: 200}
DEFAULT_TREE_SEEDS = {3: 80, 5: 40}
RUN_TICKS = 600


def _seeds(n):
    return range(int(os.environ.get("NK_SIM_SEEDS", DEFAULT_SEEDS[n])))


def _tree_seeds(n):
    wanted = os.environ.get("NK_SIM_SEEDS")
    if wanted is None:
        return range(DEFAULT_TREE_SEEDS[n])
    return range(int(wanted) * DEFAULT_TREE_SEEDS[n] // DEFAULT_SEEDS[n])


def run_seed(seed, n, trace=None, validation="confirmed", trees=False):
    cluster = Cluster(seed, n, validation=validation, trees=trees)
    if trace:
        cluster.trace = type(cluster.trace)(maxlen=trace)
    try:
        cluster.run_for(RUN_TICKS)
        cluster.settle()
    except Violation as e:  # the message says what broke, how to replay, what happened last
        pytest.fail(str(e), pytrace=False)
    except Exception as e:  # the core itself blew up: still say how to replay
        raise AssertionError(cluster.report(f"{type(e).__name__}: {e}")) from e
    return cluster


@pytest.mark.parametrize("seed", _seeds(3))
def test_random_3(seed):
    run_seed(seed, 3)


@pytest.mark.parametrize("seed", _seeds(5))
def test_random_5(seed):
    run_seed(seed, 5)


def test_replay():
    """NK_SIM_SEED=S [NK_SIM_SIZE=n] pytest tests/sim -k replay -s"""
    seed = os.environ.get("NK_SIM_SEED")
    if seed is None:
        pytest.skip("set NK_SIM_SEED (and NK_SIM_SIZE) to replay a seed")
    n = int(os.environ.get("NK_SIM_SIZE", 3))
    cluster = run_seed(int(seed), n, trace=int(os.environ.get("NK_SIM_TRACE", 0)) or None,
                       validation=os.environ.get("NK_SIM_VALIDATION", "confirmed"),
                       trees=os.environ.get("NK_SIM_TREES") == "1")
    print(f"seed {seed}, {n} servers: {cluster.stats}\n{dict(cluster.reasons)}")


def test_the_random_runs_exercise_the_hard_paths():
    """A guard against a harness that stopped hurting: across a few seeds the
    storms must cause crashes (some between two actions of a server), pauses,
    many elections, partitions, TRUNCs and SNAPs of a snapshot after the log
    was compacted, and still acknowledge many writes. Reconnecting clients
    must hear both answers many times, some in storms and right after a crash
    or a new leader, and some must hear nothing (crash, role change, timeout)."""
    totals = {}
    for seed in range(12):
        stats = run_seed(seed, 3 + 2 * (seed % 2)).stats
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    assert totals["crashes"] > 100 and totals["crashes_mid_actions"] > 20, totals
    assert totals["pauses"] > 20, totals
    assert totals["elections"] > 30 and totals["partitions"] > 10, totals
    assert totals["truncs"] > 0 and totals["acked"] > 1000, totals
    assert totals["snapshots"] > 50 and totals["snaps_of_snapshots"] > 0, totals
    assert totals["answered_live"] > 50 and totals["answered_expired"] > 50, totals
    assert totals["answered_in_storms"] > 10, totals
    assert totals["answered_soon_after_crash"] > 5, totals
    assert totals["answered_soon_after_election"] > 10, totals
    assert totals["dropped_crash"] > 0 and totals["dropped_role_change"] > 5, totals
    assert totals["dropped_timeout"] > 10, totals


EXPIRED_TOO_SOON = "expired, but its closeSession is not committed"


def test_the_random_runs_catch_a_server_answering_from_its_own_state():
    """The model has teeth: answering a reconnect from the server's applied
    state, with no sync (the bug of issue 12), is caught within a few seeds:
    a follower that has not applied the createSession yet says "expired"."""
    for seed in range(10):
        cluster = Cluster(seed, 3, validation="local")
        try:
            cluster.run_for(RUN_TICKS)
            cluster.settle()
        except Violation as e:
            assert EXPIRED_TOO_SOON in str(e), str(e)
            return
    pytest.fail("no seed caught a server answering from its own session table")


# -- scenarios -------------------------------------------------------------------


@pytest.mark.parametrize("validation", ["confirmed", "local"])
def test_a_follower_that_has_not_applied_the_session_waits_before_it_answers(validation):
    """A follower whose disk lags has the createSession on no disk yet, while
    the others committed it. Asked at once, it must wait until it has applied
    what the leader had, then say "live"; answering from its own state says
    "expired"."""
    c = Cluster(20, 3, chaos=False, validation=validation)
    leader = c.wait_for_leader()
    c.wait_converged()
    lagging = next(sid for sid in c.members if sid != leader)
    c.disk_delay[lagging] = 8 * TICK
    session = c.create_session(leader)
    assert c.run_until(lambda: session in c.created, 5)
    assert session not in c.servers[lagging].sessions
    if validation == "local":
        with pytest.raises(Violation, match=EXPIRED_TOO_SOON):
            c.validate(lagging, session, timeout=3 * c.limits.sync)
        return
    v = c.validate(lagging, session, timeout=3 * c.limits.sync)
    assert v.answer is None
    assert c.run_until(lambda: v.answer, 3 * c.limits.sync)
    assert v.answer == "live" and c.now - v.asked >= 7 * TICK


@pytest.mark.parametrize("validation", ["confirmed", "plain"])
def test_a_woken_leader_does_not_answer_from_a_deposed_epoch(validation):
    """The leader stalls; the others elect a new one, which opens a session.
    Woken, the old leader still believes it leads for its sync limit. A plain
    sync answers at once from its stale log, so it says "expired" for a live
    session (why Peer.sync has confirm); a confirmed one gets no quorum, and
    the client hears nothing until the old leader has rejoined. The random
    runs rarely line this up (a stale leader, a session from the new epoch
    and a reconnect to it within its sync limit), hence this scenario."""
    c = Cluster(21, 3, chaos=False, validation=validation)
    old = c.wait_for_leader()
    c.wait_converged()
    c.pause(old, 4 * c.limits.sync)
    assert c.run_until(lambda: c.serving_leader() not in (None, old), 4 * c.limits.sync)
    session = c.create_session(c.serving_leader())
    assert c.run_until(lambda: session in c.created, 5)
    c.wake(old)
    assert c.servers[old].peer.role == LEADING and c.servers[old].serving
    if validation == "plain":
        with pytest.raises(Violation, match=EXPIRED_TOO_SOON):
            c.validate(old, session, timeout=3 * c.limits.sync)
        return
    v = c.validate(old, session, timeout=3 * c.limits.sync)
    assert c.run_until(lambda: v.dropped, 3 * c.limits.sync)
    assert v.dropped == "role_change" and v.answer is None  # it stepped down, unconfirmed
    c.wait_converged()
    again = c.validate(old, session, timeout=5)
    assert c.run_until(lambda: again.answer, 5) and again.answer == "live"


def test_a_closed_session_is_expired_everywhere():
    """Once its closeSession is committed, every server says "expired",
    including one that restarted from a snapshot taken while it lived."""
    c = Cluster(22, 3, chaos=False)
    leader = c.wait_for_leader()
    session = c.create_session(leader)
    c.wait_converged()
    follower = next(sid for sid in c.members if sid != leader)
    c.snapshot(follower)
    assert session in sessions_in(c.servers[follower].disk.snapshots[
        c.servers[follower].disk.newest_snapshot])
    c.crash(follower)
    c.close_session(leader, session)
    assert c.run_until(lambda: session in c.closed, 5)
    c.restart(follower)
    c.wait_converged()
    asked = [c.validate(sid, session, timeout=5) for sid in c.members]
    assert c.run_until(lambda: all(v.answer for v in asked), 5)
    assert [v.answer for v in asked] == ["expired"] * c.n


def _sync_messages(cluster, sid, kind):
    return [m for k, m in cluster.servers[sid].received if k == kind]


def test_trunc_of_an_uncommitted_tail_on_the_old_leader():
    """The leader logs proposals nobody else gets, then crashes. The others
    elect a new leader and go on; the old one must lose exactly that tail."""
    c = Cluster(11, 3, chaos=False)
    old = c.wait_for_leader()
    committed = [c.write(old) for _ in range(3)]
    c.wait_converged()
    others = [sid for sid in c.members if sid != old]
    c.partition([old], others)
    tail = [c.write(old) for _ in range(2)]  # it has not yet heard of the cut
    assert all(tail)
    assert c.run_until(lambda: all(p in c.servers[old].disk.index.values() for p in tail), 5)
    c.crash(old)
    c.heal()
    new = c.wait_for_leader()
    later = [c.write(new) for _ in range(2)]
    c.wait_applied(new, later)
    c.restart(old)
    c.wait_converged()
    final = c.payloads(old)
    assert final == committed + later
    (trunc,) = _sync_messages(c, old, "Trunc")
    assert trunc.zxid == c.servers[old].applied[2][0]  # cut right after the last committed
    assert ("Truncate", trunc.zxid) in c.servers[old].received
    c.check_all()
    c.check_writes()


def test_snap_when_the_tail_is_from_an_epoch_the_leader_never_saw():
    """A leader that proposed in its epoch but committed nothing there leaves
    a tail whose epoch the next leader's log lacks entirely: it gets a SNAP."""
    c = Cluster(12, 3, chaos=False)
    first = c.wait_for_leader()
    committed = [c.write(first) for _ in range(3)]
    c.wait_converged()
    c.crash(first)
    second = c.wait_for_leader()
    c.restart(first)
    c.wait_converged()
    others = [sid for sid in c.members if sid != second]
    c.partition([second], others)
    tail = [c.write(second) for _ in range(2)]
    assert c.run_until(lambda: all(p in c.servers[second].disk.index.values() for p in tail), 5)
    third = c.wait_for_leader()
    assert third != second
    later = [c.write(third) for _ in range(2)]
    c.wait_applied(third, later)
    c.heal()
    c.wait_converged()
    assert c.payloads(second) == committed + later
    assert _sync_messages(c, second, "Snap") and not _sync_messages(c, second, "Trunc")
    assert ("InstallSnapshot", (0, len(committed) + len(later))) in c.servers[second].received
    c.check_writes()


def test_an_empty_new_server_gets_everything():
    c = Cluster(13, 3, chaos=False, start=False)
    c.restart(1)
    c.restart(2)
    leader = c.wait_for_leader()
    writes = [c.write(leader) for _ in range(5)]
    c.wait_applied(1, writes)
    c.wait_applied(2, writes)
    c.restart(3)
    c.wait_converged()
    assert c.payloads(3) == writes
    diffs = _sync_messages(c, 3, "Diff") + _sync_messages(c, 3, "Snap")
    assert [p for _z, p in diffs[0].entries] == writes  # DIFF from zero (or SNAP)
    assert not _sync_messages(c, 3, "Trunc")
    assert c.servers[3].disk.log == c.servers[leader].disk.log


def test_a_follower_behind_gets_a_diff():
    c = Cluster(14, 3, chaos=False)
    leader = c.wait_for_leader()
    before = [c.write(leader) for _ in range(2)]
    c.wait_converged()
    behind = next(sid for sid in c.members if sid != leader)
    c.crash(behind)
    missed = [c.write(leader) for _ in range(3)]
    c.wait_applied(leader, missed)
    c.servers[behind].received.clear()
    c.restart(behind)
    c.wait_converged()
    assert c.serving_leader() == leader
    kinds = [k for k, _m in c.servers[behind].received]
    assert kinds == ["Diff"]
    assert [p for _z, p in _sync_messages(c, behind, "Diff")[0].entries] == missed
    assert c.payloads(behind) == before + missed


@pytest.mark.parametrize("moment", ["follower acks NEWLEADER", "leader sends NEWLEADER",
                                    "leader established"])
def test_crash_right_after_newleader(moment):
    """Crash at the edge of a new epoch, once the first leader has been
    replaced: nothing committed before may be lost, the ensemble recovers."""
    c = Cluster(15, 3, chaos=False)
    first = c.wait_for_leader()
    writes = [c.write(first) for _ in range(3)]
    c.wait_applied(first, writes)
    c.write(first)  # maybe committed, maybe not: the crash decides
    predicate = {
        "follower acks NEWLEADER": lambda sid, a: isinstance(a, act.Send)
        and isinstance(a.message, AckNewLeader),
        "leader sends NEWLEADER": lambda sid, a: isinstance(a, act.Send)
        and isinstance(a.message, NewLeader),
        "leader established": lambda sid, a: isinstance(a, act.RoleChanged)
        and a.role == LEADING and a.serving,
    }[moment]
    fired = c.crash_after(predicate)
    c.crash(first)
    c.run_until(lambda: fired, 60)
    assert fired, "the crash point was never reached"
    crashed, action = fired[0]
    if isinstance(action, act.Send) and isinstance(action.message, AckNewLeader):
        # The follower made its history durable, then its epoch, then acked.
        disk = c.servers[crashed].disk
        assert disk.current == action.message.epoch
        assert disk.log and disk.log[-1][0] >= action.message.zxid
    c.crash_hooks.clear()
    c.restart(first)
    c.restart(crashed)
    c.wait_converged()
    assert c.payloads(first)[:3] == writes
    c.check_all()
    c.check_writes()


@pytest.mark.parametrize("n", [3, 5])
def test_a_partitioned_leader_steps_down_and_catches_up(n):
    c = Cluster(16, n, chaos=False)
    old = c.wait_for_leader()
    before = [c.write(old) for _ in range(3)]
    c.wait_converged()
    others = [sid for sid in c.members if sid != old]
    c.partition([old], others)
    doomed = c.write(old)  # it still serves for a moment: this write can never commit
    assert c.run_until(lambda: c.servers[old].peer.role == LOOKING, c.limits.sync + 2)
    new = c.wait_for_leader()
    assert new in others
    epoch = c.epoch_of_leader(new)
    after = [c.write(new) for _ in range(3)]
    c.wait_applied(new, after)
    c.heal()
    c.wait_converged()
    # The old leader rejoined as a follower, without costing a new election.
    assert c.serving_leader() == new and c.epoch_of_leader(new) == epoch
    assert c.payloads(old) == before + after
    assert doomed not in c.payloads(old) and c.writes[doomed].acked is None
    c.check_writes()


def test_a_follower_reconnecting_does_not_unseat_the_leader():
    """A follower synced in this epoch has the leader's epoch as its current
    one; the leader must not take that for a more recent history."""
    c = Cluster(17, 3, chaos=False)
    leader = c.wait_for_leader()
    c.wait_applied(leader, [c.write(leader) for _ in range(2)])
    c.wait_converged()
    epoch = c.epoch_of_leader(leader)
    follower = next(sid for sid in c.members if sid != leader)
    c.reset_link(leader, follower)
    c.run_until(lambda: c.servers[follower].peer.role == LOOKING, 2)
    c.wait_converged()
    assert c.serving_leader() == leader and c.epoch_of_leader(leader) == epoch


def test_the_leader_applies_when_its_own_disk_is_the_slowest():
    """The followers make a write committed before the leader's own disk has
    it; the leader must apply it once its disk catches up."""
    c = Cluster(18, 3, chaos=False)
    leader = c.wait_for_leader()
    c.wait_converged()
    c.disk_delay[leader] = 3 * TICK
    write = c.write(leader)
    c.wait_applied(leader, [write], ticks=10)


def test_a_rejoining_follower_can_complete_a_quorum():
    """A follower that syncs while the leader broadcasts acknowledges, with
    NEWLEADER, proposals nobody else acknowledged: that may commit them."""
    c = Cluster(19, 3, chaos=False)
    leader = c.wait_for_leader()
    c.wait_converged()
    slow, rejoining = [sid for sid in c.members if sid != leader]
    c.crash(rejoining)
    c.disk_delay[slow] = 100 * TICK  # it gets the proposal but will never ack it
    write = c.write(leader)
    c.run_for(1)
    assert write not in c.payloads(leader)  # only the leader has it on disk
    c.restart(rejoining)
    assert c.run_until(lambda: c.servers[rejoining].serving, 30)
    c.crash(slow)
    c.wait_applied(leader, [write], ticks=10)
    del c.disk_delay[slow]
    c.restart(slow)
    c.wait_converged()


def test_two_servers_following_each_other_give_up():
    """Votes can make a and b each follow the other. Each then gets the
    other's FollowerInfo, which is no sign of a living leader: both must go
    back to looking within the init limit, not wait on each other forever."""
    limits = Limits()
    a, b = Peer(1, (1, 2, 3), limits=limits), Peer(2, (1, 2, 3), limits=limits)
    a.start()
    b.start()
    # a hears two votes for b; b hears that a already leads.
    a.receive(2, Vote(1, 2, 0, 0, LOOKING))
    a.receive(3, Vote(1, 2, 0, 0, LOOKING))
    b.receive(1, Vote(1, 1, 0, 0, LEADING))
    a.tick()
    assert (a.role, a.leader, b.role, b.leader) == (FOLLOWING, 2, FOLLOWING, 1)
    for _ in range(limits.init + 2):
        a.receive(2, FollowerInfo(0, 0))
        b.receive(1, FollowerInfo(0, 0))
        a.tick()
        b.tick()
    assert a.role != FOLLOWING or a.leader != 2
    assert b.role != FOLLOWING or b.leader != 1


def _route(peers, frm, actions):
    """A lossless FIFO network with instant disks, for tests of a few peers."""
    queue = [(frm, a) for a in actions]
    while queue:
        sid, action = queue.pop(0)
        if isinstance(action, act.Send) and action.to in peers:
            queue += [(action.to, a) for a in peers[action.to].receive(sid, action.message)]
        elif isinstance(action, act.Persist):
            queue += [(sid, a) for a in peers[sid].logged(action.upto, action.generation)]


def test_a_follower_ahead_of_its_leader_does_not_wait_out_the_init_limit():
    """Server 3 joins 2, which then learns that 3 has a more recent history
    and steps down. Links stay open, so only 2's new votes tell 3: it must
    look again at once and lead, not wait init ticks while 1 and 2 may elect
    2 again (the random runs saw that repeat for 80 ticks)."""
    a, b = make_zxid(1, 1), make_zxid(1, 2)
    p2 = Peer(2, (1, 2, 3), 1, 1, log=[(a, b"a")])
    p3 = Peer(3, (1, 2, 3), 1, 1, log=[(a, b"a"), (b, b"b")])
    peers = {2: p2, 3: p3}
    p2.start()
    p2.receive(1, Vote(1, 2, a, 1, LOOKING))  # server 1 backs 2
    p2.tick()
    assert p2.role == LEADING
    p3.start()
    _route(peers, 3, p3.receive(2, Vote(1, 2, a, 1, LEADING)))  # 3 joins 2; 2 steps down
    assert p2.role == LOOKING
    assert p3.role == LOOKING
    for _ in range(3):
        _route(peers, 3, p3.tick())
        _route(peers, 2, p2.tick())
    assert p3.role == LEADING and p2.role == FOLLOWING and p2.leader == 3


def test_a_server_following_a_follower_looks_again_at_once():
    """Server 1 decides on 2, but 2 has joined 3. 2 answers 1's FollowerInfo
    with whom it follows, so 1 joins 3 within a few ticks instead of waiting
    init ticks for a LeaderInfo that never comes (a fresh ensemble stalled
    for 20 s like this)."""
    p1, p2, p3 = (Peer(sid, (1, 2, 3)) for sid in (1, 2, 3))
    peers = {2: p2, 3: p3}  # 1 is cut off until it has decided
    p3.start()
    p3.receive(2, Vote(1, 3, 0, 0, LOOKING))
    p2.start()
    p2.receive(3, Vote(1, 3, 0, 0, LOOKING))
    for _ in range(Limits().finalize + 1):
        _route(peers, 3, p3.tick())
        _route(peers, 2, p2.tick())
    assert (p3.role, p2.role, p2.leader) == (LEADING, FOLLOWING, 3)
    p1.start()
    p1.receive(2, Vote(1, 2, 0, 0, LOOKING))
    p1.receive(3, Vote(1, 2, 0, 0, LOOKING))
    p1.tick()
    assert (p1.role, p1.leader) == (FOLLOWING, 2)
    peers[1] = p1
    for _ in range(5):
        _route(peers, 1, p1.tick())
        _route(peers, 3, p3.tick())
        _route(peers, 2, p2.tick())
    assert (p1.role, p1.leader) == (FOLLOWING, 3)
    assert p1.serving


def test_a_follower_info_sent_before_the_leader_decided_is_not_lost():
    """Server 1 decides on 2 and sends FollowerInfo while 2 still waits out
    its finalize tick. 2 must use it once it leads: 1 resends only on its
    own next tick, which with a 2 s tick doubled the failover time."""
    p1, p2 = Peer(1, (1, 2, 3)), Peer(2, (1, 2, 3))
    peers = {1: p1, 2: p2}
    p1.start()
    p2.start()
    p1.receive(2, Vote(1, 2, 0, 0, LOOKING))
    _route(peers, 2, p2.receive(1, Vote(1, 2, 0, 0, LOOKING)))
    for _ in range(Limits().finalize):
        # Only 1 ticks: it decides and sends FollowerInfo; 2 is still looking.
        out = p1.tick()
        assert p1.role == FOLLOWING
        _route(peers, 1, out)
    assert p2.role == LOOKING
    _route(peers, 2, p2.tick())
    assert p2.role == LEADING
    assert p1.serving and p2.serving


def test_a_confirmation_asked_before_a_follower_restarted_is_not_answered_to_its_new_life():
    """Seed 1877 (5 servers): a follower asked for a confirmed sync, crashed and
    rejoined the same leader, which then sent the old answer to the new
    process, where the id may belong to another sync."""
    run_seed(1877, 5)


def test_the_leader_stamps_a_forwarded_write_with_its_own_clock():
    """A write forwarded by a follower is stamped inside the leader's core,
    with the zxid it gets and the clock the leader's shell passed in with the
    message: it never leaves the core to be stamped."""
    def stamp(payload, zxid, now_ms):
        return b"%s@%x,%d" % (payload, zxid, now_ms)

    p1 = Peer(1, (1, 2), stamp=stamp)
    p2 = Peer(2, (1, 2), stamp=stamp)
    peers = {1: p1, 2: p2}
    started = {1: p1.start(), 2: p2.start()}
    for sid, out in started.items():
        _route(peers, sid, out)
    for _ in range(3):
        for sid, p in peers.items():
            _route(peers, sid, p.tick(1000))
    leader, follower = (p1, p2) if p1.role == LEADING else (p2, p1)
    assert leader.serving and follower.serving
    proposals = [a for a in follower.forward(b"w1")
                 if isinstance(a, act.Send) and a.message.__class__.__name__ == "Request"]
    assert len(proposals) == 1
    out = leader.receive(follower.sid, proposals[0].message, 4242)
    persisted = [a for a in out if isinstance(a, act.Persist)]
    assert len(persisted) == 1
    (zxid, payload), = persisted[0].entries
    assert payload == b"w1@%x,4242" % zxid
    sent = [a.message for a in out if isinstance(a, act.Send) and a.to == follower.sid]
    assert [m.payload for m in sent if hasattr(m, "payload")] == [payload]


# -- containers and TTL nodes: real trees, the leader's reaper -----------------------


@pytest.mark.parametrize("seed", _tree_seeds(3))
def test_random_trees_3(seed):
    run_seed(seed, 3, trees=True)


@pytest.mark.parametrize("seed", _tree_seeds(5))
def test_random_trees_5(seed):
    run_seed(seed, 5, trees=True)


def test_the_tree_runs_reap_through_the_hard_paths():
    """A guard against tree runs that stopped hurting: across a few seeds the
    reaper must delete containers and TTL nodes, have some of its deletes
    refused (the node changed after it was picked, or a deposed leader's
    pick was done again by its successor), have some applied only under a
    newer leader, and members must install snapshots of trees (SNAP)."""
    totals = {}
    for seed in range(12):
        stats = run_seed(seed, 3 + 2 * (seed % 2), trees=True).stats
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    assert totals["tree_writes"] > 1000 and totals["reap_proposals"] > 100, totals
    assert totals["reaped_containers"] > 15 and totals["reaped_ttl"] > 50, totals
    assert totals["reap_refused"] > 20 and totals["reaps_across_leaders"] > 0, totals
    assert totals["tree_snapshots_installed"] > 0 and totals["elections"] > 30, totals
    assert totals["crashes_mid_actions"] > 20, totals


def test_the_tree_checks_catch_a_reaper_that_deletes_outside_the_log():
    """The model has teeth: a leader that deletes reapable nodes from its own
    tree instead of proposing a deleteContainer is caught within a few seeds,
    by a later txn's result on it or by the trees compared at the end."""
    for seed in range(10):
        cluster = Cluster(seed, 3, trees=True, reaper="local")
        try:
            cluster.run_for(RUN_TICKS)
            cluster.settle()
        except Violation as e:
            assert "another member got" in str(e) or "trees differ" in str(e), str(e)
            return
    pytest.fail("no seed caught a reaper deleting outside the log")


def _tree_cluster(seed):
    c = Cluster(seed, 3, chaos=False, trees=True, reaping=False)
    leader = c.wait_for_leader()
    c.wait_converged()
    return c, leader


def test_containers_and_ttl_nodes_are_reaped_alike_through_a_leader_change():
    """A container emptied and a TTL node left alone under one leader are
    reaped by its successor (the old leader's delete of the container died
    with it, uncommitted); every member, the old leader restarted from its
    disk included, ends with the tree the history builds, its own
    /zookeeper/config in it."""
    c, leader = _tree_cluster(30)
    writes = [c.create(leader, "/c", container=True), c.create(leader, "/c/x"),
              c.create(leader, "/t", flags=5, ttl=5 * TICK), c.create(leader, "/kept"),
              c.delete(leader, "/c/x")]
    c.wait_applied(leader, writes)
    c.wait_converged()
    assert c.reap(leader) == ["/c"]  # /t is not old enough yet
    c.crash(leader)
    successor = c.wait_for_leader()
    assert successor != leader
    expires = c.tree(successor).node("/t").mtime + 5 * TICK  # the TTL, on the leader's clock
    assert c.run_until(lambda: c.now > expires, 20)
    assert c.reap(successor) == ["/c", "/t"]
    c.restart(leader)
    c.wait_converged()
    for sid in c.members:
        tree = c.tree(sid)
        assert tree.node("/c") is None and tree.node("/t") is None and tree.node("/kept")
        assert tree.get_data("/zookeeper/config", ())[0] == c.membership
    assert (c.stats["reap_proposals"], c.stats["reaped_containers"], c.stats["reaped_ttl"]) \
        == (3, 1, 1)
    c.check_trees()


def test_a_container_that_got_a_child_after_it_was_picked_is_kept():
    """The reaper picked /c empty, a client's create of /c/y was proposed
    before its deleteContainer: every member refuses the delete alike."""
    c, leader = _tree_cluster(31)
    writes = [c.create(leader, "/c", container=True), c.create(leader, "/c/x"),
              c.delete(leader, "/c/x")]
    c.wait_applied(leader, writes)
    picked = c.tree(leader).reapable(c.now)
    assert picked == ["/c"]
    child = c.create(leader, "/c/y")
    assert c.reap(leader, due=picked) == ["/c"]
    c.wait_applied(leader, [child])
    c.wait_converged()
    assert c.stats["reap_refused"] == 1 and c.stats["reaped_containers"] == 0
    for sid in c.members:
        assert c.tree(sid).node("/c/y") is not None
    c.check_trees()


def test_the_final_tree_check_sees_a_member_whose_tree_drifted():
    c, leader = _tree_cluster(32)
    c.wait_applied(leader, [c.create(leader, "/a")])
    c.wait_converged()
    c.check_trees()
    drifted = next(sid for sid in c.members if sid != leader)
    c.tree(drifted).node("/a").data = b"drift"
    with pytest.raises(Violation, match=f"trees differ: s{drifted}'s differs .* at \\['/a'\\]"):
        c.check_trees()
