import pytest
from construct import Container

from nookeeper import acl
from nookeeper.acl import ACL
from nookeeper.errors import InvalidACLError, NoAuthError

ALICE = "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="
BOB = acl.digest_id("bob:secret")
IP = ("ip", "127.0.0.1")


def test_permission_bits():
    assert (acl.READ, acl.WRITE, acl.CREATE, acl.DELETE, acl.ADMIN, acl.ALL) == (1, 2, 4, 8, 16, 31)


def test_digest_id_matches_zookeeper():
    assert acl.digest_id("alice:pw") == ALICE
    assert acl.digest_id(b"alice:pw") == ALICE


def test_digest_id_splits_user_at_first_colon_and_hashes_everything():
    assert acl.digest_id("a:b:c").startswith("a:")
    assert acl.digest_id("a:b:c") != acl.digest_id("a:b")
    assert acl.digest_id("nocolon").startswith("nocolon:")


def test_wire_round_trip_and_null_id():
    wire = [Container(perms=31, id=Container(scheme="world", id="anyone")),
            Container(perms=5, id=Container(scheme="auth", id=None))]
    acls = acl.from_wire(wire)
    assert acls == (ACL(31, "world", "anyone"), ACL(5, "auth", ""))
    assert acl.to_wire(acls) == [
        {"perms": 31, "id": {"scheme": "world", "id": "anyone"}},
        {"perms": 5, "id": {"scheme": "auth", "id": ""}},
    ]
    assert acl.from_wire(None) == ()


class TestFixup:
    def test_duplicates_removed_in_order(self):
        given = (ACL(1, "ip", "10.0.0.1"), ACL(31, "world", "anyone"),
                 ACL(1, "ip", "10.0.0.1"), ACL(31, "world", "anyone"))
        assert acl.fixup(given, ()) == (ACL(1, "ip", "10.0.0.1"), ACL(31, "world", "anyone"))

    def test_same_id_different_perms_kept(self):
        given = (ACL(1, "world", "anyone"), ACL(2, "world", "anyone"))
        assert acl.fixup(given, ()) == given

    @pytest.mark.parametrize("acls", [None, (), []])
    def test_empty_is_invalid(self, acls):
        with pytest.raises(InvalidACLError):
            acl.fixup(acls, ())

    def test_perms_stored_as_given(self):
        given = (ACL(0, "world", "anyone"), ACL(65, "ip", "1.2.3.4"))
        assert acl.fixup(given, ()) == given

    @pytest.mark.parametrize("ident", ["", "everyone", "Anyone"])
    def test_world_other_than_anyone_invalid(self, ident):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, "world", ident),), ())

    def test_auth_expands_to_authenticated_ids_only(self):
        ids = (IP, ("digest", ALICE), ("super", ""), ("digest", BOB))
        assert acl.fixup((ACL(7, "auth", ""),), ids) == (
            ACL(7, "digest", ALICE), ACL(7, "digest", BOB))

    def test_auth_id_text_is_ignored(self):
        assert acl.fixup((ACL(31, "auth", "whatever"),), (("digest", ALICE),)) == (
            ACL(31, "digest", ALICE),)

    @pytest.mark.parametrize("ids", [(), (IP,), (IP, ("super", ""))])
    def test_auth_without_authenticated_id_invalid(self, ids):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, "auth", ""),), ids)

    def test_one_bad_entry_spoils_the_list(self):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, "world", "anyone"), ACL(31, "digest", "user:")), ())

    @pytest.mark.parametrize("ident", [ALICE, "user:hash", ":x", "user:hash:"])
    def test_digest_valid(self, ident):
        assert acl.fixup((ACL(31, "digest", ident),), ()) == (ACL(31, "digest", ident),)

    @pytest.mark.parametrize("ident", ["", "user", "user:", ":", "a:b:c", "a::b"])
    def test_digest_invalid(self, ident):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, "digest", ident),), ())

    # As ZooKeeper 3.8.0's IPAuthenticationProvider.isValid answers (each case
    # also tried on a real server): IPv4 only, every number as Java's
    # Integer.parseInt reads it (a sign, leading zeros, digits of any script).
    @pytest.mark.parametrize("ident", [
        "1.2.3.4", "10.0.0.0/8", "1.2.3.4/32", "0.0.0.0/0", "010.1.1.1", "127.0.0.1/0",
        "1.2.3.+4", "1.2.3.-0", "1.2.3.4/+8", "1.2.3.4/08", "1.2.3.4/-0",
        "\uff11.2.3.4", "1.2.3.4/\uff13\uff12", "1.2.3.4/0000000000000000000032",
    ])
    def test_ip_valid(self, ident):
        acl.fixup((ACL(31, "ip", ident),), ())

    @pytest.mark.parametrize("ident", [
        "", "host", "localhost", "1.2.3", "1.2.3.4.5", "1.2.3.", "1.2.3.256", "1.2.3.-1",
        "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/x", "1.2.3.4/8/8", "1.2.3.4//8",
        "1.2.3.4/8a", "1.2.3.4/ 8", " 1.2.3.4", "1.2.3.4 ", "0x7f.0.0.1", "1.2.3.4/+",
        "1.2.3.4/99999999999", "1.2.3.\U0001d7cf",
        # IPv6: ZooKeeper 3.8's addr2Bytes reads IPv4 only (IPv6 came with ZOOKEEPER-4240).
        "::1", "::1/128", "fe80::/10", "2001:db8::1/64", "::ffff:1.2.3.4", "::/0", "[::1]",
        "1:2:3:4:5:6:7:8", "::1.2.3.4",
    ])
    def test_ip_invalid(self, ident):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, "ip", ident),), ())

    @pytest.mark.parametrize("scheme", ["super", "unknown", "", None])
    def test_other_schemes_invalid(self, scheme):
        with pytest.raises(InvalidACLError):
            acl.fixup((ACL(31, scheme, "x"),), ())


class TestCheck:
    def test_super_passes_everything(self):
        acl.check((ACL(0, "digest", ALICE),), (("super", ""),), acl.ADMIN)

    def test_empty_acl_passes(self):
        acl.check((), (), acl.ALL)

    def test_world_anyone_needs_the_bit(self):
        acl.check(acl.READ_ACL_UNSAFE, (), acl.READ)
        with pytest.raises(NoAuthError):
            acl.check(acl.READ_ACL_UNSAFE, (), acl.WRITE)

    def test_any_bit_of_a_mask_suffices(self):
        acl.check((ACL(acl.ADMIN, "world", "anyone"),), (), acl.READ | acl.ADMIN)
        assert not acl.permits((ACL(acl.WRITE, "world", "anyone"),), (), acl.READ | acl.ADMIN)

    def test_digest_is_exact(self):
        acls = (ACL(31, "digest", ALICE),)
        acl.check(acls, (IP, ("digest", ALICE)), acl.READ)
        for ids in [(), (IP,), (("digest", BOB),), (("digest", "alice:x"),), (("ip", ALICE),)]:
            with pytest.raises(NoAuthError):
                acl.check(acls, ids, acl.READ)

    def test_entry_without_the_bit_does_not_count(self):
        acls = (ACL(acl.READ, "digest", ALICE), ACL(acl.WRITE, "digest", BOB))
        assert not acl.permits(acls, (("digest", ALICE),), acl.WRITE)
        assert acl.permits(acls, (("digest", BOB),), acl.WRITE)

    @pytest.mark.parametrize("acl_id, remote, ok", [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1/32", "127.0.0.1", True),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.1.2.3/8", "10.9.9.9", True),
        ("192.168.1.0/23", "192.168.0.77", True),
        ("192.168.1.0/23", "192.168.2.1", False),
        ("0.0.0.0/0", "8.8.8.8", True),
        ("1.2.3.4/33", "1.2.3.4", False),
        ("not-an-ip", "not-an-ip", False),
        ("127.0.0.0/31", "127.0.0.1", True),
        ("127.0.0.2/31", "127.0.0.1", False),
        ("128.0.0.0/1", "127.0.0.1", False),
        ("0.0.0.0/1", "127.0.0.1", True),
        ("127.0.0.1/0", "10.0.0.1", True),
        ("127.0.0.1/-0", "10.0.0.1", True),
        ("010.000.0.1", "10.0.0.1", True),
        ("1.2.3.4/+24", "1.2.3.99", True),
        # IPv6 ACLs are never valid, so they match nothing, not even themselves;
        # an IPv6 peer matches no ACL, but one mapped from IPv4 is that IPv4
        # address (Java shows it so).
        ("::1", "::1", False),
        ("::/0", "fe80::1", False),
        ("127.0.0.1", "::1", False),
        ("0.0.0.0/0", "::1", False),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("10.0.0.0/8", "::ffff:10.1.1.1", True),
    ])
    def test_ip_prefix_match(self, acl_id, remote, ok):
        assert acl.permits((ACL(31, "ip", acl_id),), (("ip", remote),), acl.READ) is ok

    def test_ip_acl_ignores_other_schemes(self):
        assert not acl.permits((ACL(31, "ip", "127.0.0.1"),), (("digest", "127.0.0.1"),), acl.READ)


def test_mask_digests():
    acls = (ACL(31, "digest", ALICE), ACL(1, "world", "anyone"), ACL(1, "ip", "1.2.3.4"))
    assert acl.mask_digests(acls) == (
        ACL(31, "digest", "alice:x"), ACL(1, "world", "anyone"), ACL(1, "ip", "1.2.3.4"))


# ---- whoami's order ------------------------------------------------------------

# What ZooKeeper 3.8.0 answered to whoami after these addauths, in its order.
@pytest.mark.parametrize("held, listed", [
    ([IP], [IP]),
    ([IP, ("digest", ALICE)], [IP, ("digest", ALICE)]),
    ([IP, ("digest", ALICE), ("digest", acl.digest_id("bob:pw2"))],
     [("digest", acl.digest_id("bob:pw2")), IP, ("digest", ALICE)]),
    ([IP, ("super", ""), ("digest", acl.digest_id("super:secret"))],
     [("super", ""), ("digest", acl.digest_id("super:secret")), IP]),
    ([IP, ("digest", acl.digest_id("nocolon"))], [("digest", acl.digest_id("nocolon")), IP]),
])
def test_identities_are_listed_in_zookeepers_order(held, listed):
    assert acl.zookeeper_order(held) == listed
    assert sorted(acl.zookeeper_order(reversed(held))) == sorted(listed)


def test_many_identities_are_all_listed_by_hash_not_by_arrival():
    ids = [("ip", f"10.0.0.{i}") for i in range(40)]
    ordered = acl.zookeeper_order(ids)
    assert sorted(ordered) == sorted(ids) and ordered != ids
    assert acl.zookeeper_order(ids[:1]) == ids[:1] and acl.zookeeper_order([]) == []


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("+7", 7), ("-0", 0), ("-12", -12), ("007", 7), ("\uff19", 9),
    ("\u0663\u0662", 32), ("2147483647", 2147483647), ("-2147483648", -2147483648),
])
def test_numbers_read_as_java_reads_them(text, value):
    assert acl._java_int(text) == value


@pytest.mark.parametrize("text", ["", "+", "-", " 1", "1 ", "1_0", "0x1", "2147483648",
                                  "\U0001d7cf", "1.0", "\u00b2"])
def test_what_java_refuses_is_no_number(text):
    assert acl._java_int(text) is None
