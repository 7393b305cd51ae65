"""SASL (DIGEST-MD5) on the client port: nookeeper and Apache ZooKeeper 3.8 given
the same JAAS file, and the same outcome asserted for both.

ZooKeeper reads it through -Djava.security.auth.login.config, with
SASLAuthenticationProvider registered and "super" as zookeeper.superUser;
nookeeper through sasl_users_file and sasl_super_user. Each backend is
started once per module (and once more with SASL required); every test
uses its own paths. The clients: kazoo's sasl_options (pure-sasl), zkCli.sh
with a JAAS Client section, a raw client for the bytes, and nookeeper's own
KeeperClient.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.security import make_acl

from harness import ROOT, ServerProcess, wait_for
from rawclient import RawClient
from zookeeper_harness import ZooKeeperProcess, missing_zookeeper

from nookeeper import sasl
from nookeeper.wire.ops import OpCode

pytest.importorskip("puresasl")

ZKCLI = os.environ.get("NK_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
NK = ROOT / "bin" / "nk"
PASSWORDS = {"bob": "bobsecret", "alice": "alicesecret", "super": "adminsecret"}
SERVER_JAAS = "Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n" + \
    "".join(f'    user_{user}="{pw}"\n' for user, pw in PASSWORDS.items()).rstrip("\n") + \
    ";\n};\n"
CLIENT_JAAS = """Client {{
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="{user}"
    password="{password}";
}};
"""
ZOOKEEPER_SASL_FLAGS = (
    "-Dzookeeper.authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "-Dzookeeper.superUser=super",
)
BOTH = ["nookeeper", "zookeeper"]


class Backend:
    def __init__(self, name, server, jaas_dir):
        self.name = name
        self.server = server
        self.jaas_dir = jaas_dir

    @property
    def hosts(self):
        return self.server.hosts

    @property
    def port(self):
        return self.server.port

    def log(self):
        return self.server.log_path.read_text(errors="replace")

    def __repr__(self):
        return f"<{self.name} {self.hosts}>"


def _write_jaas(directory):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "server.jaas"
    path.write_text(SERVER_JAAS)
    path.chmod(0o600)
    for user, password in PASSWORDS.items():
        (directory / f"client-{user}.jaas").write_text(CLIENT_JAAS.format(user=user,
                                                                          password=password))
    (directory / "client-bob-wrong.jaas").write_text(CLIENT_JAAS.format(user="bob",
                                                                        password="nope"))
    return path


def _start(kind, workdir, required):
    jaas = _write_jaas(workdir / "jaas")
    if kind == "nookeeper":
        server = ServerProcess(workdir / "nookeeper", sasl_users_file=str(jaas),
                               sasl_super_user="super", sasl_required=required or None)
    else:
        reason = missing_zookeeper()
        if reason:
            pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
        flags = [f"-Djava.security.auth.login.config={jaas}", *ZOOKEEPER_SASL_FLAGS]
        if required:
            flags.append("-Dzookeeper.sessionRequireClientSASLAuth=true")
        server = ZooKeeperProcess(workdir / "zookeeper", 200, min_session_timeout_ms=400,
                                  max_session_timeout_ms=30000, jvm_flags=flags)
    try:
        server.start()
    except BaseException:
        server.kill()
        raise
    return Backend(kind, server, jaas.parent)


@pytest.fixture(scope="module", params=BOTH)
def backend(request, tmp_path_factory):
    """nookeeper or ZooKeeper with SASL users; killed at the module's end."""
    started = _start(request.param, tmp_path_factory.mktemp(request.param), required=False)
    yield started
    started.server.kill()


@pytest.fixture(scope="module", params=BOTH)
def required_backend(request, tmp_path_factory):
    """The same with SASL required (sasl_required / sessionRequireClientSASLAuth)."""
    started = _start(request.param, tmp_path_factory.mktemp(request.param + "-required"),
                     required=True)
    yield started
    started.server.kill()


@pytest.fixture
def path():
    return f"/sasl-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kazoo_clients():
    """kazoo clients made by the test; stopped and closed at teardown."""
    made = []

    def make(backend, user=None, password=None, start=True):
        options = None if user is None else {
            "mechanism": "DIGEST-MD5", "username": user,
            "password": PASSWORDS[user] if password is None else password}
        client = KazooClient(hosts=backend.hosts, timeout=10, sasl_options=options,
                             connection_retry={"max_tries": 0})
        made.append(client)
        if start:
            client.start(timeout=10)
        return client

    yield make
    for client in made:
        client.stop()
        client.close()


# -- a raw client: the bytes ZooKeeper puts on the wire ----------------------------


def raw_sasl(backend, user, password, authzid=None):
    """A DIGEST-MD5 exchange as Java's client writes it: (client, raw frame of the
    reply to the digest-response)."""
    client = RawClient(backend.port)
    header, body = client.call(OpCode.SASL, {"token": b""})
    assert header.err == 0 and header.zxid == 0
    nonce = sasl.parse_directives(body.token)["nonce"]
    value = sasl.response_value(user, sasl.REALM, password, nonce, "Zm9vYmFy", "00000001",
                                "auth", "zookeeper/zk-sasl-md5", authzid).decode()
    token = (f'charset=utf-8,username="{user}",realm="zk-sasl-md5",nonce="{nonce}",'
             f'nc=00000001,cnonce="Zm9vYmFy",digest-uri="zookeeper/zk-sasl-md5",'
             f"maxbuf=65536,response={value},qop=auth")
    if authzid is not None:
        token += f',authzid="{authzid}"'
    xid = client.send(OpCode.SASL, {"token": token.encode()})
    raw = client._frame()
    assert raw[:4] == xid.to_bytes(4, "big")
    return client, raw


def whoami(client):
    header, body = client.call(OpCode.WHO_AM_I)
    assert header.err == 0
    return [(info.authScheme, info.user) for info in body.clientInfo]


def closed_by_server(client, timeout=5.0):
    """True once the server has closed the connection (EOF); False on a timeout."""
    client.sock.settimeout(timeout)
    try:
        return client.sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def failed_reply(xid, err):
    """A failed SASL step's frame: the header, zxid 0, then a null SetSASLResponse token."""
    return (xid.to_bytes(4, "big", signed=True) + bytes(8) + err.to_bytes(4, "big", signed=True)
            + b"\xff\xff\xff\xff")


# -- kazoo -------------------------------------------------------------------------


def test_kazoo_authenticates_and_sasl_acls_are_enforced(backend, kazoo_clients, path):
    bob = kazoo_clients(backend, "bob")
    bob.create(path, b"bob's", acl=[make_acl("sasl", "bob", all=True)])
    assert bob.get(path)[0] == b"bob's"
    acls, _stat = bob.get_acls(path)
    assert [(a.id.scheme, a.id.id, a.perms) for a in acls] == [("sasl", "bob", 31)]

    alice = kazoo_clients(backend, "alice")
    anonymous = kazoo_clients(backend)
    for other in (alice, anonymous):
        with pytest.raises(NoAuthError):
            other.get(path)
        with pytest.raises(NoAuthError):
            other.set(path, b"x")
        assert other.exists(path) is not None  # exists checks no ACL in 3.8
    # the configured super user passes every ACL
    superuser = kazoo_clients(backend, "super")
    superuser.set(path, b"by super")
    assert bob.get(path)[0] == b"by super"
    # 'auth' expands to the caller's sasl identity
    alice.create(path + "-auth", b"", acl=[make_acl("auth", "", all=True)])
    acls, _stat = alice.get_acls(path + "-auth")
    assert [(a.id.scheme, a.id.id) for a in acls] == [("sasl", "alice")]
    with pytest.raises(NoAuthError):
        bob.get(path + "-auth")


def test_kazoo_wrong_password_is_auth_failed(backend, kazoo_clients, caplog):
    client = kazoo_clients(backend, "bob", password="not-bob's", start=False)
    states = []
    client.add_listener(states.append)
    with caplog.at_level("WARNING", logger="kazoo.client"):
        client.start(timeout=10)  # kazoo reports CONNECTED before its SASL exchange
        wait_for(lambda: len(states) == 2, timeout=10, message="kazoo's LOST")
    assert states == [KazooState.CONNECTED, KazooState.LOST]
    assert "AUTH_FAILED closing" in caplog.text  # kazoo's AuthFailedError, then it stops
    wait_for(lambda: client.client_state == KeeperState.CLOSED, message="kazoo to stop")
    with pytest.raises(ConnectionClosedError):
        client.get("/")


# -- whoami, authzid, the failure's bytes --------------------------------------------


def test_whoami_lists_the_sasl_user_and_authzid_changes_nothing(backend):
    """ZooKeeper 3.8 authorizes any authzid but the session is the authenticated
    user (SaslServerCallbackHandler); a super user gets the super identity too."""
    for user, authzid, expected in (
        ("bob", "bob", [("sasl", "bob"), ("ip", "127.0.0.1")]),
        ("bob", "super", [("sasl", "bob"), ("ip", "127.0.0.1")]),
        ("alice", None, [("sasl", "alice"), ("ip", "127.0.0.1")]),
        ("super", "bob", [("sasl", "super"), ("super", ""), ("ip", "127.0.0.1")]),
    ):
        client, raw = raw_sasl(backend, user, PASSWORDS[user], authzid)
        try:
            assert raw[4:16] == bytes(12)  # zxid 0, err 0
            assert raw[16:].startswith((40).to_bytes(4, "big") + b"rspauth=")
            assert whoami(client) == expected, (user, authzid)
        finally:
            client.close()


def test_wrong_password_reply_closes_the_connection_and_is_logged(backend):
    client, raw = raw_sasl(backend, "bob", "wrong")
    try:
        assert raw == failed_reply(2, -115)
        assert closed_by_server(client)
    finally:
        client.close()
    session = client.response.sessionId
    if backend.name == "nookeeper":
        line = wait_for(lambda: re.search(rf"server 1: session {session:#x} .*SASL "
                                          r"authentication of user 'bob' failed: wrong "
                                          r"password; closing the connection", backend.log()),
                        message="the log line")
        assert line
    else:
        wait_for(lambda: "failed to SASL authenticate" in backend.log(), message="ZooKeeper's")


def test_a_gssapi_client_gets_auth_failed_and_the_log_says_why(backend):
    """GSSAPI (Kerberos) is not offered. nookeeper fails its first token at once;
    ZooKeeper, given only DIGEST-MD5 users, answers a DIGEST-MD5 challenge,
    on which the Kerberos client then fails by itself."""
    client = RawClient(backend.port)
    try:
        # the start of a Kerberos GSS-API initial context token
        xid = client.send(OpCode.SASL, {"token": bytes.fromhex("608202a006092a864886f712010202")})
        reply = client._frame()
        if backend.name == "zookeeper":
            assert b"algorithm=md5-sess" in reply
            return
        assert reply == failed_reply(xid, -115)
        assert closed_by_server(client)
    finally:
        client.close()
    wait_for(lambda: "GSSAPI (Kerberos), which this server does not offer" in backend.log(),
             message="the log line")


# -- zkCli.sh with a JAAS Client section -------------------------------------------

needs_zkcli = pytest.mark.skipif(
    not (os.path.exists(ZKCLI) and shutil.which("java")),
    reason="zkCli.sh or java missing (make test installs Debian's zookeeper package)",
)


def zkcli(backend, jaas, *commands):
    env = {**os.environ, "CLIENT_JVMFLAGS": f"-Djava.security.auth.login.config={jaas}"}
    script = "\n".join(commands + ("quit",)) + "\n"
    result = subprocess.run([ZKCLI, "-server", backend.hosts], input=script,
                            capture_output=True, text=True, timeout=60, env=env)
    return result.stdout + result.stderr


@needs_zkcli
def test_zkcli_with_a_jaas_client_section(backend, path):
    out = zkcli(backend, backend.jaas_dir / "client-bob.jaas",
                "whoami", f"create {path} hi sasl:bob:cdrwa", f"get {path}", f"getAcl {path}")
    assert "state:SaslAuthenticated" in out, out
    assert out.count("state:SyncConnected") == 1 and "Disconnected" not in out, out
    assert "sasl: bob" in out and f"Created {path}" in out
    assert "\nhi\n" in out and "'sasl,'bob\n: cdrwa" in out
    assert "Exception" not in out, out


@needs_zkcli
def test_zkcli_with_a_wrong_password_is_auth_failed(backend):
    out = zkcli(backend, backend.jaas_dir / "client-bob-wrong.jaas", "ls /")
    assert "state:AuthFailed" in out, out
    assert out.count("state:SyncConnected") == 1 and "Disconnected" not in out, out


# -- SASL required -------------------------------------------------------------------


@needs_zkcli
def test_zkcli_authenticates_before_anything_else_when_sasl_is_required(required_backend):
    out = zkcli(required_backend, required_backend.jaas_dir / "client-bob.jaas", "whoami",
                "ls /")
    assert "state:SaslAuthenticated" in out and "sasl: bob" in out, out
    assert "[zookeeper" in out and "Exception" not in out, out
    assert out.count("state:SyncConnected") == 1 and "Disconnected" not in out, out


def test_required_refuses_requests_before_sasl(required_backend):
    """Any request but auth and sasl, pings and closeSession included: answered
    SESSIONCLOSEDREQUIRESASLAUTH with zxid 0, then the connection is closed."""
    for opcode, request, xid in (
        (OpCode.GET_DATA, {"path": "/", "watch": False}, None),
        (OpCode.PING, None, -2),
        (OpCode.CLOSE_SESSION, None, None),
    ):
        client = RawClient(required_backend.port)
        try:
            if opcode == OpCode.GET_DATA:  # a digest auth is no SASL
                client.send(OpCode.AUTH, {"type": 0, "scheme": "digest",
                                          "auth": b"bob:bobsecret"}, xid=-4)
                header, _ = client.reply()
                assert (header.xid, header.err) == (-4, 0)
            sent = client.send(opcode, request, xid)
            assert client._frame() == failed_reply(sent, -124)[:16], opcode
            assert closed_by_server(client)
        finally:
            client.close()


def test_required_serves_sasl_sessions_and_fails_bad_ones_with_124(required_backend,
                                                                   kazoo_clients):
    client = kazoo_clients(required_backend, "bob")
    assert client.get("/")[1].numChildren >= 1
    anonymous = kazoo_clients(required_backend)
    with pytest.raises(SessionClosedRequireSaslError):
        anonymous.get("/")
    raw, reply = raw_sasl(required_backend, "bob", "wrong")
    try:
        assert reply == failed_reply(2, -124)
        assert closed_by_server(raw)
    finally:
        raw.close()


def test_a_server_without_sasl_users_refuses_sasl_saying_why(server):
    """nookeeper without sasl_users_file. (ZooKeeper without a JAAS Server section
    answers a null token with no error, on which Java's client goes AuthFailed
    and kazoo asks again forever; nookeeper answers AuthFailed at once.)"""
    backend = Backend("nookeeper", server, None)
    client = RawClient(server.port)
    try:
        xid = client.send(OpCode.SASL, {"token": b""})
        assert client._frame() == failed_reply(xid, -115)
        assert closed_by_server(client)
    finally:
        client.close()
    wait_for(lambda: "SASL is not configured on this server (no sasl_users_file)"
             in backend.log(), message="the log line")


# -- nookeeper's own client and shell -------------------------------------------------


@pytest.fixture
def keeper_clients():
    from nookeeper.client import KeeperClient

    made = []

    def make(backend, user="bob", password=None, **kwargs):
        options = {"mechanism": "DIGEST-MD5", "username": user,
                   "password": PASSWORDS[user] if password is None else password}
        client = KeeperClient(backend.hosts, timeout=10, sasl_options=options, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def test_keeper_client_authenticates_with_sasl_options(backend, keeper_clients, path):
    client = keeper_clients(backend)
    client.start(timeout=10)
    assert client.whoami() == [("sasl", "bob"), ("ip", "127.0.0.1")]
    client.create(path, b"k", acl=[make_acl("sasl", "bob", read=True, write=True)])
    assert client.get(path)[0] == b"k"
    other = keeper_clients(backend, "alice")
    other.start(timeout=10)
    from nookeeper.client.exceptions import NoAuthError as KeeperNoAuth
    with pytest.raises(KeeperNoAuth):
        other.get(path)


def test_keeper_client_wrong_password_fails_start(backend, keeper_clients):
    from nookeeper.client import KeeperState
    from nookeeper.client.exceptions import AuthFailedError

    client = keeper_clients(backend, password="not-bob's")
    states = []
    client.add_listener(states.append)
    with pytest.raises(AuthFailedError, match="SASL authentication as 'bob'"):
        client.start(timeout=10)
    assert KeeperState.CONNECTED not in states


def test_keeper_client_refuses_gssapi_and_unknown_mechanisms():
    from nookeeper.client import KeeperClient

    with pytest.raises(ValueError, match=r"GSSAPI \(Kerberos\) is not supported"):
        KeeperClient("127.0.0.1:1", sasl_options={"mechanism": "GSSAPI"})
    with pytest.raises(ValueError, match="mechanism 'PLAIN' is not supported"):
        KeeperClient("127.0.0.1:1", sasl_options={"mechanism": "PLAIN", "username": "u",
                                                   "password": "p"})


def test_keeper_client_authenticates_again_after_a_reconnect(tmp_path, keeper_clients, path):
    """The server restarts under the session: the client reconnects, resumes its
    session and runs SASL again before anything else (with sasl_required on, so
    any request sent first would close the connection)."""
    from nookeeper.client import KeeperState

    for kind in BOTH:
        if kind == "zookeeper" and missing_zookeeper():
            continue
        backend = _start(kind, tmp_path / kind, required=True)
        try:
            client = keeper_clients(backend)
            states = []
            client.add_listener(states.append)
            client.start(timeout=10)
            session = client.client_id[0]
            client.create(path, b"", acl=[make_acl("sasl", "bob", all=True)], ephemeral=True)
            backend.server.restart()
            wait_for(lambda: KeeperState.SUSPENDED in states, message="the drop")
            assert client.get(path)[1].ephemeralOwner == session  # retried to the new server
            assert client.client_id[0] == session
            assert client.whoami() == [("sasl", "bob"), ("ip", "127.0.0.1")], kind
            # Listeners run on the watcher thread, which may not have got there yet.
            wait_for(lambda: states.count(KeeperState.CONNECTED) == 2, timeout=5,
                     message=f"the reconnect heard ({kind}): {states}")
        finally:
            backend.server.kill()


def _nk(backend, *args, password=None, timeout=30):
    env = {key: value for key, value in os.environ.items() if key != "NK_SASL_PASSWORD"}
    if password is not None:
        env["NK_SASL_PASSWORD"] = password
    return subprocess.run([sys.executable, str(NK), "-s", backend.hosts, *args],
                          input="", capture_output=True, text=True, timeout=timeout, env=env)


def test_nk_sasl_user_with_the_password_from_the_environment(backend):
    done = _nk(backend, "--sasl-user", "bob", "whoami", password="bobsecret")
    assert (done.returncode, done.stdout) == (0, "Auth scheme: User\nsasl: bob\nip: 127.0.0.1\n"), \
        done.stderr
    done = _nk(backend, "--sasl-user", "bob", "ls", "/", password="nope")
    assert done.returncode == 1 and done.stderr.startswith("AuthFailedError: "), done.stderr
    done = _nk(backend, "--sasl-user", "bob", "ls", "/")  # no password and no terminal
    assert done.returncode == 2 and "NK_SASL_PASSWORD" in done.stderr, done.stderr


def test_nk_sasl_user_asks_for_the_password_at_the_terminal(backend):
    from shell.nkprocess import Terminal

    env = {key: value for key, value in os.environ.items() if key != "NK_SASL_PASSWORD"}
    terminal = Terminal("-s", backend.hosts, "--sasl-user", "bob", "whoami", env=env)
    try:
        terminal.expect("SASL password for bob: ")
        terminal.send("bobsecret\n")
        terminal.expect("sasl: bob")
        assert "bobsecret" not in terminal.output  # not echoed
    finally:
        terminal.close()
