"""What one server counts and times.

Two views of the same events: plain counters and avg/min/max summaries in
ZooKeeper's units (milliseconds) for srvr, stat, mntr and cons, which `srst`
may reset; and histograms in seconds for server/metrics.py, which only ever
grow, as Prometheus expects of them.
"""

import bisect
import collections
import threading
import time

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

# Proposals still waiting for their commit, on the leader; a bound in case a
# leader loses its quorum with proposals in flight and never applies them.
_MAX_IN_FLIGHT = 100000


class Summary:
    """Count, sum, min and max of one quantity, printed as ZooKeeper's mntr
    prints its summaries: avg_NAME, min_NAME, max_NAME, cnt_NAME, sum_NAME."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.total = 0
        self.min = None
        self.max = None

    def add(self, value):
        self.count += 1
        self.total += value
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max

    def mntr_pairs(self, name, digits=4):
        avg = self.total / self.count if self.count else 0.0
        return [
            (f"avg_{name}", repr(round(avg, digits))),
            (f"min_{name}", _number(self.min or 0, digits)),
            (f"max_{name}", _number(self.max or 0, digits)),
            (f"cnt_{name}", self.count),
            (f"sum_{name}", _number(self.total, digits)),
        ]


def _number(value, digits):
    return value if isinstance(value, int) else repr(round(value, digits))


class Buckets:
    """One histogram's counts. Every request is observed, so an observation is
    a bisect and two additions under one of ServerStats' locks; the cumulative
    Prometheus form is built only when it is scraped (server/metrics.py).
    A prometheus_client Histogram took a tenth of a loaded leader's apply thread."""

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self):
        twin = Buckets(self.bounds)
        twin.counts = list(self.counts)
        twin.sum = self.sum
        return twin


class Histogram(collections.namedtuple("Histogram", "name documentation label series")):
    """What a scrape gets: series maps a label value (None without a label) to Buckets."""


class ServerStats:
    """Client requests are counted under _lock by every connection's thread;
    the log and commit figures under _commit_lock by the log writer and the
    apply thread, so the apply thread does not queue behind a server's readers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._by_op = {}
        self._fsync_time = Buckets(FSYNC_BUCKETS)
        self._batch_size = Buckets(BATCH_BUCKETS)
        self._proposal_latency = Buckets(LATENCY_BUCKETS)
        self._in_flight = collections.deque(maxlen=_MAX_IN_FLIGHT)
        self.fsync_ms = Summary()
        self.batch_txns = Summary()
        self.proposal_ms = Summary()
        self.reset()

    def reset(self):
        """srst: the mntr/srvr numbers start again; the histograms do not."""
        with self._lock, self._commit_lock:
            self.received = 0
            self.sent = 0
            self.min_latency = None
            self.max_latency = 0
            self.total_latency = 0
            self.last_response_size = 0
            self.min_response_size = None
            self.max_response_size = 0
            self.auth_failed = 0
            self.fsync_ms.reset()
            self.batch_txns.reset()
            self.proposal_ms.reset()

    def histograms(self):
        """Copies, taken under the locks, so each scrape is consistent."""
        with self._lock, self._commit_lock:
            by_op = {op: buckets.copy() for op, buckets in self._by_op.items()}
            return (
                Histogram("nookeeper_request_latency_seconds",
                          "Client requests by op: time from the request's arrival to its reply being queued.",
                          "op", by_op),
                Histogram("nookeeper_wal_fsync_seconds",
                          "Group commits of the write-ahead log: one SQLite transaction and its fsync.",
                          None, {None: self._fsync_time.copy()}),
                Histogram("nookeeper_wal_batch_txns",
                          "Txns written by one group commit of the write-ahead log.",
                          None, {None: self._batch_size.copy()}),
                Histogram("nookeeper_proposal_commit_seconds",
                          "On the leader: time from proposing a txn to applying it, once a quorum has logged it.",
                          None, {None: self._proposal_latency.copy()}),
            )

    # -- client requests ----------------------------------------------------

    def packet_received(self):
        with self._lock:
            self.received += 1

    def failed_auth(self):
        with self._lock:
            self.auth_failed += 1

    def record(self, op, seconds, response_size):
        """One reply queued, for a request of op (ZooKeeper's name: create, getData, ...)."""
        latency_ms = int(seconds * 1000)
        with self._lock:
            buckets = self._by_op.get(op)
            if buckets is None:
                buckets = self._by_op[op] = Buckets(LATENCY_BUCKETS)
            buckets.observe(seconds)
            self.sent += 1
            self.total_latency += latency_ms
            self.max_latency = max(self.max_latency, latency_ms)
            self.min_latency = latency_ms if self.min_latency is None else min(self.min_latency, latency_ms)
            self.last_response_size = response_size
            self.max_response_size = max(self.max_response_size, response_size)
            if self.min_response_size is None or response_size < self.min_response_size:
                self.min_response_size = response_size

    @property
    def avg_latency(self):
        return self.total_latency / self.sent if self.sent else 0.0

    # -- the log and the commit ---------------------------------------------

    def wal_batch(self, seconds, size):
        """One group commit of the log writer: its duration and how many txns it wrote."""
        with self._commit_lock:
            self._fsync_time.observe(seconds)
            self._batch_size.observe(size)
            self.fsync_ms.add(seconds * 1000)
            self.batch_txns.add(size)

    def proposed(self, zxid):
        """The leader has proposed zxid (called on the ZAB thread, in zxid order); None: it did not."""
        if zxid is not None:
            self._in_flight.append((zxid, time.perf_counter()))

    def applied(self, zxid):
        """zxid is committed and applied here (the apply thread, in zxid order).

        Entries below zxid were applied before it or cut by a new leader; either
        way they will not be seen again and are dropped.
        """
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] < zxid:
            in_flight.popleft()
        if in_flight and in_flight[0][0] == zxid:
            _, started = in_flight.popleft()
            seconds = time.perf_counter() - started
            with self._commit_lock:
                self._proposal_latency.observe(seconds)
                self.proposal_ms.add(seconds * 1000)
