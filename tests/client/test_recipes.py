"""nookeeper.client.recipes against real servers, in one process and across several.

Every test runs twice through the `backend` fixture (tests/client/conftest.py):
against a nookeeper server and against Apache ZooKeeper. Contention comes from
worker processes (tests/client/recipe_worker.py, using nookeeper's client) and
from kazoo, whose recipes ours must interoperate with.
"""

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import wait_for
from nookeeper.client import KeeperClient, KeeperState
from nookeeper.client.recipes import (
    RECIPES,
    CancelledError,
    Counter,
    Lock,
    LockTimeout,
    ReadLock,
    WriteLock,
)

WORKER = Path(__file__).with_name("recipe_worker.py")
ROOT = Path(__file__).resolve().parents[2]
# Killed workers' sessions expire after this long, so failover tests stay short.
SHORT_SESSION = 1.0


class Worker:
    """One recipe_worker.py process; its output lines are read on a thread, with timeouts."""

    def __init__(self, hosts, role, *args, session_timeout=None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        if session_timeout is not None:
            env["NK_WORKER_TIMEOUT"] = str(session_timeout)
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), hosts, role, *[str(a) for a in args]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def readline(self, timeout=20.0):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker {self.proc.args[3:]} silent for {timeout}s") from None
        if line is None:
            self.proc.wait(timeout=5)
            raise AssertionError(f"worker {self.proc.args[3:]} exited "
                                 f"{self.proc.returncode}: {self.proc.stderr.read()}")
        assert not line.startswith("VIOLATION"), line
        return line

    def expect(self, first_word, timeout=20.0):
        words = self.readline(timeout).split()
        assert words[0] == first_word, words
        return words[1:]

    def finish(self, timeout=30.0):
        lines = []
        while True:
            try:
                lines.append(self.readline(timeout))
            except AssertionError:
                if self.proc.poll() == 0:
                    return lines
                raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def spawn(backend):
    """Start workers on the backend, all ready; every one killed at teardown."""
    started = []

    def make(role, *args, session_timeout=None, count=1):
        workers = [Worker(backend.hosts, role, *args, session_timeout=session_timeout)
                   for _ in range(count)]
        started.extend(workers)
        for worker in workers:
            worker.expect("ready")
        return workers

    yield make
    for worker in started:
        worker.kill()


@pytest.fixture
def connect(backend):
    """Start in-process clients on the backend; all stopped at teardown."""
    clients = []

    def make(**kwargs):
        client = KeeperClient(**{"hosts": backend.hosts, "timeout": 10, **kwargs})
        clients.append(client)
        client.start(timeout=15)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def kazoo(backend):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=backend.hosts, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def in_thread(func, *args, **kwargs):
    """Run func on a thread; .join() returns its result or re-raises its exception."""
    outcome = {}

    def run():
        try:
            outcome["value"] = func(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    class Handle:
        @staticmethod
        def join(timeout=20.0):
            thread.join(timeout)
            assert not thread.is_alive(), f"{func} still running"
            if "error" in outcome:
                raise outcome["error"]
            return outcome.get("value")

        @staticmethod
        def running():
            return thread.is_alive()

    return Handle


# -- binding ----------------------------------------------------------------


def test_recipes_are_bound_to_the_client(connect):
    client = connect()
    assert set(RECIPES) == {"Lock", "ReadLock", "WriteLock", "Semaphore", "Election",
                            "Barrier", "DoubleBarrier", "Counter", "Queue",
                            "LockingQueue", "Party", "ShallowParty"}
    lock = client.Lock("/bound", "me")
    assert isinstance(lock, Lock) and lock.client is client
    counter = client.Counter("/bound-counter", default=2.5)
    assert isinstance(counter, Counter) and counter.value == 2.5


def test_recipe_errors_are_client_exceptions():
    from nookeeper.client import exceptions
    from nookeeper.client import recipes
    from nookeeper.client.recipes import errors

    for name in ("LockTimeout", "CancelledError", "UnknownOutcomeError"):
        assert getattr(exceptions, name) is getattr(recipes, name) is getattr(errors, name)
    assert issubclass(exceptions.LockTimeout, (exceptions.ClientError, TimeoutError))
    assert issubclass(exceptions.UnknownOutcomeError, exceptions.ConnectionLoss)


# -- locks ------------------------------------------------------------------


def test_lock_excludes_across_processes(spawn):
    workers = spawn("lock-rounds", "/lock-rounds", 15, "w", count=4)
    for worker in workers:
        assert worker.finish() == ["done"]


def test_lock_waiters_watch_only_their_predecessor(connect, spawn):
    client = connect()
    holder = client.Lock("/herd", "holder")
    assert holder.acquire()
    names = [f"waiter{i}" for i in range(5)]
    waiters = []
    for name in names:
        waiters.extend(spawn("lock-once", "/herd", name))
        # Queue them in a known order.
        wait_for(lambda n=len(waiters): len(holder.contenders()) == n + 1,
                 message="waiter queued")
    time.sleep(0.3)  # every waiter has set its watch
    assert holder.contenders() == ["holder", *names]
    holder.release()
    acquired = [tuple(w.expect("acquired", timeout=20)) for w in waiters]
    # Each waiter was woken exactly once (by its predecessor's release),
    # not once per release ahead of it; and they got the lock in queue order.
    assert acquired == [(name, "1") for name in names]
    for worker in waiters:
        worker.finish()
    assert client.get_children("/herd") == []


def test_lock_timeout_nonblocking_cancel_and_reacquire(connect):
    first, second = connect(), connect()
    held = first.Lock("/lk", "first")
    other = second.Lock("/lk", "second")
    assert held.acquire() and held.is_acquired
    assert other.acquire(blocking=False) is False
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        other.acquire(timeout=0.3)
    assert 0.25 < time.monotonic() - started < 5
    assert first.get_children("/lk") == [held.node]  # the loser left no node behind

    waiting = in_thread(other.acquire)
    wait_for(lambda: len(held.contenders()) == 2, message="second queued")
    other.cancel()
    with pytest.raises(CancelledError):
        waiting.join()
    assert held.contenders() == ["first"]

    waiting = in_thread(other.acquire, timeout=10)
    wait_for(lambda: len(held.contenders()) == 2, message="second queued")
    assert held.release() is True and held.release() is False
    assert waiting.join() is True and other.is_acquired
    # Not re-entrant: a second acquire waits for the holder's own release.
    again = in_thread(other.acquire, timeout=10)
    time.sleep(0.1)
    assert again.running()
    assert other.release() is True
    assert again.join() is True and other.is_acquired
    other.release()
    with other:
        assert other.is_acquired
    assert not other.is_acquired and held.contenders() == []


def test_lock_is_lost_with_its_session(connect, freezable_proxy):
    owner = connect(timeout=SHORT_SESSION, hosts=freezable_proxy.hosts)
    rival = connect()
    lock = owner.Lock("/lost", "owner")
    states = []
    owner.add_listener(states.append)
    assert lock.acquire()
    waiting = in_thread(rival.Lock("/lost", "rival").acquire, timeout=20)
    freezable_proxy.freeze()  # cut off: no pings reach the server, which expires the session
    try:
        assert waiting.join(timeout=20) is True
    finally:
        freezable_proxy.thaw()
    wait_for(lambda: KeeperState.LOST in states, message="owner sees LOST")
    wait_for(lambda: not lock.is_acquired, message="lock marked lost")
    assert lock.release() is False
    # The same object can contend again on the new session.
    assert lock.acquire(blocking=False) is False


def test_read_and_write_locks_share_a_path_with_kazoo(connect, kazoo):
    client = connect()
    reader1, reader2 = client.ReadLock("/rw", "r1"), client.ReadLock("/rw", "r2")
    assert isinstance(reader1, ReadLock)
    assert reader1.acquire(timeout=5) and reader2.acquire(timeout=5)
    # A kazoo reader joins ours; a kazoo writer must wait for all of them.
    kazoo_reader = kazoo.ReadLock("/rw", "kr")
    assert kazoo_reader.acquire(timeout=5)
    kazoo_writer = kazoo.WriteLock("/rw", "kw")
    assert kazoo_writer.acquire(blocking=False) is False
    writer = client.WriteLock("/rw", "w")
    assert isinstance(writer, WriteLock)
    assert writer.acquire(blocking=False) is False
    waiting_writer = in_thread(kazoo_writer.acquire, timeout=10)
    wait_for(lambda: len(reader1.contenders()) == 4, message="kazoo writer queued")
    assert reader1.contenders() == ["r1", "r2", "kr", "kw"]
    # A reader arriving after a queued writer waits behind it.
    late_reader = client.ReadLock("/rw", "late")
    assert late_reader.acquire(blocking=False) is False
    reader1.release()
    reader2.release()
    assert waiting_writer.running()
    kazoo_reader.release()
    assert waiting_writer.join() is True
    assert writer.acquire(blocking=False) is False
    assert late_reader.acquire(blocking=False) is False
    waiting_reader = in_thread(late_reader.acquire, timeout=10)
    kazoo_writer.release()
    assert waiting_reader.join() is True
    # Our plain Lock and kazoo's Lock exclude each other too.
    ours = client.Lock("/plain", "ours")
    assert ours.acquire()
    assert kazoo.Lock("/plain", "theirs").acquire(blocking=False) is False
    assert kazoo.Lock("/plain").contenders() == ["ours"]


def test_read_and_write_locks_exclude_across_processes(spawn):
    readers = spawn("rwlock-rounds", "/rwp", 10, "read", "r", count=3)
    writers = spawn("rwlock-rounds", "/rwp", 6, "write", "w", count=2)
    for worker in readers + writers:
        lines = worker.finish()
        assert lines[-1].split()[0] == "done", lines


def test_semaphore_caps_holders_across_processes(connect, spawn):
    workers = spawn("semaphore", "/sem", 8, "w", 2, count=3)
    results = [w.finish() for w in workers]
    assert all(lines[-1].split()[0] == "done" for lines in results)
    assert max(int(lines[-1].split()[1]) for lines in results) <= 2

    client = connect()
    first = client.Semaphore("/sem2", "a", max_leases=2)
    second = client.Semaphore("/sem2", "b", max_leases=2)
    third = client.Semaphore("/sem2", "c", max_leases=2)
    assert first.acquire() and second.acquire()
    assert sorted(first.lease_holders()) == ["a", "b"]
    assert third.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        third.acquire(timeout=0.3)
    waiting = in_thread(third.acquire, timeout=10)
    time.sleep(0.1)
    assert first.release() is True and first.release() is False
    assert waiting.join() is True
    assert sorted(third.lease_holders()) == ["b", "c"]
    with pytest.raises(ValueError):
        client.Semaphore("/sem2", "d", max_leases=3).acquire()


# -- election -----------------------------------------------------------------


def test_election_fails_over_when_the_leader_dies(connect, spawn):
    names = ["e0", "e1", "e2"]
    workers = {}
    for name in names:
        workers[name] = spawn("election", "/election", name,
                              session_timeout=SHORT_SESSION)[0]
    leader = workers["e0"].expect("leader")
    assert leader == ["e0"]
    observer = connect().Election("/election", "observer")
    wait_for(lambda: observer.contenders() == names, message="three contenders")
    killed_at = time.monotonic()
    workers["e0"].kill()
    assert workers["e1"].expect("leader", timeout=15) == ["e1"]
    # It took the session's expiry, not a fixed delay, and only e1 took over.
    assert time.monotonic() - killed_at < 10
    assert observer.contenders() == ["e1", "e2"]
    workers["e1"].kill()
    assert workers["e2"].expect("leader", timeout=15) == ["e2"]


def test_election_run_returns_and_cancel_stops_waiting(connect):
    first, second = connect(), connect()
    election = first.Election("/el", "one")
    assert election.run(lambda x: x * 2, 21) == 42
    assert election.contenders() == []
    with pytest.raises(ValueError):
        election.run("not callable")

    inside = threading.Event()
    leave = threading.Event()
    leading = in_thread(election.run, lambda: (inside.set(), leave.wait(10)))
    assert inside.wait(10)
    rival = second.Election("/el", "two")
    waiting = in_thread(rival.run, lambda: "rival led")
    wait_for(lambda: election.contenders() == ["one", "two"], message="rival queued")
    rival.cancel()
    assert waiting.join() is None
    assert election.contenders() == ["one"]
    leave.set()
    leading.join()


# -- counter ------------------------------------------------------------------


def test_counter_concurrent_increments_from_processes(connect, spawn):
    ints = spawn("counter", "/count/int", 25, "int", count=4)
    floats = spawn("counter", "/count/float", 10, "float", count=2)
    for worker in ints + floats:
        assert worker.finish() == ["done"]
    client = connect()
    assert client.Counter("/count/int").value == 100
    assert client.Counter("/count/float", default=0.0).value == 10.0
    assert client.get("/count/int")[0] == b"100"


def test_counter_values_and_types(connect):
    client = connect()
    counter = client.Counter("/c", default=5)
    assert counter.value == 5
    counter += 3
    assert (counter.pre_value, counter.post_value, counter.value) == (5, 8, 8)
    counter -= 10
    assert counter.value == -2
    with pytest.raises(TypeError):
        counter += 1.5
    floating = client.Counter("/cf", default=0.5)
    floating += 0.25
    floating -= 1.0
    assert floating.value == pytest.approx(-0.25)
    assert isinstance(floating.value, float)
    with pytest.raises(TypeError):
        client.Counter("/bad", default="1")


# -- queues -------------------------------------------------------------------


def test_queue_fifo_priority_and_put_all(connect):
    client = connect()
    q = client.Queue("/q")
    assert q.get() is None and len(q) == 0
    for word in (b"one", b"two", b"three"):
        q.put(word)
    q.put(b"urgent", priority=1)
    q.put(b"late", priority=900)
    q.put_all([b"batch1", b"batch2"], priority=50)
    assert len(q) == 7
    taken = [q.get() for _ in range(8)]
    assert taken == [b"urgent", b"batch1", b"batch2", b"one", b"two", b"three", b"late", None]
    with pytest.raises(TypeError):
        q.put("text")
    with pytest.raises(ValueError):
        q.put(b"x", priority=1000)


def test_queue_each_entry_once_across_processes(spawn):
    producers = [spawn("queue-put", "/pq", 20, tag)[0] for tag in ("a", "b")]
    consumers = spawn("queue-get", "/pq", count=3)
    for producer in producers:
        assert producer.finish() == ["done"]
    seen = []
    for consumer in consumers:
        got = [line.split()[1] for line in consumer.finish() if line.startswith("got")]
        # What one consumer saw of one producer came out in the order it was put.
        for tag in ("a", "b"):
            mine = [item for item in got if item.startswith(tag)]
            assert mine == sorted(mine)
        seen.extend(got)
    assert sorted(seen) == sorted(f"{tag}-{i:03d}" for tag in ("a", "b") for i in range(20))


def test_locking_queue_get_consume_release(connect):
    first, second = connect(), connect()
    producer = first.LockingQueue("/lq")
    producer.put_all([b"a", b"b"])
    producer.put(b"first", priority=10)
    mine, theirs = first.LockingQueue("/lq"), second.LockingQueue("/lq")
    assert mine.holds_lock() is False and mine.consume() is False
    assert mine.get() == b"first" and mine.holds_lock()
    assert mine.get() == b"first"  # the same entry until consumed or released
    assert theirs.get() == b"a"
    assert theirs.release() is True and theirs.holds_lock() is False
    assert len(producer) == 3
    assert mine.consume() is True and len(producer) == 2
    assert theirs.get() == b"a"
    assert mine.get() == b"b"
    assert first.LockingQueue("/lq").get(timeout=0.2) is None  # everything is locked
    assert theirs.consume() and mine.consume()
    assert len(producer) == 0 and mine.get(timeout=0.1) is None
    waiting = in_thread(theirs.get, timeout=10)
    time.sleep(0.1)
    producer.put(b"new")
    assert waiting.join() == b"new"


def test_locking_queue_entry_of_a_dead_consumer_is_offered_again(connect, spawn):
    client = connect()
    q = client.LockingQueue("/lqd")
    q.put_all([b"x0", b"x1", b"x2", b"x3"])
    taker = spawn("lockingqueue-take", "/lqd", session_timeout=SHORT_SESSION)[0]
    assert taker.expect("took") == ["x0"]
    consumers = spawn("lockingqueue-consume", "/lqd", count=2)
    taker.kill()
    consumed = []
    for consumer in consumers:
        consumed.extend(line.split()[1] for line in consumer.finish(timeout=30)
                        if line.startswith("consumed"))
    assert sorted(consumed) == ["x0", "x1", "x2", "x3"]
    assert len(q) == 0


# -- barriers -------------------------------------------------------------------


def test_barrier_holds_waiters_until_removed(connect, spawn):
    client = connect()
    barrier = client.Barrier("/gate")
    assert barrier.wait(timeout=0.1) is True  # not up: nothing to wait for
    barrier.create()
    barrier.create()
    assert barrier.wait(timeout=0.2) is False
    waiters = spawn("barrier-wait", "/gate", count=3)
    time.sleep(0.3)
    removed_at = time.time()
    assert barrier.remove() is True and barrier.remove() is False
    for waiter in waiters:
        passed, at = waiter.expect("passed")
        assert passed == "True" and float(at) >= removed_at


def test_double_barrier_enters_and_leaves_together(connect, spawn):
    # Participants arrive one by one and linger for different times.
    workers = []
    for name, linger in (("p0", 0.0), ("p1", 0.4), ("p2", 0.1)):
        time.sleep(0.15)
        third_started = time.time()
        workers.extend(spawn("double-barrier", "/double", 3, name, linger))
    entered, leaving, left = [], [], []
    for worker in workers:
        name, ok, at = worker.expect("entered")
        assert ok == "True"
        entered.append(float(at))
        leaving.append(float(worker.expect("leaving")[1]))
        name, ok, at = worker.expect("left")
        assert ok == "True"
        left.append(float(at))
    assert min(entered) >= third_started  # nobody got in before the third arrived
    assert min(left) >= max(leaving)      # nobody got out before the last began leaving
    client = connect()
    assert client.get_children("/double") == []  # reusable: no members, no ready node

    lonely = client.DoubleBarrier("/double", 2, "alone")
    assert lonely.enter(timeout=0.3) is False and lonely.participating is False
    assert client.get_children("/double") == []


# -- parties --------------------------------------------------------------------


def test_party_membership_follows_processes(connect, spawn):
    client = connect()
    party = client.Party("/party", "local")
    shallow = client.ShallowParty("/shallow", "local")
    assert len(party) == 0 and list(shallow) == []
    party.join()
    shallow.join()
    members = [spawn("party", "/party", f"m{i}", "deep", session_timeout=SHORT_SESSION)[0]
               for i in range(2)]
    shallow_member = spawn("party", "/shallow", "s-0", "shallow",
                           session_timeout=SHORT_SESSION)[0]
    assert sorted(party) == ["local", "m0", "m1"] and len(party) == 3
    assert sorted(shallow) == ["local", "s-0"]
    members[0].kill()
    shallow_member.kill()
    wait_for(lambda: sorted(party) == ["local", "m1"], timeout=15, message="m0 gone")
    wait_for(lambda: list(shallow) == ["local"], timeout=15, message="s-0 gone")
    assert party.leave() is True and party.leave() is False
    assert list(party) == ["m1"] and party.participating is False
    party.join()
    party.join()  # joining twice is one membership
    assert len(party) == 2
