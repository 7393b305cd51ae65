"""Small pieces every recipe needs: paths, container directories, deadlines,
pauses after a lost connection."""

import time

from nookeeper.client.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError
from nookeeper.client.paths import normalize

# Errors after which the same step can simply be tried again: the session
# (and so every ephemeral node) is still there.
TRANSIENT = (ConnectionLoss, OperationTimeoutError)


def clean_path(path):
    """The recipe's root as the client names it: leading "/", no trailing one."""
    return normalize(path)


def child_path(parent, name):
    return ("" if parent == "/" else parent) + "/" + name


def parent_path(path):
    return path.rsplit("/", 1)[0] or "/"


# How often a create may find its container directory reaped before giving up:
# the server removes an emptied container only every check interval.
_REAPED_RETRIES = 5


def ensure_directory(client, path):
    """A recipe's directory and its missing ancestors, as containers.

    The server removes a container once its last child is gone, so lock,
    election, barrier and queue directories do not pile up (Curator's
    creatingParentContainersIfNeeded); a server without containers gets
    plain nodes.
    """
    client.ensure_path(path, container=True)


def create_in_directory(client, path, value=b"", **create_args):
    """client.create under a container directory, making the directory again
    when the server reaped it since it was last ensured."""
    attempts = _REAPED_RETRIES
    while True:
        try:
            return client.create(path, value, **create_args)
        except NoNodeError:
            attempts -= 1
            if not attempts:
                raise
        ensure_directory(client, parent_path(path))


def identifier_bytes(identifier):
    """kazoo stores identifiers as UTF-8 text; None becomes the empty string."""
    return str(identifier if identifier is not None else "").encode("utf-8")


class Deadline:
    """A timeout turned into a point in time, so loops can spend it piecemeal."""

    def __init__(self, timeout):
        self._end = None if timeout is None else time.monotonic() + max(float(timeout), 0.0)

    def remaining(self):
        """Seconds left (None: no limit)."""
        if self._end is None:
            return None
        return max(self._end - time.monotonic(), 0.0)

    def expired(self):
        return self._end is not None and time.monotonic() >= self._end


class Backoff:
    """Pauses between attempts while the connection is down: short at first, then 1 s.

    The client queues requests until it reconnects, so these pauses only
    keep a failing loop from spinning; `interrupted()` (a cancel) cuts them
    short.
    """

    def __init__(self, first=0.05, limit=1.0):
        self._first = first
        self._limit = limit
        self._next = first

    def reset(self):
        self._next = self._first

    def pause(self, deadline, interrupted=lambda: False):
        delay = self._next
        self._next = min(self._next * 2, self._limit)
        remaining = deadline.remaining()
        if remaining is not None:
            delay = min(delay, remaining)
        end = time.monotonic() + delay
        while not interrupted():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))
