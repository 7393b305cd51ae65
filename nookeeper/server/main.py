"""`nookeeper-server CONFIG.yaml`: run one server in the foreground until signalled."""

import argparse
import gc
import logging
import logging.handlers
import signal
import sys
import threading

from nookeeper.config import ConfigError, load_config


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


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="nookeeper-server", description="Run a nookeeper server."
    )
    parser.add_argument("config", help="the server's YAML config, e.g. etc/standalone.yaml")
    args = parser.parse_args(argv)
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
    node.start()
    if metrics is not None:
        metrics.start()
    host, port = node.client_address
    print(f"nookeeper server {config.server_id}: client port {host}:{port}, "
          f"data in {config.data_dir}", flush=True)
    stop.wait()
    logging.getLogger("nookeeper.node").info("stopping on signal")
    if metrics is not None:
        metrics.stop()
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
