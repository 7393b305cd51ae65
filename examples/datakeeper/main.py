"""bin/datakeeper: run one DataKeeper node, or three on this machine.

    bin/datakeeper node --name node1 --listen 127.0.0.1:8001 --zk 127.0.0.1:2181,127.0.0.1:2182
    bin/datakeeper local          # three nodes against `make run`'s ensemble (make datakeeper)

A node exits 1 with one line saying why when its port is taken or nookeeper
cannot be reached, and 2 for a bad argument; SIGTERM or Ctrl-C stops it
cleanly (it steps down and closes its session, so a successor need not wait).
"""

import argparse
import errno
import logging
import signal
import sys
import threading

from nookeeper.client.exceptions import KeeperTimeoutError

from examples.datakeeper import local_cluster
from examples.datakeeper.api import DataKeeperServer
from examples.datakeeper.node import DataKeeperNode

PROG = "datakeeper"
DEFAULT_ROOT = "/datakeeper"
DEFAULT_SESSION_TIMEOUT_S = 4.0
CONNECT_TIMEOUT_S = 15.0


def _listen_address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def _root(text):
    if not text.startswith("/") or text.endswith("/") or "//" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a znode path like /datakeeper")
    return text


def parser():
    top = argparse.ArgumentParser(prog=PROG, description=(
        "DataKeeper: a leader-replica in-memory key-value store coordinated by nookeeper "
        "(docs/datakeeper.md)."))
    commands = top.add_subparsers(dest="command", required=True)

    node = commands.add_parser("node", help="run one node")
    node.add_argument("--name", required=True, help="this node's name, unique in the cluster")
    node.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 8001),
                      metavar="HOST:PORT", help="where to serve HTTP (default 127.0.0.1:8001)")
    node.add_argument("--advertise", metavar="URL",
                      help="the URL other nodes and pages use for this node "
                           "(default http://HOST:PORT of --listen)")
    node.add_argument("--zk", default=local_cluster.LOCAL_HOSTS, metavar="HOSTS",
                      help="nookeeper (or ZooKeeper) servers, host:port,... "
                           f"(default {local_cluster.LOCAL_HOSTS})")
    node.add_argument("--root", type=_root, default=DEFAULT_ROOT,
                      help=f"the cluster's znode (default {DEFAULT_ROOT}); "
                           "clusters with different roots share an ensemble")
    node.add_argument("--session-timeout", type=_positive, default=DEFAULT_SESSION_TIMEOUT_S,
                      metavar="SECONDS", help="the nookeeper session timeout asked for: how "
                      f"long a dead leader keeps its place (default {DEFAULT_SESSION_TIMEOUT_S:g})")
    node.add_argument("--ack-timeout", type=_positive, metavar="SECONDS",
                      help="how long a write waits for every live replica "
                           "(default twice the session timeout, plus 1)")
    node.add_argument("--log-level", default="INFO",
                      choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    local = commands.add_parser("local", help="three nodes against the local ensemble "
                                              "of `make run`, started if need be")
    local.add_argument("--zk", default=local_cluster.LOCAL_HOSTS, metavar="HOSTS",
                       help="another ensemble instead (then none is started)")
    local.add_argument("--nodes", type=int, default=3, choices=range(1, 10), metavar="N",
                       help="how many nodes (default 3)")
    local.add_argument("--first-port", type=int, default=8001, metavar="PORT",
                       help="node1's HTTP port; the others follow (default 8001)")
    local.add_argument("--root", type=_root, default=DEFAULT_ROOT)
    local.add_argument("--session-timeout", type=_positive, default=DEFAULT_SESSION_TIMEOUT_S,
                       metavar="SECONDS")
    local.add_argument("--restart-after", type=float, default=10.0, metavar="SECONDS",
                       help="start a node that died again after this long; 0: never "
                            "(default 10)")
    return top


def run_node(args):
    name = args.name
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    host, port = args.listen
    try:
        server = DataKeeperServer((host, port), node=None)
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc}"
        print(f"{PROG}: port {port} of --listen {host}:{port} {reason}", file=sys.stderr)
        return 1
    url = args.advertise or f"http://{host}:{server.server_address[1]}"
    node = DataKeeperNode(name=name, hosts=args.zk, root=args.root, url=url,
                          session_timeout=args.session_timeout, ack_timeout=args.ack_timeout)
    server.node = node
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    http_thread = threading.Thread(target=server.serve_forever, name="dk-http", daemon=True)
    http_thread.start()
    try:
        node.start(connect_timeout=CONNECT_TIMEOUT_S)
    except KeeperTimeoutError:
        print(f"{PROG}: {name}: cannot reach nookeeper at {args.zk} within "
              f"{CONNECT_TIMEOUT_S:g}s", file=sys.stderr)
        server.shutdown()
        node.client.stop()
        return 1
    logging.getLogger("datakeeper").info("serving %s (nookeeper %s, cluster %s)",
                                         url, args.zk, args.root)
    stop.wait()
    node.stop()
    server.shutdown()
    server.server_close()
    return 0


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "node":
        return run_node(args)
    return local_cluster.run(args)
