"""The admin port: ZooKeeper's AdminServer over HTTP, health checks, and /metrics.

One HTTP listener per server (`admin_address`; `metrics_address` serves the
same, server/metricsport.py), threaded, stdlib only:

- `/commands/<name>`: ZooKeeper 3.8's AdminServer commands, by its names and
  aliases (`srvr` is `server_stats`, `mntr` is `monitor`, ...), as JSON with
  its field names, each answer carrying "command" (the primary name) and
  "error" (null, or why it failed) as ZooKeeper's do. `/commands` lists them.
- `/health` and `/ready`, as etcd means them: 200 while this member serves
  clients (`/ready`: and has a leader), 503 otherwise, with a small JSON body
  saying why. Made for load balancers, orchestrators and systemd-less probes.
- `/metrics`: the Prometheus text of server/metrics.py.

The port has no four-letter-word whitelist and no authentication, like
ZooKeeper's AdminServer: bind it to an address only operators reach.
"""

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import choose_encoder

from nookeeper.server import fourletter
from nookeeper.server.stats import FSYNC_BUCKETS
from nookeeper.server.tls import TlsSocket

log = logging.getLogger("nookeeper.admin")

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
# ZooKeeper's fsync.warningthresholdms: a group commit slower than this counts
# in server_stats' fsync_threshold_exceed_count.
FSYNC_WARNING_S = 1.0
_JSON = "application/json"


class Command:
    """One admin command: its names (the first is the primary one, which the
    answer's "command" holds), whether it needs a serving server, and a function
    (node, params) -> dict of its fields, or a str: the error."""

    def __init__(self, names, run, server_required=True):
        self.names = tuple(names)
        self.primary = self.names[0]
        self.run = run
        self.server_required = server_required


def run_command(node, name, params=None):
    """(HTTP status, the JSON object) for /commands/<name>."""
    command = COMMANDS_BY_NAME.get(name)
    if command is None:
        # ZooKeeper 3.8.0 answers this with 200; 404 lets a script tell a
        # typo from an answer, and the body is ZooKeeper's.
        return 404, {"command": name, "error": f"Unknown command: {name}"}
    if command.server_required and not _running(node):
        # As ZooKeeper: the name as asked, not the primary one.
        return 200, {"command": name, "error": NOT_SERVING}
    result = command.run(node, params or {})
    if isinstance(result, str):
        return 200, {"command": command.primary, "error": result}
    return 200, {**result, "command": command.primary, "error": None}


def _running(node):
    """ZooKeeper's zkServer.isRunning(): serving, read-only mode included."""
    return node.state.serving or node.state.read_only


# ---- the commands --------------------------------------------------------------

def _ruok(node, params):
    return {}


def _buffer_stats(last, low, high, seen):
    """ZooKeeper's BufferStats: -1 until a buffer has been seen."""
    if not seen:
        return {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    return {"last_buffer_size": last, "min_buffer_size": low, "max_buffer_size": high}


def _fsyncs_over_threshold(stats):
    fsync = next(h for h in stats.histograms() if h.name == "nookeeper_wal_fsync_seconds")
    buckets = fsync.series[None]
    above = FSYNC_BUCKETS.index(FSYNC_WARNING_S) + 1  # buckets of fsyncs over 1 s
    return sum(buckets.counts[above:])


def _is_secure(conn):
    return isinstance(conn.sock, TlsSocket)


def _server_stats(node, params):
    stats = node.stats
    with node.state.tree_lock:
        zxid = node.state.tree.last_zxid
        count = node.state.tree.node_count + 1  # as srvr: ZooKeeper keys the root twice
    connections = node.state.connections()
    client_response = _buffer_stats(stats.last_response_size, stats.min_response_size,
                                    stats.max_response_size, stats.min_response_size is not None)
    size = fourletter._data_dir_size(node)
    remote, local = fourletter.non_mtls_counts(node)
    return {
        "version": fourletter.VERSION_LINE,
        "read_only": bool(node.state.read_only),
        "server_stats": {
            "packets_sent": stats.sent,
            "packets_received": stats.received,
            "fsync_threshold_exceed_count": _fsyncs_over_threshold(stats),
            "client_response_stats": client_response,
            "data_dir_size": size,
            "log_dir_size": size,
            "provider_null": False,
            "server_state": fourletter._mode(node),
            "last_processed_zxid": zxid,
            "outstanding_requests": node.state.outstanding(),
            "avg_latency": round(stats.avg_latency, 4),
            "max_latency": stats.max_latency,
            "min_latency": stats.min_latency or 0,
            "num_alive_client_connections": len(connections),
            "uptime": int((time.time() - node.started_at) * 1000),
            "auth_failed_count": stats.auth_failed,
            "non_mtlsremote_conn_count": remote,
            "non_mtlslocal_conn_count": local,
        },
        "client_response": client_response,
        "node_count": count,
    }


def _connection_info(conn, brief):
    """ZooKeeper's ServerCnxn.getConnectionInfo(brief)."""
    info = {
        "remote_socket_address": f"{conn.address[0]}:{conn.address[1]}",
        "interest_ops": 1,  # reading (Java's SelectionKey.OP_READ)
        "outstanding_requests": conn.unanswered,
        "packets_received": conn.received,
        "packets_sent": conn.sent,
    }
    if not brief:
        info.update({
            "session_id": conn.session_id,
            "last_operation": conn.last_op,
            "established": conn.established_ms,
            "session_timeout": conn.timeout_ms,
            "last_cxid": conn.last_cxid,
            "last_zxid": conn.last_zxid,
            "last_response_time": conn.last_response_ms,
            "last_latency": conn.last_latency,
            "min_latency": conn.min_latency or 0,
            "avg_latency": conn.total_latency // conn.replies if conn.replies else 0,
            "max_latency": conn.max_latency,
        })
    return info


def _connection_lists(node, brief):
    connections = node.state.connections()
    return {
        "connections": [_connection_info(c, brief) for c in connections if not _is_secure(c)],
        "secure_connections": [_connection_info(c, brief) for c in connections if _is_secure(c)],
    }


def _stats(node, params):
    return {**_server_stats(node, params), **_connection_lists(node, brief=True)}


def _connections(node, params):
    return _connection_lists(node, brief=False)


def _number(text):
    """An mntr value as JSON has it: int, float, or the text itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _monitor(node, params):
    """mntr's keys without the zk_ prefix, numbers as numbers (hex zxids stay text)."""
    fields = {}
    for line in fourletter._mntr(node).splitlines():
        key, _, value = line.partition("\t")
        fields[key.removeprefix("zk_")] = _number(value)
    return fields


def _configuration(node, params):
    config = node.config
    port = node.client_port
    return {
        "client_port": config.client_port,
        "data_dir": str(config.data_dir),
        "data_log_dir": str(config.data_dir),
        "tick_time": config.tick_ms,
        "max_client_cnxns": config.max_connections_per_ip,
        "min_session_timeout": config.min_session_timeout_ms,
        "max_session_timeout": config.max_session_timeout_ms,
        "server_id": config.server_id,
        "client_port_listen_backlog": port.request_queue_size if port is not None else -1,
    }


def _reset_connections(node, params):
    fourletter._crst(node)
    return {}


def _reset_stats(node, params):
    fourletter._srst(node)
    return {}


def _dirs(node, params):
    size = fourletter._data_dir_size(node)
    return {"datadir_size": size, "logdir_size": size}


def _dump(node, params):
    state = node.state
    with state.lock:
        deadlines = dict(getattr(state.sessions, "_deadline", {}))
    expiry = {}
    for session, deadline in sorted(deadlines.items()):
        expiry.setdefault(str(deadline), []).append(session)
    with state.tree_lock:
        owners = {str(sid): sorted(state.tree.ephemerals(sid))
                  for sid in sorted(state.tree.sessions)}
    return {"expiry_time_to_session_ids": expiry,
            "session_id_to_ephemeral_paths": {sid: paths for sid, paths in owners.items() if paths}}


def _environment(node, params):
    fields = {}
    for line in fourletter._envi(node).splitlines()[1:]:
        key, _, value = line.partition("=")
        fields[key] = value
    return fields


def _get_trace_mask(node, params):
    return {"tracemask": fourletter.TRACE_MASK.get()}


def _set_trace_mask(node, params):
    if "traceMask" not in params:
        return "setTraceMask requires long traceMask argument"
    text = params["traceMask"]
    try:
        mask = int(text)
        if not -(1 << 63) <= mask < 1 << 63:
            raise ValueError
    except ValueError:
        return f"setTraceMask requires long traceMask argument, got {text}"
    return {"tracemask": fourletter.TRACE_MASK.set(mask)}


def _is_read_only(node, params):
    return {"read_only": bool(node.state.read_only)}


def _leader(node, params):
    """As ZooKeeper's LeaderCommand; a standalone server is not a quorum server there."""
    if node.replication.standalone:
        return "server is not initialized"
    replication = node.replication
    leader = replication.leader or 0
    member = node.config.members.get(leader)
    return {"is_leader": replication.mode == "leader", "leader_id": leader,
            "leader_ip": member[0] if member else ""}


def _voting_view(node, params):
    """ZooKeeper 3.8.0's view of the voting members. nookeeper has one peer port
    for elections and replication alike, so it is both addresses; a member's
    client address is known when `members` gives it (its own always)."""
    config = node.config
    if node.replication.standalone:
        return {"current_config": {}}
    view = {}
    for sid, (host, port) in sorted(config.members.items()):
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        client = config.member_clients.get(sid)
        if client is None and sid == config.server_id and config.client_port is not None:
            client = (config.client_host, config.client_port)
        view[str(sid)] = {
            "server_addresses": [address],
            "election_addresses": [address],
            "client_address": f"{client[0]}:{client[1]}" if client else "",
            "learner_type": "participant",
        }
    return {"current_config": view}


def _watch_summary(node, params):
    with node.state.tree_lock:
        watches = node.state.watches
        return {"num_connections": len(watches.watchers()), "num_paths": len(watches.by_path()),
                "num_total_watches": watches.count}


def _watches(node, params):
    with node.state.tree_lock:
        watches = node.state.watches
        return {"session_id_to_watched_paths": {
            str(conn.session_id): sorted(watches.paths_of(conn)) for conn in watches.watchers()}}


def _watches_by_path(node, params):
    with node.state.tree_lock:
        watches = node.state.watches
        return {"path_to_session_ids": {
            path: sorted(conn.session_id for conn in conns)
            for path, conns in sorted(watches.by_path().items())}}


def _last_snapshot(node, params):
    """The newest snapshot stored: its zxid in hex (Java's Long.toHexString) and
    when it was written, in seconds; "-1" and -1 before the first one."""
    infos = node.replication.store.infos()
    if not infos:
        return {"zxid": format(-1 & (1 << 64) - 1, "x"), "timestamp": -1}
    return {"zxid": format(infos[0].zxid, "x"), "timestamp": infos[0].time // 1000}


def _observers(node, params):
    return {"synced_observers": 0, "observers": []}  # nookeeper has no observers


COMMANDS = (
    Command(("ruok",), _ruok),
    Command(("server_stats", "srvr"), _server_stats),
    Command(("stats", "stat"), _stats),
    Command(("monitor", "mntr"), _monitor),
    Command(("configuration", "conf", "config"), _configuration),
    Command(("connections", "cons"), _connections),
    Command(("connection_stat_reset", "crst"), _reset_connections),
    Command(("stat_reset", "srst"), _reset_stats),
    Command(("dirs",), _dirs),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), _environment, server_required=False),
    Command(("get_trace_mask", "gtmk"), _get_trace_mask, server_required=False),
    Command(("set_trace_mask", "stmk"), _set_trace_mask, server_required=False),
    Command(("is_read_only", "isro"), _is_read_only),
    Command(("leader", "lead"), _leader),
    Command(("voting_view",), _voting_view),
    Command(("watch_summary", "wchs"), _watch_summary),
    Command(("watches", "wchc"), _watches),
    Command(("watches_by_path", "wchp"), _watches_by_path),
    Command(("last_snapshot", "lsnp"), _last_snapshot),
    Command(("observers", "obsr"), _observers),
)
COMMANDS_BY_NAME = {name: command for command in COMMANDS for name in command.names}


# ---- health ------------------------------------------------------------------

def health(node):
    """(healthy, reason): serving clients, read-only mode included."""
    state = node.state
    if state.serving:
        return True, ""
    if state.read_only:
        return True, ""
    return False, _not_serving_reason(node)


def readiness(node):
    """(ready, reason): serving clients with a leader (not read-only mode)."""
    state = node.state
    if state.read_only:
        return False, "read-only mode: no leader, serving read-only clients only"
    if state.serving:
        return True, ""
    return False, _not_serving_reason(node)


def _not_serving_reason(node):
    replication = node.replication
    if replication.mode in ("looking", "standalone"):
        return f"not serving clients: no leader (looking since epoch {replication.epoch})"
    return f"not serving clients: {replication.mode} of epoch {replication.epoch}, " \
           "synchronising with its leader"


def _health_body(node, ok, reason, key):
    body = {key: "true" if ok else "false", "reason": reason,
            "server_state": fourletter._mode(node)}
    if key == "ready":
        leader = node.replication.leader if node.state.serving else 0
        body["leader_id"] = leader or None
    return body


# ---- HTTP --------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = "nookeeper-admin"
    timeout = 30  # a client that sends nothing does not keep its thread for ever

    def do_GET(self):
        self._serve(send_body=True)

    def do_HEAD(self):
        self._serve(send_body=False)

    def _serve(self, send_body):
        node = self.server.node
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            if path == "/metrics":
                return self._metrics(send_body)
            if path in ("/health", "/ready"):
                key = path[1:]
                ok, reason = (health if key == "health" else readiness)(node)
                return self._json(200 if ok else 503, _health_body(node, ok, reason, key),
                                  send_body)
            if path == "/commands" or path == "/":
                return self._reply(200, "text/html; charset=utf-8", _listing(), send_body)
            if path.startswith("/commands/"):
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, body = run_command(node, path[len("/commands/"):], params)
                return self._json(status, body, send_body)
        except Exception:
            log.exception("admin request %s failed", self.path)
            return self._json(500, {"error": "the server failed to answer; see its log"},
                              send_body)
        self._json(404, {"error": f"no such page: {path} (see /commands, /health, /ready, "
                                  "/metrics)"}, send_body)

    def _metrics(self, send_body):
        encode, content_type = choose_encoder(self.headers.get("Accept"))
        body = encode(self.server.registry)
        self._reply(200, content_type, body, send_body)

    def _json(self, status, obj, send_body):
        body = (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8",
                                                                            "surrogatepass")
        self._reply(status, _JSON, body, send_body)

    def _reply(self, status, content_type, body, send_body=True):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format, *args):
        log.debug("admin request from %s: %s", self.address_string(), format % args)


def _listing():
    """As ZooKeeper's /commands: a link per primary name."""
    names = sorted(command.primary for command in COMMANDS)
    links = "\n<br/>\n".join(f'<a href="/commands/{name}">{name}</a>' for name in names)
    extra = "\n<br/>\n".join(f'<a href="{p}">{p}</a>' for p in ("/health", "/ready", "/metrics"))
    return f"{links}\n<br/>\n{extra}\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, node, registry):
        self.node = node
        self.registry = registry
        super().__init__(address, _Handler)


class AdminPort:
    """Binds at construction (so a taken port fails start-up); serves from start() to stop()."""

    def __init__(self, host, port, node, registry, key="admin_address", thread_name="admin-port"):
        server_class = _Server
        if ":" in host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_class((host, port), node, registry)
        self.key = key
        self._thread = threading.Thread(target=self._server.serve_forever, name=thread_name,
                                        daemon=True)

    @property
    def address(self):
        return self._server.server_address[:2]

    def start(self):
        self._thread.start()
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        log.info("%s: http://%s:%d/ (/commands/<name>, /health, /ready, /metrics)",
                 self.key, shown, port)

    def stop(self):
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


__all__ = ["AdminPort", "COMMANDS", "health", "readiness", "run_command"]
