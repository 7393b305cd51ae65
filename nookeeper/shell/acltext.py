"""ACLs written the way zkCli.sh writes them: scheme:id:perms[,scheme:id:perms...].

The id sits between the first and the last colon, so digest ids
(user:hash) and IPv6 addresses keep their own colons.
"""

from nookeeper.client.security import ACL, Id, Permissions

# zkCli's letters, in the order it prints them.
_LETTERS = (
    ("c", Permissions.CREATE),
    ("d", Permissions.DELETE),
    ("r", Permissions.READ),
    ("w", Permissions.WRITE),
    ("a", Permissions.ADMIN),
)
_BITS = dict(_LETTERS)


class AclSyntaxError(ValueError):
    """The text is not a scheme:id:perms list."""


def parse_acl(text):
    """"world:anyone:cdrwa,digest:u:hash:r" -> [ACL, ...]."""
    entries = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        scheme, sep, rest = item.partition(":")
        ident, sep2, letters = rest.rpartition(":")
        if not sep or not sep2 or not scheme:
            raise AclSyntaxError(f"ACL entry {item!r} is not scheme:id:perms")
        entries.append(ACL(_perms(letters, item), Id(scheme, ident)))
    if not entries:
        raise AclSyntaxError(f"no ACL entry in {text!r}")
    return entries


def _perms(letters, entry):
    """"rw" -> READ | WRITE; `entry` is the whole scheme:id:perms text, for the error."""
    perms = 0
    for letter in letters:
        bit = _BITS.get(letter)
        if bit is None:
            raise AclSyntaxError(f"unknown permission {letter!r} in {entry!r}"
                                 " (use c, d, r, w, a)")
        perms |= bit
    return perms


def perms_text(perms):
    """31 -> "cdrwa"."""
    return "".join(letter for letter, bit in _LETTERS if perms & bit)
