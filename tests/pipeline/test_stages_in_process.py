"""The server's stages driven in one process, without sockets.

Three `Pipeline`s (server/pipeline.py) with their real log writers and
SQLite logs in a temp dir, real ZAB cores, apply and commit stages, joined by
an in-memory network in place of the peer port. What reaches the stages is
what a client connection would hand them: submit_write, submit_sync, read.
"""

import queue
import socket
import threading
import time
from pathlib import Path

import pytest
from construct import Container as C

from harness import wait_for
from nookeeper.config import ServerConfig
from nookeeper.server.connection import Connection
from nookeeper.server.events import LinkDown, PeerMessage
from nookeeper.server.pipeline import Pipeline
from nookeeper.server.stats import ServerStats
from nookeeper.wire.ops import CREATE_SESSION
from nookeeper.wal import DB_NAME, WriteAheadLog
from nookeeper.wire.client import decode_reply, decode_request_header, encode_request
from nookeeper.wire.ops import NODE_DATA_CHANGED, OpCode

OPEN = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]


class LocalNetwork:
    """FIFO links between pipelines in one process; a cut link drops what is
    in flight and tells both ends, as a broken TCP connection would."""

    def __init__(self):
        self.pipelines = {}
        self.cut = set()
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._deliver, daemon=True)
        self._thread.start()

    def endpoint(self, sid):
        network = self

        class Endpoint:
            def start(self):
                pass

            def stop(self):
                pass

            def send(self, to, message, inline=False):
                if frozenset((sid, to)) not in network.cut:
                    network._queue.put((sid, to, message))

        return Endpoint()

    def cut_link(self, a, b):
        self.cut.add(frozenset((a, b)))
        self.pipelines[a].zab.post(LinkDown(b))
        self.pipelines[b].zab.post(LinkDown(a))

    def heal(self):
        self.cut.clear()

    def _deliver(self):
        while True:
            frm, to, message = self._queue.get()
            if frm is None:
                return
            target = self.pipelines.get(to)
            if target is not None and frozenset((frm, to)) not in self.cut:
                target.zab.post(PeerMessage(frm, message))

    def close(self):
        self._queue.put((None, None, None))


def config_for(sid, members, data_dir):
    return ServerConfig(
        source=Path("in-process.yaml"), server_id=sid, client_host="127.0.0.1", client_port=0,
        peer_host="127.0.0.1", peer_port=0, members=members, data_dir=data_dir, tick_ms=50,
        init_limit=10, sync_limit=5, min_session_timeout_ms=100, max_session_timeout_ms=60000,
        max_frame_bytes=1 << 20, max_connections_per_ip=60, max_connections=1000,
        four_letter_words=None, super_digest=None, log_level="INFO", log_file=None)


class Ensemble:
    def __init__(self, root, n=3):
        self.network = LocalNetwork()
        self.failures = []
        members = {sid: ("127.0.0.1", 0) for sid in range(1, n + 1)} if n > 1 else {}
        self.wals = {}
        self.pipelines = {}
        for sid in range(1, n + 1):
            data = root / f"s{sid}"
            data.mkdir()
            self.wals[sid] = WriteAheadLog(str(data / DB_NAME))
            self.pipelines[sid] = Pipeline(
                config_for(sid, members, data), self.wals[sid], ServerStats(),
                self.failures.append, self.network.endpoint(sid) if n > 1 else None)
        self.network.pipelines = self.pipelines
        for pipeline in self.pipelines.values():
            pipeline.start()

    def stop(self):
        for pipeline in self.pipelines.values():
            pipeline.stop()
        self.network.close()
        for wal in self.wals.values():
            wal.close()

    def serving(self):
        return [sid for sid, p in self.pipelines.items() if p.state.serving]

    def leader(self):
        leaders = [sid for sid, p in self.pipelines.items() if p.state.serving and p.state.is_leader]
        return leaders[0] if len(leaders) == 1 else None


@pytest.fixture
def ensemble(tmp_path):
    made = []

    def make(n=3):
        e = Ensemble(tmp_path, n)
        made.append(e)
        assert wait_for(lambda: len(e.serving()) == n and e.leader() is not None), \
            "no leader in 10 s"
        return e

    yield make
    for e in made:
        e.stop()
        assert not e.failures, e.failures


def submit(pipeline, session, cxid, opcode, request):
    """A write through the one way in; returns (txn, outcome) once applied here."""
    done = threading.Event()
    box = {}

    def finished(txn, outcome):
        box["result"] = (txn, outcome)
        done.set()

    pipeline.submit_write(session, cxid, opcode, (), request, finished)
    assert done.wait(10), "write not applied within 10 s"
    return box["result"]


def open_session(pipeline, session):
    txn, outcome = submit(pipeline, session, 0, CREATE_SESSION, C(timeOut=30000, passwd=b"p" * 16))
    assert outcome.err == 0


def test_a_write_through_a_follower_is_stamped_logged_and_applied_everywhere(ensemble):
    e = ensemble()
    follower = next(sid for sid in e.pipelines if sid != e.leader())
    p = e.pipelines[follower]
    open_session(p, 0x51)
    before = int(time.time() * 1000)
    txn, outcome = submit(p, 0x51, 1, OpCode.CREATE,
                          C(path="/a", data=b"x", acl=OPEN, flags=0))
    assert outcome.err == 0
    assert txn.zxid > 0 and txn.time >= before  # stamped by the leader's core, with its clock
    for sid, other in e.pipelines.items():
        assert wait_for(lambda o=other: o.state.tree.last_zxid >= txn.zxid), sid
        assert other.state.tree.get_data("/a", ())[0] == b"x"
        logged = [r.zxid for r in e.wals[sid].records(after_zxid=0)]
        assert txn.zxid in logged, f"server {sid} did not log {txn.zxid:#x}"


def test_a_session_writes_are_applied_in_the_order_submitted(ensemble):
    e = ensemble()
    follower = next(sid for sid in e.pipelines if sid != e.leader())
    p = e.pipelines[follower]
    open_session(p, 0x52)
    results = []
    done = threading.Event()

    def finished(txn, outcome):
        results.append((txn.cxid, outcome.err))
        if len(results) == 50:
            done.set()

    p.submit_write(0x52, 1, OpCode.CREATE, (), C(path="/n", data=b"", acl=OPEN, flags=0), finished)
    for cxid in range(2, 51):
        p.submit_write(0x52, cxid, OpCode.SET_DATA, (),
                       C(path="/n", data=b"%d" % cxid, version=-1), finished)
    assert done.wait(10)
    assert results == [(cxid, 0) for cxid in range(1, 51)]
    assert p.state.tree.get_data("/n", ())[0] == b"50"


def test_a_sync_on_one_follower_sees_a_write_made_through_another_server(ensemble):
    e = ensemble()
    leader = e.leader()
    followers = [sid for sid in e.pipelines if sid != leader]
    open_session(e.pipelines[leader], 0x53)
    txn, _ = submit(e.pipelines[leader], 0x53, 1, OpCode.CREATE,
                    C(path="/s", data=b"", acl=OPEN, flags=0))
    synced = threading.Event()
    reader = e.pipelines[followers[1]]
    reader.submit_sync(synced.set)
    assert synced.wait(10)
    assert reader.state.tree.last_zxid >= txn.zxid


def test_losing_the_leader_stops_its_clients_and_the_others_elect_and_go_on(ensemble):
    e = ensemble()
    old = e.leader()
    others = [sid for sid in e.pipelines if sid != old]
    for sid in others:
        e.network.cut_link(old, sid)
    assert wait_for(lambda: e.leader() in others, timeout=15), "no new leader"
    assert wait_for(lambda: not e.pipelines[old].state.serving, timeout=15)
    p = e.pipelines[others[0]]
    open_session(p, 0x54)
    txn, outcome = submit(p, 0x54, 1, OpCode.CREATE, C(path="/after", data=b"", acl=OPEN, flags=0))
    assert outcome.err == 0
    e.network.heal()
    # The old leader rejoins as a follower and catches up.
    assert wait_for(lambda: e.pipelines[old].state.serving, timeout=15)
    assert wait_for(lambda: e.pipelines[old].state.tree.last_zxid >= txn.zxid)


def test_a_one_member_pipeline_serves_on_its_own(ensemble):
    e = ensemble(1)
    p = e.pipelines[1]
    open_session(p, 0x55)
    txn, outcome = submit(p, 0x55, 1, OpCode.CREATE, C(path="/solo", data=b"", acl=OPEN, flags=0))
    assert outcome.err == 0
    zxid, err, result = p.read(_Conn(), OpCode.GET_DATA, C(path="/solo", watch=False))
    assert (err, zxid) == (0, txn.zxid)


class _Conn:
    """What a read needs of its connection: identities and session."""

    ids = ()
    session_id = 0x55



def _read_frames(sock, count, timeout=10):
    sock.settimeout(timeout)
    buf = b""
    frames = []
    while len(frames) < count:
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            size = int.from_bytes(buf[:4], "big")
            frames.append(buf[4:4 + size])
            buf = buf[4 + size:]
        if len(frames) >= count:
            break
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    return frames


def test_a_connection_answers_in_request_order_with_its_watch_event_first(ensemble):
    """Bytes in, bytes out, through a real Connection on a socket pair: a read
    sent behind a write waits for the write's reply and sees the write, and
    the watch event the write fires comes before the reply that sees it."""
    e = ensemble(1)
    p = e.pipelines[1]
    open_session(p, 0x56)
    ours, theirs = socket.socketpair()
    conn = Connection(p, ours, ("127.0.0.1", 1))
    with p.state.lock:
        p.state.bind(conn, 0x56, 30000)
    conn.start_sending()
    requests = [
        (1, OpCode.CREATE, {"path": "/o", "data": b"1", "acl": OPEN, "flags": 0}),
        (2, OpCode.GET_DATA, {"path": "/o", "watch": True}),
        (3, OpCode.SET_DATA, {"path": "/o", "data": b"2", "version": -1}),
        (4, OpCode.GET_DATA, {"path": "/o", "watch": False}),
    ]
    for xid, opcode, body in requests:
        xid_, opcode_, rest = decode_request_header(encode_request(xid, opcode, body)[4:])
        conn.handle(xid_, opcode_, rest)
    frames = _read_frames(theirs, 5)
    decoded = []
    for payload in frames:
        header = decode_reply(payload)[0]
        opcode = dict((x, o) for x, o, _ in requests).get(header.xid)
        decoded.append((header.xid, decode_reply(payload, opcode)[1]))
    assert [xid for xid, _ in decoded] == [1, 2, -1, 3, 4]
    assert decoded[1][1].data == b"1"
    assert decoded[2][1].type == NODE_DATA_CHANGED and decoded[2][1].path == "/o"
    assert decoded[4][1].data == b"2"
    conn.close()
    theirs.close()
