"""The server's Prometheus metrics: one private registry per server.

Gauges are read from the server's state when Prometheus scrapes, so serving
clients costs nothing for them; the histograms are the ones ServerStats
fills as requests, group commits and proposals happen, turned into
Prometheus' cumulative buckets here, when scraped.
"""

import itertools

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
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


def make_registry(node):
    """A registry of this server's metrics and its process's (memory, CPU, fds, GC)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
