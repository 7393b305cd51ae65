"""Which entries nk-dump shows: zxid range, session, path and txn type.

A path filter is by whole path components: --path /app matches /app and
/app/x but not /apple, because that is what an operator asking about /app
means. A txn matches when any path it touched matches, so a multi or a
closeSession shows up for every node it changed.
"""

from dataclasses import dataclass

_U64 = 1 << 64


@dataclass(frozen=True)
class Filter:
    """What an entry must be to be shown; None means anything."""

    first: int | None = None        # zxid, inclusive
    last: int | None = None         # zxid, inclusive
    session: int | None = None      # as stored: a signed 64-bit id
    path_prefix: str | None = None
    exact_path: str | None = None
    types: frozenset | None = None  # opcodes

    def matches(self, entry) -> bool:
        if self.first is not None and entry.zxid < self.first:
            return False
        if self.last is not None and entry.zxid > self.last:
            return False
        if self.session is not None and entry.session != self.session:
            return False
        if self.types is not None and entry.type_code not in self.types:
            return False
        if self.exact_path is not None and self.exact_path not in entry.paths:
            return False
        if self.path_prefix is not None and not any(under(p, self.path_prefix)
                                                    for p in entry.paths):
            return False
        return True


def under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def parse_path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"bad path {text!r}: paths start with /")
    return text.rstrip("/") or "/"


def parse_session(text: str) -> int:
    """0x1a2b (hex, as everything prints sessions) or decimal, either sign;
    the signed 64-bit id the log stores."""
    raw = text.strip()
    try:
        if raw[:2].lower() == "0x":
            value = int(raw[2:], 16) if raw[2:].isalnum() else None
        else:
            value = int(raw) if raw.lstrip("-").isdigit() else None
    except ValueError:
        value = None
    if value is None or not -(1 << 63) <= value < _U64:
        raise ValueError(f"bad session id {text!r}: use 0xHEX or DECIMAL")
    return value - _U64 if value >= 1 << 63 else value
