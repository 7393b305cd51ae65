"""The transaction: one write, stamped by the leader, as every replica applies it.

A txn carries the client's request itself rather than a pre-computed diff:
applying it to the tree is deterministic, so every replica that applies the
same txns in zxid order reaches the same tree and the same results (errors,
sequence numbers) without a separate prepare step.
"""

from typing import Any, NamedTuple


class Txn(NamedTuple):
    """A tuple: built for every write on every server, where a frozen
    dataclass's __init__ cost twice as much."""

    zxid: int
    time: int          # ms since the epoch, the leader's clock
    session: int       # the session that sent it (the new one for createSession)
    cxid: int          # the client's xid, for logs and nk-dump
    type: int          # the opcode (CREATE_SESSION / CLOSE_SESSION for sessions)
    ids: tuple         # the caller's identities: ((scheme, id), ...)
    request: Any       # the decoded request record; None for closeSession
