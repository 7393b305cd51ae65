"""ACLs as the client builds and reads them, and digest credentials.

The digest id is computed exactly as ZooKeeper's DigestAuthenticationProvider
does (spec §7.2), so an ACL made here matches what `add_auth("digest", ...)`
gives the connection.
"""

import base64
import hashlib
from collections import namedtuple


class Permissions:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


_PERM_NAMES = (
    ("READ", Permissions.READ),
    ("WRITE", Permissions.WRITE),
    ("CREATE", Permissions.CREATE),
    ("DELETE", Permissions.DELETE),
    ("ADMIN", Permissions.ADMIN),
)


class Id(namedtuple("Id", "scheme id")):
    __slots__ = ()


class ACL(namedtuple("ACL", "perms id")):
    """One ACL entry: a permission bit mask for one identity."""

    __slots__ = ()

    @property
    def acl_list(self):
        """The permission names this entry grants, ALL when it grants all."""
        if self.perms & Permissions.ALL == Permissions.ALL:
            return ["ALL"]
        return [name for name, bit in _PERM_NAMES if self.perms & bit]


ANYONE_ID_UNSAFE = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE = [ACL(Permissions.ALL, ANYONE_ID_UNSAFE)]
CREATOR_ALL_ACL = [ACL(Permissions.ALL, AUTH_IDS)]
READ_ACL_UNSAFE = [ACL(Permissions.READ, ANYONE_ID_UNSAFE)]


def make_digest_acl_credential(username, password):
    """The digest id `user:base64(sha1("user:password"))` for an ACL."""
    secret = f"{username}:{password}".encode("utf-8")
    digest = base64.b64encode(hashlib.sha1(secret).digest()).decode("ascii")
    return f"{username}:{digest}"


def make_acl(scheme, credential, read=False, write=False, create=False,
             delete=False, admin=False, all=False):
    """One ACL entry from permission flags."""
    if all:
        perms = Permissions.ALL
    else:
        perms = 0
        for flag, bit in ((read, Permissions.READ), (write, Permissions.WRITE),
                          (create, Permissions.CREATE), (delete, Permissions.DELETE),
                          (admin, Permissions.ADMIN)):
            if flag:
                perms |= bit
    return ACL(perms, Id(scheme, credential))


def make_digest_acl(username, password, read=False, write=False, create=False,
                    delete=False, admin=False, all=False):
    """A digest-scheme ACL entry for a user and a clear-text password."""
    return make_acl(
        "digest", make_digest_acl_credential(username, password),
        read=read, write=write, create=create, delete=delete, admin=admin, all=all,
    )


def acl_to_record(acl):
    """The wire codec's dict for one entry."""
    return {"perms": acl.perms, "id": {"scheme": acl.id.scheme, "id": acl.id.id}}


def acl_from_record(record):
    return ACL(record.perms, Id(record.id.scheme, record.id.id))
