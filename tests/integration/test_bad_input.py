"""Bad input costs the sender its connection at most; everyone else is served."""

import socket
import struct
import time

import pytest
from kazoo.client import KazooClient

from harness import four_letter_word


def raw_connect(server, timeout_ms=10000):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    response = recv_exact(sock, length)
    assert length == 37
    return sock, response


def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} bytes")
        data += chunk
    return data


def read_reply(sock):
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    payload = recv_exact(sock, length)
    xid, zxid, err = struct.unpack(">iqi", payload[:16])
    return xid, zxid, err, payload[16:]


def is_closed(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def zk(server):
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=10)
    client.create("/precious", b"keep me")
    yield client
    assert client.get("/precious")[0] == b"keep me"
    assert four_letter_word(server.port, "ruok") == "imok"
    client.stop()
    client.close()


def request(xid, opcode, body=b""):
    payload = struct.pack(">ii", xid, opcode) + body
    return struct.pack(">i", len(payload)) + payload


def ustring(text):
    data = text.encode()
    return struct.pack(">i", len(data)) + data


def test_unknown_opcode_gets_unimplemented_and_close(server, zk):
    sock, _ = raw_connect(server)
    sock.sendall(request(7, 50))
    xid, _zxid, err, _ = read_reply(sock)
    assert (xid, err) == (7, -6)
    assert is_closed(sock)


def test_malformed_body_gets_marshalling_error_and_connection_stays(server, zk):
    sock, _ = raw_connect(server)
    sock.sendall(request(1, 4, struct.pack(">i", 1000) + b"/x"))  # string length beyond the body
    xid, _zxid, err, _ = read_reply(sock)
    assert (xid, err) == (1, -5)
    sock.sendall(request(2, 3, ustring("/precious") + b"\0"))
    xid, _zxid, err, body = read_reply(sock)
    assert (xid, err) == (2, 0) and len(body) == 68


def test_oversized_frame_closes_the_connection(server, zk):
    sock, _ = raw_connect(server)
    sock.sendall(struct.pack(">i", 2 * 1024 * 1024) + b"x" * 1024)
    assert is_closed(sock)


def test_negative_frame_length_closes_the_connection(server, zk):
    sock, _ = raw_connect(server)
    sock.sendall(struct.pack(">i", -5))
    assert is_closed(sock)


def test_garbage_instead_of_handshake(server, zk):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"\x00\x00\x00\x03abc")
    assert is_closed(sock)


def test_invalid_paths_get_bad_arguments(server, zk):
    sock, _ = raw_connect(server)
    create = ustring("/no/trailing/") + struct.pack(">i", -1) + struct.pack(">i", 1) \
        + struct.pack(">i", 31) + ustring("world") + ustring("anyone") + struct.pack(">i", 0)
    sock.sendall(request(1, 1, create))
    xid, _zxid, err, _ = read_reply(sock)
    assert (xid, err) == (1, -101)  # parent /no/trailing missing comes first
    create = ustring("relative") + struct.pack(">i", -1) + struct.pack(">i", 1) \
        + struct.pack(">i", 31) + ustring("world") + ustring("anyone") + struct.pack(">i", 0)
    sock.sendall(request(2, 1, create))
    xid, _zxid, err, _ = read_reply(sock)
    assert (xid, err) == (2, -8)


def test_client_vanishing_mid_frame(server, zk):
    for _ in range(5):
        sock, _ = raw_connect(server)
        sock.sendall(struct.pack(">i", 100) + b"\x00\x00\x00\x01")
        sock.close()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(struct.pack(">i", 45) + b"\x00" * 10)
    sock.close()


def test_silent_connection_is_dropped_after_handshake_timeout(server, zk):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    assert is_closed(sock, timeout=15)


def test_flood_of_connections_is_capped(server_factory):
    server = server_factory("flood", max_connections_per_ip=20)
    held = []
    try:
        for _ in range(40):
            try:
                held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            except OSError:
                break
        time.sleep(0.5)
        refused = sum(1 for sock in held[20:] if is_closed(sock, timeout=2))
        assert refused == len(held) - 20
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=10)
    client.create("/after-flood")
    client.stop()
    client.close()


def test_expired_session_reconnect_is_refused(server, zk):
    sock, response = raw_connect(server, timeout_ms=400)
    session_id = struct.unpack(">q", response[8:16])[0]
    passwd = response[20:36]
    sock.close()
    time.sleep(2.0)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = struct.pack(">iqiq", 0, 0, 400, session_id) + struct.pack(">i", 16) + passwd + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    timeout, sid = struct.unpack(">iq", recv_exact(sock, length)[4:16])
    assert (timeout, sid) == (0, 0)
    assert is_closed(sock)


def test_wrong_password_is_refused(server, zk):
    sock, response = raw_connect(server)
    session_id = struct.unpack(">q", response[8:16])[0]
    other = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = struct.pack(">iqiq", 0, 0, 10000, session_id) + struct.pack(">i", 16) + b"\1" * 16 + b"\0"
    other.sendall(struct.pack(">i", len(body)) + body)
    length = struct.unpack(">i", recv_exact(other, 4))[0]
    timeout, sid = struct.unpack(">iq", recv_exact(other, length)[4:16])
    assert (timeout, sid) == (0, 0)


def test_non_utf8_digest_credential_authenticates_as_zookeeper_does(server, zk):
    """ZooKeeper reads a credential as Java's new String(bytes) does, so bad
    UTF-8 becomes U+FFFD and the auth succeeds; it once escaped as a traceback."""
    sock, _ = raw_connect(server)
    credential = b"\xff\xfe:x"
    auth = struct.pack(">i", 0) + ustring("digest") + struct.pack(">i", len(credential)) + credential
    sock.sendall(request(-4, 100, auth))
    xid, zxid, err, _ = read_reply(sock)
    assert (xid, zxid, err) == (-4, 0, 0)
    sock.sendall(request(1, 107))  # whoAmI: ZooKeeper 3.8 answers this user, U+FFFD twice
    xid, _zxid, err, body = read_reply(sock)
    assert (xid, err) == (1, 0)
    assert ustring("digest") + ustring("\ufffd\ufffd") in body
    sock.close()
    zk.create("/after-bad-credential", b"v")
    assert zk.get("/after-bad-credential")[0] == b"v"
    assert "Traceback" not in server.log_path.read_text(errors="replace")
