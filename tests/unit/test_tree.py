import os
import random
import subprocess
import sys

import pytest
from construct import Container as C

from nookeeper import acl
from nookeeper.errors import (
    BadArgumentsError,
    NoAuthError,
    NoNodeError,
)
from nookeeper.tree import CONTAINER_OWNER, DataTree, SessionInfo
from nookeeper.txn import Txn
from nookeeper.wire.ops import CLOSE_SESSION, CREATE_SESSION

OK = 0
MARSHALLING = -5
UNIMPLEMENTED = -6
BADARGS = -8
NONODE = -101
NOAUTH = -102
BADVERSION = -103
NOCHILDREN = -108
NODEEXISTS = -110
NOTEMPTY = -111
SESSIONEXPIRED = -112
INVALIDACL = -114

CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4

S1 = 0x0100000000000001
S2 = 0x0100000000000002
ALICE = ("digest", acl.digest_id("alice:pw"))
BOB = ("digest", acl.digest_id("bob:pw"))
SUPER = ("super", "")


def wire_acl(*entries):
    return [C(perms=p, id=C(scheme=s, id=i)) for p, s, i in entries]


OPEN = wire_acl((31, "world", "anyone"))


class Harness:
    """Feeds txns with consecutive zxids and a clock that ticks 10 ms each."""

    def __init__(self, ttl_enabled=False):
        self.tree = DataTree(ttl_enabled=ttl_enabled)
        self.time = 1_000_000

    def apply(self, op, request, session=S1, ids=(), time=None):
        self.time = self.time + 10 if time is None else time
        txn = Txn(self.tree.last_zxid + 1, self.time, session, 7, op, ids, request)
        return self.tree.apply(txn)

    def session(self, sid=S1, timeout=30000):
        return self.apply(CREATE_SESSION, C(timeOut=timeout, passwd=b"p" * 16), session=sid)

    def close(self, sid=S1):
        return self.apply(CLOSE_SESSION, None, session=sid)

    def create(self, path, data=b"", flags=0, acl=OPEN, op=1, ttl=None, **kw):
        req = C(path=path, data=data, acl=acl, flags=flags)
        if op == 21:
            req = C(path=path, data=data, acl=acl, flags=flags, ttl=ttl)
        return self.apply(op, req, **kw)

    def delete(self, path, version=-1, **kw):
        return self.apply(2, C(path=path, version=version), **kw)

    def set(self, path, data, version=-1, **kw):
        return self.apply(5, C(path=path, data=data, version=version), **kw)

    def set_acl(self, path, acl, version=-1, **kw):
        return self.apply(7, C(path=path, acl=acl, version=version), **kw)

    def multi(self, *ops, **kw):
        return self.apply(14, [C(type=t, request=r) for t, r in ops], **kw)

    def stat(self, path):
        return self.tree.exists(path)


def op_create(path, data=b"", flags=0, acl=OPEN, op=1):
    return op, C(path=path, data=data, acl=acl, flags=flags)


def op_delete(path, version=-1):
    return 2, C(path=path, version=version)


def op_set(path, data, version=-1):
    return 5, C(path=path, data=data, version=version)


def op_check(path, version=-1):
    return 13, C(path=path, version=version)


def dump(tree):
    """Everything observable about a tree, in an order that does not depend
    on set iteration, for comparing two of them."""
    nodes = [(p, n.data, n.acl, n.stat(), n.ephemeral_owner, n.child_creates,
              sorted(n.children)) for p, n in ((p, tree.node(p)) for p in tree.paths())]
    return (nodes, sorted(tree.sessions.items()),
            [(s, sorted(tree.ephemerals(s))) for s in (S1, S2)])


@pytest.fixture
def h():
    return Harness()


def ok(outcome):
    assert outcome.err == OK, outcome
    return outcome


# ---- built-in tree ---------------------------------------------------------

class TestBuiltins:
    def test_fresh_tree(self, h):
        t = h.tree
        assert t.paths() == ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
        assert t.node_count == 4
        assert t.last_zxid == 0
        root = t.exists("/")
        assert root["cversion"] == -1 and root["numChildren"] == 1
        zk = t.exists("/zookeeper")
        assert zk["cversion"] == -2 and zk["numChildren"] == 2
        for path in t.paths():
            stat = t.exists(path)
            assert {k: stat[k] for k in ("czxid", "mzxid", "ctime", "mtime", "pzxid",
                                         "version", "ephemeralOwner", "dataLength")} == dict.fromkeys(
                ("czxid", "mzxid", "ctime", "mtime", "pzxid", "version",
                 "ephemeralOwner", "dataLength"), 0)
            assert t.get_data(path, ())[0] == b""

    def test_config_node(self, h):
        acls, stat = h.tree.get_acl("/zookeeper/config", ())
        assert acls == [{"perms": 1, "id": {"scheme": "world", "id": "anyone"}}]
        assert stat["aversion"] == -1
        assert h.set("/zookeeper/config", b"x").err == NOAUTH
        assert h.tree.get_acl("/zookeeper", ())[0] == [
            {"perms": 31, "id": {"scheme": "world", "id": "anyone"}}]

    @pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"])
    def test_builtins_cannot_be_deleted(self, h, path):
        assert h.delete(path, ids=(SUPER,)).err == BADARGS

    def test_first_child_of_root(self, h):
        ok(h.create("/a"))
        assert h.stat("/")["cversion"] == 0
        assert h.stat("/")["pzxid"] == 1
        assert h.tree.get_all_children_number("/", ()) == 4


# ---- stat rules ------------------------------------------------------------

class TestStat:
    def test_create_stat(self, h):
        out = ok(h.create("/a", b"hello", op=15, time=5000))
        stat = out.body["stat"]
        assert out.body["path"] == "/a"
        assert stat == {"czxid": 1, "mzxid": 1, "ctime": 5000, "mtime": 5000, "version": 0,
                        "cversion": 0, "aversion": 0, "ephemeralOwner": 0, "dataLength": 5,
                        "numChildren": 0, "pzxid": 1}
        assert h.stat("/a") == stat

    def test_set_data(self, h):
        h.create("/a", b"x", time=5000)
        out = ok(h.set("/a", b"x", time=6000))
        assert out.body == h.stat("/a")
        assert out.body["version"] == 1
        assert (out.body["mzxid"], out.body["mtime"]) == (2, 6000)
        assert (out.body["czxid"], out.body["ctime"], out.body["pzxid"]) == (1, 5000, 1)
        ok(h.set("/a", b"x"))
        assert h.stat("/a")["version"] == 2

    def test_child_changes_touch_pzxid_only(self, h):
        h.create("/p")
        ok(h.create("/p/c"))
        stat = h.stat("/p")
        assert (stat["mzxid"], stat["pzxid"], stat["version"], stat["numChildren"]) == (1, 2, 0, 1)
        ok(h.set("/p/c", b"data"))
        assert h.stat("/p")["pzxid"] == 2
        ok(h.delete("/p/c"))
        stat = h.stat("/p")
        assert (stat["mzxid"], stat["pzxid"], stat["numChildren"]) == (1, 4, 0)

    def test_set_acl_stat(self, h):
        h.create("/a", time=5000)
        out = ok(h.set_acl("/a", wire_acl((1, "world", "anyone")), time=9000))
        assert out.body["aversion"] == 1
        assert (out.body["mzxid"], out.body["mtime"], out.body["version"]) == (1, 5000, 0)
        assert out.events == []

    def test_cversion_table(self, h):
        """Spec §5, step by step: stored counter vs reported cversion vs suffix."""
        h.create("/p")
        assert (h.stat("/p")["cversion"], h.stat("/p")["numChildren"]) == (0, 0)
        names = [ok(h.create("/p/", flags=2)).body["path"] for _ in range(2)]
        assert names == ["/p/0000000000", "/p/0000000001"]
        assert (h.stat("/p")["cversion"], h.stat("/p")["numChildren"]) == (2, 2)
        ok(h.delete("/p/0000000000"))
        assert (h.stat("/p")["cversion"], h.stat("/p")["numChildren"]) == (3, 1)
        assert ok(h.create("/p/", flags=2)).body["path"] == "/p/0000000002"
        assert (h.stat("/p")["cversion"], h.stat("/p")["numChildren"]) == (4, 2)
        assert ok(h.create("/p/", flags=2)).body["path"] == "/p/0000000003"
        assert (h.stat("/p")["cversion"], h.stat("/p")["numChildren"]) == (5, 3)
        assert h.tree.node("/p").child_creates == 4

    def test_null_and_empty_data_stay_distinct(self, h):
        h.create("/null", None)
        h.create("/empty", b"")
        assert h.tree.get_data("/null", ()) == (None, h.stat("/null"))
        assert h.tree.get_data("/empty", ())[0] == b""
        assert h.stat("/null")["dataLength"] == h.stat("/empty")["dataLength"] == 0
        h.set("/empty", None)
        h.set("/null", b"")
        assert h.tree.get_data("/empty", ())[0] is None
        assert h.tree.get_data("/null", ())[0] == b""

    def test_version_wraps_and_skips_minus_one(self, h):
        h.create("/a")
        h.tree.node("/a").version = 2**31 - 1
        assert ok(h.set("/a", b"")).body["version"] == -(2**31)
        h.tree.node("/a").version = -2
        assert ok(h.set("/a", b"")).body["version"] == 0

    def test_failed_write_still_advances_last_zxid(self, h):
        assert h.delete("/missing").err == NONODE
        assert h.tree.last_zxid == 1


# ---- sequential ------------------------------------------------------------

class TestSequential:
    def test_suffix_appended_to_name(self, h):
        h.create("/q")
        assert ok(h.create("/q/item-", flags=2)).body["path"] == "/q/item-0000000000"
        assert ok(h.create("/q/lock-", flags=2)).body["path"] == "/q/lock-0000000001"

    def test_suffix_survives_deletes(self, h):
        h.create("/q")
        for _ in range(3):
            path = ok(h.create("/q/x", flags=2)).body["path"]
            ok(h.delete(path))
        assert ok(h.create("/q/x", flags=2)).body["path"] == "/q/x0000000003"

    def test_under_root(self, h):
        assert ok(h.create("/", flags=2)).body["path"] == "/0000000000"

    def test_counter_wraps_signed_32bit(self, h):
        h.create("/q")
        h.tree.node("/q").child_creates = 2**31 - 1
        assert ok(h.create("/q/", flags=2)).body["path"] == "/q/2147483647"
        assert ok(h.create("/q/", flags=2)).body["path"] == "/q/-2147483648"
        assert h.tree.node("/q").child_creates == -(2**31) + 1

    def test_plain_create_counts_too(self, h):
        h.create("/q")
        h.create("/q/a")
        assert ok(h.create("/q/s", flags=2)).body["path"] == "/q/s0000000001"


# ---- create errors and precedence (spec §4.3) ----------------------------

class TestCreateErrors:
    @pytest.mark.parametrize("flags", [-1, 7, 9])
    def test_unknown_flags_first(self, h, flags):
        assert h.create("noslash", flags=flags, acl=[]).err == BADARGS

    @pytest.mark.parametrize("flags", [5, 6])
    def test_ttl_mode_when_disabled(self, h, flags):
        assert h.create("/t", flags=flags).err == UNIMPLEMENTED

    @pytest.mark.parametrize("flags", [0, 1, 5])
    def test_create_ttl_when_disabled(self, h, flags):
        assert h.create("/t", flags=flags, op=21, ttl=100, session=S2).err == UNIMPLEMENTED

    @pytest.mark.parametrize("op, flags, ttl", [
        (1, 5, None), (15, 6, None),
        (21, 5, 0), (21, 5, -1), (21, 6, 2**40),
        (21, 0, -1), (21, 0, 100), (21, 1, 100), (21, 2, -1),
    ])
    def test_ttl_validation(self, op, flags, ttl):
        h = Harness(ttl_enabled=True)
        assert h.create("noslash", flags=flags, op=op, ttl=ttl, acl=[]).err == BADARGS

    def test_ttl_before_session(self):
        h = Harness(ttl_enabled=True)
        assert h.create("/t", flags=1, op=21, ttl=5, session=S2).err == BADARGS

    @pytest.mark.parametrize("flags", [1, 3])
    def test_ephemeral_needs_live_session(self, h, flags):
        assert h.create("noslash", flags=flags, acl=[]).err == SESSIONEXPIRED
        h.session()
        ok(h.create("/e", flags=flags))

    def test_persistent_needs_no_session(self, h):
        ok(h.create("/p", session=S2))

    @pytest.mark.parametrize("path", ["noslash", "", None, "/a\0b"])
    def test_path_shape_before_acl(self, h, path):
        assert h.create(path, acl=[]).err == BADARGS

    def test_invalid_acl_before_missing_parent(self, h):
        assert h.create("/no/such", acl=[]).err == INVALIDACL
        assert h.create("/no/such", acl=wire_acl((31, "world", "x"))).err == INVALIDACL
        assert h.create("/no/such", acl=wire_acl((31, "auth", ""))).err == INVALIDACL
        assert h.create("/no/such", acl=None).err == INVALIDACL

    def test_missing_parent(self, h):
        assert h.create("/no/such").err == NONODE
        h.create("/a")
        assert h.create("/a//b").err == NONODE

    def test_create_permission_on_parent_before_full_validation(self, h):
        h.create("/locked", acl=wire_acl((31 & ~acl.CREATE, "world", "anyone")))
        assert h.create("/locked/x").err == NOAUTH
        assert h.create("/locked/.").err == NOAUTH
        assert h.create("/locked/x", ids=(SUPER,)).err == OK

    def test_create_permission_by_digest(self, h):
        h.create("/mine", acl=wire_acl((31, "digest", ALICE[1])))
        assert h.create("/mine/x", ids=(BOB,)).err == NOAUTH
        ok(h.create("/mine/x", ids=(("ip", "1.1.1.1"), ALICE)))

    @pytest.mark.parametrize("path", ["/x/", "/x/.", "/x/..", "/x/a\x01"])
    def test_full_validation(self, h, path):
        h.create("/x")
        assert h.create(path).err == BADARGS

    def test_sequential_trailing_slash_is_valid(self, h):
        h.create("/x")
        assert ok(h.create("/x/", flags=2)).body["path"] == "/x/0000000000"

    def test_node_exists(self, h):
        assert h.create("/").err == NODEEXISTS
        assert h.create("/zookeeper").err == NODEEXISTS
        h.create("/a")
        assert h.create("/a").err == NODEEXISTS

    def test_no_children_for_ephemerals(self, h):
        h.session()
        h.create("/e", flags=1)
        assert h.create("/e/c").err == NOCHILDREN
        assert h.create("/e/c", flags=3).err == NOCHILDREN
        assert h.create("/e").err == NODEEXISTS

    def test_containers_and_ttl_nodes_may_have_children(self):
        h = Harness(ttl_enabled=True)
        ok(h.create("/c", op=19))
        ok(h.create("/c/x"))
        ok(h.create("/t", op=21, flags=5, ttl=1000))
        ok(h.create("/t/x"))

    def test_failed_create_changes_nothing(self, h):
        h.create("/p")
        before = dump(h.tree)
        for out in [h.create("/p"), h.create("/p/a/b"), h.create("/p/.", flags=0),
                    h.create("/p/x", acl=[])]:
            assert out.err != OK and out.body is None and out.events == []
        assert dump(h.tree) == before


class TestCreateKinds:
    def test_ephemeral(self, h):
        h.session()
        out = ok(h.create("/e", flags=1, op=15))
        assert out.body["stat"]["ephemeralOwner"] == S1
        assert h.tree.ephemerals(S1) == {"/e"}
        assert h.tree.ephemeral_count == 1

    def test_container_by_opcode(self, h):
        out = ok(h.create("/c", op=19, flags=0))
        assert out.body == {"path": "/c", "stat": h.stat("/c")}
        node = h.tree.node("/c")
        assert node.ephemeral_owner == CONTAINER_OWNER and node.is_container
        assert h.stat("/c")["ephemeralOwner"] == 0

    def test_container_flag_with_plain_create_is_persistent(self, h):
        ok(h.create("/c", flags=4))
        assert h.tree.node("/c").ephemeral_owner == 0

    def test_ttl_node(self):
        h = Harness(ttl_enabled=True)
        out = ok(h.create("/t", op=21, flags=5, ttl=2**40 - 1))
        assert out.body["stat"]["ephemeralOwner"] == 0
        node = h.tree.node("/t")
        assert node.ttl == 2**40 - 1
        assert node.ephemeral_owner == (0xFF00000000000000 | (2**40 - 1)) - 2**64
        assert ok(h.create("/t", op=21, flags=6, ttl=5)).body["path"] == "/t0000000001"

    def test_create_response_shapes(self, h):
        assert ok(h.create("/a")).body == {"path": "/a"}
        assert set(ok(h.create("/b", op=15)).body) == {"path", "stat"}

    def test_stored_acl_after_fixup(self, h):
        h.create("/a", acl=wire_acl((31, "auth", None), (31, "auth", None)), ids=(("ip", "1.2.3.4"), ALICE))
        assert h.tree.node("/a").acl == (acl.ACL(31, "digest", ALICE[1]),)


# ---- delete / setData / setACL errors -------------------------------------

class TestDelete:
    @pytest.mark.parametrize("path", ["noslash", "", None, "/a\0"])
    def test_bad_path(self, h, path):
        assert h.delete(path).err == BADARGS

    def test_trailing_slash_is_just_missing(self, h):
        h.create("/x")
        assert h.delete("/x/").err == NONODE

    def test_parent_missing(self, h):
        assert h.delete("/no/such").err == NONODE

    def test_delete_permission_on_parent_before_node_lookup(self, h):
        h.create("/p", acl=wire_acl((31 & ~acl.DELETE, "world", "anyone")))
        h.create("/p/c")
        assert h.delete("/p/missing").err == NOAUTH
        assert h.delete("/p/c").err == NOAUTH
        ok(h.delete("/p/c", ids=(SUPER,)))

    def test_version_then_not_empty(self, h):
        h.create("/p")
        h.create("/p/c")
        assert h.delete("/p", version=5).err == BADVERSION
        assert h.delete("/p", version=0).err == NOTEMPTY
        assert h.delete("/p").err == NOTEMPTY
        h.set("/p/c", b"x")
        assert h.delete("/p/c", version=0).err == BADVERSION
        ok(h.delete("/p/c", version=1))
        ok(h.delete("/p", version=0))
        assert h.stat("/p") is None

    def test_events_and_stat(self, h):
        h.create("/p")
        h.create("/p/c")
        out = ok(h.delete("/p/c"))
        assert out.body is None
        assert out.events == [(DELETED, "/p/c"), (CHILD, "/p")]
        assert h.stat("/p")["pzxid"] == 3

    def test_delete_ephemeral_untracks(self, h):
        h.session()
        h.create("/e", flags=1)
        ok(h.delete("/e"))
        assert h.tree.ephemerals(S1) == set()
        assert h.tree.ephemeral_count == 0


class TestSetData:
    @pytest.mark.parametrize("path", ["noslash", "/x/", "/a//b", None, "/."])
    def test_bad_path(self, h, path):
        h.create("/x")
        assert h.set(path, b"").err == BADARGS

    def test_errors_in_order(self, h):
        assert h.set("/missing", b"").err == NONODE
        h.create("/ro", acl=wire_acl((acl.READ, "world", "anyone")))
        assert h.set("/ro", b"", version=99).err == NOAUTH
        assert h.set("/ro", b"x", ids=(SUPER,)).err == OK
        assert h.set("/ro", b"x", version=0, ids=(SUPER,)).err == BADVERSION
        assert ok(h.set("/ro", b"y", version=1, ids=(SUPER,))).body["version"] == 2

    def test_events(self, h):
        h.create("/a")
        assert ok(h.set("/a", b"v")).events == [(CHANGED, "/a")]


class TestSetACL:
    def test_errors_in_order(self, h):
        assert h.set_acl("noslash", []).err == BADARGS
        assert h.set_acl("/missing", []).err == INVALIDACL
        assert h.set_acl("/missing", OPEN).err == NONODE
        h.create("/a", acl=wire_acl((31 & ~acl.ADMIN, "world", "anyone")))
        assert h.set_acl("/a", OPEN, version=42).err == NOAUTH
        assert h.set_acl("/a", OPEN, version=42, ids=(SUPER,)).err == BADVERSION

    def test_version_is_compared_with_aversion(self, h):
        h.create("/a")
        h.set("/a", b"1")
        h.set("/a", b"2")
        assert h.set_acl("/a", OPEN, version=2).err == BADVERSION
        ok(h.set_acl("/a", OPEN, version=0))
        ok(h.set_acl("/a", OPEN, version=1))
        assert h.stat("/a")["aversion"] == 2

    def test_auth_expansion(self, h):
        h.create("/a")
        ok(h.set_acl("/a", wire_acl((acl.ALL, "auth", "")), ids=(("ip", "1.2.3.4"), ALICE, BOB)))
        assert h.tree.node("/a").acl == (acl.ACL(31, "digest", ALICE[1]), acl.ACL(31, "digest", BOB[1]))
        assert h.set_acl("/a", wire_acl((acl.ALL, "auth", "")), ids=(("ip", "1.2.3.4"),)).err == INVALIDACL

    def test_config_node_aversion(self, h):
        ok(h.set_acl("/zookeeper/config", OPEN, version=-1, ids=(SUPER,)))
        assert h.stat("/zookeeper/config")["aversion"] == 0


# ---- reads -----------------------------------------------------------------

class TestReads:
    @pytest.fixture
    def secret(self, h):
        h.create("/s", b"data", acl=wire_acl((acl.ALL, "digest", ALICE[1]),
                                             (acl.READ, "ip", "10.0.0.0/8")))
        ok(h.create("/s/c", ids=(ALICE,)))
        return h.tree

    def test_exists(self, h, secret):
        assert secret.exists("/missing") is None
        assert secret.exists("/s")["numChildren"] == 1
        assert secret.exists("/s", (("ip", "10.1.1.1"),))["dataLength"] == 4
        with pytest.raises(NoAuthError):
            secret.exists("/s", (("ip", "11.1.1.1"),))
        assert secret.exists("/missing", ()) is None
        for path in ["/a\0", None]:
            with pytest.raises(BadArgumentsError):
                secret.exists(path)

    @pytest.mark.parametrize("read", ["get_data", "get_children", "get_all_children_number"])
    def test_read_errors(self, secret, read):
        call = getattr(secret, read)
        for path in ["/missing", "noslash", "/s/", "/s//c"]:
            with pytest.raises(NoNodeError):
                call(path, (SUPER,))
        with pytest.raises(NoAuthError):
            call("/s", (BOB,))
        call("/s", (("ip", "10.2.3.4"),))
        call("/s", (ALICE,))

    def test_get_data_and_children(self, h, secret):
        data, stat = secret.get_data("/s", (ALICE,))
        assert data == b"data" and stat == secret.exists("/s")
        for name in ["b", "a", "c2"]:
            h.create(f"/s/{name}", ids=(ALICE,))
        names, stat = secret.get_children("/s", (ALICE,))
        assert names == ("a", "b", "c", "c2")
        assert stat["numChildren"] == 4

    def test_get_acl_masks_digests_without_admin(self, secret):
        masked, stat = secret.get_acl("/s", (("ip", "10.0.0.1"),))
        assert masked == [{"perms": 31, "id": {"scheme": "digest", "id": "alice:x"}},
                          {"perms": 1, "id": {"scheme": "ip", "id": "10.0.0.0/8"}}]
        assert stat == secret.exists("/s")
        full, _ = secret.get_acl("/s", (ALICE,))
        assert full[0]["id"]["id"] == ALICE[1]
        with pytest.raises(NoAuthError):
            secret.get_acl("/s", (BOB,))

    def test_get_acl_admin_alone_suffices(self, h):
        h.create("/adm", acl=wire_acl((acl.ADMIN, "digest", ALICE[1])))
        assert h.tree.get_acl("/adm", (ALICE,))[0][0]["id"]["id"] == ALICE[1]
        with pytest.raises(NoNodeError):
            h.tree.get_acl("/missing", (SUPER,))

    def test_get_all_children_number_counts_descendants(self, h):
        for path in ["/a", "/a/b", "/a/b/c", "/a/b/d", "/a/e", "/f"]:
            h.create(path)
        t = h.tree
        assert t.get_all_children_number("/a", ()) == 4
        assert t.get_all_children_number("/a/b", ()) == 2
        assert t.get_all_children_number("/f", ()) == 0
        assert t.get_all_children_number("/", ()) == 9
        assert t.get_all_children_number("/zookeeper", ()) == 2

    def test_get_ephemerals_prefix_rules(self, h):
        h.session(S1)
        h.session(S2)
        h.create("/ab")
        for path in ["/a1", "/ab/x", "/b"]:
            h.create(path, flags=1)
        h.create("/z", flags=1, session=S2)
        t = h.tree
        for prefix in [None, "", "   ", "/"]:
            assert t.get_ephemerals(S1, prefix) == ["/a1", "/ab/x", "/b"]
        assert t.get_ephemerals(S1, "/a") == ["/a1", "/ab/x"]
        assert t.get_ephemerals(S1, "/ab") == ["/ab/x"]
        assert t.get_ephemerals(S1, "/ab/x") == ["/ab/x"]
        assert t.get_ephemerals(S1, "/c") == []
        assert t.get_ephemerals(S2, "/") == ["/z"]
        assert t.get_ephemerals(0x99, "/") == []

    def test_node_accessor(self, h):
        h.create("/a", b"v")
        node = h.tree.node("/a")
        assert (node.data, node.czxid, node.mzxid, node.pzxid) == (b"v", 1, 1, 1)
        assert node.acl == acl.OPEN_ACL_UNSAFE
        assert h.tree.node("/missing") is None

    def test_counts(self, h):
        h.create("/abc", b"12345")
        assert h.tree.node_count == 5
        base = sum(len(p) for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"])
        assert h.tree.approximate_data_size == base + 4 + 5


# ---- sessions --------------------------------------------------------------

class TestSessions:
    def test_create_session(self, h):
        out = ok(h.session(S1, 4000))
        assert out.body is None and out.events == []
        assert h.tree.sessions == {S1: SessionInfo(4000, b"p" * 16)}

    def test_close_session_deletes_ephemerals_in_path_order(self, h):
        h.session(S1)
        h.session(S2)
        h.create("/p")
        h.create("/p/z", flags=1)
        h.create("/a", flags=1)
        h.create("/p/b", flags=3)
        h.create("/keep", flags=1, session=S2)
        out = ok(h.close(S1))
        assert out.body is None
        assert out.events == [
            (DELETED, "/a"), (CHILD, "/"),
            (DELETED, "/p/b0000000001"), (CHILD, "/p"),
            (DELETED, "/p/z"), (CHILD, "/p"),
        ]
        zxid = h.tree.last_zxid
        assert h.stat("/p")["pzxid"] == zxid and h.stat("/")["pzxid"] == zxid
        assert h.tree.paths() == ["/", "/keep", "/p", "/zookeeper", "/zookeeper/config",
                                  "/zookeeper/quota"]
        assert S1 not in h.tree.sessions and S2 in h.tree.sessions
        assert h.tree.ephemerals(S1) == set()
        assert h.tree.ephemerals(S2) == {"/keep"}
        assert h.tree.ephemeral_count == 1

    def test_close_unknown_session_is_noop(self, h):
        before = dump(h.tree)
        assert h.close(S2) == (0, None, [])
        assert dump(h.tree) == before

    def test_closed_session_cannot_create_ephemerals(self, h):
        h.session()
        h.close()
        assert h.create("/e", flags=1).err == SESSIONEXPIRED


# ---- multi -----------------------------------------------------------------

class TestMulti:
    def test_empty(self, h):
        assert h.multi() == (0, [], [])
        assert h.tree.last_zxid == 1

    def test_success_results_and_events(self, h):
        h.create("/m", b"old")
        out = ok(h.multi(op_create("/m/a", b"1"), op_create("/m/b", op=15),
                         op_create("/m/c", op=19), op_set("/m", b"new", version=0),
                         op_check("/m", version=1), op_delete("/m/a")))
        zxid = h.tree.last_zxid
        stat_b = out.body[1]["body"]["stat"]
        assert stat_b["czxid"] == zxid
        assert out.body == [
            {"type": 1, "err": 0, "body": {"path": "/m/a"}},
            {"type": 15, "err": 0, "body": {"path": "/m/b", "stat": stat_b}},
            {"type": 15, "err": 0, "body": {"path": "/m/c", "stat": h.stat("/m/c")}},
            {"type": 5, "err": 0, "body": out.body[3]["body"]},
            {"type": 13, "err": 0, "body": None},
            {"type": 2, "err": 0, "body": None},
        ]
        assert out.body[3]["body"]["version"] == 1
        assert out.body[3]["body"]["numChildren"] == 3
        assert out.events == [
            (CREATED, "/m/a"), (CHILD, "/m"), (CREATED, "/m/b"), (CHILD, "/m"),
            (CREATED, "/m/c"), (CHILD, "/m"), (CHANGED, "/m"),
            (DELETED, "/m/a"), (CHILD, "/m"),
        ]
        assert h.tree.node("/m").children == {"b", "c"}
        assert h.stat("/m")["mzxid"] == h.stat("/m")["pzxid"] == zxid

    def test_sequential_sees_earlier_ops(self, h):
        h.create("/m")
        out = ok(h.multi(op_create("/m/a"), op_create("/m/s", flags=2)))
        assert out.body[1]["body"]["path"] == "/m/s0000000001"

    def test_later_ops_see_earlier_ones(self, h):
        out = ok(h.multi(op_create("/x"), op_create("/x/y"), op_set("/x/y", b"1"),
                         op_check("/x/y", 1), op_delete("/x/y"), op_delete("/x")))
        assert len(out.body) == 6
        assert h.stat("/x") is None
        assert h.stat("/")["cversion"] == 1

    def test_failure_shape_and_rollback(self, h):
        h.create("/m", b"d")
        before = dump(h.tree)
        out = h.multi(op_create("/m/b"), op_delete("/m/nonexist"), op_set("/m", b"x"),
                      op_check("/m", 1))
        assert out == (0, [
            {"type": -1, "err": 0, "body": {"err": 0}},
            {"type": -1, "err": NONODE, "body": {"err": NONODE}},
            {"type": -1, "err": -2, "body": {"err": -2}},
            {"type": -1, "err": -2, "body": {"err": -2}},
        ], [])
        assert dump(h.tree) == before

    def test_first_op_failing(self, h):
        h.create("/m")
        out = h.multi(op_check("/m", 99), op_create("/m/x"))
        assert [(r["type"], r["err"]) for r in out.body] == [(-1, BADVERSION), (-1, -2)]

    def test_last_op_failing(self, h):
        out = h.multi(op_create("/a"), op_create("/a"))
        assert [(r["type"], r["err"]) for r in out.body] == [(-1, 0), (-1, NODEEXISTS)]
        assert h.stat("/a") is None

    def test_rollback_restores_sequence_counter_and_pzxid(self, h):
        h.create("/q")
        h.create("/q/x", flags=2)
        before = dump(h.tree)
        out = h.multi(op_create("/q/x", flags=2), op_create("/q/x", flags=2),
                      op_delete("/q/x0000000000"), op_set("/q", b"v"), op_check("/q", 0))
        assert out.body[-1]["err"] == BADVERSION
        assert dump(h.tree) == before
        assert ok(h.create("/q/x", flags=2)).body["path"] == "/q/x0000000001"

    def test_rollback_restores_ephemeral_tracking(self, h):
        h.session()
        h.create("/old", flags=1)
        before = dump(h.tree)
        out = h.multi(op_create("/new", flags=1), op_delete("/old"),
                      op_create("/new2", flags=3), op_check("/missing"))
        assert out.body[-1]["err"] == NONODE
        assert dump(h.tree) == before
        assert h.tree.ephemerals(S1) == {"/old"}
        assert h.tree.ephemeral_count == 1
        out = h.multi(op_create("/p"), op_create("/p/e", flags=1), op_check("/p", 5))
        assert h.tree.ephemerals(S1) == {"/old"}
        assert h.stat("/p") is None

    def test_rollback_of_node_created_and_modified(self, h):
        before = dump(h.tree)
        out = h.multi(op_create("/a", b"1"), op_set("/a", b"2"), op_create("/a/b"),
                      op_delete("/a/b"), op_delete("/a"), op_create("/a"), op_create("/zookeeper"))
        assert out.body[-1]["err"] == NODEEXISTS
        assert dump(h.tree) == before

    def test_rollback_restores_data(self, h):
        h.create("/a", b"orig")
        before = dump(h.tree)
        h.multi(op_set("/a", None), op_set("/a", b"x"), op_delete("/a"), op_delete("/a"))
        assert dump(h.tree) == before
        assert h.tree.get_data("/a", ())[0] == b"orig"

    @pytest.mark.parametrize("op, code", [
        (op_check("/x/"), BADARGS),
        (op_check("/missing"), NONODE),
        (op_check("/secret"), NOAUTH),
        (op_check("/open", 3), BADVERSION),
        (op_create("/ttl", flags=5), UNIMPLEMENTED),
        (op_create("/open", acl=[]), INVALIDACL),
        (op_create("/open/e", flags=1), SESSIONEXPIRED),
        (op_delete("/"), BADARGS),
        (op_set("/secret", b""), NOAUTH),
    ])
    def test_sub_op_errors(self, h, op, code):
        h.create("/x")
        h.create("/open")
        h.create("/secret", acl=wire_acl((acl.ALL, "digest", ALICE[1])))
        out = h.multi(op_check("/open", 0), op, session=S2)
        assert [(r["type"], r["err"]) for r in out.body] == [(-1, 0), (-1, code)]
        assert out.err == 0 and out.events == []

    def test_check_passes_with_read(self, h):
        h.create("/secret", acl=wire_acl((acl.READ, "digest", ALICE[1])))
        ok(h.multi(op_check("/secret", 0), ids=(ALICE,)))

    def test_check_outside_multi_is_unimplemented(self, h):
        h.create("/a")
        assert h.apply(13, C(path="/a", version=-1)).err == UNIMPLEMENTED

    def test_disallowed_sub_op(self, h):
        out = h.multi((4, C(path="/", watch=False)))
        assert out == (MARSHALLING, None, [])

    def test_one_zxid_and_time_for_all(self, h):
        out = ok(h.multi(op_create("/a"), op_create("/b"), time=777))
        for path in ["/a", "/b"]:
            assert h.stat(path)["czxid"] == h.tree.last_zxid
            assert h.stat(path)["ctime"] == 777
        assert out.body[0]["type"] == 1


def test_unknown_opcode(h):
    assert h.apply(99, None) == (UNIMPLEMENTED, None, [])


# ---- containers and TTL -----------------------------------------------------

class TestReaping:
    def test_containers(self, h):
        h.create("/used", op=19)
        h.create("/used/c")
        h.create("/fresh", op=19)
        h.create("/busy", op=19)
        h.create("/busy/c")
        h.create("/plain")
        h.create("/plain/c")
        h.delete("/plain/c")
        assert h.tree.reapable(0) == []
        h.delete("/used/c")
        assert h.tree.reapable(0) == ["/used"]

    def test_ttl_nodes(self):
        h = Harness(ttl_enabled=True)
        h.create("/t", op=21, flags=5, ttl=1000, time=10_000)
        h.create("/parent", op=21, flags=5, ttl=1000, time=10_000)
        h.create("/parent/c", time=10_000)
        assert h.tree.reapable(11_000) == []
        assert h.tree.reapable(11_001) == ["/t"]
        h.set("/t", b"touch", time=11_000)
        assert h.tree.reapable(11_001) == []
        assert h.tree.reapable(12_001) == ["/t"]

    def test_delete_container(self):
        h = Harness(ttl_enabled=True)
        h.create("/c", op=19)
        h.create("/c/x")
        assert h.apply(20, C(path="/c")).err == NOTEMPTY
        h.delete("/c/x")
        out = ok(h.apply(20, C(path="/c")))
        assert out.events == [(DELETED, "/c"), (CHILD, "/")]
        assert h.stat("/c") is None
        assert h.apply(20, C(path="/c")).err == NONODE
        h.create("/p")
        assert h.apply(20, "/p").err == BADVERSION
        assert h.apply(20, "/zookeeper").err == BADARGS
        h.create("/t", op=21, flags=5, ttl=100, time=50_000)
        assert h.apply(20, "/t", time=50_100).err == BADVERSION
        ok(h.apply(20, "/t", time=50_101))

    def test_delete_container_ignores_acl(self, h):
        h.create("/c", op=19, acl=wire_acl((acl.READ, "world", "anyone")))
        ok(h.apply(20, C(path="/c")))


# ---- determinism ------------------------------------------------------------

def random_txns(seed, count=400):
    rng = random.Random(seed)
    names = ["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/q"]
    sessions = [S1, S2]

    def one_op():
        path = rng.choice(names)
        kind = rng.randrange(6)
        if kind == 0:
            return op_create(path, bytes([rng.randrange(256)]), flags=rng.choice([0, 1, 2, 3]))
        if kind == 1:
            return op_delete(path, rng.choice([-1, 0, 1]))
        if kind == 2:
            return op_set(path, rng.choice([None, b"", b"v"]), rng.choice([-1, 0, 1]))
        if kind == 3:
            return op_check(path, rng.choice([-1, 0]))
        if kind == 4:
            return op_create(path + "/", flags=2)
        return op_create(path, op=rng.choice([15, 19]))

    txns = []
    for zxid in range(1, count + 1):
        session = rng.choice(sessions)
        roll = rng.random()
        if roll < 0.05:
            request, op = C(timeOut=5000, passwd=b"x" * 16), CREATE_SESSION
        elif roll < 0.08:
            request, op = None, CLOSE_SESSION
        elif roll < 0.3:
            op, request = 14, [C(type=t, request=r) for t, r in
                               (one_op() for _ in range(rng.randrange(4)))]
        else:
            op, request = one_op()
            if op == 13:
                op, request = 14, [C(type=op, request=request)]
        txns.append(Txn(zxid, 1000 + zxid, session, zxid, op, (), request))
    return txns


@pytest.mark.parametrize("seed", range(5))
def test_same_txns_same_tree_and_results(seed):
    txns = random_txns(seed)
    one, two = DataTree(), DataTree()
    results_one = [one.apply(t) for t in txns]
    results_two = [two.apply(t) for t in txns]
    assert results_one == results_two
    assert dump(one) == dump(two)
    assert any(r.err == 0 and r.events for r in results_one)
    assert any(r.err != 0 for r in results_one)


@pytest.mark.parametrize("seed", range(5))
def test_failures_leave_no_trace(seed):
    tree = DataTree()
    failures = 0
    for txn in random_txns(seed):
        before = dump(tree)
        out = tree.apply(txn)
        if out.err != 0 or (txn.type == 14 and out.body and out.body[0]["type"] == -1):
            failures += 1
            assert out.events == []
            assert dump(tree) == before
    assert failures > 50


def test_deterministic_across_hash_seeds():
    """Set iteration order changes with PYTHONHASHSEED; results must not."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "tree = m.DataTree()\n"
        "results = [tree.apply(t) for t in m.random_txns(3)]\n"
        "print(repr(results), repr(m.dump(tree)))\n"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run([sys.executable, "-c", script], env=env,
                             capture_output=True, text=True, check=True)
        outputs.add(run.stdout)
    assert len(outputs) == 1


def test_a_large_directory_lists_every_change_to_it():
    """The sorted list of a large directory is kept between reads; every
    change to its children, including ones a failed multi undoes, shows."""
    h = Harness()
    h.session()
    h.create("/d")
    names = [f"m{i:03d}" for i in range(100)]
    for name in names:
        h.create(f"/d/{name}")
    listing, stat = h.tree.get_children("/d", ())
    assert list(listing) == names and stat["numChildren"] == 100
    assert isinstance(listing, tuple)  # callers cannot change the kept list
    assert h.tree.get_children("/d", ())[0] is listing  # kept until the directory changes

    h.create("/d/a-first")
    h.delete("/d/m050")
    h.create("/d/eph", flags=1)
    expected = sorted(set(names) - {"m050"} | {"a-first", "eph"})
    assert list(h.tree.get_children("/d", ())[0]) == expected

    failed = h.multi(op_create("/d/zz"), op_delete("/d/m000"), op_check("/d", version=99))
    assert failed.body[-1]["err"] != 0  # BADVERSION: the whole multi is undone
    assert list(h.tree.get_children("/d", ())[0]) == expected

    h.set("/d", b"data")
    assert list(h.tree.get_children("/d", ())[0]) == expected
    h.close()
    assert list(h.tree.get_children("/d", ())[0]) == [n for n in expected if n != "eph"]
    h.multi(op_delete("/d/a-first"), op_create("/d/zz"))
    assert list(h.tree.get_children("/d", ())[0]) == sorted(set(expected) - {"eph", "a-first"} | {"zz"})


def test_a_large_directory_gives_a_new_listing_object_after_each_change():
    """What the wire keeps on a listing (its encoding) must go with every change."""
    h = Harness()
    h.session()
    h.create("/big")
    for i in range(80):
        h.create(f"/big/n{i:02d}")
    before, _ = h.tree.get_children("/big", ())
    h.create("/big/n99")
    after, _ = h.tree.get_children("/big", ())
    assert after is not before and "n99" in after and "n99" not in before
    h.set("/big/n00", b"data")  # a child's data is not the listing
    assert h.tree.get_children("/big", ())[0] is after
