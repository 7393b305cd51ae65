"""The metrics port: GET /metrics in Prometheus's text format, on its own thread.

A separate listener from the client port, so a scraper never competes with
clients for connection slots and needs no four-letter-word whitelist.
"""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder

log = logging.getLogger("nookeeper.metrics")

PATH = "/metrics"


class _Handler(BaseHTTPRequestHandler):
    server_version = "nookeeper-metrics"

    def do_GET(self):
        if urlsplit(self.path).path != PATH:
            self._reply(404, "text/plain; charset=utf-8", b"only /metrics is served here\n")
            return
        encode, content_type = choose_encoder(self.headers.get("Accept"))
        try:
            body = encode(self.server.registry)
        except Exception:
            log.exception("collecting metrics failed")
            self._reply(500, "text/plain; charset=utf-8", b"collecting metrics failed\n")
            return
        self._reply(200, content_type, body)

    def _reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        log.debug("metrics request from %s: %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, registry):
        self.registry = registry
        super().__init__(address, _Handler)


class MetricsPort:
    """Binds at construction (so a taken port fails start-up); serves from start() to stop()."""

    def __init__(self, host, port, registry):
        server_class = _Server
        if ":" in host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_class((host, port), registry)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-port",
                                        daemon=True)

    @property
    def address(self):
        return self._server.server_address[:2]

    def start(self):
        self._thread.start()
        host, port = self.address
        log.info("metrics at http://%s:%d%s", f"[{host}]" if ":" in host else host, port, PATH)

    def stop(self):
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
