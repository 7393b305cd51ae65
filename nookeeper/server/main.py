"""`nookeeper-server CONFIG.yaml`: run one server in the foreground until signalled."""

import argparse
import logging
import signal
import sys
import threading

from nookeeper.config import ConfigError, load_config


def _configure_logging(config):
    handler = (logging.FileHandler(config.log_file) if config.log_file
               else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s server {config.server_id} %(levelname)s %(name)s: %(message)s"
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="nookeeper-server", description="Run a nookeeper server."
    )
    parser.add_argument("config", help="the server's YAML config, e.g. etc/standalone.yaml")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"nookeeper-server: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config)
    from nookeeper.server.node import ServerNode

    try:
        node = ServerNode(config)
    except OSError as exc:
        print(f"nookeeper-server: {args.config}: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node.start()
    host, port = node.client_address
    print(f"nookeeper server {config.server_id}: client port {host}:{port}, "
          f"data in {config.data_dir}", flush=True)
    stop.wait()
    logging.getLogger("nookeeper.node").info("stopping on signal")
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
