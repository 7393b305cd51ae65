"""TLS: the secure client port, x509 identities and ACLs, peer links, reload.

Each client-side scenario runs against nookeeper and against Apache
ZooKeeper 3.8 (NettyServerCnxnFactory, secureClientPort, ssl.* keys) with the
same certificates, made here with `cryptography` (tests/tlspki.py), and
asserts the same outcome. Clients: kazoo (use_ssl with certfile/keyfile/ca)
and zkCli.sh 3.8 (Netty client socket, PEM key and trust stores).

Debian's zookeeper.jar names netty-handler but not netty-codec in its
Class-Path, so the ZooKeeper server and zkCli.sh get netty-codec (and
netty-resolver) added to their classpath here.
"""

import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.retry import KazooRetry
from kazoo.security import make_acl

from harness import Ensemble, ServerProcess, free_port, wait_for

tlspki = pytest.importorskip("tlspki", reason="the cryptography package makes the test PKI")

ZKCLI = os.environ.get("NK_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
JAVA_DIR = Path("/usr/share/java")
NETTY_EXTRA = [str(JAVA_DIR / "netty-codec.jar"), str(JAVA_DIR / "netty-resolver.jar")]
ADMIN = [("O", "acme"), ("CN", "admin")]


# -- certificates -----------------------------------------------------------------

class Pki:
    def __init__(self, directory):
        self.ca = tlspki.CA(directory / "ca")
        self.server = self.ca.issue("server")
        self.bob = self.ca.issue("bob", subject=[("C", "US"), ("O", "acme"), ("OU", "dev"),
                                                 ("CN", "bob")])
        self.alice = self.ca.issue("alice")
        self.admin = self.ca.issue("admin", subject=ADMIN)
        self.rogue_ca = tlspki.CA(directory / "rogue", name="rogue CA")
        self.rogue = self.rogue_ca.issue("rogue-server")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def server_tls(pki, **extra):
    """nookeeper's TLS settings (ServerProcess keyword arguments)."""
    return {"tls_cert_file": str(pki.server.cert), "tls_key_file": str(pki.server.key),
            "tls_ca_file": str(pki.ca.cert_path), **extra}


# -- the two servers ------------------------------------------------------------

class Secure:
    """A server with a secure client port: `hosts` for TLS clients."""

    def __init__(self, kind, port, log):
        self.kind = kind
        self.port = port
        self.hosts = f"127.0.0.1:{port}"
        self._log = log

    def log_text(self):
        return self._log()


def missing_zookeeper_tls():
    from zookeeper_harness import missing_zookeeper
    missing = missing_zookeeper()
    if missing:
        return missing
    if not all(os.path.isfile(jar) for jar in NETTY_EXTRA):
        return f"{', '.join(NETTY_EXTRA)} missing (Debian's libnetty-java)"
    return None


def start_nookeeper(workdir, pki, client_auth):
    port = free_port()
    server = ServerProcess(workdir, secure_client_address=f"127.0.0.1:{port}",
                           x509_superuser="CN=admin,O=acme",
                           **server_tls(pki, client_auth=client_auth))
    server.start()
    return server, Secure("nookeeper", port, lambda: server.log_path.read_text(errors="replace"))


def start_zookeeper(workdir, pki, client_auth):
    reason = missing_zookeeper_tls()
    if reason:
        pytest.skip(reason)
    from zookeeper_harness import ZooKeeperProcess, free_ports, zookeeper_classpath
    port = free_ports(1)[0]
    saved = os.environ.get("NK_ZOOKEEPER_CLASSPATH")
    os.environ["NK_ZOOKEEPER_CLASSPATH"] = ":".join(zookeeper_classpath() + NETTY_EXTRA)
    try:
        zk = ZooKeeperProcess(workdir, tick_ms=200, extra_config={
            "secureClientPort": port,
            "secureClientPortAddress": "127.0.0.1",
            "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
            "ssl.keyStore.location": pki.server.bundle,
            "ssl.keyStore.type": "PEM",
            "ssl.trustStore.location": pki.ca.cert_path,
            "ssl.trustStore.type": "PEM",
            "ssl.clientAuth": client_auth,
            "X509AuthenticationProvider.superUser": "CN=admin,O=acme",
        })
        zk.start()
    finally:
        if saved is None:
            os.environ.pop("NK_ZOOKEEPER_CLASSPATH", None)
        else:
            os.environ["NK_ZOOKEEPER_CLASSPATH"] = saved
    return zk, Secure("zookeeper", port, lambda: zk.log_path.read_text(errors="replace"))


_STARTERS = {"nookeeper": start_nookeeper, "zookeeper": start_zookeeper}


@pytest.fixture(scope="module")
def servers(tmp_path_factory, pki):
    """(kind, client_auth) -> Secure, started on first use, all killed at the end."""
    started, processes = {}, []

    def get(kind, client_auth):
        if (kind, client_auth) not in started:
            workdir = tmp_path_factory.mktemp(f"{kind}-{client_auth}")
            process, secure = _STARTERS[kind](workdir, pki, client_auth)
            processes.append(process)
            started[kind, client_auth] = secure
        return started[kind, client_auth]

    yield get
    for process in processes:
        process.kill()


# -- clients --------------------------------------------------------------------

@contextlib.contextmanager
def kazoo(pki, hosts, who=None, timeout=10.0):
    """A started kazoo client over TLS, presenting `who`'s certificate if given."""
    certs = {"certfile": str(who.cert), "keyfile": str(who.key)} if who else {}
    zk = KazooClient(hosts=hosts, timeout=4, use_ssl=True, ca=str(pki.ca.cert_path),
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
                     **certs)
    try:
        zk.start(timeout=timeout)
        yield zk
    finally:
        zk.stop()
        zk.close()


def connects(pki, hosts, who=None):
    """'connected' or 'refused' (no session within 1.5 s) for a kazoo client."""
    try:
        with kazoo(pki, hosts, who, timeout=1.5):
            return "connected"
    except Exception as exc:  # kazoo's timeout, or an SSL error from its handshake
        if type(exc).__name__ in ("KazooTimeoutError", "SSLError", "SSLCertVerificationError"):
            return "refused"
        raise


def reads(pki, hosts, path, who=None):
    with kazoo(pki, hosts, who) as zk:
        try:
            return zk.get(path)[0].decode()
        except NoAuthError:
            return "NoAuthError"


def tls_context(pki, who=None, ca=None):
    context = ssl.create_default_context(cafile=str(ca or pki.ca.cert_path))
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    return context


def tls_four_letter_word(pki, port, word, who=None, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with tls_context(pki, who).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(word.encode())
            chunks = []
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return b"".join(chunks).decode()
                chunks.append(chunk)


def peer_certificate_cn(pki, port, who):
    """The CN of the certificate a fresh TLS connection to `port` is shown."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context(pki, who).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            subject = dict(pair[0] for pair in sock.getpeercert()["subject"])
            return subject["commonName"]


def zkcli(pki, hosts, who, *commands):
    """zkCli.sh 3.8 over TLS (Netty, PEM stores) as `who`: what it prints for
    the commands, without banner, log lines, prompts and watcher noise."""
    flags = [
        "-cp", ":".join([str(JAVA_DIR / "zookeeper.jar"), *NETTY_EXTRA]),
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.keyStore.location={who.bundle}",
        "-Dzookeeper.ssl.keyStore.type=PEM",
        f"-Dzookeeper.ssl.trustStore.location={pki.ca.cert_path}",
        "-Dzookeeper.ssl.trustStore.type=PEM",
        "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
    ]
    env = {**os.environ, "CLIENT_JVMFLAGS": " ".join(flags)}
    script = "\n".join(commands + ("quit",)) + "\n"
    result = subprocess.run([ZKCLI, "-server", hosts], input=script, capture_output=True,
                            text=True, timeout=60, env=env)
    lines = []
    for line in (result.stdout + result.stderr).splitlines():
        line = re.sub(r"^\[zk: [^\]]*\] ", "", line).strip()
        if (not line or "WATCHER::" in line or "WatchedEvent" in line or "SLF4J" in line
                or re.match(r"^\d{4}-\d\d-\d\d", line) or "JLine" in line
                or line.startswith(("Connecting to", "Welcome to", "quit"))):
            continue
        lines.append(line)
    return lines


needs_zkcli = pytest.mark.skipif(not (os.path.exists(ZKCLI) and shutil.which("java")),
                                 reason="zkCli.sh or java missing (make test installs them)")
BACKENDS = ["nookeeper", "zookeeper"]


# -- the client port --------------------------------------------------------------

@pytest.mark.parametrize("kind", BACKENDS)
def test_client_auth_need_wants_a_certificate_from_our_ca(kind, servers, pki):
    server = servers(kind, "need")
    outcome = {
        "with a certificate": connects(pki, server.hosts, pki.bob),
        "without one": connects(pki, server.hosts),
        "with another CA's": connects(pki, server.hosts, pki.rogue),
        "ruok over TLS": tls_four_letter_word(pki, server.port, "ruok", pki.bob),
    }
    assert outcome == {"with a certificate": "connected", "without one": "refused",
                       "with another CA's": "refused", "ruok over TLS": "imok"}


@pytest.mark.parametrize("kind", BACKENDS)
def test_client_auth_want_admits_anyone_and_x509_acls_hold(kind, servers, pki):
    server = servers(kind, "want")
    path = "/secret-" + kind
    with kazoo(pki, server.hosts, pki.bob) as zk:
        zk.create(path, b"bob's", acl=[make_acl("x509", pki.bob.subject, all=True)])
        stored = [(a.id.scheme, a.id.id) for a in zk.get_acls(path)[0]]
    outcome = {
        "acl": stored,
        "bob": reads(pki, server.hosts, path, pki.bob),
        "alice": reads(pki, server.hosts, path, pki.alice),
        "no certificate": reads(pki, server.hosts, path),
        "x509 super user": reads(pki, server.hosts, path, pki.admin),
    }
    assert outcome == {"acl": [("x509", "CN=bob,OU=dev,O=acme,C=US")], "bob": "bob's",
                       "alice": "NoAuthError", "no certificate": "NoAuthError",
                       "x509 super user": "bob's"}


@needs_zkcli
@pytest.mark.parametrize("kind", BACKENDS)
def test_zkcli_over_tls_authenticates_with_its_certificate(kind, servers, pki):
    server = servers(kind, "need")
    path = "/zkcli-" + kind
    with kazoo(pki, server.hosts, pki.bob) as zk:
        zk.create(path, b"for bob", acl=[make_acl("x509", pki.bob.subject, read=True)])
    as_bob = zkcli(pki, server.hosts, pki.bob, f"get {path}", "whoami")
    as_alice = zkcli(pki, server.hosts, pki.alice, f"get {path}")
    assert as_bob == ["for bob", "Auth scheme: User", "ip: 127.0.0.1",
                      "x509: CN=bob,OU=dev,O=acme,C=US"]
    assert as_alice == [f"Insufficient permission : {path}"]


def test_a_silent_client_stalls_no_one_and_is_dropped(servers, pki):
    server = servers("nookeeper", "need")
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        started = time.monotonic()
        assert connects(pki, server.hosts, pki.bob) == "connected"
        assert time.monotonic() - started < 2.0
        # The handshake has a deadline (tls.HANDSHAKE_TIMEOUT_S, 5 s).
        silent[0].settimeout(10)
        assert silent[0].recv(1) == b""
        assert "TLS handshake failed: no TLS handshake in time" in server.log_text()
    finally:
        for sock in silent:
            sock.close()


def test_a_tls_only_server_has_no_plain_port(tmp_path, pki):
    port = free_port()
    server = ServerProcess(tmp_path / "tls-only", client_address=None,
                           secure_client_address=f"127.0.0.1:{port}", **server_tls(pki))
    server.launch()
    try:
        wait_for(lambda: _answers_srvr(pki, port), timeout=20, message="srvr over TLS")
        with kazoo(pki, f"127.0.0.1:{port}", pki.alice) as zk:
            zk.create("/only-tls", b"x")
        conf = tls_four_letter_word(pki, port, "conf", pki.bob, 2.0)
        assert f"secureClientPort={port}\n" in conf and "clientPort=" not in conf.replace(
            "secureClientPort=", "")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.kill()


def _answers_srvr(pki, port):
    try:
        return "Mode: standalone" in tls_four_letter_word(pki, port, "srvr", pki.bob, 1.0)
    except OSError:
        return False


def test_replaced_certificate_is_used_for_new_connections_without_restart(tmp_path, pki):
    ca = pki.ca
    first = ca.issue("reload-v1")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    port = free_port()
    server = ServerProcess(tmp_path / "reload", secure_client_address=f"127.0.0.1:{port}",
                           tls_cert_file=str(cert), tls_key_file=str(key),
                           tls_ca_file=str(ca.cert_path))
    server.start()
    try:
        assert peer_certificate_cn(pki, port, pki.bob) == "reload-v1"
        with kazoo(pki, server_hosts(port), pki.bob) as zk:
            zk.create("/kept", b"1")
            # Replaced as deployment tools do: new files renamed over the old.
            second = ca.issue("reload-v2")
            _replace(second.key, key)
            _replace(second.cert, cert)
            wait_for(lambda: peer_certificate_cn(pki, port, pki.bob) == "reload-v2", timeout=5,
                     message="the new certificate")
            assert zk.get("/kept")[0] == b"1"  # the open connection is untouched
        # An expired replacement is refused with a log line; the last good one stays.
        expired = ca.issue("reload-expired", days=-1,
                           not_before=_days_ago(10))
        _replace(expired.key, key)
        _replace(expired.cert, cert)
        assert peer_certificate_cn(pki, port, pki.bob) == "reload-v2"
        wait_for(lambda: re.search(r"secure client port: TLS files changed but cannot be used: "
                                   r"tls_cert_file: \S+server\.crt: certificate for "
                                   r"CN=reload-expired,O=acme expired on ",
                                   server.log_path.read_text()),
                 timeout=5, message="the reload error in the log")
        assert "TLS files reloaded: certificate for CN=reload-v2,O=acme" in \
            server.log_path.read_text()
    finally:
        server.kill()


def server_hosts(port):
    return f"127.0.0.1:{port}"


def _days_ago(days):
    import datetime
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)


def _replace(source, target):
    temporary = Path(str(target) + ".new")
    shutil.copy(source, temporary)
    os.replace(temporary, target)


def test_an_expired_certificate_stops_start_up_with_the_file_named(tmp_path, pki):
    expired = pki.ca.issue("expired-at-start", days=-1, not_before=_days_ago(10))
    port = free_port()
    server = ServerProcess(tmp_path / "expired", secure_client_address=f"127.0.0.1:{port}",
                           tls_cert_file=str(expired.cert), tls_key_file=str(expired.key),
                           tls_ca_file=str(pki.ca.cert_path))
    server.launch()
    assert server.proc.wait(timeout=20) == 2
    assert re.search(r"server\.yaml: tls_cert_file: \S+expired-at-start\.crt: certificate for "
                     r"CN=expired-at-start,O=acme expired on \d{4}-\d\d-\d\d", server.log_tail())


# -- peer links -------------------------------------------------------------------

def test_ensemble_over_peer_tls_survives_kill_9_of_its_leader(tmp_path, pki):
    ensemble = Ensemble(tmp_path / "ensemble", 3, peer_tls=True, **server_tls(pki))
    try:
        ensemble.start()
        leader = ensemble.leader()
        for sid, server in ensemble.servers.items():
            log = server.log_path.read_text()
            for other in set(ensemble.servers) - {sid}:
                assert re.search(rf"link to server {other} up \(TLSv1\.[23]\)", log), log
        zk = KazooClient(hosts=ensemble.hosts, timeout=6)
        zk.start(timeout=20)
        try:
            zk.create("/before", b"1")
            leader.kill()
            new = wait_for(lambda: ensemble._find("leader"), timeout=20, message="a new leader")
            assert new is not leader
            zk.retry(zk.create, "/after", b"2")
            for server in ensemble.servers.values():
                if server is leader:
                    continue
                with _plain(server) as each:
                    each.sync("/")
                    assert each.get("/before")[0] == b"1" and each.get("/after")[0] == b"2"
        finally:
            zk.stop()
            zk.close()
        leader.start()  # rejoins over TLS
        with _plain(leader) as back:
            back.sync("/")
            assert back.get("/after")[0] == b"2"
    finally:
        ensemble.kill_all()


@contextlib.contextmanager
def _plain(server):
    zk = KazooClient(hosts=server.hosts, timeout=6)
    zk.start(timeout=20)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def test_a_member_with_another_cas_certificate_is_refused_until_it_gets_ours(tmp_path, pki):
    ensemble = Ensemble(tmp_path / "ensemble", 3, peer_tls=True, **server_tls(pki))
    outsider = ensemble.servers[3]
    # Server 3 presents a certificate our CA did not issue (it trusts ours).
    cert, key = tmp_path / "member3.crt", tmp_path / "member3.key"
    shutil.copy(pki.rogue.cert, cert)
    shutil.copy(pki.rogue.key, key)
    config = yaml.safe_load(outsider.config_path.read_text())
    config.update(tls_cert_file=str(cert), tls_key_file=str(key))
    outsider.config_path.write_text(yaml.safe_dump(config))
    try:
        for server in ensemble.servers.values():
            server.launch()
        for sid in (1, 2):
            ensemble.servers[sid].wait_serving(30)
        # Server 3 dials 1 and 2 (the higher id dials); each refuses it, saying why.
        refusal = re.compile(r"WARNING .*refusing peer link with 127\.0\.0\.1:\d+: TLS handshake "
                             r"failed: certificate verify failed: unable to get local issuer "
                             r"certificate")
        for sid in (1, 2):
            wait_for(lambda: refusal.search(ensemble.servers[sid].log_path.read_text()),
                     timeout=10, message=f"server {sid}'s refusal")
        assert not outsider.is_serving()
        # The outsider hears why from the alert (TLS 1.3 judges its certificate
        # after its own side of the handshake is done).
        assert re.search(r"WARNING .*refusing peer link with 127\.0\.0\.1:\d+: server [12] ended "
                         r"the TLS link: tlsv1 alert unknown ca", outsider.log_path.read_text())
        # Given a certificate from our CA (no restart), its next dial gets in.
        good = pki.ca.issue("member3")
        _replace(good.key, key)
        _replace(good.cert, cert)
        outsider.wait_serving(20)
        assert outsider.mode() == "follower"
        assert "peer links: TLS files reloaded: certificate for CN=member3,O=acme" in \
            outsider.log_path.read_text()
    finally:
        ensemble.kill_all()


def test_a_member_without_tls_is_refused(tmp_path, pki):
    ensemble = Ensemble(tmp_path / "ensemble", 2, peer_tls=True, **server_tls(pki))
    plain = ensemble.servers[2]
    config = yaml.safe_load(plain.config_path.read_text())
    for key in ("peer_tls", "tls_cert_file", "tls_key_file", "tls_ca_file"):
        config.pop(key)
    plain.config_path.write_text(yaml.safe_dump(config))
    try:
        for server in ensemble.servers.values():
            server.launch()
        wait_for(lambda: re.search(r"WARNING .*refusing peer link with 127\.0\.0\.1:\d+: TLS "
                                   r"handshake failed: ",
                                   ensemble.servers[1].log_path.read_text()),
                 timeout=10, message="the refusal")
        assert not ensemble.servers[1].is_serving() and not plain.is_serving()
    finally:
        ensemble.kill_all()


# -- nookeeper's client and shell -----------------------------------------------

@pytest.mark.parametrize("kind", BACKENDS)
def test_keeper_client_over_tls(kind, servers, pki):
    from nookeeper.client import KeeperClient
    from nookeeper.client.exceptions import NoAuthError as KeeperNoAuth
    server = servers(kind, "want")
    path = "/keeper-" + kind

    def client(who=None):
        certs = {"certfile": str(who.cert), "keyfile": str(who.key)} if who else {}
        return KeeperClient(server.hosts, timeout=6, use_ssl=True, ca=str(pki.ca.cert_path),
                            **certs)

    with client(pki.bob) as zk:
        assert ("x509", "CN=bob,OU=dev,O=acme,C=US") in zk.whoami()
        zk.create(path, b"bob's", acl=[make_acl("x509", pki.bob.subject, all=True)])
        assert zk.get(path)[0] == b"bob's"
        assert zk.command(b"ruok") == "imok"  # four-letter words over TLS too
        with zk.Lock("/locks-" + kind, "bob"):  # pipelined requests through TLS
            results = [zk.create_async(f"{path}/n", b"x" * 5000, sequence=True)
                       for _ in range(200)]
            assert len({r.get(10) for r in results}) == 200
    with client(pki.alice) as zk:
        with pytest.raises(KeeperNoAuth):
            zk.get(path)
    with client() as zk:
        assert [scheme for scheme, _ in zk.whoami()] == ["ip"]
        with pytest.raises(KeeperNoAuth):
            zk.get(path)


def test_keeper_client_checks_the_servers_certificate(servers, pki, tmp_path):
    from nookeeper.client import KeeperClient
    from nookeeper.client.exceptions import KeeperTimeoutError
    server = servers("nookeeper", "want")
    # Another CA's server certificate: refused, unless told not to verify.
    untrusted = KeeperClient(server.hosts, timeout=6, use_ssl=True,
                             ca=str(pki.rogue_ca.cert_path))
    with pytest.raises(KeeperTimeoutError):
        untrusted.start(timeout=1.5)
    with KeeperClient(server.hosts, timeout=6, use_ssl=True, verify_certs=False) as zk:
        zk.exists("/")
    with pytest.raises(ValueError):
        KeeperClient(server.hosts, use_ssl=True, verify_certs=False, check_hostname=True)
    with pytest.raises(FileNotFoundError):
        KeeperClient(server.hosts, use_ssl=True, ca=str(tmp_path / "missing.pem"))


def test_keeper_client_checks_the_host_name_only_when_asked(tmp_path, pki):
    """As kazoo: check_hostname=False by default. The certificate here names
    localhost only, not 127.0.0.1."""
    from nookeeper.client import KeeperClient
    from nookeeper.client.exceptions import KeeperTimeoutError
    named = pki.ca.issue("localhost-only", hosts=("localhost",))
    port = free_port()
    server = ServerProcess(tmp_path / "named", secure_client_address=f"127.0.0.1:{port}",
                           **server_tls(pki, tls_cert_file=str(named.cert),
                                        tls_key_file=str(named.key), client_auth="none"))
    server.start()
    try:
        ca = str(pki.ca.cert_path)
        with KeeperClient(f"127.0.0.1:{port}", timeout=6, use_ssl=True, ca=ca) as zk:
            zk.exists("/")
        with KeeperClient(f"localhost:{port}", timeout=6, use_ssl=True, ca=ca,
                          check_hostname=True) as zk:
            zk.exists("/")
        checked = KeeperClient(f"127.0.0.1:{port}", timeout=6, use_ssl=True, ca=ca,
                               check_hostname=True)
        with pytest.raises(KeeperTimeoutError):
            checked.start(timeout=1.5)
    finally:
        server.kill()


def nk(*args, timeout=30):
    from harness import ROOT
    import sys
    return subprocess.run([sys.executable, str(ROOT / "bin" / "nk"), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", BACKENDS)
def test_nk_over_tls(kind, servers, pki):
    server = servers(kind, "need")
    tls_args = ["--tls-cert", str(pki.bob.cert), "--tls-key", str(pki.bob.key),
                "--tls-ca", str(pki.ca.cert_path)]
    result = nk("-s", server.hosts, "--tls", *tls_args, "whoami")
    assert result.returncode == 0, result.stderr
    assert "x509: CN=bob,OU=dev,O=acme,C=US" in result.stdout.splitlines()
    # Without a client certificate the server (client_auth need) refuses the session.
    result = nk("-s", server.hosts, "--timeout", "1.5", "--tls", "--tls-ca",
                str(pki.ca.cert_path), "ls", "/")
    assert result.returncode == 1 and result.stderr.startswith("ConnectionLoss"), result.stderr


def test_nk_tls_flags_are_checked(pki):
    result = nk("--tls-cert", str(pki.bob.cert), "ls", "/")
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    result = nk("--tls-ca", "/nonexistent/ca.pem", "ls", "/")
    assert result.returncode == 2 and "/nonexistent/ca.pem" in result.stderr
