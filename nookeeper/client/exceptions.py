"""Every error a client call can raise.

The server-side error classes (one per ZooKeeper error code) are the same
objects as nookeeper.errors, so `except NoNodeError` catches both; the
client adds the failures that never travel on the wire.
"""

from nookeeper.errors import *  # noqa: F401,F403  (re-exported on purpose)
from nookeeper.errors import (
    ERRORS_BY_CODE,
    BadArgumentsError,
    ConnectionLoss,
    SessionExpiredError,
    ZooKeeperError,
)

# kazoo spells the base of every error with a ZooKeeper code this way.
ZookeeperError = ZooKeeperError


class ClientError(Exception):
    """Base of the errors the client itself decides (no error code)."""


class ConnectionClosedError(SessionExpiredError):
    """The client was stopped: like an expired session, but by our own hand.

    It subclasses SessionExpiredError as kazoo's does, so code that handles
    expiry also handles a closed client; retry() never retries it.
    """


class InvalidArgumentsError(BadArgumentsError, ValueError):
    """Arguments ZooKeeper's client refuses before sending anything (a TTL on an
    ephemeral node, a sequential container...).

    Java throws IllegalArgumentException there; this is a ValueError for
    the same reason, and a BadArgumentsError (-8) for code that catches
    what a server would have answered.
    """


class KeeperTimeoutError(ClientError, TimeoutError):
    """A wait (start, AsyncResult.get) ran out of time."""


class RetryFailedError(ClientError):
    """retry() gave up: too many attempts or past its deadline."""


class RetryInterruptedError(RetryFailedError):
    """retry() was told to stop by its interrupt function."""


class ProtocolError(ClientError):
    """The server sent something the protocol does not allow."""


# What the recipes (nookeeper.client.recipes) raise themselves.


class CancelledError(ClientError):
    """A blocking recipe call was stopped by its cancel() method."""


class LockTimeout(ClientError, TimeoutError):
    """A lock or semaphore was not granted within the timeout given."""


class UnknownOutcomeError(ConnectionLoss):
    """The connection dropped before a write's reply and nothing shows whether it happened.

    Repeating the write could apply it twice, so the recipe leaves the
    decision to the caller. It is a ConnectionLoss, so code that handles
    those handles it too.
    """


def error_from_code(code, message=""):
    """An exception instance for a wire error code, even one we do not know."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        error = ZooKeeperError(message or f"unknown error code {code}")
        error.code = code
        return error
    return cls(message) if message else cls()
