"""Backpressure on the client port: a flood waits in the client's socket.

A connection's reader thread asks admit() before it hands on each request.
It stops reading (and TCP stops the client) while that connection has
max_outstanding_per_connection requests unanswered, or as many replies not
yet written to a client that does not read them, or while the whole server
has global_outstanding_limit requests unanswered and this connection has any
of them: ZooKeeper's shouldThrottle rule, so a quiet client still gets in
while busy ones wait their turn. Nothing is refused or dropped; memory stays
bounded by the limits instead of by how fast clients can send.
"""

import threading


class Throttle:
    def __init__(self, per_connection, global_limit):
        self.per_connection = per_connection
        self.global_limit = global_limit
        self.outstanding = 0     # admitted requests not answered yet, all connections
        self.stalls = 0          # times a reader had to stop reading
        self._waiting = 0
        self._cond = threading.Condition(threading.Lock())

    def _must_wait(self, conn):
        return (conn.unanswered >= self.per_connection
                or conn.unwritten >= self.per_connection
                or (conn.unanswered and self.outstanding >= self.global_limit))

    def admit(self, conn):
        """Count one request of conn in, once the limits allow it."""
        with self._cond:
            if self._must_wait(conn):
                self.stalls += 1
                self._waiting += 1
                try:
                    while self._must_wait(conn) and not conn.closed:
                        self._cond.wait(1.0)
                finally:
                    self._waiting -= 1
            conn.unanswered += 1
            self.outstanding += 1

    def answered(self, conn):
        """One request of conn has its reply (or will never get one)."""
        with self._cond:
            if conn.unanswered <= 0:
                return  # forgotten when its reader left
            conn.unanswered -= 1
            self.outstanding -= 1
            if self._waiting:
                self._cond.notify_all()

    def written(self):
        """Replies reached a client's socket (or it closed): a reader waiting on
        them may go on. Under the lock, so a reader just about to wait is not missed."""
        with self._cond:
            if self._waiting:
                self._cond.notify_all()

    def forget(self, conn):
        """conn's reader is gone: what it left unanswered counts no more."""
        with self._cond:
            self.outstanding -= conn.unanswered
            conn.unanswered = 0
            if self._waiting:
                self._cond.notify_all()
