"""The client port: a blocking socketserver, one reader thread per connection.

The reader owns framing and the handshake; once a session is attached the
frames go to the Connection. Whatever a client sends, the worst it can do is
lose its own connection: a bad frame closes that socket with a log line, and
connection caps (per address and in all) keep a flood from starving others.
"""

import logging
import socket
import socketserver
import struct
import threading

from nookeeper.errors import ZooKeeperError
from nookeeper.server.connection import Connection
from nookeeper.server.fourletter import FOUR_LETTER_CODES, run_four_letter_word
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
        try:
            # Replies and watch events are small: send each at once, as ZooKeeper does.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            head = read_exact(sock, 4)
            if head in FOUR_LETTER_CODES:
                sock.sendall(run_four_letter_word(node, head.decode("ascii")))
                return
            payload = self._frame(node, head, peer, lambda n: read_exact(sock, n))
            conn = Connection(node.pipeline, sock, self.client_address)
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

    def __init__(self, node, host, port):
        self.node = node
        self._count_lock = threading.Lock()
        self._per_ip = {}
        self._total = 0
        super().__init__((host, port), _Handler)

    def verify_request(self, request, client_address):
        config = self.node.config
        ip = client_address[0]
        with self._count_lock:
            if self._total >= config.max_connections:
                log.warning("refusing %s: %d connections open (max_connections)", ip, self._total)
                return False
            if self._per_ip.get(ip, 0) >= config.max_connections_per_ip:
                log.warning("refusing %s: %d connections from it (max_connections_per_ip)",
                            ip, self._per_ip[ip])
                return False
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            self._total += 1
        return True

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, ip):
        with self._count_lock:
            self._total -= 1
            left = self._per_ip.get(ip, 1) - 1
            if left <= 0:
                self._per_ip.pop(ip, None)
            else:
                self._per_ip[ip] = left

    @property
    def connection_count(self):
        return self._total

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_client_port(node, host, port):
    """A ClientPort bound to host:port (IPv6 hosts too)."""
    if ":" in host:
        cls = type("ClientPort6", (ClientPort,), {"address_family": socket.AF_INET6})
        return cls(node, host, port)
    return ClientPort(node, host, port)

