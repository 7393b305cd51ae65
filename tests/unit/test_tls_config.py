"""TLS without a server process: config keys and their file checks, the x509
subject as Java prints it, TlsSocket under concurrent writers, reload."""

import datetime
import logging
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import yaml

from nookeeper.config import ConfigError, load_config
from nookeeper.server import tls
from nookeeper.x509 import parse_certificate, valid_name

tlspki = pytest.importorskip("tlspki", reason="the cryptography package makes the test PKI")
from cryptography import x509 as cx509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = tlspki.CA(directory)
    return {"ca": ca, "server": ca.issue("server"), "dir": directory}


def _days(n):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=n)


def load(tmp_path, **settings):
    doc = {"server_id": 1, "client_address": "127.0.0.1:2181", "data_dir": str(tmp_path / "d")}
    doc.update(settings)
    doc = {k: v for k, v in doc.items() if v is not None}
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def error(tmp_path, **settings):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **settings)
    return info.value


def files(pki, **override):
    settings = {"tls_cert_file": str(pki["server"].cert), "tls_key_file": str(pki["server"].key),
                "tls_ca_file": str(pki["ca"].cert_path)}
    settings.update(override)
    return settings


# -- config -----------------------------------------------------------------------

def test_defaults_have_no_tls(tmp_path):
    config = load(tmp_path)
    assert config.secure_client_port is None and not config.peer_tls
    assert config.client_auth == "need" and config.tls_files is None


def test_secure_port_and_peer_tls(tmp_path, pki):
    config = load(tmp_path, secure_client_address="127.0.0.1:2281", peer_tls=True,
                  client_auth="want", x509_superuser="CN=admin,O=acme", **files(pki))
    assert (config.secure_client_host, config.secure_client_port) == ("127.0.0.1", 2281)
    assert config.client_auth == "want" and config.peer_tls and config.peer_tls_check_hostname
    assert config.tls_files == tls.TlsFiles(str(pki["server"].cert), str(pki["server"].key),
                                            str(pki["ca"].cert_path))
    assert config.x509_superuser == "CN=admin,O=acme"


def test_the_plain_port_can_be_turned_off(tmp_path, pki):
    config = load(tmp_path, client_address=None, secure_client_address="127.0.0.1:2281",
                  **files(pki))
    assert config.client_port is None and config.secure_client_port == 2281


def test_a_server_needs_some_client_port(tmp_path):
    e = error(tmp_path, client_address=None)
    assert (e.key, e.message) == ("client_address", "required key is missing")


@pytest.mark.parametrize("missing", ["tls_cert_file", "tls_key_file", "tls_ca_file"])
def test_tls_files_required_by_what_uses_them(tmp_path, pki, missing):
    e = error(tmp_path, secure_client_address="127.0.0.1:2281", **files(pki, **{missing: None}))
    assert e.key == missing
    assert e.message == "required key is missing (needed by secure_client_address)"


def test_no_ca_needed_without_client_certificates(tmp_path, pki):
    config = load(tmp_path, secure_client_address="127.0.0.1:2281", client_auth="none",
                  **files(pki, tls_ca_file=None))
    assert config.tls_ca_file is None
    e = error(tmp_path, peer_tls=True, **files(pki, tls_ca_file=None))
    assert str(e).endswith("tls_ca_file: required key is missing (needed by peer_tls)")


def test_unused_tls_files_are_an_error(tmp_path, pki):
    e = error(tmp_path, **files(pki))
    assert e.key == "tls_cert_file"
    assert e.message == "set, but neither secure_client_address nor peer_tls uses it"


@pytest.mark.parametrize("key, value, message", [
    ("client_auth", "maybe", "expected need, want or none, got 'maybe'"),
    ("peer_tls", "yes", "expected true or false, got str 'yes'"),
    ("secure_client_address", "localhost", "expected host:port, got 'localhost'"),
    ("x509_superuser", "admin", "not a distinguished name (as CN=admin,O=acme): 'admin'"),
])
def test_bad_values(tmp_path, pki, key, value, message):
    settings = {"secure_client_address": "127.0.0.1:2281", **files(pki), key: value}
    e = error(tmp_path, **settings)
    assert (e.key, e.message) == (key, message)


def test_expired_certificate_named_with_its_file(tmp_path, pki):
    old = pki["ca"].issue("old", not_before=_days(-10), not_after=_days(-1))
    e = error(tmp_path, secure_client_address="127.0.0.1:2281",
              **files(pki, tls_cert_file=str(old.cert), tls_key_file=str(old.key)))
    assert e.key == "tls_cert_file"
    assert e.message.startswith(f"{old.cert}: certificate for CN=old,O=acme expired on ")
    assert e.message.endswith(" UTC")


def test_not_yet_valid_certificate(tmp_path, pki):
    early = pki["ca"].issue("early", not_before=_days(2), not_after=_days(10))
    e = error(tmp_path, peer_tls=True,
              **files(pki, tls_cert_file=str(early.cert), tls_key_file=str(early.key)))
    assert e.key == "tls_cert_file" and "is not valid before" in e.message


def test_key_of_another_certificate(tmp_path, pki):
    stray = tlspki.other_key(tmp_path / "stray.key")
    e = error(tmp_path, secure_client_address="127.0.0.1:2281",
              **files(pki, tls_key_file=str(stray)))
    assert (e.key, e.message) == ("tls_key_file", f"{stray} is not the key of the certificate "
                                                  f"in {pki['server'].cert}")


@pytest.mark.parametrize("key, content, message", [
    ("tls_cert_file", None, "no such file"),
    ("tls_cert_file", "key", "no PEM certificate in it"),
    ("tls_key_file", "cert", "no PEM private key in it"),
    ("tls_ca_file", "garbage", "no PEM certificate in it"),
])
def test_unusable_files(tmp_path, pki, key, content, message):
    path = tmp_path / "file.pem"
    if content == "key":
        shutil.copy(pki["server"].key, path)
    elif content == "cert":
        shutil.copy(pki["server"].cert, path)
    elif content == "garbage":
        path.write_text("not a certificate\n")
    e = error(tmp_path, secure_client_address="127.0.0.1:2281", **files(pki, **{key: str(path)}))
    assert (e.key, e.message) == (key, f"{path}: {message}")


# -- the x509 identity ----------------------------------------------------------

def _cert_with_subject(name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = _days(0)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(_days(1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _attr(oid, value, tag=None):
    kwargs = {"_type": tag} if tag is not None else {}
    return cx509.NameAttribute(oid, value, **kwargs)


SUBJECTS = {
    "plain": cx509.Name([_attr(NameOID.COUNTRY_NAME, "US"), _attr(NameOID.ORGANIZATION_NAME, "acme"),
                         _attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "dev"),
                         _attr(NameOID.COMMON_NAME, "bob")]),
    "escapes": cx509.Name([_attr(NameOID.ORGANIZATION_NAME, "Acme, Inc. <#1+2=3;\"\\>"),
                           _attr(NameOID.COMMON_NAME, " padded ")]),
    "email and serial": cx509.Name([_attr(NameOID.COMMON_NAME, "carol"),
                                    _attr(NameOID.EMAIL_ADDRESS, "carol@example.com"),
                                    _attr(NameOID.SERIAL_NUMBER, "42")]),
    "multi-valued and DC": cx509.Name([
        cx509.RelativeDistinguishedName([_attr(NameOID.DOMAIN_COMPONENT, "org")]),
        cx509.RelativeDistinguishedName([_attr(NameOID.COMMON_NAME, "dave"),
                                         _attr(NameOID.USER_ID, "d42")]),
    ]),
    "unicode": cx509.Name([_attr(NameOID.COMMON_NAME, "Zoë Ünïcode ☃")]),
}

EXPECTED = {
    "plain": "CN=bob,OU=dev,O=acme,C=US",
    "escapes": "CN=\\ padded\\ ,O=Acme\\, Inc. \\<\\#1\\+2\\=3\\;\\\"\\\\\\>",
    "email and serial": "2.5.4.5=#13023432,1.2.840.113549.1.9.1=#1611636172"
                        "6f6c406578616d706c652e636f6d,CN=carol",
    "multi-valued and DC": None,  # the SET's DER order decides; checked against Java below
    "unicode": "CN=Zoë Ünïcode ☃",
}


@pytest.mark.parametrize("case", [c for c in EXPECTED if EXPECTED[c]])
def test_subject_as_x500principal_prints_it(case):
    assert parse_certificate(_cert_with_subject(SUBJECTS[case])).subject == EXPECTED[case]


_JAVA = """
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class Subjects {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (String path : args) {
            X509Certificate cert = (X509Certificate) factory.generateCertificate(new FileInputStream(path));
            System.out.println(cert.getSubjectX500Principal().getName());
        }
    }
}
"""


@pytest.mark.skipif(not shutil.which("javac") or not shutil.which("java"),
                    reason="a JDK (javac) is needed to ask Java itself")
def test_subjects_match_javas_x500principal(tmp_path):
    """The identity ZooKeeper's X509AuthenticationProvider takes, from Java itself."""
    (tmp_path / "Subjects.java").write_text(_JAVA)
    paths = []
    for index, name in enumerate(SUBJECTS.values()):
        path = tmp_path / f"{index}.der"
        path.write_bytes(_cert_with_subject(name))
        paths.append(str(path))
    result = subprocess.run(["java", "-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8",
                             str(tmp_path / "Subjects.java"), *paths],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    java = result.stdout.decode("utf-8").splitlines()
    ours = [parse_certificate((tmp_path / f"{i}.der").read_bytes()).subject
            for i in range(len(SUBJECTS))]
    assert ours == java


@pytest.mark.parametrize("text, valid", [
    ("CN=bob,OU=dev,O=acme", True), ("cn=bob; o=acme", True), ("CN=a+UID=b,DC=org", True),
    ("2.5.4.3=bob", True), ("OID.2.5.4.3=bob", True), ("CN=#0403626f62", True),
    ("CN=\"quoted, with comma\"", True), ("", True),
    ("bob", False), ("FOO=bar", False), ("CN=bob,", False), ("CN=\"open", False),
    ("CN=#xyz", False), ("CN=bob\\", False),
])
def test_x509_acl_ids_valid_as_x500principal_parses_them(text, valid):
    assert valid_name(text) is valid


# -- TlsSocket --------------------------------------------------------------------

def _pair(pki):
    files = tls.TlsFiles(str(pki["server"].cert), str(pki["server"].key),
                         str(pki["ca"].cert_path))
    a, b = socket.socketpair()
    server, client = {}, {}

    def serve():
        server["sock"] = tls.handshake(a, tls.server_context(files, "need"), server_side=True)

    thread = threading.Thread(target=serve)
    thread.start()
    client["sock"] = tls.handshake(b, tls.client_context(files, check_hostname=False),
                                   server_side=False)
    thread.join(10)
    return server["sock"], client["sock"]


def test_tls_socket_carries_concurrent_writers_in_order(pki):
    server, client = _pair(pki)
    assert tls.peer_subject(server) == "CN=server,O=acme"
    writers, frames = 4, 300
    payload = {w: [f"{w}:{i}:".encode() + bytes([w]) * (i % 700) + b"\n" for i in range(frames)]
               for w in range(writers)}

    def write(w):
        for frame in payload[w]:
            client.sendall(frame)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    # The server answers while the client writes: both directions at once.
    echo = threading.Thread(target=lambda: [server.sendall(b"x" * 1000) for _ in range(200)])
    for thread in threads + [echo]:
        thread.start()
    want = sum(len(f) for frames_ in payload.values() for f in frames_)
    got = bytearray()
    while len(got) < want:
        chunk = server.recv(65536)
        assert chunk
        got += chunk
    answer = bytearray()
    while len(answer) < 200 * 1000:
        view = memoryview(bytearray(5000))
        n = client.recv_into(view, 5000)
        answer += view[:n]
    for thread in threads + [echo]:
        thread.join(10)
    lines = bytes(got).split(b"\n")[:-1]
    for w in range(writers):
        mine = [line + b"\n" for line in lines if line.startswith(f"{w}:".encode())]
        assert mine == payload[w]
    with pytest.raises(BlockingIOError):
        client.send(b"x", socket.MSG_DONTWAIT)
    client.close()
    assert server.recv(10) == b""
    server.close()


def test_handshake_times_out(pki):
    a, b = socket.socketpair()
    files = tls.TlsFiles(str(pki["server"].cert), str(pki["server"].key), None)
    with pytest.raises(socket.timeout):
        tls.handshake(a, tls.server_context(files, "none"), server_side=True, timeout=0.2)
    a.close()
    b.close()


def test_reloading_context_follows_the_files_and_keeps_the_last_good_one(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="nookeeper.tls")
    ca = pki["ca"]
    cert, key = tmp_path / "s.crt", tmp_path / "s.key"
    first = ca.issue("first")
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    files = tls.TlsFiles(str(cert), str(key), str(ca.cert_path))
    reloading = tls.ReloadingContext(files, lambda: tls.server_context(files), "test port")
    original = reloading.get()
    assert reloading.get() is original  # nothing changed: no rebuild
    second = ca.issue("second")
    shutil.copy(second.cert, cert)   # the certificate first: the key does not match yet
    assert reloading.get() is original
    assert "test port: TLS files changed but cannot be used: tls_key_file" in caplog.text
    shutil.copy(second.key, key)
    renewed = reloading.get()
    assert renewed is not original and reloading.reloads == 1
    assert "TLS files reloaded: certificate for CN=second,O=acme" in caplog.text


def test_names_host_reads_subject_alt_names(pki):
    der = ssl.PEM_cert_to_DER_cert(pki["server"].cert.read_text())
    assert tls.names_host(der, "127.0.0.1") and tls.names_host(der, "LOCALHOST")
    assert not tls.names_host(der, "127.0.0.2") and not tls.names_host(der, "example.com")
