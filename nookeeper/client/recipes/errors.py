"""Errors the recipes raise themselves (no ZooKeeper error code behind them)."""

from nookeeper.client.exceptions import ClientError, ConnectionLoss


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
