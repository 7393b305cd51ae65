"""The client port: a blocking socketserver, one reader thread per connection.

The reader owns framing and the handshake; once a session is attached the
frames go to the Connection. Whatever a client sends, the worst it can do is
lose its own connection: a bad frame closes that socket with a log line, and
connection caps (per address and in all) keep a flood from starving others.

A secure client port (secure_client_address) is the same server with TLS
first: the handshake runs on the connection's own thread within
tls.HANDSHAKE_TIMEOUT_S, so a client that connects and says nothing holds up
no one, and its certificate's subject becomes the connection's x509
identity. Four-letter words are answered over TLS too, as ZooKeeper does.
"""

import logging
import socket
import socketserver
import struct
import threading

from nookeeper.errors import ZooKeeperError
from nookeeper.server.connection import Connection
from nookeeper.server.fourletter import FOUR_LETTER_CODES, run_four_letter_word
from nookeeper.server import tls
from nookeeper.sockio import BufferedReader, PeerClosed, read_exact
from nookeeper.wire.client import decode_connect_request, decode_request_header

log = logging.getLogger("nookeeper.clientport")

HANDSHAKE_TIMEOUT_S = 10.0
_LENGTH = struct.Struct(">i")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        node = self.server.node
        sock = self.request
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        conn = None
        ids = ()
        try:
            # Replies and watch events are small: send each at once, as ZooKeeper does.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.server.tls is not None:
                sock, ids = self._tls_handshake(sock, peer)
                if sock is None:
                    return
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            head = read_exact(sock, 4)
            if head in FOUR_LETTER_CODES:
                sock.sendall(run_four_letter_word(node, head.decode("ascii"),
                                                  lambda n: read_exact(sock, n)))
                if self.server.tls is not None:
                    sock.close_notify()
                return
            payload = self._frame(node, head, peer, lambda n: read_exact(sock, n))
            conn = Connection(node.pipeline, sock, self.client_address)
            conn.ids.extend(ids)
            if not node.attach(conn, decode_connect_request(payload)):
                return
            sock.settimeout(None)
            conn.start_sending()
            # Through a buffer: pipelined requests arrive in one recv, not two each.
            read = BufferedReader(sock).read
            while not conn.closed:
                payload = self._frame(node, read(4), peer, read)
                xid, opcode, body = decode_request_header(payload)
                node.pipeline.touch(conn.session_id)
                conn.handle(xid, opcode, body)
        except PeerClosed as exc:
            log.debug("client %s gone: %s", peer, exc)
        except socket.timeout:
            log.info("client %s sent no handshake within %.0fs; closing", peer, HANDSHAKE_TIMEOUT_S)
        except (ConnectionError, OSError) as exc:
            log.debug("client %s: socket error %s", peer, exc)
        except ZooKeeperError as exc:
            log.warning("client %s: malformed frame (%s); closing", peer, exc)
        except BadFrame as exc:
            log.warning("client %s: %s; closing", peer, exc)
        finally:
            if conn is not None:
                if conn.session_id:
                    conn.teardown()
                conn.close()
                conn.wait_sent(timeout=5.0)

    def _tls_handshake(self, sock, peer):
        """(TLS socket, identities from its certificate), or (None, ()) after
        logging why the handshake failed."""
        try:
            secure = tls.handshake(sock, self.server.tls.get(), server_side=True)
        except (OSError, ValueError) as exc:
            level = logging.INFO if isinstance(exc, socket.timeout) else logging.WARNING
            log.log(level, "client %s: TLS handshake failed: %s; closing", peer,
                    tls.describe_error(exc))
            return None, ()
        subject = tls.peer_subject(secure)
        if subject is None:
            log.debug("client %s: TLS (%s) without a client certificate", peer, secure.version())
            return secure, ()
        ids = [("x509", subject)]
        if subject == self.server.node.config.x509_superuser:
            ids.append(("super", subject))
        log.debug("client %s: TLS (%s) as x509 %s", peer, secure.version(), subject)
        return secure, ids

    def _frame(self, node, head, peer, read):
        (length,) = _LENGTH.unpack(head)
        if length < 0 or length > node.config.max_frame_bytes:
            raise BadFrame(
                f"frame length {length} outside 0..{node.config.max_frame_bytes}"
            )
        return read(length)


class BadFrame(Exception):
    """A frame the protocol does not allow; the connection is dropped."""


class ClientPort(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, node, host, port, tls_context=None, counts=None):
        self.node = node
        self.tls = tls_context  # a tls.ReloadingContext for the secure port; None: plain
        # Shared by the plain and the secure port: the caps count both.
        self.counts = counts if counts is not None else ConnectionCounts()
        super().__init__((host, port), _Handler)

    def verify_request(self, request, client_address):
        return self.counts.admit(self.node.config, client_address[0])

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.counts.release(client_address[0])

    @property
    def connection_count(self):
        return self.counts.total

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class ConnectionCounts:
    """Open client connections, per address and in all, against the caps."""

    def __init__(self):
        self._lock = threading.Lock()
        self._per_ip = {}
        self.total = 0

    def admit(self, config, ip):
        with self._lock:
            if self.total >= config.max_connections:
                log.warning("refusing %s: %d connections open (max_connections)", ip, self.total)
                return False
            if self._per_ip.get(ip, 0) >= config.max_connections_per_ip:
                log.warning("refusing %s: %d connections from it (max_connections_per_ip)",
                            ip, self._per_ip[ip])
                return False
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            self.total += 1
        return True

    def release(self, ip):
        with self._lock:
            self.total -= 1
            left = self._per_ip.get(ip, 1) - 1
            if left <= 0:
                self._per_ip.pop(ip, None)
            else:
                self._per_ip[ip] = left


def make_client_port(node, host, port, tls_context=None, counts=None):
    """A ClientPort bound to host:port (IPv6 hosts too); with tls_context
    (a tls.ReloadingContext) a secure one."""
    if ":" in host:
        cls = type("ClientPort6", (ClientPort,), {"address_family": socket.AF_INET6})
        return cls(node, host, port, tls_context, counts)
    return ClientPort(node, host, port, tls_context, counts)

