"""The server's Prometheus metrics: one private registry per server.

Gauges are read from the server's state when Prometheus scrapes, so serving
clients costs nothing for them; the histograms are the ones ServerStats
fills as requests, group commits and proposals happen, turned into
Prometheus' cumulative buckets here, when scraped.

Beside nookeeper_*, the same quantities go out under the names ZooKeeper's
PrometheusMetricsProvider gives them (znode_count, avg_latency, fsynctime,
...), so that a ZooKeeper dashboard or alert rule works unchanged.
"""

import itertools
import time

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily, Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from nookeeper import ZOOKEEPER_COMPAT_VERSION, __version__
from nookeeper.zab.messages import LEADING

ROLES = ("leader", "follower", "standalone", "looking")


def leader_followers(node):
    """(learners, synced followers) while this server leads; (0, 0) otherwise.

    Read from the ZAB thread's state without a lock: a dict copied in one step
    under the GIL, good enough for a number on a dashboard.
    """
    core = node.replication.core
    if core.role != LEADING:
        return 0, 0
    followers = list(getattr(core.state, "followers", {}).values())
    return len(followers), sum(1 for follower in followers if follower.synced)


class NodeCollector(Collector):
    def __init__(self, node):
        self.node = node

    def collect(self):
        node = self.node
        config = node.config
        yield InfoMetricFamily(
            "nookeeper_server", "This server: its id and versions.",
            value={"server_id": str(config.server_id), "version": __version__,
                   "zookeeper_version": ZOOKEEPER_COMPAT_VERSION},
        )
        role = GaugeMetricFamily("nookeeper_role", "1 for this server's current ZAB role.",
                                 labels=["role"])
        mode = node.replication.mode
        for name in ROLES:
            role.add_metric([name], 1.0 if mode == name else 0.0)
        yield role
        yield _gauge("nookeeper_serving", "1 while this server serves clients.", node.state.serving)
        yield _gauge("nookeeper_read_only", "1 while this server serves read-only clients "
                     "(read_only_mode, no leader).", node.state.read_only)
        yield _gauge("nookeeper_epoch", "The current ZAB epoch.", node.replication.epoch)
        with node.state.tree_lock:
            tree = node.state.tree
            applied = tree.last_zxid
            znodes = tree.node_count + 1  # as zk_znode_count, which counts the root twice
            ephemerals = tree.ephemeral_count
            data_size = tree.approximate_data_size
            sessions = len(tree.sessions)
            watches = node.state.watches.count
        yield _gauge("nookeeper_last_zxid", "The last zxid applied to the tree.", applied)
        yield _gauge("nookeeper_logged_zxid", "The last zxid on disk in the write-ahead log.",
                     node.replication.core.logged_zxid)
        yield _gauge("nookeeper_znodes", "Znodes in the tree (zk_znode_count).", znodes)
        yield _gauge("nookeeper_ephemerals", "Ephemeral znodes.", ephemerals)
        yield _gauge("nookeeper_approximate_data_size_bytes",
                     "Bytes of data and paths in the tree.", data_size)
        yield _gauge("nookeeper_watches", "Watches set by this server's clients.", watches)
        yield _gauge("nookeeper_sessions", "Sessions alive in the ensemble.", sessions)
        yield _gauge("nookeeper_connections", "Client connections with a session on this server.",
                     len(node.state.connections()))
        yield _gauge("nookeeper_outstanding_requests",
                     "Requests of this server's clients not answered yet.", node.state.outstanding())
        yield _gauge("nookeeper_throttle_stalls",
                     "Times a client connection's reader stopped reading at an outstanding "
                     "requests limit (a counter).", node.pipeline.throttle.stalls)
        learners, synced = leader_followers(node)
        yield _gauge("nookeeper_learners", "On the leader: followers connected to it.", learners)
        yield _gauge("nookeeper_synced_followers",
                     "On the leader: followers synchronised and receiving proposals.", synced)
        for histogram in node.stats.histograms():
            yield _histogram_family(histogram)


def _histogram_family(histogram):
    labels = [histogram.label] if histogram.label else []
    family = HistogramMetricFamily(histogram.name, histogram.documentation, labels=labels)
    for label_value, buckets in sorted(histogram.series.items(), key=lambda item: str(item[0])):
        edges = [floatToGoString(bound) for bound in buckets.bounds] + ["+Inf"]
        cumulative = itertools.accumulate(buckets.counts)
        family.add_metric([label_value] if histogram.label else [],
                          list(zip(edges, cumulative)), buckets.sum)
    return family


def _gauge(name, documentation, value):
    return GaugeMetricFamily(name, documentation, value=float(value))


_ZK_HELP = {
    "znode_count": "Znodes in the tree (the root counted twice, as ZooKeeper counts it).",
    "watch_count": "Watches set by this server's clients.",
    "approximate_data_size": "Bytes of znode paths and data.",
    "global_sessions": "Sessions alive in the ensemble.",
    "local_sessions": "Read-only mode's sessions, local to this server.",
    "outstanding_requests": "Requests of this server's clients not answered yet.",
    "num_alive_connections": "Client connections with a session on this server.",
    "avg_latency": "Average request latency in ms since start or srst.",
    "min_latency": "Lowest request latency in ms since start or srst.",
    "max_latency": "Highest request latency in ms since start or srst.",
    "uptime": "Milliseconds since this server started.",
    "quorum_size": "Voting members of the ensemble.",
    "learners": "On the leader: followers connected to it.",
    "synced_followers": "On the leader: followers synchronised and receiving proposals.",
    "pending_syncs": "On the leader: follower syncs waiting (nookeeper answers them at once).",
}
# ZooKeeper's summaries: BASIC ones carry the median, ADVANCED ones three quantiles.
_BASIC = (0.5,)
_ADVANCED = (0.5, 0.9, 0.99)


class ZooKeeperCollector(Collector):
    """The metrics ZooKeeper 3.8's Prometheus provider exports, under its names
    and in its units (milliseconds), where nookeeper has the quantity: the
    gauges of ZooKeeperServer and the leader, and the fsynctime, readlatency and
    updatelatency summaries (from the histograms since start, so srst does not
    touch them; avg/min/max_latency are the srst-resettable ones, as ZooKeeper's)."""

    def __init__(self, node):
        self.node = node

    def collect(self):
        from nookeeper.server import fourletter  # fourletter imports this module

        node = self.node
        stats = node.stats
        with node.state.tree_lock:
            tree = node.state.tree
            gauges = [
                ("znode_count", tree.node_count + 1),  # as mntr: the root counted twice
                ("watch_count", node.state.watches.count),
                ("ephemerals_count", tree.ephemeral_count),
                ("approximate_data_size", tree.approximate_data_size),
                ("global_sessions", len(tree.sessions)),
                ("local_sessions", len(node.state.local_sessions)),
            ]
        gauges += [
            ("outstanding_requests", node.state.outstanding()),
            ("num_alive_connections", len(node.state.connections())),
            ("packets_received", stats.received),
            ("packets_sent", stats.sent),
            ("avg_latency", stats.avg_latency),
            ("min_latency", stats.min_latency or 0),
            ("max_latency", stats.max_latency),
            ("uptime", int((time.time() - node.started_at) * 1000)),
            ("open_file_descriptor_count", fourletter._open_fds()),
            ("max_file_descriptor_count", fourletter._max_fds()),
            ("last_client_response_size", stats.last_response_size),
            ("max_client_response_size", stats.max_response_size),
            ("min_client_response_size", stats.min_response_size or 0),
            ("auth_failed_count", stats.auth_failed),
        ]
        if not node.replication.standalone:
            gauges.append(("quorum_size", len(node.config.members)))
        if node.replication.mode == "leader":
            learners, synced = leader_followers(node)
            gauges += [("learners", learners), ("synced_followers", synced),
                       ("synced_non_voting_followers", 0), ("synced_observers", 0),
                       ("pending_syncs", 0)]
        for name, value in gauges:
            yield _gauge(name, _ZK_HELP.get(name, name.replace("_", " ")), value)
        histograms = {h.name: h for h in stats.histograms()}
        fsync = histograms["nookeeper_wal_fsync_seconds"].series[None]
        yield _summary("fsynctime", "Group commit (fsync) time in ms (ZooKeeper's name).",
                       fsync.bounds, fsync.counts, fsync.sum, _BASIC)
        by_op = histograms["nookeeper_request_latency_seconds"].series
        for name, updates in (("readlatency", False), ("updatelatency", True)):
            picked = [b for op, b in by_op.items() if (op in fourletter._UPDATE_OPS) == updates]
            counts = [sum(column) for column in zip(*(b.counts for b in picked))] or None
            total = sum(b.sum for b in picked)
            bounds = picked[0].bounds if picked else ()
            yield _summary(name, f"{'Write' if updates else 'Read'} request latency in ms "
                           "(ZooKeeper's name).", bounds, counts, total, _ADVANCED)


def _summary(name, documentation, bounds, counts, seconds, quantiles):
    """A Prometheus summary in ms from a histogram in seconds: count, sum and
    quantiles interpolated within a bucket (0 without observations)."""
    family = Metric(name, documentation, "summary")
    counts = counts or [0] * (len(bounds) + 1)
    count = sum(counts)
    for q in quantiles:
        family.add_sample(name, {"quantile": floatToGoString(q)},
                          _interpolate(bounds, counts, count, q) * 1000.0)
    family.add_sample(f"{name}_count", {}, float(count))
    family.add_sample(f"{name}_sum", {}, seconds * 1000.0)
    return family


def _interpolate(bounds, counts, count, q):
    if not count:
        return 0.0
    rank, seen = q * count, 0
    for index, in_bucket in enumerate(counts):
        if in_bucket and seen + in_bucket >= rank:
            if index == len(bounds):  # above every bound: the highest one
                return bounds[-1]
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / in_bucket
        seen += in_bucket
    return bounds[-1]


class NodeRegistry(CollectorRegistry):
    """A server's private registry, which knows its server (for the admin port)."""

    def __init__(self, node):
        super().__init__(auto_describe=False)
        self.node = node


def make_registry(node):
    """A registry of this server's metrics (nookeeper's names and ZooKeeper's) and
    its process's (memory, CPU, fds, GC)."""
    registry = NodeRegistry(node)
    registry.register(NodeCollector(node))
    registry.register(ZooKeeperCollector(node))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
