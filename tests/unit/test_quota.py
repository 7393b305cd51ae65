"""Quota usage as the tree counts it, and the hard-limit check before a txn."""

import pytest
from construct import Container as C

from nookeeper import snapshot
from nookeeper.quota import format_stats, parse_stats
from test_tree import Harness, op_create, op_delete

LIMITS = "/zookeeper/quota/q/zookeeper_limits"
STATS = "/zookeeper/quota/q/zookeeper_stats"


def set_quota(h, root, limits):
    """What zkCli.sh's setquota sends: the path's quota nodes, limits, then stats."""
    path = "/zookeeper/quota"
    for name in root.strip("/").split("/"):
        path += "/" + name
        h.create(path)
    h.create(path + "/zookeeper_limits", limits)
    h.create(path + "/zookeeper_stats", b"count=0,bytes=0")


def usage(h, root="/q"):
    return h.tree.get_data(f"/zookeeper/quota{root}/zookeeper_stats", ())[0]


@pytest.mark.parametrize("text, parsed", [
    (b"count=4,bytes=10", {"count": 4, "bytes": 10}),
    (b"count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=3",
     {"count": 2, "bytes": -1, "byteHardLimit": -1, "countHardLimit": 3}),
    (b"count=,bytes=7", {"count": -1, "bytes": 7}),
    (b"garbage;count=x,bytes=5", {"bytes": 5}),
    (b"", {}),
])
def test_stats_text_parses_as_zookeepers_statstrack(text, parsed):
    assert parse_stats(text) == parsed


def test_stats_text_is_written_as_zookeeper_writes_it():
    assert format_stats({"count": 4, "bytes": 10}) == b"count=4,bytes=10"
    assert format_stats({"countHardLimit": 3, "count": 2, "bytes": -1, "byteHardLimit": -1}) == (
        b"count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=3")


def test_usage_counts_the_subtree_root_included_through_writes():
    h = Harness()
    h.create("/q", b"ab")
    h.create("/q/a", b"xyz")
    set_quota(h, "/q", b"count=2,bytes=-1")
    assert usage(h) == b"count=2,bytes=5"
    h.create("/q/b", b"1234")
    h.create("/q/a/c")
    h.create("/qq", b"not under /q")
    assert usage(h) == b"count=4,bytes=9"
    h.set("/q/a", b"x")
    assert usage(h) == b"count=4,bytes=7"
    h.delete("/q/b")
    assert usage(h) == b"count=3,bytes=3"
    stat = h.stat(STATS)
    assert (stat["version"], stat["dataLength"]) == (0, len(b"count=3,bytes=3"))


def test_ephemerals_count_and_their_session_end_uncounts_them():
    h = Harness()
    h.session()
    h.create("/q")
    set_quota(h, "/q", b"count=10,bytes=-1")
    h.create("/q/e", b"12", flags=1)
    assert usage(h) == b"count=2,bytes=2"
    h.close()
    assert usage(h) == b"count=1,bytes=0"


def test_the_deepest_quota_root_counts_a_write():
    h = Harness()
    h.create("/q")
    h.create("/q/inner")
    set_quota(h, "/q", b"count=10,bytes=-1")
    set_quota(h, "/q/inner", b"count=10,bytes=-1")
    h.create("/q/inner/x", b"1")
    h.create("/q/y", b"22")
    assert usage(h, "/q/inner") == b"count=2,bytes=1"
    assert usage(h, "/q") == b"count=3,bytes=2"


def test_deleting_the_limits_node_stops_the_counting():
    h = Harness()
    h.create("/q")
    set_quota(h, "/q", b"count=10,bytes=-1")
    h.delete(LIMITS)
    h.create("/q/a")
    assert usage(h) == b"count=1,bytes=0"
    assert not h.tree.quotas.roots


def test_a_failed_multi_leaves_usage_and_quota_roots_as_they_were():
    h = Harness()
    h.create("/q")
    set_quota(h, "/q", b"count=10,bytes=-1")
    before = usage(h)
    outcome = h.multi(op_create("/q/a", b"123"), op_delete(LIMITS), op_create("/missing/x"))
    assert outcome.body[2]["err"] == -101
    assert usage(h) == before
    assert h.tree.quotas.roots == {"/q"}


def test_a_restored_snapshot_keeps_the_counts_and_goes_on_counting():
    h = Harness()
    h.create("/q")
    set_quota(h, "/q", b"count=10,bytes=-1")
    h.create("/q/a", b"12")
    restored = snapshot.decode(list(snapshot.encode(h.tree)))
    assert restored.quotas.roots == {"/q"}
    h.tree = restored
    h.create("/q/b", b"3")
    assert usage(h) == b"count=3,bytes=3"


def test_going_over_a_limit_is_noted_once_per_crossing():
    h = Harness()
    h.create("/q")
    set_quota(h, "/q", b"count=2,bytes=-1")
    h.create("/q/a")
    assert h.tree.quota_warnings == []
    h.create("/q/b")
    h.create("/q/c")
    (zxid, overrun), = h.tree.quota_warnings
    assert str(overrun) == "Quota exceeded: /q [current count=3, softCountLimit=2]"
    assert zxid == h.tree.last_zxid - 1
    h.tree.quota_warnings.clear()
    h.delete("/q/c")
    h.delete("/q/b")
    h.create("/q/b")
    assert len(h.tree.quota_warnings) == 1


def refusal(h, op, request):
    return h.tree.quotas.refusal(h.tree, op, request)


def test_a_write_over_a_hard_limit_is_refused_and_a_soft_one_is_not():
    h = Harness()
    h.create("/q", b"1234")
    set_quota(h, "/q", b"count=1,bytes=-1=;byteHardLimit=6;countHardLimit=2")
    create = C(path="/q/a", data=b"12", acl=[], flags=0)
    assert refusal(h, 1, create) is None
    h.create("/q/a", b"12")
    place, overrun = refusal(h, 1, C(path="/q/b", data=b"", acl=[], flags=0))
    assert (place, overrun.what, overrun.usage, overrun.limit) == (0, "count", 3, 2)
    place, overrun = refusal(h, 5, C(path="/q/a", data=b"123", version=-1))
    assert (overrun.what, overrun.usage, overrun.limit) == ("bytes", 7, 6)
    assert refusal(h, 5, C(path="/q/a", data=b"1", version=-1)) is None
    assert refusal(h, 1, C(path="/elsewhere", data=b"x" * 100, acl=[], flags=0)) is None
    multi = [C(type=2, request=C(path="/q/a", version=-1)),
             C(type=1, request=C(path="/q/c", data=b"", acl=[], flags=0))]
    assert refusal(h, 14, multi)[0] == 1


def test_a_rolled_back_multi_notes_no_overrun():
    h = Harness()
    h.create("/q")
    set_quota(h, "/q", b"count=2,bytes=-1")
    h.create("/q/a")
    h.multi(op_create("/q/b"), op_create("/q/c"), op_create("/missing/x"))
    assert h.tree.quota_warnings == []
    h.create("/q/b")
    h.create("/q/c")
    assert len(h.tree.quota_warnings) == 1
