"""Four-letter words in ZooKeeper's formats."""

import re

from kazoo.client import KazooClient


def test_four_letter_words(server):
    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=10)
    zk.create("/four", b"x")
    zk.exists("/four", watch=lambda e: None)
    assert server.command("ruok") == "imok"
    assert server.command("isro") == "rw"
    srvr = server.command("srvr")
    assert srvr.startswith("Zookeeper version: 3.8.0")
    assert "Mode: standalone" in srvr
    assert re.search(r"^Zxid: 0x[0-9a-f]+$", srvr, re.M)
    assert re.search(r"^Node count: 6$", srvr, re.M)  # / twice, /zookeeper x3, /four
    stat = server.command("stat")
    assert "Clients:" in stat and "/127.0.0.1:" in stat
    mntr = dict(line.split("\t", 1) for line in server.command("mntr").splitlines())
    assert list(mntr)[:2] == ["zk_version", "zk_server_state"]
    assert mntr["zk_server_state"] == "standalone"
    assert mntr["zk_watch_count"] == "1"
    assert mntr["zk_znode_count"] == "6"
    assert "clientPort=%d" % server.port in server.command("conf")
    assert "sid=0x" in server.command("cons")
    assert "zookeeper.version=3.8.0" in server.command("envi")
    assert server.command("wchs").startswith("1 connections watching 1 paths")
    assert "/four" in server.command("wchp")
    zk.stop()
    zk.close()


def test_whitelist(server_factory):
    server = server_factory("whitelist", four_letter_words=["ruok"])
    assert server.command("ruok") == "imok"
    assert server.command("mntr") == "mntr is not executed because it is not in the whitelist.\n"


def test_without_the_key_only_srvr_answers_as_in_zookeeper(server_factory):
    server = server_factory("default", four_letter_words=None)
    assert "Mode: standalone" in server.command("srvr")
    for word in ("ruok", "stat", "mntr", "dump"):
        assert server.command(word) == f"{word} is not executed because it is not in the whitelist.\n"
