"""zxids as nk-dump reads and writes them, and the rule for which zxid may follow which.

An operator copies zxids from many places: `srvr` and the server log print
epoch:counter, kazoo's Stat holds plain integers, ZooKeeper tools print hex.
All three forms are accepted wherever nk-dump takes a zxid.
"""

import string

from nookeeper.zab.zxid import counter_of, epoch_of, fmt, make_zxid

_MAX_HALF = 0xFFFFFFFF
_MAX_ZXID = (1 << 63) - 1


def parse_zxid(text: str) -> int:
    """0x1a (hex), 26 (decimal) or 0:26 (epoch:counter); ValueError saying which forms work."""
    raw = text.strip()
    try:
        if ":" in raw:
            epoch, counter = (_natural(part) for part in raw.split(":", 1))
            if epoch > _MAX_HALF or counter > _MAX_HALF:
                raise ValueError
            value = make_zxid(epoch, counter)
        elif raw[:2].lower() == "0x":
            value = _hexadecimal(raw[2:])
        else:
            value = _natural(raw)
    except ValueError:
        raise ValueError(f"bad zxid {text!r}: use 0xHEX, DECIMAL or EPOCH:COUNTER") from None
    if value > _MAX_ZXID:
        raise ValueError(f"bad zxid {text!r}: larger than any zxid")
    return value


def _natural(part: str) -> int:
    if not part.isascii() or not part.isdigit():
        raise ValueError
    return int(part)


def _hexadecimal(part: str) -> int:
    if not part or any(c not in string.hexdigits for c in part):
        raise ValueError
    return int(part, 16)


def show(zxid: int) -> str:
    """'1:7 (0x100000007)': both forms, for messages."""
    return f"{fmt(zxid)} ({hex_of(zxid)})"


def hex_of(zxid: int) -> str:
    return f"0x{zxid:x}"


def follows(previous: int, zxid: int) -> bool:
    """Whether `zxid` may come right after `previous` in a log.

    A leader numbers its proposals 1, 2, 3 ... within its epoch, and every
    server logs them in order, so inside an epoch the counter steps by one;
    a later epoch (not necessarily the next: a leader may be elected and
    lose its quorum before proposing anything) starts again at 1.
    `previous` 0 is the empty tree before the first txn.
    """
    if epoch_of(zxid) == epoch_of(previous):
        return counter_of(zxid) == counter_of(previous) + 1
    return epoch_of(zxid) > epoch_of(previous) and counter_of(zxid) == 1
