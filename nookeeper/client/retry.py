"""Retrying a call through connection trouble, with jittered exponential backoff.

A ConnectionLoss leaves it unknown whether a write happened, so only code
that is safe to repeat should be retried (or code that checks first).
"""

import random
import time

from nookeeper.client.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    OperationTimeoutError,
    RetryFailedError,
    RetryInterruptedError,
    SessionExpiredError,
)


class ForceRetryError(Exception):
    """Raise inside a retried function to ask for another attempt."""


class KeeperRetry:
    """Calls a function until it stops failing with a retryable error.

    max_tries None (or -1) retries forever; `deadline` bounds the total time
    in seconds; `interrupt()` returning True stops between attempts.
    """

    RETRY_EXCEPTIONS = (ConnectionLoss, OperationTimeoutError, ForceRetryError)
    EXPIRED_EXCEPTIONS = (SessionExpiredError,)

    def __init__(self, max_tries=1, delay=0.1, backoff=2, max_jitter=0.4,
                 max_delay=60.0, ignore_expire=True, sleep_func=time.sleep,
                 deadline=None, interrupt=None):
        self.max_tries = max_tries
        self.delay = delay
        self.backoff = backoff
        self.max_jitter = min(max(max_jitter, 0.0), 1.0)
        self.max_delay = float(max_delay)
        self.ignore_expire = ignore_expire
        self.sleep_func = sleep_func
        self.deadline = deadline
        self.interrupt = interrupt
        self.retry_exceptions = self.RETRY_EXCEPTIONS
        if ignore_expire:
            self.retry_exceptions += self.EXPIRED_EXCEPTIONS

    def copy(self):
        """An independent policy with the same settings (one per concurrent use)."""
        return KeeperRetry(
            max_tries=self.max_tries, delay=self.delay, backoff=self.backoff,
            max_jitter=self.max_jitter, max_delay=self.max_delay,
            ignore_expire=self.ignore_expire, sleep_func=self.sleep_func,
            deadline=self.deadline, interrupt=self.interrupt,
        )

    def __call__(self, func, *args, **kwargs):
        attempts = 0
        delay = self.delay
        stop_at = None if self.deadline is None else time.monotonic() + self.deadline
        while True:
            try:
                return func(*args, **kwargs)
            except ConnectionClosedError:
                raise
            except self.retry_exceptions:
                attempts += 1
                if self.max_tries not in (None, -1) and attempts >= self.max_tries:
                    raise RetryFailedError("too many retry attempts") from None
                pause = min(delay * random.uniform(1 - self.max_jitter, 1 + self.max_jitter),
                            self.max_delay)
                if stop_at is not None and time.monotonic() + pause >= stop_at:
                    raise RetryFailedError("retry deadline exceeded") from None
                self._pause(pause)
                delay = min(delay * self.backoff, self.max_delay)

    def _pause(self, seconds):
        if self.interrupt is None:
            self.sleep_func(seconds)
            return
        while seconds > 0:
            step = min(0.1, seconds)
            self.sleep_func(step)
            seconds -= step
            if self.interrupt():
                raise RetryInterruptedError("retry interrupted")
