"""Sessions and watches on the wire, driven through raw sockets and our codec."""

import time

from kazoo.client import KazooClient
from kazoo.security import CREATOR_ALL_ACL

from rawclient import RawClient, handshake

from nookeeper.wire.client import OpCode


OPEN_ACL = [{"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]


def create(path, data=b"", flags=0):
    return {"path": path, "data": data, "acl": OPEN_ACL, "flags": flags}


def test_timeout_is_negotiated_within_bounds(server):
    assert RawClient(server.port, timeout_ms=1).response.timeOut == 400
    assert RawClient(server.port, timeout_ms=10**7).response.timeOut == 30000
    assert RawClient(server.port, timeout_ms=5000).response.timeOut == 5000


def test_session_resumes_on_a_new_connection_and_the_old_one_is_closed(server):
    first = RawClient(server.port)
    header, _ = first.call(OpCode.CREATE, create("/mine", b"", flags=1))
    assert header.err == 0
    session = first.response
    second = RawClient(server.port, session_id=session.sessionId, passwd=session.passwd,
                       last_zxid=header.zxid)
    assert second.response.sessionId == session.sessionId
    assert second.response.timeOut == session.timeOut
    assert first.closed()
    header, stat = second.call(OpCode.EXISTS, {"path": "/mine", "watch": False})
    assert header.err == 0 and stat.ephemeralOwner == session.sessionId


def test_client_ahead_of_the_server_is_turned_away(server):
    client = RawClient(server.port)
    header, _ = client.call(OpCode.CREATE, create("/z"))
    assert handshake(server.port, last_zxid=header.zxid + 100) is None


def test_set_watches_fires_missed_changes_before_its_reply(server):
    client = RawClient(server.port)
    for path in ("/sw-data", "/sw-same", "/sw-child"):
        assert client.call(OpCode.CREATE, create(path)).__getitem__(0).err == 0
    since, _ = client.call(OpCode.EXISTS, {"path": "/sw-same", "watch": False})
    zk = KazooClient(hosts=server.hosts)
    zk.start(timeout=10)
    zk.set("/sw-data", b"changed")
    zk.create("/sw-child/kid")
    zk.create("/sw-new")
    zk.delete("/sw-same")
    zk.create("/sw-same")
    zk.stop()
    zk.close()
    client.send(OpCode.SET_WATCHES, {
        "relativeZxid": since.zxid,
        "dataWatches": ["/sw-data", "/sw-gone"],
        "existWatches": ["/sw-new", "/sw-never"],
        "childWatches": ["/sw-child"],
    }, xid=-8)
    events = []
    while True:
        header, body = client.reply()
        if header.xid == -1:
            events.append((body.type, body.path))
            continue
        assert header.xid == -8 and header.err == 0
        break
    assert events == [(3, "/sw-data"), (2, "/sw-gone"), (1, "/sw-new"), (4, "/sw-child")]
    # The existWatch on a missing node was registered: creating it fires.
    creator = RawClient(server.port)
    creator.call(OpCode.CREATE, create("/sw-never"))
    header, body = client.reply()
    assert header.xid == -1 and (body.type, body.path) == (1, "/sw-never")


def test_own_write_event_precedes_its_reply(server):
    client = RawClient(server.port)
    client.call(OpCode.CREATE, create("/self", b"0"))
    client.call(OpCode.GET_DATA, {"path": "/self", "watch": True})
    xid = client.send(OpCode.SET_DATA, {"path": "/self", "data": b"1", "version": -1})
    header, body = client.reply()
    assert header.xid == -1 and body.type == 3
    header, _ = client.reply(OpCode.SET_DATA)
    assert header.xid == xid and header.err == 0


def test_persistent_recursive_watch(server):
    client = RawClient(server.port)
    client.call(OpCode.CREATE, create("/rw"))
    header, _ = client.call(OpCode.ADD_WATCH, {"path": "/rw", "mode": 1})
    assert header.err == 0
    other = RawClient(server.port)
    other.call(OpCode.CREATE, create("/rw/y"))
    other.call(OpCode.CREATE, create("/rw/y/z"))
    other.call(OpCode.SET_DATA, {"path": "/rw/y/z", "data": b"x", "version": -1})
    other.call(OpCode.DELETE, {"path": "/rw/y/z", "version": -1})
    events = [client.reply()[1] for _ in range(4)]
    assert [(e.type, e.path) for e in events] == [
        (1, "/rw/y"), (1, "/rw/y/z"), (3, "/rw/y/z"), (2, "/rw/y/z"),
    ]


def test_requests_pipelined_on_one_connection_are_answered_in_order(server):
    client = RawClient(server.port)
    client.call(OpCode.CREATE, create("/p"))
    sent = []
    for i in range(300):
        if i % 3 == 0:
            sent.append((client.send(OpCode.CREATE, create(f"/p/{i}")), OpCode.CREATE))
        elif i % 3 == 1:
            sent.append((client.send(OpCode.GET_CHILDREN, {"path": "/p", "watch": False}),
                         OpCode.GET_CHILDREN))
        else:
            sent.append((client.send(OpCode.EXISTS, {"path": f"/p/{i - 2}", "watch": False}),
                         OpCode.EXISTS))
    for xid, opcode in sent:
        header, body = client.reply(opcode)
        assert header.xid == xid
        if opcode == OpCode.EXISTS:
            assert header.err == 0  # the create sent just before it is visible


def test_auth_scheme_acl_is_the_creators_identity(server):
    alice = KazooClient(hosts=server.hosts, auth_data=[("digest", "alice:pw")])
    alice.start(timeout=10)
    alice.create("/creator", b"x", acl=CREATOR_ALL_ACL)
    acls, _ = alice.get_acls("/creator")
    assert [(a.id.scheme, a.id.id) for a in acls] == [("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0=")]
    alice.stop()
    alice.close()


def test_concurrent_writes_share_log_commits(server):
    clients = [RawClient(server.port) for _ in range(8)]
    for i, client in enumerate(clients):
        for j in range(50):
            client.send(OpCode.CREATE, create(f"/gc-{i}-{j}"))
    for client in clients:
        for _ in range(50):
            assert client.reply(OpCode.CREATE)[0].err == 0
    mntr = dict(line.split("\t", 1) for line in server.command("mntr").splitlines())
    assert int(mntr["zk_wal_logged_txns"]) >= 400
    assert int(mntr["zk_wal_batches"]) < int(mntr["zk_wal_logged_txns"]) / 2


def test_session_expires_between_timeout_and_timeout_plus_tick(server):
    client = RawClient(server.port, timeout_ms=1000)
    client.call(OpCode.CREATE, create("/eph-timing", flags=1))
    watcher = RawClient(server.port)
    watcher.call(OpCode.EXISTS, {"path": "/eph-timing", "watch": True})
    silent_since = time.monotonic()
    header, event = watcher.reply()
    elapsed = time.monotonic() - silent_since
    assert header.xid == -1 and (event.type, event.path) == (2, "/eph-timing")
    assert 0.9 <= elapsed <= 1.0 + 0.2 + 0.5  # T .. T + tick, plus scheduling slack
    assert client.closed()
