"""A TCP proxy between an in-process client and its server that a test can freeze.

Frozen, it is a network that stopped: no byte moves either way, so the
server hears nothing (no pings) and expires the session on its own clock,
and a connection the client opens meanwhile is accepted and held without
reaching the server. Thawed, what was held is delivered: bytes in order, a
close as a close. A held connection the client gave up on while frozen never
reaches the server, so it cannot claim the session from a live one.

The client itself runs unchanged: the test stops its traffic from outside.
"""

import select
import socket
import threading

_HELD_POLL_S = 0.02


class FreezableProxy:
    """Listens on 127.0.0.1:`port` and forwards each connection to the upstream server."""

    def __init__(self, upstream_host, upstream_port):
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets = set()
        self._closed = False
        # Connections accepted so far: a test waits for this to grow to know a
        # reconnect attempt is being held.
        self.connections = 0
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def freeze(self):
        self._flowing.clear()

    def thaw(self):
        self._flowing.set()

    def close(self):
        """Thaw, stop listening and cut every connection."""
        self._closed = True
        self._flowing.set()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _shut(sock)
        self._listener.close()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.setblocking(True)
            with self._lock:
                self.connections += 1
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), name="proxy-conn",
                             daemon=True).start()

    def _serve(self, client):
        held = self._hold(client)
        if held is None:
            _shut(client)
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            _shut(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._closed:
                _shut(upstream)
                _shut(client)
                return
            self._sockets.add(upstream)
        try:
            upstream.sendall(held)
        except OSError:
            _shut(upstream)
            _shut(client)
            return
        threading.Thread(target=self._pump, args=(upstream, client), name="proxy-down",
                         daemon=True).start()
        self._pump(client, upstream)

    def _hold(self, client):
        """What the client sent before the proxy was thawed; None if it hung up meanwhile."""
        held = bytearray()
        while not self._flowing.is_set():
            readable, _, _ = select.select([client], [], [], _HELD_POLL_S)
            if not readable:
                continue
            try:
                data = client.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            held += data
        return None if self._closed else bytes(held)

    def _pump(self, source, target):
        """Copy one direction; each chunk, and the end, waits while frozen."""
        try:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                self._flowing.wait()
                if not data or self._closed:
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(target)


def _shut(sock):
    """Close `sock`, waking any thread blocked reading it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
