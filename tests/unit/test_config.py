import textwrap
from pathlib import Path

import pytest
import yaml

from nookeeper.config import ConfigError, ServerConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def write(tmp_path):
    def write(text, name="server.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def minimal(tmp_path):
    return {"server_id": 1, "client_address": "127.0.0.1:2181",
            "data_dir": str(tmp_path / "data")}


def as_yaml(values):
    return yaml.safe_dump(values)


def error(write, values):
    path = write(as_yaml(values))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    return info.value


def test_full_config(write, tmp_path):
    path = write(f"""
        server_id: 2
        client_address: 0.0.0.0:2182
        peer_address: 0.0.0.0:2889
        members:
          1: 127.0.0.1:2888
          2: 127.0.0.1:2889
          3: "[::1]:2890"
        data_dir: {tmp_path}/nested/node2
        tick_ms: 500
        min_session_timeout_ms: 1000
        max_session_timeout_ms: 30000
        max_frame_bytes: 4096
        max_connections_per_ip: 10
        max_connections: 100
        four_letter_words: [ruok, stat, MNTR]
        super_digest: super:D/InIHSb7yEEbrWz8b9l71RjZJU=
        log_level: debug
        log_file: {tmp_path}/server.log
    """)
    config = load_config(path)
    assert isinstance(config, ServerConfig)
    assert config.source == path
    assert config.server_id == 2
    assert (config.client_host, config.client_port) == ("0.0.0.0", 2182)
    assert (config.peer_host, config.peer_port) == ("0.0.0.0", 2889)
    assert config.members == {1: ("127.0.0.1", 2888), 2: ("127.0.0.1", 2889), 3: ("::1", 2890)}
    assert config.data_dir == tmp_path / "nested" / "node2"
    assert config.data_dir.is_dir()
    assert config.tick_ms == 500
    assert config.min_session_timeout_ms == 1000
    assert config.max_session_timeout_ms == 30000
    assert config.max_frame_bytes == 4096
    assert config.max_connections_per_ip == 10
    assert config.max_connections == 100
    assert config.four_letter_words == frozenset({"ruok", "stat", "mntr"})
    assert config.allows_four_letter_word("ruok")
    assert not config.allows_four_letter_word("dump")
    assert config.super_digest == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert config.log_level == "DEBUG"
    assert config.log_file == tmp_path / "server.log"
    assert not config.is_standalone
    with pytest.raises(AttributeError):
        config.tick_ms = 1


def test_defaults(write, minimal):
    config = load_config(write(as_yaml(minimal)))
    assert config.tick_ms == 2000
    assert config.min_session_timeout_ms == 4000
    assert config.max_session_timeout_ms == 40000
    assert config.max_frame_bytes == 1048576
    assert config.max_connections_per_ip == 60
    assert config.max_connections == 1024
    assert config.four_letter_words == frozenset({"srvr"})  # ZooKeeper's default
    assert not config.allows_four_letter_word("dump")
    assert config.super_digest is None
    assert config.log_level == "INFO"
    assert config.log_file is None
    assert config.peer_host is None and config.peer_port is None
    assert config.members == {}
    assert config.is_standalone


def test_session_timeouts_follow_tick(write, minimal):
    config = load_config(write(as_yaml(dict(minimal, tick_ms=100))))
    assert (config.min_session_timeout_ms, config.max_session_timeout_ms) == (200, 2000)


def test_only_itself_in_members_is_standalone(write, minimal):
    config = load_config(write(as_yaml(dict(minimal, members={1: "127.0.0.1:2888"}))))
    assert config.is_standalone
    assert (config.peer_host, config.peer_port) == ("127.0.0.1", 2888)


def test_relative_data_dir_is_relative_to_cwd(write, minimal, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    config = load_config(write(as_yaml(dict(minimal, data_dir="data/n1"))))
    assert config.data_dir == work / "data" / "n1"
    assert config.data_dir.is_absolute() and config.data_dir.is_dir()


def test_star_allows_every_word(write, minimal):
    for value in ("*", ["ruok", "*"]):
        config = load_config(write(as_yaml(dict(minimal, four_letter_words=value))))
        assert config.four_letter_words is None
    config = load_config(write(as_yaml(dict(minimal, four_letter_words=[]))))
    assert not config.allows_four_letter_word("ruok")


@pytest.mark.parametrize("name", ["standalone", "node1", "node2", "node3"])
def test_shipped_configs_load(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(ROOT / "etc" / f"{name}.yaml")
    assert config.client_host == "127.0.0.1"
    assert config.data_dir.is_relative_to(tmp_path)
    assert config.is_standalone == (name == "standalone")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such file"


def test_not_yaml(write):
    path = write("server_id: [1\nclient_address: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not valid YAML")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just words\n"])
def test_top_level_not_a_mapping(write, text):
    path = write(text)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_unknown_key(write, minimal):
    e = error(write, dict(minimal, tickms=10))
    assert e.key == "tickms"
    assert str(e).endswith("tickms: unknown key (did you mean tick_ms?)")


@pytest.mark.parametrize("key", ["server_id", "client_address", "data_dir"])
def test_missing_required_key(write, minimal, key):
    del minimal[key]
    e = error(write, minimal)
    assert e.key == key
    assert str(e).endswith(f": {key}: required key is missing")


@pytest.mark.parametrize("key, value", [
    ("server_id", "one"),
    ("server_id", True),
    ("server_id", 1.5),
    ("tick_ms", "2000"),
    ("max_frame_bytes", [1]),
    ("max_connections", {"a": 1}),
    ("client_address", 2181),
    ("data_dir", 7),
    ("members", ["127.0.0.1:2888"]),
    ("four_letter_words", "ruok"),
    ("log_level", 3),
    ("log_file", False),
])
def test_wrong_type(write, minimal, key, value):
    e = error(write, dict(minimal, **{key: value}))
    assert e.key == key


@pytest.mark.parametrize("key, value", [
    ("server_id", 0),
    ("server_id", 255),
    ("tick_ms", 0),
    ("min_session_timeout_ms", -1),
    ("max_frame_bytes", 0),
    ("max_connections_per_ip", 0),
    ("log_level", "TRACE"),
    ("four_letter_words", ["ruok", "toolong"]),
    ("super_digest", "nocolon"),
    ("super_digest", "super:notbase64!"),
    ("super_digest", "super:c2hvcnQ="),
    ("container_check_interval_ms", 0),
    ("container_max_per_minute", -5),
    ("container_max_never_used_ms", -1),
    ("ttl_nodes", "yes"),
    ("enforce_quota", 1),
])
def test_bad_value(write, minimal, key, value):
    assert error(write, dict(minimal, **{key: value})).key == key


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.0.0.1:", ":2181", "127.0.0.1:0", "127.0.0.1:65536",
    "127.0.0.1:http", "::1:2181", "[]:2181", "host name:2181",
])
@pytest.mark.parametrize("key", ["client_address", "peer_address"])
def test_bad_address(write, minimal, key, address):
    e = error(write, dict(minimal, **{key: address}))
    assert e.key == key


def test_good_addresses(write, minimal):
    for address, expected in [("localhost:1", ("localhost", 1)),
                              ("[::1]:65535", ("::1", 65535)),
                              ("0.0.0.0:2181", ("0.0.0.0", 2181))]:
        config = load_config(write(as_yaml(dict(minimal, client_address=address))))
        assert (config.client_host, config.client_port) == expected


def test_max_timeout_below_min(write, minimal):
    e = error(write, dict(minimal, min_session_timeout_ms=5000, max_session_timeout_ms=4000))
    assert e.key == "max_session_timeout_ms"


def test_members_without_this_server(write, minimal):
    e = error(write, dict(minimal, members={2: "127.0.0.1:2889", 3: "127.0.0.1:2890"}))
    assert e.key == "members"


def test_members_port_differs_from_peer_address(write, minimal):
    e = error(write, dict(minimal, peer_address="0.0.0.0:2888",
                          members={1: "127.0.0.1:2999", 2: "127.0.0.1:2889"}))
    assert e.key == "members.1"


@pytest.mark.parametrize("members, key", [
    ({1: "127.0.0.1:2888", 0: "127.0.0.1:2889"}, "members.0"),
    ({1: "127.0.0.1:2888", "two": "127.0.0.1:2889"}, "members.two"),
    ({1: "127.0.0.1:2888", 2: "127.0.0.1"}, "members.2"),
])
def test_bad_member(write, minimal, members, key):
    assert error(write, dict(minimal, members=members)).key == key


def test_data_dir_not_creatable(write, minimal, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    e = error(write, dict(minimal, data_dir=str(blocker / "sub")))
    assert e.key == "data_dir"
    assert "cannot create" in e.message
    e = error(write, dict(minimal, data_dir=str(blocker)))
    assert e.key == "data_dir"


def test_bad_config_leaves_no_data_dir(write, minimal, tmp_path):
    error(write, dict(minimal, tick_ms=0))
    assert not (tmp_path / "data").exists()
