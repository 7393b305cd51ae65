"""Four-letter words: plain-text answers on a connection that never handshakes.

Formats follow ZooKeeper's so that its tools (zkServer.sh status, kazoo's
command() and server_version(), monitoring scripts grepping mntr) read ours.
"""

import os
import platform
import socket
import struct
import sys
import threading
import time

from nookeeper import ZOOKEEPER_COMPAT_VERSION, __version__, build_stamp
from nookeeper.server.metrics import leader_followers
from nookeeper.server.stats import LATENCY_BUCKETS
from nookeeper.wire import ops

WORDS = (
    "ruok", "isro", "srvr", "stat", "mntr", "conf", "cons", "envi",
    "wchs", "wchc", "wchp", "dump", "dirs", "crst", "srst", "gtmk", "stmk",
)
FOUR_LETTER_CODES = frozenset(word.encode("ascii") for word in WORDS)

# As ZooKeeper's "3.8.0-<git hash>, built on 2022-02-25 08:49 UTC", whose leading
# version kazoo's server_version() parses (from envi). The time is when this
# package was built (a wheel), or HEAD's commit date in a checkout (build_time()).
VERSION_LINE = f"{ZOOKEEPER_COMPAT_VERSION}-nookeeper-{__version__}, built on {build_stamp()}"


def _fmt_avg(value):
    return repr(round(float(value), 4))


def _ruok(node):
    return "imok"


def _isro(node):
    return "ro" if node.state.read_only else "rw"


# The line ZooKeeper's srvr and stat add after the version in read-only mode.
READ_ONLY_LINE = "READ-ONLY mode; serving only read-only clients"


def _mode(node):
    """srvr's Mode: and mntr's zk_server_state; "read-only" as ZooKeeper's
    ReadOnlyZooKeeperServer.getState() says."""
    return "read-only" if node.state.read_only else node.replication.mode


def _version_lines(node):
    lines = [f"Zookeeper version: {VERSION_LINE}"]
    if node.state.read_only:
        lines.append(READ_ONLY_LINE)
    return lines


def _summary_lines(node):
    stats = node.stats
    with node.state.tree_lock:
        zxid = node.state.tree.last_zxid
        count = node.state.tree.node_count + 1  # ZooKeeper keys the root twice
    return [
        f"Latency min/avg/max: {stats.min_latency or 0}/{_fmt_avg(stats.avg_latency)}/{stats.max_latency}",
        f"Received: {stats.received}",
        f"Sent: {stats.sent}",
        f"Connections: {len(node.state.connections())}",
        f"Outstanding: {node.state.outstanding()}",
        f"Zxid: {zxid:#x}",
        f"Epoch: {node.replication.epoch}",
        f"Mode: {_mode(node)}",
        f"Node count: {count}",
    ]


def _srvr(node):
    return "\n".join(_version_lines(node) + _summary_lines(node)) + "\n"


def _brief(conn):
    return (f" /{conn.address[0]}:{conn.address[1]}[1]"
            f"(queued={conn.queued},recved={conn.received},sent={conn.sent})")


def _stat(node):
    lines = _version_lines(node) + ["Clients:"]
    lines += [_brief(conn) for conn in node.state.connections()]
    lines.append("")
    lines += _summary_lines(node)
    return "\n".join(lines) + "\n"


def _cons(node):
    lines = []
    for conn in node.state.connections():
        avg = conn.total_latency // conn.replies if conn.replies else 0
        lines.append(
            _brief(conn)[:-1]
            + f",sid={conn.session_id:#x},lop={conn.last_op},est={conn.established_ms}"
            + f",to={conn.timeout_ms},lcxid={conn.last_cxid:#x},lzxid={conn.last_zxid:#x}"
            + f",lresp={conn.last_response_ms},llat={conn.last_latency}"
            + f",minlat={conn.min_latency or 0},avglat={avg},maxlat={conn.max_latency})"
        )
    return "\n".join(lines) + "\n\n"


def _mntr(node):
    """ZooKeeper 3.8's keys where we have the quantity, then nookeeper's own (zk_wal_*, ...)."""
    stats = node.stats
    writer = node.replication.writer
    with node.state.tree_lock:
        tree = node.state.tree
        tree_metrics = [
            ("znode_count", tree.node_count + 1),
            ("watch_count", node.state.watches.count),
            ("ephemerals_count", tree.ephemeral_count),
            ("approximate_data_size", tree.approximate_data_size),
            ("global_sessions", len(tree.sessions)),
            ("local_sessions", len(node.state.local_sessions)),
        ]
        last_zxid = tree.last_zxid
    metrics = [
        ("version", VERSION_LINE),
        ("server_state", _mode(node)),
        ("avg_latency", _fmt_avg(stats.avg_latency)),
        ("max_latency", stats.max_latency),
        ("min_latency", stats.min_latency or 0),
        ("packets_received", stats.received),
        ("packets_sent", stats.sent),
        ("num_alive_connections", len(node.state.connections())),
        ("outstanding_requests", node.state.outstanding()),
        ("uptime", int((time.time() - node.started_at) * 1000)),
        *tree_metrics,
        ("open_file_descriptor_count", _open_fds()),
        ("max_file_descriptor_count", _max_fds()),
        ("last_client_response_size", stats.last_response_size),
        ("max_client_response_size", stats.max_response_size),
        ("min_client_response_size", stats.min_response_size or 0),
        ("auth_failed_count", stats.auth_failed),
        *zip(("non_mtls_remote_conn_count", "non_mtls_local_conn_count"), non_mtls_counts(node)),
    ]
    if not node.replication.standalone:
        metrics.append(("quorum_size", len(node.config.members)))
    if node.replication.mode == "leader":
        learners, synced = leader_followers(node)
        metrics += [
            ("learners", learners),
            ("followers", learners),  # the name before ZooKeeper 3.6, still read by monitors
            ("synced_followers", synced),
            ("synced_non_voting_followers", 0),
            ("synced_observers", 0),
            # The leader answers a follower's sync at once, so none ever waits.
            ("pending_syncs", 0),
        ]
    metrics += stats.fsync_ms.mntr_pairs("fsynctime")
    metrics += stats.batch_txns.mntr_pairs("sync_processor_batch_size")
    metrics += stats.proposal_ms.mntr_pairs("proposal_commit_latency")
    metrics += _latency_pairs(stats)
    metrics += [
        ("last_zxid", f"{last_zxid:#x}"),
        ("wal_batches", writer.batches),
        ("wal_logged_txns", writer.logged),
        ("wal_last_batch_size", writer.last_batch_size),
        ("peer_state", peer_state(node)),
        ("epoch", node.replication.epoch),
        ("zab_last_logged_zxid", f"{node.replication.core.logged_zxid:#x}"),
        # nookeeper's own, for `nk status`: ZooKeeper's mntr has no key for them.
        ("server_id", node.config.server_id),
        ("data_dir_size", _data_dir_size(node)),
    ]
    return "".join(f"zk_{key}\t{value}\n" for key, value in metrics)


# ZooKeeper's QuorumPeer.getDetailedPeerState(): "<state> - <zab phase>". Words
# and mntr answer only while serving (or read-only, while looking), so the phase
# is broadcast, or election. A standalone server keeps its mode, as ZooKeeper's
# standalone mntr has no peer_state at all.
_PEER_STATES = {"leader": "leading - broadcast", "follower": "following - broadcast",
                "looking": "looking - election"}


def peer_state(node):
    mode = node.replication.mode
    return _PEER_STATES.get(mode, mode)


# ZooKeeper's readlatency and updatelatency (ServerStats.updateLatency): a
# request that is a txn counts as an update, any other (pings too) as a read.
_UPDATE_OPS = frozenset(op.name for op in ops.OPS if op.writes)
_PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))


def _latency_pairs(stats):
    """ZooKeeper's avg/cnt/sum/p50/p95/p99/p999 of read and update latency in ms, from
    the request histograms: since start (srst does not reset them) and, for the
    percentiles, interpolated within a bucket as Prometheus' histogram_quantile does.
    min and max are not in a histogram, so those two keys are left out."""
    by_op = next(h.series for h in stats.histograms()
                 if h.name == "nookeeper_request_latency_seconds")
    pairs = []
    for name, updates in (("readlatency", False), ("updatelatency", True)):
        counts = [0] * (len(LATENCY_BUCKETS) + 1)
        total = 0.0
        for op, buckets in by_op.items():
            if (op in _UPDATE_OPS) == updates:
                counts = [mine + theirs for mine, theirs in zip(counts, buckets.counts)]
                total += buckets.sum
        count = sum(counts)
        pairs += [
            (f"avg_{name}", _fmt_avg(total * 1000 / count if count else 0.0)),
            (f"cnt_{name}", count),
            (f"sum_{name}", _fmt_avg(total * 1000)),
        ]
        pairs += [(f"{label}_{name}", _fmt_avg(_quantile(counts, count, q) * 1000))
                  for label, q in _PERCENTILES]
    return pairs


def _quantile(counts, count, q):
    """Seconds below which a fraction q of the observations fall (0.0 without any)."""
    if not count:
        return 0.0
    rank = q * count
    seen = 0
    for index, in_bucket in enumerate(counts):
        if in_bucket and seen + in_bucket >= rank:
            if index == len(LATENCY_BUCKETS):  # above every bound: the highest one
                return LATENCY_BUCKETS[-1]
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            upper = LATENCY_BUCKETS[index]
            return lower + (upper - lower) * (rank - seen) / in_bucket
        seen += in_bucket
    return LATENCY_BUCKETS[-1]


def non_mtls_counts(node):
    """(remote, local): client connections without a client certificate (x509
    identity), from other hosts and from this one, as ZooKeeper counts them."""
    plain = [conn for conn in node.state.connections()
             if not any(scheme == "x509" for scheme, _ in conn.ids)]
    local = sum(1 for conn in plain if _is_loopback(conn.address[0]))
    return len(plain) - local, local


def _is_loopback(host):
    return host in ("::1", "localhost") or host.startswith(("127.", "::ffff:127."))


def _data_dir_size(node):
    """Bytes of the files in the data dir (the log and snapshots, with SQLite's -wal), as dirs."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(node.config.data_dir)
                   if entry.is_file())
    except OSError:
        return 0


def _open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _max_fds():
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        return 0


def _conf(node):
    config = node.config
    # As ZooKeeper's: the client port lines of the ports this server has.
    pairs = [(key, value) for key, value in (
        ("clientPort", config.client_port),
        ("clientPortAddress", config.client_host),
        ("secureClientPort", config.secure_client_port),
        ("secureClientPortAddress", config.secure_client_host),
    ) if value is not None]
    pairs += [
        ("dataDir", config.data_dir),
        ("dataLogDir", config.data_dir),
        ("tickTime", config.tick_ms),
        ("maxClientCnxns", config.max_connections_per_ip),
        ("minSessionTimeout", config.min_session_timeout_ms),
        ("maxSessionTimeout", config.max_session_timeout_ms),
        ("serverId", config.server_id),
        ("maxFrameBytes", config.max_frame_bytes),
    ]
    return "".join(f"{key}={value}\n" for key, value in pairs)


def _envi(node):
    pairs = [
        ("zookeeper.version", VERSION_LINE),
        ("nookeeper.version", __version__),
        ("host.name", socket.gethostname()),
        ("python.version", sys.version.split()[0]),
        ("python.executable", sys.executable),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", _user_name()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]
    return "Environment:\n" + "".join(f"{key}={value}\n" for key, value in pairs)


def _user_name():
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


def _wchs(node):
    with node.state.tree_lock:
        watchers = node.state.watches.watchers()
        paths = node.state.watches.by_path()
        total = node.state.watches.count
    return f"{len(watchers)} connections watching {len(paths)} paths\nTotal watches:{total}\n"


def _wchc(node):
    out = []
    with node.state.tree_lock:
        for conn in node.state.watches.watchers():
            out.append(f"{conn.session_id:#x}\n")
            out += [f"\t{path}\n" for path in node.state.watches.paths_of(conn)]
            out.append("\n")
    return "".join(out)


def _wchp(node):
    out = []
    with node.state.tree_lock:
        for path, conns in sorted(node.state.watches.by_path().items()):
            out.append(f"{path}\n")
            out += [f"\t{conn.session_id:#x}\n" for conn in conns]
            out.append("\n")
    return "".join(out)


def _dump(node):
    with node.state.tree_lock:
        sessions = sorted(node.state.tree.sessions)
        owners = [(sid, sorted(node.state.tree.ephemerals(sid))) for sid in sessions]
    out = ["SessionTracker dump:\n", f"Global Sessions({len(sessions)}):\n"]
    out += [f"{sid:#x}\t{node.state.session_timeout(sid)}ms\n" for sid in sessions]
    with_ephemerals = [(sid, paths) for sid, paths in owners if paths]
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(with_ephemerals)}):\n")
    for sid, paths in with_ephemerals:
        out.append(f"{sid:#x}:\n")
        out += [f"\t{path}\n" for path in paths]
    out.append("Connections dump:\n")
    out += [f"{conn!r}\n" for conn in node.state.connections()]
    return "".join(out)


def _dirs(node):
    size = _data_dir_size(node)
    return f"datadir_size: {size}\nlogdir_size: {size}\n"


def _crst(node):
    for conn in node.state.connections():
        conn.received = conn.sent = conn.replies = conn.total_latency = conn.max_latency = 0
        conn.min_latency = None
    return "Connection stats reset.\n"


def _srst(node):
    node.stats.reset()
    return "Server stats reset.\n"


class TraceMask:
    """ZooKeeper's ZooTrace text trace mask: one per process, read by gtmk and
    get_trace_mask, set by stmk and set_trace_mask, and gating nothing here
    (nookeeper's log has no packet tracing). ZooKeeper starts with 306
    (0x132: client requests, server packets, sessions and warnings)."""

    DEFAULT = 306

    def __init__(self):
        self._lock = threading.Lock()
        self._value = self.DEFAULT

    def get(self):
        with self._lock:
            return self._value

    def set(self, value):
        with self._lock:
            self._value = value
        return value


TRACE_MASK = TraceMask()
_LONG = struct.Struct(">q")


def _gtmk(node):
    # As ZooKeeper's TraceMaskCommand: the number alone, no newline.
    return str(TRACE_MASK.get())


def _stmk(node, read):
    """stmk is followed by the new mask as an 8-byte big-endian long, which
    ZooKeeper reads right after the word; the answer is the mask set."""
    (mask,) = _LONG.unpack(read(_LONG.size))
    return str(TRACE_MASK.set(mask))


_COMMANDS = {
    "ruok": _ruok, "isro": _isro, "srvr": _srvr, "stat": _stat, "mntr": _mntr,
    "conf": _conf, "cons": _cons, "envi": _envi, "wchs": _wchs, "wchc": _wchc,
    "wchp": _wchp, "dump": _dump, "dirs": _dirs, "crst": _crst, "srst": _srst,
    "gtmk": _gtmk,
}
# Words that read an argument after themselves: (node, read(n) -> bytes).
_WITH_ARGUMENT = {"stmk": _stmk}


# Words that need a serving server; the rest answer from any state.
_NEED_SERVING = frozenset({"srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump", "isro"})
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def run_four_letter_word(node, word, read=None):
    """The answer to `word`; read(n) gives the n bytes after it, for stmk's argument
    (without it, stmk is answered as a connection that closed: nothing)."""
    if word != "srvr" and not node.config.allows_four_letter_word(word):
        return f"{word} is not executed because it is not in the whitelist.\n".encode()
    if word in _NEED_SERVING and not (node.state.serving or node.state.read_only):
        return (b"null" if word == "isro" else NOT_SERVING.encode())
    if word in _WITH_ARGUMENT:
        return b"" if read is None else _WITH_ARGUMENT[word](node, read).encode()
    return _COMMANDS[word](node).encode("utf-8", "surrogatepass")
