"""DataKeeper's HTTP side: the store's API, the cluster page, replication.

    GET    /keys/<key>    the value, from this node's copy (any node)
    PUT    /keys/<key>    body: the value (UTF-8 text); a replica answers 307 to the leader
    DELETE /keys/<key>    likewise
    GET    /keys          every key and value
    GET    /cluster       the cluster as this node sees it
    GET    /health        200 once connected to nookeeper and in the directory, else 503
    GET    /              the cluster page (static/), which follows GET /events:
                          server-sent events, the whole status again on every change
    POST   /replication/fence, /replication/entries, /replication/copy
    GET    /replication/copy    between nodes (replica.py, replica_link.py, leadership.py)

Answers are JSON (but the page's files) and say who answered: X-DataKeeper-Node,
-Role, -Seq (the position of the copy that answered), -Leader and -Consistency
(strong on the leader, eventual on a replica). CORS is open so that a page
served by one node can follow a 307 to the leader.
"""

import json
import logging
import socketserver
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from examples.datakeeper.leader import NotAcknowledged, NotLeader
from examples.datakeeper.node import NoLeader, Redirect
from examples.datakeeper.store import DELETE, PUT

log = logging.getLogger("datakeeper.http")

STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
MAX_KEY = 256
MAX_BODY = 1 << 20
# A comment line this often keeps idle event streams (and proxies) open.
EVENTS_KEEPALIVE_S = 15.0
# At most one status message per stream this often; changes in between coalesce.
EVENTS_MIN_INTERVAL_S = 0.1
EXPOSED = ("X-DataKeeper-Node, X-DataKeeper-Role, X-DataKeeper-Seq, X-DataKeeper-Leader, "
           "X-DataKeeper-Consistency, Location")


class DataKeeperServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, node):
        self.node = node
        super().__init__(address, Handler)

    def server_bind(self):
        """As HTTPServer's, without its reverse DNS lookup of the address."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class BadRequest(Exception):
    """A request answered with an error before it reaches the node (status, message)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server_version = "DataKeeper/1"

    @property
    def node(self):
        return self.server.node

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    # -- dispatch ----------------------------------------------------------

    def do_GET(self):
        self._dispatch(self._get)

    def do_PUT(self):
        self._dispatch(self._put)

    def do_DELETE(self):
        self._dispatch(self._delete)

    def do_POST(self):
        self._dispatch(self._post)

    def do_OPTIONS(self):
        """A CORS preflight: a page on another node writing here."""
        self.send_response(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "GET, PUT, DELETE, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _dispatch(self, handler):
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
            handler(path, body)
        except BadRequest as exc:
            self._json(exc.status, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            self._json(500, {"error": "internal error; see the node's log"})

    def _read_body(self):
        """Always read what was sent: answering (a 307 above all) before the
        body is read would make the connection reset under the client."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(413, f"the body is over {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    # -- routes ------------------------------------------------------------

    def _get(self, path, body):
        if path in PAGE_FILES:
            self._file(*PAGE_FILES[path])
        elif path == "/events":
            self._events()
        elif path == "/health":
            healthy, details = self.node.health()
            self._json(200 if healthy else 503, details)
        elif path == "/cluster":
            self._json(200, self.node.cluster_status())
        elif path == "/keys":
            copy = self.node.store.copy()
            self._json(200, {"keys": copy.items, "seq": copy.seq}, seq=copy.seq)
        elif path.startswith("/keys/"):
            key = self._key(path)
            value, seq = self.node.store.get(key)
            if value is None:
                self._json(404, {"error": f"no key {key!r}", "key": key, "seq": seq}, seq=seq)
            else:
                self._json(200, {"key": key, "value": value, "seq": seq}, seq=seq)
        elif path == "/replication/copy":
            copy = self.node.store.copy()
            self._json(200, {"epoch": copy.epoch, "seq": copy.seq, "items": copy.items})
        else:
            raise BadRequest(404, f"nothing at {path}")

    def _put(self, path, body):
        if not path.startswith("/keys/"):
            raise BadRequest(405, f"PUT is for /keys/<key>, not {path}")
        key = self._key(path)
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "the value must be UTF-8 text") from None
        self._write(PUT, key, value)

    def _delete(self, path, body):
        if not path.startswith("/keys/"):
            raise BadRequest(405, f"DELETE is for /keys/<key>, not {path}")
        self._write(DELETE, self._key(path), None)

    def _post(self, path, body):
        if path not in ("/replication/fence", "/replication/entries", "/replication/copy"):
            raise BadRequest(404, f"nothing to POST at {path}")
        side = self.node.replica_side
        try:
            request = json.loads(body or b"{}")
            epoch, leader = int(request["epoch"]), str(request["leader"])
            if path == "/replication/fence":
                status, answer = side.fence(epoch, leader)
            elif path == "/replication/entries":
                status, answer = side.take_entries(epoch, leader, request["entries"])
            else:
                status, answer = side.take_copy(epoch, leader, int(request["seq"]),
                                                dict(request["items"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(400, f"bad replication request: {exc!r}") from None
        self._json(status, answer)

    # -- writes ------------------------------------------------------------

    def _write(self, op, key, value):
        try:
            entry = self.node.write(op, key, value)
        except Redirect as redirect:
            location = redirect.leader.url + self.path
            self._json(307, {"error": f"{self.node.name} is a replica; writes go to the leader",
                             "leader": redirect.leader.name, "location": location},
                       extra={"Location": location})
        except KeyError:
            self._json(404, {"error": f"no key {key!r}", "key": key})
        except (NotLeader, NoLeader) as exc:
            self._json(503, {"error": str(exc)}, extra={"Retry-After": "1"})
        except NotAcknowledged as exc:
            self._json(504, {"error": str(exc)})
        else:
            self._json(200, {"key": key, "value": entry.value, "seq": entry.seq,
                             "op": op, "node": self.node.name}, seq=entry.seq)

    @staticmethod
    def _key(path):
        key = unquote(path[len("/keys/"):])
        if not key:
            raise BadRequest(400, "the key is empty")
        if len(key) > MAX_KEY:
            raise BadRequest(400, f"the key is over {MAX_KEY} characters")
        return key

    # -- answers -----------------------------------------------------------

    def _cors_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", EXPOSED)

    def _json(self, status, body, seq=None, extra=None):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in {**self.node.response_headers(seq), **(extra or {})}.items():
            self.send_header(name, value)
        self._cors_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _file(self, name, content_type):
        data = (STATIC / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def _events(self):
        """The page's stream: the whole status now and after every change."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self._cors_headers()
        self.end_headers()
        self.wfile.write(b"retry: 1000\n\n")
        feed = self.node.feed
        seen = None
        while True:
            version = feed.wait(seen, EVENTS_KEEPALIVE_S)
            if version is None:
                return
            if version == seen:
                self.wfile.write(b": keep-alive\n\n")
                continue
            seen = version
            payload = json.dumps(self.node.cluster_status())
            self.wfile.write(f"event: status\ndata: {payload}\n\n".encode("utf-8"))
            time.sleep(EVENTS_MIN_INTERVAL_S)
