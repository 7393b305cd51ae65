"""DataKeeper (examples/datakeeper), three real node processes on a real 3-server
ensemble, nookeeper's and Apache ZooKeeper 3.8's (the `coordination` fixture):
writes through any node, failover after kill -9 of the leader node with no
acknowledged write lost, the old leader back as a replica, a crash of the
ensemble's own leader under load, a SIGSTOPped replica catching up, and a
SIGSTOPped leader fenced off when it wakes. First, in-process, the replica's
side of replication that the fencing rests on.

Sessions last 3 s (DataKeeperCluster's default); a write waits at most
2 * 3 + 1 s for the replicas.
"""

import threading
import time

import pytest

from datakeeper_harness import Writer
from examples.datakeeper.replica import GAP, STALE, ReplicaSide
from examples.datakeeper.store import Store

# A new leader needs the old one's session to expire (up to the timeout after
# its last ping, rounded up to the server's tick), then an election round.
FAILOVER_MARGIN_S = 2.0


def _assert_kept(acked, node):
    """Every acknowledged write is in node's copy, with its value."""
    keys = node.keys()
    lost = {key: value for key, value in acked.items() if keys.get(key) != value}
    assert not lost, f"{node.name} lost {len(lost)} acknowledged writes: {sorted(lost)[:10]}"


def _entries(*seqs):
    return [{"seq": seq, "op": "put", "key": f"k{seq}", "value": f"v{seq}"} for seq in seqs]


def test_a_replica_takes_entries_in_order_and_refuses_older_terms():
    """The replica's side of replication in-process: what the fence rests on."""
    newer_terms = []
    store = Store()
    side = ReplicaSide("r1", store, newer_terms.append)

    assert side.take_copy(10, "a", 2, {"k1": "v1", "k2": "v2"})[0] == 200
    assert side.take_entries(10, "a", _entries(2, 3))[0] == 200      # 2 again: skipped
    assert store.position() == (10, 3)
    status, body = side.take_entries(10, "a", _entries(5))
    assert (status, body["error"], body["seq"]) == (409, GAP, 3)
    assert newer_terms == [10]

    # A new leader's fence: from now on the old one is refused, whatever it sends.
    status, body = side.fence(20, "b")
    assert (status, body["epoch"], body["seq"]) == (200, 10, 3)
    assert newer_terms == [10, 20]
    for refused in (side.take_entries(10, "a", _entries(4)),
                    side.take_copy(10, "a", 9, {}), side.fence(10, "a")):
        assert refused[0] == 409 and refused[1]["error"] == STALE
    assert store.position() == (10, 3)
    # The new term's entries need its full copy first.
    assert side.take_entries(20, "b", _entries(4))[1]["error"] == GAP
    assert side.take_copy(20, "b", 3, {"k1": "v1"})[0] == 200
    assert side.take_entries(20, "b", _entries(4))[0] == 200
    assert store.copy() == (20, 4, {"k1": "v1", "k4": "v4"})
    side.observe(15)
    assert side.accepted_epoch == 20 and newer_terms == [10, 20]


@pytest.mark.timeout(90)
def test_writes_anywhere_then_failover_and_the_old_leader_returns(coordination, datakeeper):
    cluster = datakeeper(coordination.hosts)
    leader = cluster.leader()
    replicas = cluster.replicas()
    assert len(replicas) == 2

    # A replica sends writes to the leader; the leader takes them itself.
    for node in cluster.nodes.values():
        answer = node.put(f"through-{node.name}", f"hello from {node.name}")
        if node is leader:
            assert answer.status == 200, answer
            assert (answer.node, answer.role) == (leader.name, "leader")
        else:
            assert answer.status == 307, answer
            assert answer.headers["location"] == f"{leader.url}/keys/through-{node.name}"
            assert answer.body["leader"] == leader.name
            answer = node.write(f"through-{node.name}", f"hello from {node.name}")
            assert answer.status == 200, answer
            assert answer.node == leader.name
    assert replicas[0].write("doomed", "x").status == 200
    answer = replicas[0].delete("doomed")
    assert answer.status == 307
    assert leader.delete("doomed").status == 200
    assert leader.delete("doomed").status == 404

    expected = {f"through-{name}": f"hello from {name}" for name in cluster.nodes}
    cluster.wait_converged(expected)

    # Reads say who answered, in which role, at which sequence number.
    read = leader.get("through-node1")
    assert read.status == 200 and read.body["value"] == "hello from node1"
    assert (read.node, read.role, read.headers["x-datakeeper-consistency"]) == \
        (leader.name, "leader", "strong")
    for replica in replicas:
        read = replica.get("through-node1")
        assert (read.node, read.role, read.headers["x-datakeeper-consistency"]) == \
            (replica.name, "replica", "eventual")
        assert read.seq == leader.get("through-node1").seq
        assert replica.get("doomed").status == 404

    # kill -9 of the leader node while a client keeps writing.
    writer = Writer(cluster, "load").start()
    try:
        writer.wait_acked_since(0, 20)
        killed_at = time.monotonic()
        leader.kill()
        new_leader = cluster.leader(timeout=cluster.session_timeout + 15)
        took = time.monotonic() - killed_at
        writer.wait_acked_since(time.monotonic(), 20)
    finally:
        writer.stop()
    assert new_leader in replicas
    assert took < cluster.session_timeout + FAILOVER_MARGIN_S, \
        f"a replica led only {took:.1f}s after the leader died"
    acked = {**expected, **writer.acked}
    for survivor in replicas:
        _assert_kept(acked, survivor)

    # The old leader comes back as a replica and catches up.
    leader.launch().wait_healthy()
    assert leader.role() == "replica"
    assert new_leader.write("after-return", "yes").status == 200
    cluster.wait_converged(new_leader.keys())
    _assert_kept(acked, leader)
    assert cluster.leader() is new_leader


@pytest.mark.timeout(90)
def test_a_write_waits_for_every_live_replica(nookeeper_ensemble, datakeeper):
    """The acknowledgement rule itself: while a replica in the directory lacks a
    write, the write is not acknowledged; once it is, that replica alone,
    the others dead, still has it."""
    cluster = datakeeper(nookeeper_ensemble.hosts)
    leader = cluster.leader()
    other, last = cluster.replicas()
    assert leader.put("first", "1").status == 200

    last.freeze()  # for less than its session timeout: it stays in the directory
    answers = []
    writer = threading.Thread(target=lambda: answers.append(leader.put("second", "2")))
    writer.start()
    time.sleep(1.0)
    assert not answers, f"acknowledged while a live replica lacked it: {answers}"
    last.thaw()
    writer.join(timeout=15)
    assert answers and answers[0].status == 200, answers

    leader.kill()
    other.kill()
    assert cluster.leader(timeout=cluster.session_timeout + 15, among=[last]) is last
    assert last.keys() == {"first": "1", "second": "2"}


@pytest.mark.timeout(90)
def test_serves_through_a_crash_of_the_ensemble_leader(coordination, datakeeper):
    cluster = datakeeper(coordination.hosts)
    leader = cluster.leader()
    writer = Writer(cluster, "load").start()
    try:
        writer.wait_acked_since(0, 20)
        crashed_at = time.monotonic()
        coordination.ensemble.leader().kill()
        writer.wait_acked_since(crashed_at, 40, timeout=20)
        recovered = time.monotonic()
        writer.wait_acked_since(recovered, 20)
    finally:
        writer.stop()
    # The sessions lived through the reconnect: nobody had to take over.
    assert cluster.leader() is leader
    cluster.wait_converged(leader.keys())
    for node in cluster.nodes.values():
        _assert_kept(writer.acked, node)


@pytest.mark.timeout(90)
def test_a_stopped_replica_catches_up_when_resumed(coordination, datakeeper):
    cluster = datakeeper(coordination.hosts)
    leader = cluster.leader()
    frozen = cluster.replicas()[0]
    for index in range(10):
        assert leader.put(f"before-{index}", str(index)).status == 200
    cluster.wait_converged(leader.keys())

    frozen.freeze()
    frozen_at = time.monotonic()
    # The leader waits for the silent replica only until its session expires
    # and it leaves the directory.
    answer = leader.put("while-frozen", "1", timeout=20)
    assert answer.status == 200, answer
    assert time.monotonic() - frozen_at < cluster.session_timeout + FAILOVER_MARGIN_S + 1
    for index in range(30):
        assert leader.put(f"during-{index}", str(index)).status == 200
        if index % 10 == 0:
            assert leader.delete(f"before-{index // 10}").status == 200
    expected = leader.keys()
    assert "while-frozen" in expected and "before-0" not in expected

    frozen.thaw()
    cluster.wait_converged(expected)
    assert frozen.role() == "replica"
    assert cluster.leader() is leader


@pytest.mark.timeout(90)
def test_a_stopped_leader_is_fenced_off_when_it_wakes(coordination, datakeeper):
    cluster = datakeeper(coordination.hosts)
    old = cluster.leader()
    others = cluster.replicas()
    assert old.put("before", "1").status == 200
    cluster.wait_converged({"before": "1"})

    old.freeze()
    new = cluster.leader(timeout=cluster.session_timeout + 15, among=others)
    assert new.put("after", "2").status == 200

    # A write reaches the old leader while it is stopped (the kernel takes
    # the connection), and is the first thing it handles when it wakes, while
    # it may still believe it leads.
    answers = []
    sender = threading.Thread(target=lambda: answers.append(old.put("stale-write", "x")))
    sender.start()
    time.sleep(0.3)
    old.thaw()
    sender.join(timeout=20)
    assert answers, "the woken leader never answered"
    assert answers[0].status != 200, f"a deposed leader acknowledged a write: {answers[0]}"

    cluster.wait_converged({"before": "1", "after": "2"})
    assert old.role() == "replica"
    assert cluster.leader() is new
