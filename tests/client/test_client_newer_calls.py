"""KeeperClient's newer calls: persistent and recursive watches (addWatch, SetWatches2
on reconnect), removeWatches, TTL and container creates, multiRead, getEphemerals,
getAllChildrenNumber, whoAmI, the TreeWatch helper and the recipes' container
directories.

Most tests run twice, against one nookeeper server and one Apache ZooKeeper 3.8
(TTL nodes enabled, both with a short container check interval) started once for
the module; each test works under a chroot of its own. Restarts, failovers and
servers with other settings get servers of their own.
"""

import socket
import struct
import threading
import uuid

import pytest

from freezable_proxy import FreezableProxy
from harness import ServerProcess, wait_for
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper
from nookeeper.client import EventType, KeeperClient, KeeperState, WatchedEvent
from nookeeper.client.exceptions import (
    BadArgumentsError,
    ConnectionLoss,
    InvalidArgumentsError,
    MarshallingError,
    NoNodeError,
    NoWatcherError,
    UnimplementedError,
)
from nookeeper.client.watchers import CHILD, DATA, EXIST, PERSISTENT, RECURSIVE, WatchRegistry
from nookeeper.sockio import read_exact
from nookeeper.wire.ops import OpCode

INTERVAL_MS = 200
CREATED, DELETED, CHANGED, CHILDREN = (EventType.CREATED, EventType.DELETED, EventType.CHANGED,
                                       EventType.CHILD)


# -- servers and clients --------------------------------------------------------


@pytest.fixture(scope="module")
def nookeeper_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("nookeeper"),
                           container_check_interval_ms=INTERVAL_MS)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def zookeeper_server(tmp_path_factory):
    reason = missing_zookeeper()
    if reason:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
    zk = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper"), tick_ms=200,
                          min_session_timeout_ms=400, max_session_timeout_ms=30000,
                          extended_types=True,
                          jvm_flags=(f"-Dznode.container.checkIntervalMs={INTERVAL_MS}",))
    try:
        yield zk.start()
    finally:
        zk.kill()


@pytest.fixture(params=["nookeeper", "zookeeper"])
def target(request):
    """The module's server of one implementation; `.name`, `.hosts`."""
    server = request.getfixturevalue(f"{request.param}_server")
    server.name = request.param
    return server


@pytest.fixture
def clients():
    made = []
    yield made
    for client in made:
        client.stop()


def connect(clients, hosts, chroot="", **kwargs):
    client = KeeperClient(hosts + chroot, **{"timeout": 10, **kwargs})
    clients.append(client)
    client.start(timeout=15)
    return client


@pytest.fixture
def chroot():
    return "/t" + uuid.uuid4().hex[:12]


@pytest.fixture
def zk(target, clients, chroot):
    """A client of the target inside a fresh chroot of its own."""
    client = connect(clients, target.hosts, chroot)
    client.ensure_path("/")
    return client


class Events:
    """A watch callback that records (type, path) of each event."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def __call__(self, event):
        with self._lock:
            self.events.append(event)

    @property
    def seen(self):
        with self._lock:
            return [(event.type, event.path) for event in self.events]


def settle(client):
    """Wait until the watcher thread has run every callback posted so far: a
    reply's rawlink is posted after the events that came before the reply."""
    done = threading.Event()
    client.exists_async("/").rawlink(lambda result: done.set())
    assert done.wait(10), "the watcher thread did not get through its queue"


def eventually(predicate, timeout=10.0):
    try:
        return bool(wait_for(predicate, timeout))
    except AssertionError:
        return False


# -- the client's watch tables, without a server --------------------------------------


def test_registry_fires_persistent_watches_without_forgetting_them():
    registry = WatchRegistry()
    once, persistent, recursive = object(), object(), object()
    registry.add(DATA, "/a", once)
    registry.add(PERSISTENT, "/a", persistent)
    registry.add(RECURSIVE, "/", recursive)
    registry.add(RECURSIVE, "/a", recursive)

    assert set(registry.fired(CHANGED, "/a")) == {once, persistent, recursive}
    assert registry.fired(CHANGED, "/a").count(recursive) == 1
    assert set(registry.fired(CHANGED, "/a")) == {persistent, recursive}
    assert registry.fired(CREATED, "/a/b/c") == [recursive]
    # Children changing reaches a persistent watch on the path, never a recursive one.
    assert registry.fired(CHILDREN, "/a") == [persistent]
    assert registry.fired(CHILDREN, "/a/b") == []
    assert registry.paths() == ([], [], [], ["/a"], ["/", "/a"])


def test_registry_removes_by_watcher_type_and_discards_one_callback():
    registry = WatchRegistry()
    first, second = object(), object()
    for table in (DATA, EXIST, CHILD, PERSISTENT, RECURSIVE):
        registry.add(table, "/p", first)
    registry.add(RECURSIVE, "/p", second)

    assert registry.remove((CHILD,), "/p") == 1
    assert registry.remove((CHILD,), "/p") == 0
    assert registry.remove((DATA, EXIST), "/p") == 2
    assert registry.discard(RECURSIVE, "/p", first) is True, "second still watches"
    assert registry.discard(RECURSIVE, "/p", second) is False
    assert registry.paths() == ([], [], [], ["/p"], [])


# -- persistent and recursive watches ------------------------------------------------


def test_a_persistent_watch_hears_its_node_and_its_children_and_stays(zk):
    zk.create("/w")
    events = Events()
    assert zk.add_watch("/w", events) is True

    zk.create("/w/y")
    zk.set("/w", b"1")
    zk.create("/w/y/z")
    zk.set("/w/y", b"2")
    zk.delete("/w/y/z")
    zk.delete("/w/y")
    zk.set("/w", b"3")
    zk.delete("/w")
    zk.create("/w", b"again")
    settle(zk)

    assert events.seen == [(CHILDREN, "/w"), (CHANGED, "/w"), (CHILDREN, "/w"), (CHANGED, "/w"),
                           (DELETED, "/w"), (CREATED, "/w")]
    assert events.events[0] == WatchedEvent(CHILDREN, KeeperState.CONNECTED, "/w")


def test_a_recursive_watch_hears_every_node_below_but_never_children_changing(zk):
    zk.create("/w")
    tree, kids, absent = Events(), Events(), Events()
    zk.add_watch("/w", tree, recursive=True)
    zk.add_watch("/absent", absent, recursive=True)

    zk.create("/w/y")
    zk.get_children("/w/y", watch=kids)
    zk.create("/w/y/z")
    zk.set("/w/y/z", b"x")
    zk.set("/w", b"1")
    zk.delete("/w/y/z")
    zk.create("/elsewhere")
    zk.create("/absent")
    zk.create("/absent/x")
    settle(zk)

    # The spec's live example (§9.4), plus a child watch on a descendant whose
    # NodeChildrenChanged the recursive watch must not hear.
    assert tree.seen == [(CREATED, "/w/y"), (CREATED, "/w/y/z"), (CHANGED, "/w/y/z"),
                         (CHANGED, "/w"), (DELETED, "/w/y/z")]
    assert kids.seen == [(CHILDREN, "/w/y")]
    assert absent.seen == [(CREATED, "/absent"), (CREATED, "/absent/x")]


def test_nookeeper_keeps_every_kind_of_watch_on_one_path_apart(nookeeper_server, clients, chroot):
    """ZooKeeper 3.8 keeps one mode per path and connection (3.9 keeps them apart)."""
    zk = connect(clients, nookeeper_server.hosts, chroot)
    zk.ensure_path("/w")
    once, node, tree = Events(), Events(), Events()
    zk.add_watch("/w", node)
    zk.add_watch("/w", tree, recursive=True)
    zk.get("/w", watch=once)

    zk.set("/w", b"1")
    zk.create("/w/x")
    zk.set("/w", b"2")
    settle(zk)

    assert once.seen == [(CHANGED, "/w")]
    assert node.seen == [(CHANGED, "/w"), (CHILDREN, "/w"), (CHANGED, "/w")]
    assert tree.seen == [(CHANGED, "/w"), (CREATED, "/w/x"), (CHANGED, "/w")]


def test_add_watch_checks_its_callback(zk):
    with pytest.raises(TypeError):
        zk.add_watch("/w", "not callable")


@pytest.fixture(params=["nookeeper", "zookeeper"])
def restartable(request):
    """A standalone server of its own, to be restarted."""
    if request.param == "nookeeper":
        return request.getfixturevalue("server_factory")()
    return request.getfixturevalue("zookeeper_factory")()


def test_persistent_watches_come_back_after_a_server_restart(restartable, clients):
    client = connect(clients, restartable.hosts)
    states = []
    client.add_listener(states.append)
    client.create("/r")
    client.create("/p")
    tree, node = Events(), Events()
    # Different paths: ZooKeeper 3.8 keeps one watch mode per path and connection.
    client.add_watch("/r", tree, recursive=True)
    client.add_watch("/p", node)
    client.create("/view/a", b"a", makepath=True)
    listener = TreeEvents()
    view = client.TreeWatch("/view", listener).start()

    restartable.restart()
    wait_for(lambda: client.connected and states[-1:] == [KeeperState.CONNECTED],
             timeout=30, message=f"connected again (have {states})")
    assert KeeperState.SUSPENDED in states and KeeperState.LOST not in states

    client.retry(client.create, "/r/a")
    client.set("/p", b"1")
    client.create("/p/c")
    settle(client)
    # Re-registered by SetWatches2, each once.
    assert tree.seen == [(CREATED, "/r/a")]
    assert node.seen == [(CHANGED, "/p"), (CHILDREN, "/p")]

    client.set("/view/a", b"a2")
    client.create("/view/b", b"b")
    assert eventually(lambda: converged(view, listener, client, "/view")), view.snapshot()
    assert listener.events == [(CREATED, "/view"), (CREATED, "/view/a"), (CHANGED, "/view/a"),
                               (CREATED, "/view/b")]


def test_persistent_watches_follow_the_session_through_a_failover(ensemble_factory, clients):
    ensemble = ensemble_factory(3)
    leader = ensemble.leader()
    others = [server for server in ensemble.servers.values() if server is not leader]
    hosts = ",".join(server.hosts for server in [leader] + others)
    client = connect(clients, hosts, "/app", timeout=15, randomize_hosts=False)
    assert client.current_host[1] == leader.port
    client.ensure_path("/")
    states = []
    client.add_listener(states.append)
    client.create("/r")
    client.create("/p")
    tree, node = Events(), Events()
    client.add_watch("/r", tree, recursive=True)
    client.add_watch("/p", node)

    leader.kill()
    wait_for(lambda: client.connected and states[-1:] == [KeeperState.CONNECTED],
             timeout=60, message=f"connected again (have {states})")
    assert KeeperState.LOST not in states

    writer = connect(clients, ",".join(server.hosts for server in others), "/app")
    writer.retry(writer.create, "/r/a")
    writer.set("/p", b"1")
    writer.create("/r/last")
    wait_for(lambda: (CREATED, "/r/last") in tree.seen, timeout=20,
             message=f"the last event (have {tree.seen})")
    settle(client)
    assert tree.seen == [(CREATED, "/r/a"), (CREATED, "/r/last")]
    assert node.seen == [(CHANGED, "/p")]


# -- removeWatches --------------------------------------------------------------


def test_remove_watches_by_kind_here_and_on_the_server(zk):
    zk.create("/a")
    data, children, persistent = Events(), Events(), Events()
    zk.get("/a", watch=data)
    zk.exists("/a/later", watch=data)
    zk.get_children("/a", watch=children)
    zk.add_watch("/b", persistent)

    assert zk.remove_watches("/a", "data") is True
    with pytest.raises(NoWatcherError):
        zk.remove_watches("/a", "data")
    assert zk.remove_watches("/a/later", 2) is True
    zk.set("/a", b"1")
    zk.create("/a/later")
    settle(zk)
    assert data.seen == []
    assert children.seen == [(CHILDREN, "/a")], "the child watch was another kind"

    zk.create("/b")
    assert zk.remove_watches("/b", "any") is True
    zk.set("/b", b"1")
    zk.get_children("/a", watch=children)
    assert zk.remove_watches("/a", "children") is True
    zk.create("/a/more")
    settle(zk)
    assert persistent.seen == [(CREATED, "/b")]
    assert children.seen == [(CHILDREN, "/a")]

    with pytest.raises(NoWatcherError):
        zk.remove_watches("/nothing", "any")
    for kind in ("everything", 0, 6, True, None):
        with pytest.raises(ValueError):
            zk.remove_watches("/a", kind)


def test_remove_watches_of_one_persistent_kind(zk, target):
    zk.create("/k")
    node, tree = Events(), Events()
    zk.add_watch("/k", node)
    zk.add_watch("/k/sub", tree, recursive=True)
    if target.name == "zookeeper":
        # ZooKeeper 3.8's WatcherType stops at Any; 4 and 5 came with 3.9.
        with pytest.raises(MarshallingError):
            zk.remove_watches("/k", "persistent")
        zk.set("/k", b"1")
        settle(zk)
        assert node.seen == [(CHANGED, "/k")], "refused, so the watch is still here"
        return
    assert zk.remove_watches("/k", "persistent") is True
    with pytest.raises(NoWatcherError):
        zk.remove_watches("/k", "persistent_recursive")
    assert zk.remove_watches("/k/sub", 5) is True
    zk.set("/k", b"1")
    zk.create("/k/sub")
    settle(zk)
    assert node.seen == [] and tree.seen == []


# -- TTL and container nodes --------------------------------------------------------


def test_ttl_and_container_nodes(zk):
    assert zk.create("/ttl", b"t", ttl=300) == "/ttl"
    path, stat = zk.create("/seq-", ttl=60000, sequence=True, include_data=True)
    assert path.startswith("/seq-") and len(path) == len("/seq-") + 10
    # Both servers show a TTL or container node's ephemeralOwner as 0.
    assert stat.ephemeralOwner == 0 and zk.exists("/ttl").ephemeralOwner == 0
    assert zk.create_async("/ttl2", ttl=300).get() == "/ttl2"
    assert zk.create("/c", container=True) == "/c"
    zk.create("/c/child")
    zk.create("/never", container=True)
    txn = zk.transaction()
    txn.create("/tc", container=True)
    txn.create("/tt", ttl=60000)
    txn.create("/tc/x")
    assert txn.commit() == ["/tc", "/tt", "/tc/x"]
    zk.delete("/tc/x")
    zk.delete("/c/child")

    # The servers remove them: TTL nodes untouched past their TTL, containers emptied.
    for gone in ("/ttl", "/ttl2", "/c", "/tc"):
        assert eventually(lambda: zk.exists(gone) is None), f"{gone} is still there"
    for kept in ("/never", "/tt", path):
        assert zk.exists(kept) is not None, f"{kept} went"


@pytest.mark.parametrize("arguments", [
    {"ttl": 1000, "ephemeral": True},
    {"ttl": 1000, "container": True},
    {"container": True, "sequence": True},
    {"container": True, "ephemeral": True},
    {"ttl": 0},
    {"ttl": -5},
    {"ttl": 1 << 40},
])
def test_create_refuses_what_zookeeper_has_no_mode_for(arguments):
    client = KeeperClient("127.0.0.1:1")  # never started: nothing may be sent
    with pytest.raises(InvalidArgumentsError) as caught:
        client.create("/x", **arguments)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BadArgumentsError)
    with pytest.raises(InvalidArgumentsError):
        client.transaction().create("/x", **arguments)
    with pytest.raises(TypeError):
        client.create("/x", ttl="1000")


@pytest.fixture(params=["nookeeper", "zookeeper"])
def without_ttl(request):
    """A server that has TTL nodes turned off (ZooKeeper's default)."""
    if request.param == "nookeeper":
        return request.getfixturevalue("server_factory")(ttl_nodes=False)
    return request.getfixturevalue("zookeeper_factory")()


def test_a_server_without_ttl_nodes_refuses_them(without_ttl, clients):
    client = connect(clients, without_ttl.hosts)
    with pytest.raises(UnimplementedError):
        client.create("/t", ttl=1000)
    assert client.exists("/t") is None
    assert client.create("/plain") == "/plain", "the connection stays"


# -- multiRead, getEphemerals, getAllChildrenNumber, whoAmI --------------------------------


def test_read_transaction_answers_each_read(zk):
    zk.create("/r", b"root")
    zk.create("/r/a", b"A")
    zk.create("/r/b")
    txn = zk.read_transaction()
    txn.get("/r/a")
    txn.get_children("/r")
    txn.get("/r/missing")
    txn.get_children("/r/missing")
    txn.get_children("/r/b")

    got = txn.commit()

    data, stat = got[0]
    assert (data, stat) == zk.get("/r/a")
    assert sorted(got[1]) == ["a", "b"]
    assert isinstance(got[2], NoNodeError) and isinstance(got[3], NoNodeError)
    assert got[4] == []
    with pytest.raises(ValueError):
        txn.commit()
    assert zk.read_transaction().commit() == []


def test_a_transaction_takes_reads_or_writes_not_both(zk):
    zk.create("/m", b"m")
    reads = zk.transaction()
    reads.get("/m")
    with pytest.raises(ValueError):
        reads.create("/m/x")
    assert [result[0] for result in reads.commit()] == [b"m"]
    writes = zk.transaction()
    writes.set_data("/m", b"n")
    with pytest.raises(ValueError):
        writes.get("/m")
    with pytest.raises(ValueError):
        zk.read_transaction().delete("/m")
    assert writes.commit()[0].version == 1


def test_get_ephemerals_children_number_and_whoami(zk, target, clients, chroot):
    zk.create("/e")
    zk.create("/e/one", ephemeral=True)
    zk.create("/e/two", ephemeral=True)
    zk.create("/eternal")
    zk.create("/x", ephemeral=True)
    other = connect(clients, target.hosts, chroot)
    other.create("/e/theirs", ephemeral=True)

    assert sorted(zk.get_ephemerals()) == ["/e/one", "/e/two", "/x"]
    assert sorted(zk.get_ephemerals("/e")) == ["/e/one", "/e/two"], "a plain string prefix"
    assert zk.get_ephemerals("/nothing") == []
    assert other.get_ephemerals() == ["/e/theirs"]

    assert zk.get_all_children_number("/e") == 3
    assert zk.get_all_children_number("/") == 6
    assert zk.get_all_children_number("/x") == 0
    with pytest.raises(NoNodeError):
        zk.get_all_children_number("/missing")

    assert zk.whoami() == [("ip", "127.0.0.1")]
    zk.add_auth("digest", "alice:secret")
    assert sorted(zk.whoami()) == [("digest", "alice"), ("ip", "127.0.0.1")]


# -- TreeWatch ----------------------------------------------------------------


def read_tree(client, path):
    """{path: (data, stat)} of a subtree read directly."""
    data, stat = client.get(path)
    nodes = {path: (data, stat)}
    for name in client.get_children(path):
        nodes.update(read_tree(client, path.rstrip("/") + "/" + name))
    return nodes


class TreeEvents:
    """A TreeWatch listener that also replays its events into a view of its own."""

    def __init__(self):
        self.events = []
        self.replayed = {}

    def __call__(self, event_type, path, data):
        self.events.append((event_type, path))
        if event_type == DELETED:
            del self.replayed[path]
        else:
            self.replayed[path] = data


def converged(view, listener, client, path):
    """The view holds exactly what the server has, and the listener heard all of it."""
    try:
        actual = read_tree(client, path)
    except NoNodeError:
        actual = {}
    return (view.snapshot() == actual
            and listener.replayed == {p: data for p, (data, _) in actual.items()})


def test_tree_watch_follows_a_mix_of_writes(zk):
    zk.create("/tree", b"root")
    zk.create("/tree/old", b"o")
    listener = TreeEvents()
    view = zk.TreeWatch("/tree", listener).start()
    assert set(view.snapshot()) == {"/tree", "/tree/old"}, "loaded before start() returns"
    assert view.get("/tree/old") == zk.get("/tree/old")

    zk.create("/tree/a", b"1")
    zk.create("/tree/a/b", b"2")
    zk.set("/tree/a", b"1b")
    zk.create("/tree/c/d/e", b"deep", makepath=True)
    zk.delete("/tree/a/b")
    zk.set("/tree", b"root2")
    zk.delete("/tree/old")
    zk.create("/tree/f", b"f", ephemeral=True)
    zk.delete("/tree/c", recursive=True)
    zk.create("/outside")

    assert eventually(lambda: converged(view, listener, zk, "/tree")), view.snapshot()
    assert view.children("/tree") == ["a", "f"]
    assert view.children("/tree/a") == []
    assert view.children("/tree/c") is None and view.get("/tree/c") is None
    assert (DELETED, "/tree/a/b") in listener.events
    assert (DELETED, "/tree/c/d/e") in listener.events
    assert "/outside" not in view.snapshot()

    view.close()
    zk.set("/tree", b"after")
    zk.create("/tree/late")
    settle(zk)
    assert view.get("/tree")[0] == b"root2" and view.get("/tree/late") is None


def test_tree_watch_of_a_missing_node_waits_for_it(zk):
    listener = TreeEvents()
    with zk.TreeWatch("/later", listener) as view:
        assert view.snapshot() == {} and view.children("/later") is None
        zk.create("/later/x/y", b"y", makepath=True)
        assert eventually(lambda: converged(view, listener, zk, "/later"))
        zk.delete("/later", recursive=True)
        assert eventually(lambda: view.snapshot() == {} and listener.replayed == {})


def test_tree_watch_reloads_what_it_missed_while_disconnected(target, clients, chroot):
    """Changes made while its connection was cut reach the view after the reconnect."""
    setup = connect(clients, target.hosts, chroot)
    setup.ensure_path("/tree/a")
    setup.create("/tree/b", b"b")
    proxy = FreezableProxy("127.0.0.1", target.port)
    try:
        # Through the proxy first; once it is gone, straight to the server.
        watcher = connect(clients, f"{proxy.hosts},{target.hosts}", chroot,
                          randomize_hosts=False)
        states = []
        watcher.add_listener(states.append)
        listener = TreeEvents()
        view = watcher.TreeWatch("/tree", listener).start()

        proxy.freeze()
        setup.set("/tree/a", b"changed")
        setup.delete("/tree/b")
        setup.create("/tree/new", b"n")
        proxy.close()  # the events held in the proxy are lost with it
        wait_for(lambda: watcher.connected and KeeperState.SUSPENDED in states,
                 message=f"reconnected (have {states})")
        assert eventually(lambda: converged(view, listener, setup, "/tree")), view.snapshot()
        assert KeeperState.LOST not in states
        assert {(CHANGED, "/tree/a"), (DELETED, "/tree/b"), (CREATED, "/tree/new")} <= set(
            listener.events)

        # The watch itself came back with the session (SetWatches2).
        setup.set("/tree/new", b"n2")
        assert eventually(lambda: view.get("/tree/new")[0] == b"n2")
    finally:
        proxy.close()


def test_tree_watch_sets_its_watch_again_after_the_session_is_lost(target, clients, chroot):
    setup = connect(clients, target.hosts, chroot)
    setup.ensure_path("/tree")
    setup.create("/tree/a", b"a")
    proxy = FreezableProxy("127.0.0.1", target.port)
    try:
        watcher = connect(clients, proxy.hosts, chroot, timeout=1)
        states = []
        watcher.add_listener(states.append)
        watcher.create("/mine", ephemeral=True)
        listener = TreeEvents()
        view = watcher.TreeWatch("/tree", listener).start()

        proxy.freeze()
        wait_for(lambda: setup.exists("/mine") is None, message="the frozen session expiring")
        setup.set("/tree/a", b"while lost")
        setup.create("/tree/b", b"b")
        proxy.thaw()
        wait_for(lambda: KeeperState.LOST in states and watcher.connected,
                 message=f"a new session (have {states})")
        assert eventually(lambda: converged(view, listener, setup, "/tree")), view.snapshot()

        setup.create("/tree/c", b"c")
        assert eventually(lambda: converged(view, listener, setup, "/tree")), view.snapshot()
    finally:
        proxy.close()


# -- recipes' directories are containers --------------------------------------------------


def test_recipe_directories_are_containers_the_server_removes(zk):
    lock = zk.Lock("/locks/job", "me")
    with lock:
        pass
    zk.Election("/elections/leader", "me").run(lambda: None)
    party = zk.Party("/parties/p", "me")
    party.join()
    party.leave()
    barrier = zk.DoubleBarrier("/barriers/d", 1)
    assert barrier.enter(timeout=5) and barrier.leave(timeout=5)
    gate = zk.Barrier("/gates/g")
    gate.create()
    assert gate.remove()
    queue = zk.Queue("/queues/q")
    queue.put(b"job")
    assert queue.get() == b"job"
    locking = zk.LockingQueue("/queues/lq")
    locking.put(b"job")
    assert locking.get(timeout=5) == b"job" and locking.consume()
    with zk.Semaphore("/pools/s", "me"):
        pass

    for gone in ("/locks", "/elections", "/parties", "/barriers", "/gates", "/queues",
                 "/pools/s-__lock__"):
        assert eventually(lambda: zk.exists(gone) is None), f"{gone} is still there"
    # The semaphore's pool keeps its max_leases; the chroot node is never a container.
    assert zk.get("/pools/s")[0] == b"1"
    assert zk.exists("/") is not None

    # Used again, each makes its directory again.
    with zk.Lock("/locks/job", "me"):
        assert zk.Lock("/locks/job").contenders() == ["me"]
    queue.put(b"again")
    assert len(queue) == 1 and queue.get() == b"again"
    assert queue.get() is None
    locking.put(b"again")
    assert locking.get(timeout=5) == b"again" and locking.consume()
    party.join()
    assert list(party) == ["me"]


class ContainerRefusingProxy:
    """Forwards a client to a server with TTL nodes off, turning each createContainer
    into a createTTL the server answers UNIMPLEMENTED (-6): a server without
    containers, as far as the client can tell."""

    def __init__(self, port):
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.hosts = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.refused = 0
        self._sockets = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()

    @staticmethod
    def _down(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def _up(self, source, target):
        try:
            first = True
            while True:
                (length,) = struct.unpack(">i", read_exact(source, 4))
                payload = read_exact(source, length)
                xid, opcode = struct.unpack_from(">ii", payload)
                if not first and opcode == OpCode.CREATE_CONTAINER:
                    self.refused += 1
                    payload = struct.pack(">ii", xid, OpCode.CREATE_TTL) + payload[8:] \
                        + struct.pack(">q", 1000)
                first = False
                target.sendall(struct.pack(">i", len(payload)) + payload)
        except (OSError, ConnectionLoss):
            pass


def test_recipes_use_plain_directories_on_a_server_without_containers(server_factory, clients):
    server = server_factory(ttl_nodes=False, container_check_interval_ms=INTERVAL_MS)
    proxy = ContainerRefusingProxy(server.port)
    try:
        client = connect(clients, proxy.hosts)
        with client.Lock("/locks/job", "me"):
            pass
        assert proxy.refused == 1
        party = client.Party("/parties/p", "me")
        party.join()
        party.leave()
        assert proxy.refused == 1, "asked once, then plain nodes only"
        assert not eventually(lambda: client.exists("/locks") is None, timeout=4 * INTERVAL_MS / 1000)
        assert client.exists("/parties/p") is not None
    finally:
        proxy.close()
