"""zxids: the leader's epoch in the high 32 bits, a counter in the low 32."""


def epoch_of(zxid):
    return zxid >> 32


def counter_of(zxid):
    return zxid & 0xFFFFFFFF


def make_zxid(epoch, counter):
    return (epoch << 32) | counter


def fmt(zxid):
    """epoch:counter, as operators read zxids."""
    return f"{epoch_of(zxid)}:{counter_of(zxid)}"
