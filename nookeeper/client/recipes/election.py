"""Leader election: the contender holding the election's lock leads.

Contenders queue exactly as Lock contenders do (each watches only the one
ahead of it), so when the leader's session ends, by a clean stop or by the
process dying and its session expiring, only the next in line wakes up and
becomes leader.
"""

from nookeeper.client.exceptions import CancelledError
from nookeeper.client.recipes.lock import Lock


class Election:
    """election = client.Election("/election/app", "host-1"); election.run(lead)."""

    def __init__(self, client, path, identifier=None):
        self.lock = Lock(client, path, identifier)

    def run(self, func, *args, **kwargs):
        """Wait to win, then call func(*args, **kwargs) and step down when it returns.

        Returns func's result; None if cancel() was called before winning.
        Losing the session does not interrupt func: a leader that must
        stop then should watch the client's state.
        """
        if not callable(func):
            raise ValueError("the leader function must be callable")
        try:
            self.lock.acquire()
        except CancelledError:
            return None
        try:
            return func(*args, **kwargs)
        finally:
            self.lock.release()

    def cancel(self):
        """Leave the queue; a run() still waiting returns. A running leader is not stopped."""
        self.lock.cancel()

    def contenders(self):
        """Identifiers of the contenders, the leader first."""
        return self.lock.contenders()
