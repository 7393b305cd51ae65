"""`nookeeper-server CONFIG.yaml`: run one server in the foreground until signalled."""

import argparse
import bisect
import errno
import gc
import logging
import logging.handlers
import os
import platform
import signal
import socket
import sys
import threading
import time

from nookeeper import ZOOKEEPER_COMPAT_VERSION, __version__, build_stamp, build_time, version_text
from nookeeper.config import ConfigError, load_config
from nookeeper.examples import EXAMPLES, example_config


# Young objects allowed before the cycle collector runs (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000

LOG_FORMAT = "%(asctime)s %(levelname)s [server {sid}] %(name)s: %(message)s"


def _tune_gc():
    """A busy server holds every in-flight request and the recent log as young
    objects, which CPython's default thresholds would have the collector
    rescan many times a second (docs/performance.md). Requests are freed by
    reference counting, so collections are made rare instead, and full ones
    rarer still."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


def _configure_logging(config):
    """Every line names the server, so the logs of an ensemble can be merged.

    With log_file the log goes there only, as ZooKeeper's does to its log
    file; the file is reopened if moved away (logrotate). Without it, stderr.
    """
    if config.log_file:
        handler = logging.handlers.WatchedFileHandler(config.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT.format(sid=config.server_id)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)


log = logging.getLogger("nookeeper.server")

# How often a long start-up replay of the log says how far it is.
PROGRESS_S = 2.0


def _log_start(config):
    """The first line of every server's log: what runs, and from which config."""
    what = build_time()[1]
    log.info("nookeeper %s (ZooKeeper %s protocol; %s %s; Python %s) starting server %d "
             "with config %s, pid %d", __version__, ZOOKEEPER_COMPAT_VERSION, what,
             build_stamp(), platform.python_version(), config.server_id, config.source,
             os.getpid())


def _listen_addresses(config):
    """(config key, host, port) of every port the server is to listen on."""
    addresses = [
        ("client_address", config.client_host, config.client_port),
        ("secure_client_address", getattr(config, "secure_client_host", None),
         getattr(config, "secure_client_port", None)),
    ]
    if len(config.members) > 1:
        addresses.append(("peer_address", config.peer_host, config.peer_port))
    addresses.append(("metrics_address", config.metrics_host, config.metrics_port))
    addresses.append(("admin_address", config.admin_host, config.admin_port))
    return [(key, host, port) for key, host, port in addresses if port]  # 0: any free port


def _check_ports(config):
    """None, or one line naming the first configured port that cannot be listened on.

    Checked before the data directory is loaded, which can take a while, and
    with the option the server's own sockets have (SO_REUSEADDR): a port left
    in TIME_WAIT by a restart passes, one another process listens on does not."""
    for key, host, port in _listen_addresses(config):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind((host, port))
        except OSError as exc:
            return _listen_error(config, key, host, port, exc)
    return None


def _listen_error(config, key, host, port, exc):
    if key == "peer_address" and not _has_key(config, "peer_address"):
        key = f"members.{config.server_id}"  # where this server's peer address was given
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} of {key} {shown} is in use "
                f"(`ss -ltnp 'sport = :{port}'` shows by what)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{key} {shown}: {host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return (f"{key} {shown}: not allowed to listen on port {port} "
                f"(below 1024 it takes root or CAP_NET_BIND_SERVICE)")
    return f"{key} {shown}: cannot listen: {exc.strerror or exc}"


def _has_key(config, key):
    try:
        import yaml
        return key in yaml.safe_load(config.source.read_text())
    except Exception:
        return True


def _log_data_dir(config):
    """Before the load, which can take a while: what there is to load."""
    from nookeeper.snapstore import SnapshotStore
    from nookeeper.wal import DB_NAME, WriteAheadLog
    from nookeeper.zab.zxid import fmt

    path = config.data_dir / DB_NAME
    if not path.exists():
        log.info("data dir %s is new: starting with an empty tree", config.data_dir)
        return
    try:
        wal = WriteAheadLog.open_readonly(path)
        try:
            infos = SnapshotStore(wal).infos()
        finally:
            wal.close()
    except Exception:
        return  # opening it for real says what is wrong
    if infos:
        # (not "snapshot at zxid": tests wait for that to see a snapshot taken)
        log.info("data dir %s: loading its newest snapshot (zxid %s, %d nodes, %.1f MB), "
                 "then the log after it", config.data_dir, fmt(infos[0].zxid), infos[0].nodes,
                 infos[0].size / 1e6)
    else:
        log.info("data dir %s: no snapshot yet; reading the log", config.data_dir)


class Systemd:
    """systemd's notify protocol (sd_notify(3)), for a unit of Type=notify: each
    message one datagram to the unix socket $NOTIFY_SOCKET (a path, or an
    abstract name after "@"). Without it (not started by systemd) it does nothing."""

    def __init__(self, environ=os.environ):
        self.name = environ.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + self.name[1:] if self.name.startswith("@")
                        else self.name if self.name.startswith("/") else None)

    def notify(self, *fields):
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.name, exc)


def _status(node):
    """A server's state in a few words, for `systemctl status`."""
    replication = node.replication
    if node.state.read_only:
        return "read-only mode: serving read-only clients until a leader is found"
    if node.state.serving:
        return f"{replication.mode} of epoch {replication.epoch}: serving clients"
    return f"{replication.mode}: not serving clients (no leader yet)"


def _follow(node, stop, systemd, zxids):
    """While the server runs: how far the start-up replay of the log is, every
    PROGRESS_S while it lasts and once done; and under systemd, its state as
    STATUS= whenever it changes. zxids: the log after the snapshot, as read."""
    from nookeeper.zab.zxid import fmt

    total, started, next_report, status = len(zxids), None, None, None
    if not total:
        zxids = None
    while not stop.wait(0.2):
        if zxids is not None:
            applied = node.pipeline.last_zxid
            done = bisect.bisect_right(zxids, applied)
            now = time.monotonic()
            if started is None and done:
                started, next_report = now, now + PROGRESS_S
            if done >= total or node.state.serving:
                log.info("replayed the log: %d of its %d txns applied, up to zxid %s, in %.1f s",
                         done, total, fmt(applied), now - (started or now))
                zxids = None
            elif started is not None and now >= next_report:
                log.info("replaying the log: %d of %d txns applied (%d%%), at zxid %s",
                         done, total, 100 * done // total, fmt(applied))
                next_report = now + PROGRESS_S
        if systemd.address is not None:
            text = _status(node)
            if text != status:
                systemd.notify(f"STATUS={text}")
                status = text
        elif zxids is None:
            return


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="nookeeper-server", description="Run a nookeeper server.",
        epilog="Under systemd (Type=notify) it tells READY=1 once its ports are open "
               "and STOPPING=1 on SIGTERM; see etc/nookeeper.service.",
    )
    parser.add_argument("config", nargs="?",
                        help="the server's YAML config, e.g. etc/standalone.yaml")
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--example-config", nargs="?", const="standalone",
                        choices=list(EXAMPLES), metavar="standalone|node",
                        help="print a sample config and exit: standalone (the default), or "
                             "node, member 1 of a three-server ensemble on this machine")
    args = parser.parse_args(argv)
    if args.example_config:
        sys.stdout.write(example_config(args.example_config))
        return 0
    if args.config is None:
        parser.error("the config file is required (--example-config prints one to start from)")
    _tune_gc()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"nookeeper-server: {exc}", file=sys.stderr)
        return 2
    try:
        _configure_logging(config)
    except OSError as exc:
        print(f"nookeeper-server: {args.config}: log_file: cannot open: {exc}", file=sys.stderr)
        return 2
    _log_start(config)
    problem = _check_ports(config)
    if problem:
        if config.log_file:
            log.error("cannot start: %s", problem)
        print(f"nookeeper-server: {args.config}: cannot start: {problem}", file=sys.stderr)
        return 1
    _log_data_dir(config)
    from nookeeper.server.metrics import make_registry
    from nookeeper.server.metricsport import MetricsPort
    from nookeeper.server.node import ServerNode

    try:
        node = ServerNode(config)
    except OSError as exc:
        print(f"nookeeper-server: {args.config}: cannot start: {exc}", file=sys.stderr)
        return 1
    metrics = None
    if config.metrics_port is not None:
        try:
            metrics = MetricsPort(config.metrics_host, config.metrics_port, make_registry(node))
        except OSError as exc:
            print(f"nookeeper-server: {args.config}: metrics_address: cannot listen on "
                  f"{config.metrics_host}:{config.metrics_port}: {exc}", file=sys.stderr)
            return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    replay = list(node.replication.core.zxids)  # the log after the snapshot, to apply
    node.start()
    if metrics is not None:
        metrics.start()
    ports = [f"{kind} {address[0]}:{address[1]}" for kind, address in (
        ("client port", node.client_port and node.client_address),
        ("secure client port", node.secure_client_address)) if address]
    print(f"nookeeper server {config.server_id}: {', '.join(ports)}, "
          f"data in {config.data_dir}", flush=True)
    systemd = Systemd()
    systemd.notify("READY=1", f"STATUS={_status(node)}")
    threading.Thread(target=_follow, args=(node, stop, systemd, replay),
                     name="start-up-progress", daemon=True).start()
    stop.wait()
    logging.getLogger("nookeeper.node").info("stopping on signal")
    systemd.notify("STOPPING=1", "STATUS=stopping")
    if metrics is not None:
        metrics.stop()
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
