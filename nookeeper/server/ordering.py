"""A connection's requests answered in the order they came, without I/O.

ZooKeeper answers a session's requests in order (FIFO client order): a read
sent after a write sees that write. A read with no write of its connection
still in flight is answered at once; otherwise it waits behind that write
and is answered right after the write's reply. This module decides only
that: the connection feeds it requests and carries out what comes back
(server/connection.py), under its own lock.
"""

import collections
from typing import NamedTuple


class Request:
    """One request of a connection, from its frame to its reply.

    kind is the operation's kind in the registry (wire/ops.py); error, when
    set, is the ZooKeeper error its reply carries instead of a result (a
    request that could not be decoded, or a write of a session that is
    gone); failed_op, for a multi refused before it is a txn, is the place of
    the sub-op the error belongs to. Nothing in it refers back to the connection, so a finished
    request is freed by reference counting, not by the cycle collector."""

    __slots__ = ("xid", "opcode", "kind", "request", "body", "received", "error",
                 "close_after", "is_write", "failed_op")

    def __init__(self, xid, opcode, kind, request, body, received, is_write=False,
                 error=None, close_after=False, failed_op=None):
        self.xid = xid
        self.opcode = opcode
        self.kind = kind
        self.request = request
        self.body = body
        self.received = received
        self.is_write = is_write
        self.error = error
        self.close_after = close_after
        self.failed_op = failed_op

    def __repr__(self):
        return f"<request xid {self.xid} op {self.opcode}{' write' if self.is_write else ''}>"


class Serve(NamedTuple):
    """Answer this request now, from what this server has applied."""

    request: Request


class Submit(NamedTuple):
    """Hand this request on (ZAB); call completed() once it is applied here."""

    request: Request


class OutOfOrder(Exception):
    """A completion that is not the oldest write in flight: the connection's
    order can no longer be kept, so the connection is dropped."""


class RequestOrder:
    __slots__ = ("_waiting",)

    def __init__(self):
        self._waiting = collections.deque()  # the oldest write in flight and all after it

    def __len__(self):
        return len(self._waiting)

    def add(self, request):
        """What to do with a new request: (Submit,), (Serve,) or () if it waits."""
        if request.is_write:
            self._waiting.append(request)
            return (Submit(request),)
        if self._waiting:
            self._waiting.append(request)
            return ()
        return (Serve(request),)

    def completed(self, request):
        """The write request is applied: the reads now free to go, in order."""
        waiting = self._waiting
        if not waiting or waiting[0] is not request:
            raise OutOfOrder(f"{request!r} completed while "
                             f"{waiting[0] if waiting else 'nothing'!r} is the oldest in flight")
        waiting.popleft()
        ready = []
        while waiting and not waiting[0].is_write:
            ready.append(Serve(waiting.popleft()))
        return ready
