"""SASL DIGEST-MD5, server side (nookeeper/sasl.py), against pure-sasl's client
(kazoo's SASL dependency), plus the JAAS users file, its config keys and the
sasl ACL scheme."""

import os
import re

import pytest
import yaml

from nookeeper import acl, sasl
from nookeeper.config import ConfigError, load_config

puresasl_client = pytest.importorskip("puresasl.client")

USERS = {"bob": "bobsecret", "super": "adminsecret", "ünï": "pässwörd€"}
URI = "zookeeper/zk-sasl-md5"


def client(username, password):
    return puresasl_client.SASLClient(host="zk-sasl-md5", service="zookeeper",
                                      mechanism="DIGEST-MD5", username=username,
                                      password=password)


def exchange(server, sasl_client):
    """kazoo's loop: (the server's last token, the client)."""
    first = sasl_client.process(None) or b""
    challenge = server.step(first)
    response = sasl_client.process(challenge)
    final = server.step(response)
    sasl_client.process(final)
    return final


def java_like_response(server, user, password, authzid=None, nc="00000001", cnonce="c0ffee",
                       realm="zk-sasl-md5", uri=URI, qop="auth", extra=""):
    """A digest-response as Java's DigestMD5Client writes one (charset, maxbuf, authzid)."""
    value = sasl.response_value(user, realm, password, server.nonce, cnonce, nc, qop, uri,
                                authzid).decode()
    text = (f'charset=utf-8,username="{user}",realm="{realm}",nonce="{server.nonce}",'
            f'nc={nc},cnonce="{cnonce}",digest-uri="{uri}",maxbuf=65536,'
            f'response={value},qop={qop}')
    if authzid is not None:
        text += f',authzid="{authzid}"'
    return (text + extra).encode("utf-8")


def started(users=USERS, super_users=()):
    server = sasl.DigestMD5Server(users, super_users, nonce="n0nce/+=")
    challenge = server.step(b"")
    return server, challenge


# -- the exchange ------------------------------------------------------------


def test_the_challenge_is_zookeepers():
    _server, challenge = started()
    got = sasl.parse_directives(challenge)
    assert got == {"realm": "zk-sasl-md5", "nonce": "n0nce/+=", "qop": "auth",
                   "charset": "utf-8", "algorithm": "md5-sess"}


def test_pure_sasl_authenticates_and_checks_rspauth():
    server = sasl.DigestMD5Server(USERS)
    sasl_client = client("bob", "bobsecret")
    final = exchange(server, sasl_client)
    assert final.startswith(b"rspauth=")
    assert sasl_client.complete  # pure-sasl raises on an rspauth that proves nothing
    assert server.complete and server.user == server.authorization_id == "bob"
    assert not server.is_super


def test_a_wrong_rspauth_is_refused_by_the_client():
    """The test above can fail: pure-sasl does check the server's proof."""
    server = sasl.DigestMD5Server(USERS)
    sasl_client = client("bob", "bobsecret")
    sasl_client.process(server.step(sasl_client.process(None) or b""))
    with pytest.raises(Exception, match="Invalid server auth"):
        sasl_client.process(b"rspauth=" + b"0" * 32)


def test_wrong_password_and_unknown_user_fail_naming_the_user():
    for user, password, reason in (("bob", "nope", "wrong password"),
                                   ("mallory", "x", "no such user")):
        server = sasl.DigestMD5Server(USERS)
        sasl_client = client(user, password)
        response = sasl_client.process(server.step(b""))
        with pytest.raises(sasl.SaslFailure) as info:
            server.step(response)
        assert info.value.reason == reason and info.value.user == user
        assert not server.complete and server.authorization_id is None


def test_non_ascii_names_and_passwords_from_pure_sasl_and_java():
    """pure-sasl sends UTF-8 without charset=utf-8; Java says charset=utf-8."""
    server = sasl.DigestMD5Server(USERS)
    exchange(server, client("ünï", "pässwörd€"))
    assert server.user == "ünï"
    server, _ = started()
    server.step(java_like_response(server, "ünï", "pässwörd€", authzid="ünï"))
    assert server.user == "ünï"


def test_rfc2831_example_response_and_rspauth():
    """RFC 2831 section 4's worked example (IMAP, user chris)."""
    args = ("chris", "elwood.innosoft.com", "secret", "OA6MG9tEQGm2hh", "OA6MHXh6VqTrRk",
            "00000001", "auth", "imap/elwood.innosoft.com")
    assert sasl.response_value(*args, encoding="iso-8859-1") == \
        b"d388dad90d4bbd760a152321f2143af7"
    assert sasl.response_value(*args, encoding="iso-8859-1", a2_prefix=b"") == \
        b"ea40f60335c427b5527b84dbabcdfffd"


def test_authzid_never_changes_who_the_session_is():
    """As ZooKeeper 3.8's SaslServerCallbackHandler: any authzid is accepted and
    the authorized id is the authenticated user (checked against ZooKeeper
    itself in tests/integration/test_sasl.py)."""
    server, _ = started()
    answer = server.step(java_like_response(server, "bob", "bobsecret", authzid="super"))
    assert answer.startswith(b"rspauth=")
    assert server.authorization_id == "bob" and server.requested_authzid == "super"
    assert not server.is_super


def test_super_users():
    server, _ = started(super_users={"super"})
    server.step(java_like_response(server, "super", "adminsecret", authzid="bob"))
    assert server.authorization_id == "super" and server.is_super


def test_rspauth_covers_the_authzid():
    server, _ = started()
    answer = server.step(java_like_response(server, "bob", "bobsecret", authzid="bob"))
    expected = sasl.response_value("bob", "zk-sasl-md5", "bobsecret", server.nonce, "c0ffee",
                                   "00000001", "auth", URI, "bob", a2_prefix=b"")
    assert answer == b"rspauth=" + expected


def test_a_gssapi_first_token_is_refused_saying_why():
    server = sasl.DigestMD5Server(USERS)
    with pytest.raises(sasl.SaslFailure, match=r"GSSAPI \(Kerberos\).*only DIGEST-MD5"):
        server.step(b"\x60\x82\x02\x10\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02")


def test_another_first_token_is_ignored_as_java_ignores_it():
    server = sasl.DigestMD5Server(USERS, nonce="n")
    assert server.step(b"\x00bob\x00secret") == server.challenge()


@pytest.mark.parametrize("change, words", [
    ({"nc": "00000002"}, "nonce count"),
    ({"realm": "elsewhere"}, "realm"),
    ({"uri": "ldap/zk-sasl-md5"}, "digest-uri"),
    ({"uri": "zookeeper/example.com"}, "digest-uri"),
    ({"qop": "auth-int"}, "qop"),
    ({"cnonce": ""}, "cnonce"),
    ({"extra": ',username="bob"'}, "twice"),
    ({"extra": ',charset=iso-8859-1'}, "twice"),
])
def test_protocol_violations_fail(change, words):
    server, _ = started()
    with pytest.raises(sasl.SaslFailure, match=words):
        server.step(java_like_response(server, "bob", "bobsecret", **change))
    assert not server.complete


def test_a_response_to_another_nonce_fails():
    server, _ = started()
    other = sasl.DigestMD5Server(USERS, nonce="other")
    with pytest.raises(sasl.SaslFailure, match="nonce"):
        server.step(java_like_response(other, "bob", "bobsecret"))


def test_nothing_after_completion_and_no_huge_tokens():
    server, _ = started()
    server.step(java_like_response(server, "bob", "bobsecret"))
    with pytest.raises(sasl.SaslFailure, match="already complete"):
        server.step(b"")
    with pytest.raises(sasl.SaslFailure, match="too long"):
        sasl.DigestMD5Server(USERS).step(b"x" * (sasl.MAX_TOKEN + 1))


def test_directives_parse_as_rfc2831_writes_them():
    got = sasl.parse_directives(b' a = "x\\"y\\\\z" ,, b=token , c="" ,')
    assert got == {"a": 'x"y\\z', "b": "token", "c": ""}
    for bad in (b'a="open', b"novalue", b'a="x"junk'):
        with pytest.raises(sasl.SaslFailure):
            sasl.parse_directives(bad)


# -- JAAS files ----------------------------------------------------------------

ZOOKEEPER_JAAS = """\
/* ZooKeeper's own example, comments and all */
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret" // the super user
    user_bob="bob\\"secret";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";
};
"""


def test_jaas_server_section_users():
    assert sasl.jaas_users(ZOOKEEPER_JAAS) == {"super": "adminsecret", "bob": 'bob"secret'}
    sections = sasl.parse_jaas(ZOOKEEPER_JAAS)
    assert sections["Client"] == [("org.apache.zookeeper.server.auth.DigestLoginModule",
                                   "required", {"username": "bob", "password": "bobsecret"})]


def test_jaas_users_from_every_module_of_the_section():
    text = ("Server { a.B optional user_x=1x; c.D Sufficient user_y=\"2\" other=z; };\n"
            "Server { e.F requisite user_x=\"later\"; };")
    assert sasl.jaas_users(text) == {"x": "later", "y": "2"}


@pytest.mark.parametrize("text, words", [
    ("Client { a.B required username=\"bob\"; };", "no 'Server' section"),
    ("Server { a.B required; };", "no user_NAME"),
    ("Server { a.B mandatory user_bob=\"x\"; };", "line 1: control flag 'mandatory'"),
    ("Server {\n a.B required\n user_bob=\"x;\n};", "line 3: unterminated quoted string"),
    ("Server { a.B required user_bob=\"x\" }", "expected an option name or ';'"),
    ("Server { a.B required user_bob=\"x\"; }", "expected ';' after '}'"),
    ("Server { a.B required user_=\"x\"; };", "names no user"),
    ("/* never closed", "unterminated /* comment"),
])
def test_jaas_mistakes_are_named(text, words):
    with pytest.raises(sasl.JaasError, match=re.escape(words)):
        sasl.jaas_users(text)


# -- config keys ---------------------------------------------------------------


@pytest.fixture
def config_with(tmp_path):
    def make(jaas=ZOOKEEPER_JAAS, mode=0o600, **settings):
        jaas_path = tmp_path / "jaas.conf"
        if jaas is not None:
            jaas_path.write_text(jaas)
            jaas_path.chmod(mode)
        values = {"server_id": 1, "client_address": "127.0.0.1:2181",
                  "data_dir": str(tmp_path / "data"), "sasl_users_file": str(jaas_path)}
        values.update(settings)
        path = tmp_path / "server.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in values.items() if v is not None}))
        return path
    return make


def test_config_reads_the_users_and_keeps_them_out_of_repr(config_with):
    config = load_config(config_with(sasl_super_user="super", sasl_required=True))
    assert config.sasl_users == {"super": "adminsecret", "bob": 'bob"secret'}
    assert config.sasl_super_users == {"super"} and config.sasl_required
    assert "adminsecret" not in repr(config)
    config = load_config(config_with(sasl_super_user=["super", "bob"]))
    assert config.sasl_super_users == {"super", "bob"} and not config.sasl_required
    off = load_config(config_with(jaas=None, sasl_users_file=None))
    assert off.sasl_users is None and off.sasl_users_file is None and not off.sasl_required


@pytest.mark.parametrize("settings, words", [
    ({"mode": 0o644}, "open to other users (mode 644); chmod 600"),
    ({"mode": 0o640}, "open to other users"),
    ({"jaas": None}, "cannot read"),
    ({"jaas": "Server { a.B required; };"}, "no user_NAME"),
    ({"jaas": None, "sasl_users_file": None, "sasl_required": True}, "needs sasl_users_file"),
    ({"sasl_required": "yes"}, "expected true or false"),
    ({"sasl_super_user": ""}, "expected a non-empty string"),
])
def test_config_refuses_to_start(config_with, settings, words):
    path = config_with(**settings)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    key = "sasl_super_user" if "sasl_super_user" in settings else \
        "sasl_required" if "sasl_required" in settings else "sasl_users_file"
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert words in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_config_refuses_a_file_of_another_user(config_with, tmp_path):
    path = config_with()
    os.chown(tmp_path / "jaas.conf", 12345, -1)
    with pytest.raises(ConfigError, match="must belong to the user running the server"):
        load_config(path)


# -- the sasl ACL scheme ---------------------------------------------------------


def test_sasl_acl_ids_valid_as_kerberos_names():
    for ident in ("bob", "bob@EXAMPLE.COM", "zookeeper/host@EXAMPLE.COM", "a/b", "", "@R"):
        assert acl.valid_sasl_id(ident), ident
    for ident in ("a@b@c", "a/b/c@R", "a@b/c"):
        assert not acl.valid_sasl_id(ident), ident
    fixed = acl.fixup([acl.ACL(acl.ALL, "sasl", "bob")], [("ip", "127.0.0.1")])
    assert fixed == (acl.ACL(acl.ALL, "sasl", "bob"),)
    with pytest.raises(acl.InvalidACLError):
        acl.fixup([acl.ACL(acl.ALL, "sasl", "a@b@c")], [])


def test_sasl_acls_match_the_user_or_a_user_named_super():
    acls = (acl.ACL(acl.READ, "sasl", "bob"),)
    assert acl.permits(acls, [("sasl", "bob")], acl.READ)
    assert not acl.permits(acls, [("sasl", "alice"), ("digest", "bob:x")], acl.READ)
    assert not acl.permits(acls, [("sasl", "bob")], acl.WRITE)
    assert acl.permits(acls, [("sasl", "super")], acl.READ)
    # 'auth' expands to the sasl identity
    assert acl.fixup([acl.ACL(acl.ALL, "auth", "")], [("ip", "x"), ("sasl", "bob")]) == \
        (acl.ACL(acl.ALL, "sasl", "bob"),)
