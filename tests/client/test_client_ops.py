"""nookeeper.client's calls, results and errors against a real server.

Every test runs twice through the `backend` fixture (tests/client/conftest.py):
once against a nookeeper-server process and once against Apache ZooKeeper,
so the client is checked against the reference server and not only ours.
"""

import sys
import threading
import time

import pytest

from harness import wait_for
from nookeeper.client import (
    AsyncResult,
    EventType,
    KeeperClient,
    KeeperState,
    WatchedEvent,
    ZnodeStat,
)
from nookeeper.client.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    ConnectionClosedError,
    KeeperTimeoutError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from nookeeper.client.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

WATCHER_THREAD = "nookeeper-watcher"


@pytest.fixture
def connect(backend):
    """Start clients on the backend; all stopped at teardown."""
    clients = []

    def make(suffix="", **kwargs):
        client = KeeperClient(backend.hosts + suffix, **{"timeout": 10, **kwargs})
        clients.append(client)
        client.start(timeout=15)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def zk(connect):
    return connect()


class Recorder:
    """Collects callback arguments with the thread each ran on."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, *args):
        with self.lock:
            self.calls.append((threading.current_thread().name,) + args)

    def events(self):
        return [call[1] for call in self.calls]

    def wait(self, count, timeout=10):
        wait_for(lambda: len(self.calls) >= count, timeout=timeout,
                 message=f"{count} callbacks (have {self.calls})")
        return self.calls


# -- CRUD ---------------------------------------------------------------


def test_create_get_set_delete_with_versions(zk):
    assert zk.create("/crud", b"one") == "/crud"
    data, stat = zk.get("/crud")
    assert data == b"one"
    assert isinstance(stat, ZnodeStat)
    assert (stat.version, stat.dataLength, stat.numChildren) == (0, 3, 0)
    assert stat.owner_session_id is None
    assert stat.created == stat.ctime / 1000.0

    stat = zk.set("/crud", b"two", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set("/crud", b"three", version=0)
    assert zk.set("/crud", b"three").version == 2
    assert zk.get("/crud")[0] == b"three"

    with pytest.raises(NodeExistsError):
        zk.create("/crud", b"")
    with pytest.raises(BadVersionError):
        zk.delete("/crud", version=1)
    assert zk.delete("/crud", version=2) is True
    assert zk.exists("/crud") is None
    with pytest.raises(NoNodeError):
        zk.get("/crud")
    with pytest.raises(NoNodeError):
        zk.set("/crud", b"")
    with pytest.raises(NoNodeError):
        zk.delete("/crud")


def test_create_include_data_and_children_include_data(zk):
    path, stat = zk.create("/withstat", b"abc", include_data=True)
    assert path == "/withstat"
    assert stat.dataLength == 3 and stat.version == 0
    zk.create("/withstat/x")
    zk.create("/withstat/y")
    assert sorted(zk.get_children("/withstat")) == ["x", "y"]
    children, stat = zk.get_children("/withstat", include_data=True)
    assert sorted(children) == ["x", "y"]
    assert stat.numChildren == 2 and stat.children_count == 2
    assert zk.exists("/withstat").numChildren == 2


def test_makepath_ensure_path_and_recursive_delete(zk):
    with pytest.raises(NoNodeError):
        zk.create("/deep/a/b", b"x")
    assert zk.create("/deep/a/b", b"x", makepath=True) == "/deep/a/b"
    assert zk.get("/deep/a")[0] == b""
    assert zk.ensure_path("/deep/a/b/c/d") is True
    assert zk.ensure_path("/deep/a/b/c/d") is True
    assert zk.exists("/deep/a/b/c/d") is not None
    assert zk.get("/deep/a/b")[0] == b"x"

    with pytest.raises(NotEmptyError):
        zk.delete("/deep")
    assert zk.delete("/deep", recursive=True) is True
    assert zk.exists("/deep") is None
    assert zk.delete("/deep", recursive=True) is True


def test_ephemeral_and_sequence_nodes(connect):
    owner = connect()
    other = connect()
    owner.create("/seq")
    first = owner.create("/seq/item-", b"a", sequence=True)
    second = owner.create("/seq/item-", b"b", sequence=True, ephemeral=True)
    assert first == "/seq/item-0000000000"
    assert second == "/seq/item-0000000001"
    assert owner.create("/seq/", sequence=True) == "/seq/0000000002"
    stat = other.exists(second)
    assert stat.ephemeralOwner == owner.client_id[0]
    assert stat.owner_session_id == owner.client_id[0]
    owner.create("/seq/eph", ephemeral=True)

    owner.stop()
    assert sorted(other.get_children("/seq")) == ["0000000002", "item-0000000000"]
    assert owner.state == KeeperState.LOST
    assert owner.client_id is None


def test_values_must_be_bytes(zk):
    with pytest.raises(TypeError):
        zk.create("/text", "not bytes")
    with pytest.raises(TypeError):
        zk.create(42)
    zk.create("/bytearray", bytearray(b"ok"))
    assert zk.get("/bytearray")[0] == b"ok"


def test_bad_paths_are_refused_by_the_server(zk):
    with pytest.raises(BadArgumentsError):
        zk.create("/.")
    with pytest.raises(BadArgumentsError):
        zk.create("/nul\u0000")


def test_errors_have_kazoos_names_codes_and_families():
    import kazoo.exceptions as kazoo_errors

    from nookeeper.client import exceptions

    checked = 0
    for name, theirs in vars(kazoo_errors).items():
        # Skip kazoo's own base class and its "...Exception" aliases.
        if not isinstance(theirs, type) or theirs.__name__ != name or name == "KazooException":
            continue
        ours = getattr(exceptions, name, None)
        if ours is None:
            continue
        checked += 1
        if hasattr(theirs, "code"):
            assert ours.code == theirs.code, name
        for base in theirs.__mro__[1:]:
            if hasattr(exceptions, base.__name__) and base.__name__ != "KazooException":
                assert issubclass(ours, getattr(exceptions, base.__name__)), (name, base)
        if theirs.__bases__ == (kazoo_errors.ZookeeperError,):
            assert type(exceptions.error_from_code(theirs.code)) is ours
    every_code = {cls.code for cls in vars(kazoo_errors).values()
                  if isinstance(cls, type) and hasattr(cls, "code")}
    # Every error kazoo has a code for, the client-side ones kazoo users catch, and the base.
    assert all(type(exceptions.error_from_code(code)).code == code for code in every_code)
    for name in ("ZookeeperError", "ConnectionClosedError", "CancelledError", "LockTimeout"):
        assert hasattr(exceptions, name), name
    assert checked >= len(every_code) + 3


# -- watches ------------------------------------------------------------


def test_watches_fire_on_the_watcher_thread_in_change_order(zk):
    seen = Recorder()
    zk.create("/w")
    assert zk.exists("/w/a", watch=seen) is None
    zk.get_children("/w", watch=seen)
    zk.create("/w/a", b"1")
    seen.wait(2)

    zk.get("/w/a", watch=seen)
    zk.set("/w/a", b"2")
    seen.wait(3)

    zk.exists("/w/a", watch=seen)
    zk.get_children("/w", watch=seen)
    zk.delete("/w/a")
    calls = seen.wait(5)

    assert {thread for thread, *_ in calls} == {WATCHER_THREAD}
    assert seen.events() == [
        WatchedEvent(EventType.CREATED, KeeperState.CONNECTED, "/w/a"),
        WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, "/w"),
        WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/w/a"),
        WatchedEvent(EventType.DELETED, KeeperState.CONNECTED, "/w/a"),
        WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, "/w"),
    ]


def test_watches_are_one_shot_and_one_call_per_event(zk):
    seen = Recorder()
    zk.create("/once", b"")
    zk.get("/once", watch=seen)
    zk.exists("/once", watch=seen)
    zk.get("/once", watch=seen)
    zk.set("/once", b"1")
    zk.set("/once", b"2")
    zk.sync("/")
    time.sleep(0.3)
    assert seen.events() == [WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/once")]


def test_child_watch_fires_deleted_when_its_node_goes(zk):
    seen = Recorder()
    zk.create("/parent")
    zk.get_children("/parent", watch=seen)
    zk.delete("/parent")
    seen.wait(1)
    assert seen.events() == [WatchedEvent(EventType.DELETED, KeeperState.CONNECTED, "/parent")]


def test_a_write_by_another_client_is_seen_by_the_watch_before_the_reply(connect):
    watcher, writer = connect(), connect()
    watcher.create("/other", b"0")
    seen = Recorder()
    watcher.get("/other", watch=seen)
    writer.set("/other", b"1")
    seen.wait(1)
    assert seen.events()[0].type == EventType.CHANGED


def test_a_restarted_watcher_thread_never_shares_work_with_a_stuck_one():
    from nookeeper.client.watchers import CallbackThread

    callbacks = CallbackThread("cb-test")
    callbacks.start()
    release, ran = threading.Event(), []
    callbacks.post(release.wait, 10)
    callbacks.stop(timeout=0.1)  # gives up waiting: the thread is stuck
    callbacks.start()
    for i in range(3):
        callbacks.post(lambda i=i: ran.append((i, threading.current_thread())))
    wait_for(lambda: len(ran) == 3)
    threads = {thread for _, thread in ran}
    assert [i for i, _ in ran] == [0, 1, 2] and len(threads) == 1
    new_thread = threads.pop()
    assert new_thread.is_alive() and new_thread is not threading.current_thread()
    release.set()
    # A callback that raises, even SystemExit, does not end the thread.
    callbacks.post(sys.exit, 3)
    callbacks.post(lambda: ran.append((3, threading.current_thread())))
    wait_for(lambda: len(ran) == 4)
    assert ran[3][1] is new_thread
    callbacks.stop(timeout=5)
    assert not new_thread.is_alive()


def test_watch_must_be_callable(zk):
    with pytest.raises(TypeError):
        zk.get("/", watch="nope")


def test_data_watch_follows_a_node_through_creation_changes_and_deletion(zk):
    calls = Recorder()

    @zk.DataWatch("/dw")
    def changed(data, stat, event):
        calls(data, stat.version if stat else None, event.type if event else None)

    assert calls.calls == [(WATCHER_THREAD, None, None, None)]
    zk.create("/dw", b"a")
    calls.wait(2)
    zk.set("/dw", b"b")
    calls.wait(3)
    zk.delete("/dw")
    calls.wait(4)
    assert [call[1:] for call in calls.calls] == [
        (None, None, None),
        (b"a", 0, EventType.CREATED),
        (b"b", 1, EventType.CHANGED),
        (None, None, EventType.DELETED),
    ]


def test_data_watch_two_argument_function_and_stopping_with_false(zk):
    zk.create("/dw2", b"0")
    seen = []

    def changed(data, stat):
        seen.append(data)
        return data != b"2"

    zk.DataWatch("/dw2", changed)
    for value in (b"1", b"2"):
        zk.set("/dw2", value)
        wait_for(lambda: value in seen, message=f"{value} in {seen}")
    # Set after the DataWatch re-armed, this watch fires on the same change
    # and runs after it on the watcher thread: once it has run, so has the DataWatch.
    after = Recorder()
    zk.exists("/dw2", watch=after)
    zk.set("/dw2", b"3")
    after.wait(1)
    assert seen == [b"0", b"1", b"2"]


def test_children_watch_reports_membership_and_stops_when_told(zk):
    zk.create("/cw")
    seen = Recorder()

    def children(names, event):
        seen(sorted(names), event.type if event else None)
        return "stop" not in names

    zk.ChildrenWatch("/cw", children, send_event=True)
    zk.create("/cw/a")
    seen.wait(2)
    zk.create("/cw/b")
    seen.wait(3)
    zk.create("/cw/stop")
    seen.wait(4)
    after = Recorder()
    zk.get_children("/cw", watch=after)
    zk.create("/cw/after")
    after.wait(1)
    assert [call[1:] for call in seen.calls] == [
        ([], None),
        (["a"], EventType.CHILD),
        (["a", "b"], EventType.CHILD),
        (["a", "b", "stop"], EventType.CHILD),
    ]
    assert {call[0] for call in seen.calls} == {WATCHER_THREAD}


def test_children_watch_on_a_missing_node_never_calls(zk):
    seen = []
    zk.ChildrenWatch("/nothing-here", seen.append)
    assert seen == []


# -- transactions -------------------------------------------------------


def test_transaction_commits_every_op(zk):
    zk.create("/tx", b"v0")
    zk.create("/tx/old")
    tx = zk.transaction()
    tx.create("/tx/new", b"n")
    tx.create("/tx/seq-", sequence=True)
    tx.set_data("/tx", b"v1", version=0)
    tx.check("/tx", 1)
    tx.delete("/tx/old")
    results = tx.commit()
    assert results[0] == "/tx/new"
    # The sequence number is the parent's cversion: "old" and "new" came first.
    assert results[1] == "/tx/seq-0000000002"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert results[3:] == [True, True]
    assert sorted(zk.get_children("/tx")) == ["new", "seq-0000000002"]
    with pytest.raises(ValueError):
        tx.commit()


def test_failed_transaction_applies_nothing_and_reports_each_op(zk):
    zk.create("/txf", b"")
    tx = zk.transaction()
    tx.create("/txf/a")
    tx.delete("/txf/missing")
    tx.set_data("/txf", b"x")
    tx.check("/txf", 7)
    results = tx.commit()
    assert [type(r) for r in results] == [
        RolledBackError, NoNodeError, RuntimeInconsistency, RuntimeInconsistency]
    assert zk.exists("/txf/a") is None
    assert zk.get("/txf")[0] == b""

    first_fails = zk.transaction()
    first_fails.check("/txf", 99)
    first_fails.create("/txf/b")
    assert [type(r) for r in first_fails.commit()] == [BadVersionError, RuntimeInconsistency]


def test_transaction_as_context_manager_and_async(zk):
    with zk.transaction() as tx:
        tx.create("/ctx")
        tx.create("/ctx/child", b"c")
    assert zk.get("/ctx/child")[0] == b"c"

    with pytest.raises(RuntimeError):
        with zk.transaction() as tx:
            tx.create("/ctx/never")
            raise RuntimeError("abandon")
    assert zk.exists("/ctx/never") is None

    tx = zk.transaction()
    tx.delete("/ctx/child")
    result = tx.commit_async()
    assert isinstance(result, AsyncResult)
    assert result.get(timeout=10) == [True]


# -- ACLs and authentication --------------------------------------------


def test_security_helpers():
    assert make_digest_acl_credential("alice", "pw") == "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="
    acl = make_digest_acl("alice", "pw", read=True, write=True)
    assert acl == ACL(Permissions.READ | Permissions.WRITE,
                      Id("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="))
    assert acl.acl_list == ["READ", "WRITE"]
    assert make_acl("world", "anyone", all=True) == OPEN_ACL_UNSAFE[0]
    assert OPEN_ACL_UNSAFE[0].acl_list == ["ALL"]
    assert READ_ACL_UNSAFE == [ACL(1, Id("world", "anyone"))]
    assert CREATOR_ALL_ACL == [ACL(31, Id("auth", ""))]


def test_digest_acls_deny_without_auth_and_allow_with_it(connect):
    alice = connect(auth_data=[("digest", "alice:pw")])
    stranger = connect()
    alice.create("/secret", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
    alice.create("/mine", b"m", acl=CREATOR_ALL_ACL)
    for path in ("/secret", "/mine"):
        with pytest.raises(NoAuthError):
            stranger.get(path)
        with pytest.raises(NoAuthError):
            stranger.set(path, b"x")
        with pytest.raises(NoAuthError):
            stranger.create(path + "/child")
        assert alice.get(path)[0] in (b"s", b"m")
    acls, _ = alice.get_acls("/mine")
    assert acls == [make_digest_acl("alice", "pw", all=True)]

    assert stranger.add_auth("digest", "alice:pw") is True
    assert stranger.get("/secret")[0] == b"s"
    stranger.create("/secret/child")


def test_get_acls_masks_digests_without_admin(zk):
    zk.add_auth("digest", "alice:pw")
    acl = [make_digest_acl("alice", "pw", read=True), make_digest_acl("bob", "pw", all=True)]
    zk.create("/masked", b"", acl=acl)
    acls, stat = zk.get_acls("/masked")
    assert acls == [ACL(1, Id("digest", "alice:x")), ACL(31, Id("digest", "bob:x"))]
    assert stat.aversion == 0

    zk.create("/admin", b"", acl=[make_digest_acl("alice", "pw", read=True, admin=True)])
    assert zk.get_acls("/admin")[0] == [make_digest_acl("alice", "pw", read=True, admin=True)]


def test_set_acls_with_versions(zk):
    zk.create("/acl", b"")
    assert zk.get_acls("/acl")[0] == OPEN_ACL_UNSAFE
    with pytest.raises(BadVersionError):
        zk.set_acls("/acl", READ_ACL_UNSAFE, version=3)
    stat = zk.set_acls("/acl", READ_ACL_UNSAFE, version=0)
    assert stat.aversion == 1 and stat.acl_version == 1
    # Without ADMIN even the right version is refused.
    with pytest.raises(NoAuthError):
        zk.set_acls("/acl", OPEN_ACL_UNSAFE, version=1)
    with pytest.raises(NoAuthError):
        zk.set("/acl", b"x")
    assert zk.get("/acl")[0] == b""


def test_refused_credential_fails_add_auth_and_the_client_reconnects(zk):
    zk.create("/before", b"")
    session = zk.client_id
    states = []
    zk.add_listener(states.append)
    with pytest.raises(AuthFailedError):
        zk.add_auth("no-such-scheme", "x")
    # The server hangs up after refusing; the client reconnects, without the credential.
    wait_for(lambda: states == [KeeperState.SUSPENDED, KeeperState.CONNECTED],
             message=f"SUSPENDED, CONNECTED (have {states})")
    assert zk.get("/before")[0] == b""
    assert zk.client_id == session


def test_start_with_a_refused_credential_raises(backend):
    client = KeeperClient(backend.hosts, auth_data=[("no-such-scheme", "x")])
    with pytest.raises(AuthFailedError):
        client.start(timeout=10)
    assert client.state == KeeperState.LOST


# -- chroot, sync, four-letter words ------------------------------------


def test_connect_string_names_hosts_and_an_optional_chroot():
    from nookeeper.client.paths import parse_hosts

    assert parse_hosts("10.0.0.1:2181,10.0.0.2:2182/app/one") == (
        [("10.0.0.1", 2181), ("10.0.0.2", 2182)], "/app/one")
    assert parse_hosts(" a , b:1/ ") == ([("a", 2181), ("b", 1)], "")
    assert parse_hosts("[::1]:2183,h//x//y/") == ([("::1", 2183), ("h", 2181)], "/x/y")
    for bad in ("h:port", "/chroot-only", "", "[::1"):
        with pytest.raises(ValueError):
            parse_hosts(bad)
    client = KeeperClient("h1:1,h2:2/app")
    assert (client.hosts, client.chroot) == ([("h1", 1), ("h2", 2)], "/app")


def test_chroot_prefixes_and_strips_every_path(connect):
    root = connect()
    app = connect("/apps/one")
    app.ensure_path("/")
    assert root.exists("/apps/one") is not None

    assert app.create("/node", b"x") == "/node"
    assert root.get("/apps/one/node")[0] == b"x"
    assert app.create("/seq-", sequence=True) == "/seq-0000000001"
    assert sorted(app.get_children("/")) == ["node", "seq-0000000001"]
    assert app.sync("/node") == "/node"

    seen = Recorder()
    app.get("/node", watch=seen)
    root.set("/apps/one/node", b"y")
    seen.wait(1)
    assert seen.events() == [WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, "/node")]

    tx = app.transaction()
    tx.create("/txnode")
    assert tx.commit() == ["/txnode"]
    # "/" is the chroot node itself, and goes with its subtree.
    app.delete("/", recursive=True)
    assert root.exists("/apps/one") is None
    assert root.exists("/apps") is not None


def test_chroot_paths_made_by_makepath(connect):
    app = connect("/made/by/makepath")
    assert app.create("/x/y", b"", makepath=True) == "/x/y"
    assert connect().exists("/made/by/makepath/x/y") is not None


def test_sync_server_version_and_command(zk):
    assert zk.sync("/") == "/"
    version = zk.server_version()
    assert isinstance(version, tuple) and len(version) >= 3
    assert all(isinstance(part, int) for part in version)
    assert zk.command(b"ruok") == "imok"
    assert "Zookeeper version" in zk.command(b"srvr")


# -- async, pipelining --------------------------------------------------


def test_async_variants_return_results(zk):
    assert zk.create_async("/as", b"1").get(timeout=10) == "/as"
    assert zk.get_async("/as").get(timeout=10)[0] == b"1"
    assert zk.set_async("/as", b"2").get(timeout=10).version == 1
    assert zk.exists_async("/as").get(timeout=10).version == 1
    assert zk.exists_async("/nope").get(timeout=10) is None
    assert zk.get_children_async("/as").get(timeout=10) == []
    assert zk.get_acls_async("/as").get(timeout=10)[0] == OPEN_ACL_UNSAFE
    assert zk.set_acls_async("/as", OPEN_ACL_UNSAFE).get(timeout=10).aversion == 1
    assert zk.sync_async("/as").get(timeout=10) == "/as"
    assert zk.ensure_path_async("/as/b/c").get(timeout=10) is True
    assert zk.create_async("/as/m/n", makepath=True).get(timeout=10) == "/as/m/n"
    assert zk.add_auth_async("digest", "u:p").get(timeout=10) is True
    assert zk.delete_async("/as/b/c").get(timeout=10) is True

    failed = zk.get_async("/nope")
    assert failed.wait(10)
    assert failed.ready() and not failed.successful()
    assert isinstance(failed.exception, NoNodeError)
    with pytest.raises(NoNodeError):
        failed.get()
    with pytest.raises(NoNodeError):
        failed.get_nowait()


def test_pipelined_requests_complete_in_order_with_rawlinks_on_the_watcher_thread(zk):
    zk.create("/pipe")
    count = 500
    order = []
    threads = set()
    done = threading.Event()

    def finished(result):
        threads.add(threading.current_thread().name)
        order.append(result.get())
        if len(order) == count:
            done.set()

    results = []
    for i in range(count):
        result = zk.create_async(f"/pipe/n{i:04d}", str(i).encode())
        result.rawlink(finished)
        results.append(result)
    assert [r.get(timeout=30) for r in results] == [f"/pipe/n{i:04d}" for i in range(count)]
    assert done.wait(10)
    assert order == [f"/pipe/n{i:04d}" for i in range(count)]
    assert threads == {WATCHER_THREAD}

    reads = [zk.get_async(f"/pipe/n{i:04d}") for i in range(count)]
    writes = [zk.set_async(f"/pipe/n{i:04d}", b"x") for i in range(0, count, 2)]
    assert [r.get(timeout=30)[0] for r in reads] == [str(i).encode() for i in range(count)]
    assert all(w.get(timeout=30).version == 1 for w in writes)
    assert len(zk.get_children("/pipe")) == count


def test_rawlink_after_completion_and_get_timeout(zk):
    result = zk.exists_async("/")
    result.get(timeout=10)
    seen = []
    got = threading.Event()
    result.rawlink(lambda r: (seen.append(threading.current_thread().name), got.set()))
    assert got.wait(5)
    assert seen == [WATCHER_THREAD]

    never = AsyncResult(lambda fn, *args: fn(*args))
    with pytest.raises(KeeperTimeoutError):
        never.get(timeout=0.05)
    with pytest.raises(TimeoutError):
        never.get_nowait()


def test_many_threads_share_one_client(zk):
    zk.create("/threads")
    errors = []

    def work(n):
        try:
            for i in range(40):
                path = zk.create(f"/threads/t{n}-", str(i).encode(), sequence=True)
                assert zk.get(path)[0] == str(i).encode()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(zk.get_children("/threads")) == 320


def test_sync_calls_from_inside_a_callback_do_not_deadlock(zk):
    zk.create("/nested", b"0")
    inside = []

    def watch(event):
        inside.append(zk.get("/nested")[0])
        inside.append(zk.create("/nested/child", b"", makepath=True))

    zk.get("/nested", watch=watch)
    zk.set("/nested", b"1")
    wait_for(lambda: len(inside) == 2)
    assert inside == [b"1", "/nested/child"]


# -- lifecycle ----------------------------------------------------------


def test_listeners_see_connected_and_lost_on_the_watcher_thread(backend):
    client = KeeperClient(backend.hosts)
    seen = Recorder()
    client.add_listener(seen)
    with client:
        assert client.connected and client.state == KeeperState.CONNECTED
        session_id, passwd = client.client_id
        assert session_id and len(passwd) == 16
        assert client.session_timeout == 10.0
    seen.wait(2)
    assert seen.calls == [(WATCHER_THREAD, KeeperState.CONNECTED),
                          (WATCHER_THREAD, KeeperState.LOST)]
    assert not client.connected


def test_listener_returning_true_is_removed(backend):
    client = KeeperClient(backend.hosts)
    calls = []

    def once(state):
        calls.append(state)
        return True

    client.add_listener(once)
    client.start()
    client.stop()
    time.sleep(0.1)
    assert calls == [KeeperState.CONNECTED]


def test_calls_on_a_stopped_client_raise_connection_closed(backend):
    client = KeeperClient(backend.hosts)
    with pytest.raises(ConnectionClosedError):
        client.get("/")
    client.start()
    seen = Recorder()
    client.exists("/ghost", watch=seen)
    client.stop()
    with pytest.raises(ConnectionClosedError):
        client.create("/after-stop")
    with pytest.raises(SessionExpiredError):
        client.exists("/")
    seen.wait(1)
    assert seen.events() == [WatchedEvent(EventType.NONE, KeeperState.LOST, "/ghost")]
    client.stop()
    client.close()


def test_a_stopped_client_starts_again_with_a_new_session(backend):
    client = KeeperClient(backend.hosts)
    client.start()
    first = client.client_id
    client.create("/restartable", ephemeral=True)
    client.stop()
    client.start()
    try:
        assert client.client_id != first
        assert client.exists("/restartable") is None
    finally:
        client.stop()


def test_retry_repeats_connection_loss(zk):
    from nookeeper.client.exceptions import ConnectionLoss, RetryFailedError
    from nookeeper.client.retry import KeeperRetry

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionLoss()
        return zk.exists("/")

    assert zk.retry(flaky) is not None
    assert len(attempts) == 3

    def always_lost():
        raise ConnectionLoss()

    with pytest.raises(RetryFailedError):
        KeeperRetry(max_tries=2, delay=0.01)(always_lost)
    with pytest.raises(RetryFailedError):
        KeeperRetry(max_tries=None, delay=0.01, deadline=0.1)(always_lost)
    with pytest.raises(NoNodeError):
        zk.retry(zk.get, "/not-retried")
