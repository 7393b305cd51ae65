"""Only the leader ends a session, so a server says "expired" only once the
session's closeSession has committed; short of that it resumes the session
or gives no answer at all, and the client tries another server. A client
told "expired" takes it as final (kazoo's Lock then adopts its old lock node
from a new session), so a wrong "expired" breaks mutual exclusion."""

import signal
import time

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState
from rawclient import RawClient, handshake

from harness import four_letter_word, wait_for
from nookeeper.wire.client import OpCode

OPEN_ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]
EPHEMERAL = 1


def _snapshot_taken(server):
    return "snapshot at zxid" in server.log_path.read_text(errors="replace")


def _listening(server):
    try:
        return four_letter_word(server.port, "ruok", timeout=0.5) == "imok"
    except OSError:
        return False


def _expired(response):
    return response is not None and response.timeOut == 0


def _log_lines(server, text):
    return [line for line in server.log_path.read_text(errors="replace").splitlines()
            if text in line]


def test_a_session_in_a_snapshot_is_resumed_on_a_follower_after_every_server_restarts(
        ensemble_factory):
    """The bug's first three steps: kill -9 of every server, then a reconnect
    to a follower that rebuilt its tree from a snapshot holding the session.
    That follower's own session table had never seen the session's
    createSession, and it answered "expired" while the ensemble kept the
    session alive."""
    ensemble = ensemble_factory(snapshot_every_txns=10)
    ensemble.leader()
    servers = list(ensemble.servers.values())
    owner = RawClient(servers[0].port, timeout_ms=20000)
    session, passwd = owner.response.sessionId, owner.response.passwd
    header, _ = owner.call(OpCode.CREATE, {"path": "/mine", "data": b"", "acl": OPEN_ACL,
                                           "flags": EPHEMERAL})
    assert header.err == 0
    for i in range(25):
        assert owner.call(OpCode.CREATE, {"path": f"/n{i}", "data": b"", "acl": OPEN_ACL,
                                          "flags": 0})[0].err == 0
    for server in servers:
        wait_for(lambda s=server: _snapshot_taken(s), timeout=20,
                 message=f"a snapshot on {server.workdir.name}")
    owner.close()  # the session lives on for its 20 s

    ensemble.kill_all()
    alone, second, third = servers
    alone.launch()
    wait_for(lambda: _listening(alone), timeout=20, message="the first server up")
    # One server of three cannot be synchronised with any leader: no answer.
    assert handshake(alone.port, 20000, session, passwd) is None

    second.launch()
    for server in (alone, second):
        server.wait_serving(30)
    follower = wait_for(lambda: next((s for s in (alone, second)
                                      if s.safe_mode() == "follower"), None),
                        timeout=20, message="a follower")
    answer = handshake(follower.port, 20000, session, passwd)
    assert answer is not None and answer.sessionId == session and answer.timeOut > 0, (
        f"{follower.workdir.name} answered {answer} for live session {session:#x}:\n"
        + follower.log_tail())

    third.start(30)
    back = RawClient(third.port, 20000, session, passwd)
    assert back.response.sessionId == session
    _, stat = back.call(OpCode.EXISTS, {"path": "/mine", "watch": False})
    assert stat.ephemeralOwner == session
    assert back.call(OpCode.CLOSE_SESSION)[0].err == 0
    back.close()
    # Now it is over, everywhere, and every server says so.
    for server in servers:
        assert _expired(handshake(server.port, 20000, session, passwd)), server.workdir.name
        assert _log_lines(server, "(confirmed with the leader)"), server.workdir.name


def test_a_leader_cut_off_does_not_tell_a_live_session_it_expired(ensemble_factory):
    """A stopped leader wakes up still believing it leads, with every deadline
    past: its expirer proposes closeSession for sessions the new leader keeps
    alive, and those never commit. A reconnect reaching it then must not hear
    "expired"."""
    ensemble = ensemble_factory(tick_ms=200, sync_limit=5)
    old = ensemble.leader()
    others = [s for s in ensemble.servers.values() if s is not old]
    zk = KazooClient(hosts=",".join(s.hosts for s in others), timeout=3)
    zk.start(timeout=20)
    zk.create("/held", ephemeral=True)
    session, passwd = zk.client_id
    # Its deadline on the old leader is 3 s from its last word to it.
    old.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: any(s.safe_mode() == "leader" for s in others), timeout=30,
                 message="a new leader among the other two")
        time.sleep(4.0)
        assert zk.state == KazooState.CONNECTED
    finally:
        old.proc.send_signal(signal.SIGCONT)
    # Within its sync limit (5 ticks of 200 ms) it still takes itself for the
    # leader, and its expirer has had 50 ms rounds to mark the session.
    time.sleep(0.3)
    answer = handshake(old.port, 3000, session, passwd)
    assert not _expired(answer), (
        f"the cut-off leader told live session {session:#x} it expired:\n{old.log_tail()}")
    assert zk.exists("/held") is not None
    assert zk.client_id[0] == session
    wait_for(lambda: old.safe_mode() == "follower", timeout=30, message="the old leader following")
    answer = handshake(old.port, 3000, session, passwd)
    assert answer is not None and answer.sessionId == session
    zk.stop()
    zk.close()


def test_a_sync_on_a_cut_off_leader_is_not_answered_from_its_stale_history(ensemble_factory):
    """A client that was connected to the leader before it was cut off syncs
    and reads there: the read must not miss a write the new leader committed
    before the sync (the old leader must not confirm a sync it cannot)."""
    ensemble = ensemble_factory(tick_ms=200, sync_limit=5)
    old = ensemble.leader()
    others = [s for s in ensemble.servers.values() if s is not old]
    reader = RawClient(old.port, timeout_ms=20000)
    assert reader.call(OpCode.CREATE, {"path": "/v", "data": b"0", "acl": OPEN_ACL,
                                       "flags": 0})[0].err == 0
    writer = KazooClient(hosts=",".join(s.hosts for s in others), timeout=10)
    old.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: any(s.safe_mode() == "leader" for s in others), timeout=30,
                 message="a new leader among the other two")
        writer.start(timeout=20)
        writer.set("/v", b"1")
        # The request waits in the socket, read the moment the old leader wakes.
        reader.send(OpCode.SYNC, {"path": "/"})
        reader.send(OpCode.GET_DATA, {"path": "/v", "watch": False})
    finally:
        old.proc.send_signal(signal.SIGCONT)
    try:
        reader.reply(OpCode.SYNC)
        header, got = reader.reply(OpCode.GET_DATA)
    except EOFError:
        pass  # closed when it found it leads no quorum: the client retries elsewhere
    else:
        assert header.err == 0 and got.data == b"1", (
            f"read {got.data!r} after a sync on the cut-off leader:\n{old.log_tail()}")
    writer.stop()
    writer.close()
