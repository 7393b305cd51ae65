"""JSON over HTTP between DataKeeper nodes (replication, fencing, full copies).

One short-lived connection per call, so a call to a stopped or dead node
costs at most its timeout and leaves nothing behind.
"""

import http.client
import json
from urllib.parse import urlsplit


class PeerError(Exception):
    """The peer could not be reached, or answered something that is not JSON."""


def call(url, method, path, body=None, timeout=2.0):
    """(status, decoded JSON body) of `method path` on the node at `url`."""
    parts = urlsplit(url)
    payload = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PeerError(f"{method} {url}{path}: {exc or type(exc).__name__}") from None
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw or b"null")
    except ValueError:
        raise PeerError(f"{method} {url}{path}: answer {response.status} is not JSON") from None
