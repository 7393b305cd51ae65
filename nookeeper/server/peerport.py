"""Peer links: one TCP connection per pair of servers, FIFO both ways.

The server with the higher id dials the lower one, so a pair never holds
two connections. Each link has a sender thread draining its queue and a
reader thread feeding decoded messages to ZAB. ZAB relies on FIFO links and
on hearing when a link breaks: every closed link is reported exactly once,
and whatever was queued on it is dropped. A frame that is malformed or
comes from a foreign cluster closes the link with a log line.

With peer_tls every link is TLS (server/tls.py PeerTls), the handshake
before the Hello on both sides, certificates required and verified both ways;
a connection whose certificate does not verify is refused with a log line
naming its address and why (repeats of the same refusal at most every
REFUSAL_LOG_INTERVAL_S at warning level, so a misconfigured member dialing
every DIAL_INTERVAL_S does not flood the log).
"""

import logging
import queue
import socket
import socketserver
import ssl
import threading
import time

from nookeeper.server.tls import describe_error
from nookeeper.sockio import BufferedReader, PeerClosed, read_exact
from nookeeper.wire import peer as frames

log = logging.getLogger("nookeeper.peerport")

_CLOSE = object()
DIAL_INTERVAL_S = 0.2
REFUSAL_LOG_INTERVAL_S = 30.0


class _Link:
    def __init__(self, port, sid, sock):
        self.port = port
        self.sid = sid
        self.sock = sock
        # Small frames (Ack, Commit) must not wait for Nagle and a delayed ACK (40 ms).
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # already broken: the reader finds out and closes the link
        self.queue = queue.SimpleQueue()
        # A TLS socket cannot take back what it encrypted: no inline writes.
        self._inline_ok = isinstance(sock, socket.socket)
        self._send_lock = threading.Lock()
        self._queued = 0  # frames handed to the sender thread and not yet written
        self.closed = False
        self._lock = threading.Lock()
        self.sender = threading.Thread(target=self._send_loop, name=f"peer-send-{sid}",
                                       daemon=True)

    def send(self, message, inline=False):
        """Queued for the sender thread, or with inline (the caller has nothing
        else to do: a quiet server) written at once when nothing is queued and
        the socket takes it all without blocking, saving a thread hand-off per
        Proposal, Ack and Commit. Busy servers queue, so frames are batched."""
        if self.closed:
            return
        with self._send_lock:
            if inline and self._queued == 0 and self._inline_ok:
                frame = frames.encode(message)
                try:
                    sent = self.sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self.close(f"send failed: {exc}")
                    return
                if sent == len(frame):
                    return
                message = frame[sent:]
            self._queued += 1
            self.queue.put(message)

    def _send_loop(self):
        while True:
            item = self.queue.get()
            if item is _CLOSE:
                return
            chunks = [item]
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSE:
                    self._write(chunks)
                    return
                chunks.append(item)
            if not self._write(chunks):
                return

    def _write(self, chunks):
        """chunks: messages, or the unsent end of a frame written inline."""
        try:
            self.sock.sendall(b"".join(c if isinstance(c, bytes) else frames.encode(c)
                                       for c in chunks))
        except OSError as exc:
            self.close(f"send failed: {exc}")
            return False
        with self._send_lock:
            self._queued -= len(chunks)
        return True

    def read_loop(self):
        try:
            reader = BufferedReader(self.sock)
            read = reader.read
            while not self.closed:
                tag, length = frames.decode_header(read(frames.HEADER_SIZE))
                message = frames.decode_body(tag, read(length))
                self.port.on_message(self.sid, message, reader.buffered > 0)
        except PeerClosed:
            self.close("peer closed the link")
        except frames.PeerFrameError as exc:
            self.close(f"bad frame: {exc}")
        except OSError as exc:
            self.close(f"socket error: {exc}")

    def close(self, why):
        with self._lock:
            if self.closed:
                return
            self.closed = True
        self.queue.put(_CLOSE)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.port.on_link_closed(self, why)


class _PeerHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.peer_port.accept(self.request, self.client_address)


class PeerPort:
    """Links to every other member; send() never blocks the caller."""

    def __init__(self, sid, members, bind, on_message, on_disconnected, tls=None):
        self.sid = sid
        self.tls = tls  # a tls.PeerTls with peer_tls; None: plain TCP
        self._refusals = {}  # (address, reason) -> when last logged at warning
        self.cluster = ",".join(f"{m}@{h}:{p}" for m, (h, p) in sorted(members.items()))
        self.members = {m: addr for m, addr in members.items() if m != sid}
        self._on_message = on_message
        self._on_disconnected = on_disconnected
        self._links = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = socketserver.ThreadingTCPServer(bind, _PeerHandler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self._server.peer_port = self
        self._server.server_bind()
        self._server.server_activate()
        self._threads = []

    def start(self):
        for target, name in ((self._server.serve_forever, "peer-port"),
                             (self._dial_loop, "peer-dialer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            links = list(self._links.values())
        for link in links:
            link.close("server stopping")

    def connected(self):
        with self._lock:
            return sorted(self._links)

    def send(self, to, message, inline=False):
        with self._lock:
            link = self._links.get(to)
        if link is not None:
            link.send(message, inline)

    # -- establishing links -------------------------------------------------

    def _dial_loop(self):
        while not self._stopping.wait(DIAL_INTERVAL_S):
            for sid, (host, port) in self.members.items():
                if sid >= self.sid:
                    continue
                with self._lock:
                    if sid in self._links:
                        continue
                try:
                    sock = socket.create_connection((host, port), timeout=2)
                except OSError:
                    continue
                if self.tls is not None:
                    sock = self._tls_dial(sock, sid, host, port)
                    if sock is None:
                        continue
                try:
                    sock.sendall(frames.encode_hello(self.sid, self.cluster))
                    their_sid, cluster = self._read_hello(sock)
                except (OSError, PeerClosed, frames.PeerFrameError) as exc:
                    if self.tls is not None and isinstance(exc, ssl.SSLError):
                        # TLS 1.3: the other side judges our certificate after
                        # our handshake is done, and says so with an alert here.
                        self._refused(f"{host}:{port}", f"server {sid} ended the TLS link: "
                                                        f"{describe_error(exc)}")
                    else:
                        log.debug("dialing server %d failed: %s", sid, exc)
                    sock.close()
                    continue
                if their_sid != sid or cluster != self.cluster:
                    log.warning("server at %s:%d says it is %d of cluster %r; expected %d of %r",
                                host, port, their_sid, cluster, sid, self.cluster)
                    sock.close()
                    continue
                sock.settimeout(None)
                self._register(sid, sock, reader_thread=True)

    def _tls_dial(self, sock, sid, host, port):
        try:
            return self.tls.dial(sock, host)
        except (OSError, ValueError) as exc:
            self._refused(f"{host}:{port}", f"TLS handshake with server {sid} failed: "
                                            f"{describe_error(exc)}")
            sock.close()
            return None

    def _refused(self, address, reason):
        """A refusal logged at warning, or at debug when the same one was logged lately."""
        now = time.monotonic()
        key = (address.rpartition(":")[0], reason)
        last = self._refusals.get(key)
        if last is None or now - last >= REFUSAL_LOG_INTERVAL_S:
            self._refusals[key] = now
            log.warning("refusing peer link with %s: %s", address, reason)
        else:
            log.debug("refusing peer link with %s: %s", address, reason)

    def _read_hello(self, sock):
        sock.settimeout(5)
        header = read_exact(sock, frames.HEADER_SIZE)
        _tag, length = frames.decode_header(header)
        return frames.decode_hello(header + read_exact(sock, length))

    def accept(self, sock, address):
        """Runs on the accepting handler thread, which becomes the link's reader."""
        if self.tls is not None:
            try:
                sock = self.tls.accept(sock)
            except (OSError, ValueError) as exc:
                self._refused(f"{address[0]}:{address[1]}",
                              f"TLS handshake failed: {describe_error(exc)}")
                return
        try:
            their_sid, cluster = self._read_hello(sock)
        except (OSError, PeerClosed, frames.PeerFrameError) as exc:
            log.warning("peer connection from %s:%d sent no valid hello: %s", *address[:2], exc)
            return
        if cluster != self.cluster or their_sid not in self.members or their_sid <= self.sid:
            log.warning("refusing peer link from %s:%d claiming server %d of cluster %r",
                        address[0], address[1], their_sid, cluster)
            return
        if self.tls is not None and not self.tls.names_member(sock, self.members[their_sid][0]):
            self._refused(f"{address[0]}:{address[1]}",
                          f"its certificate is not issued for {self.members[their_sid][0]}, "
                          f"the host of server {their_sid} (peer_tls_check_hostname)")
            return
        try:
            sock.sendall(frames.encode_hello(self.sid, self.cluster))
        except OSError:
            return
        sock.settimeout(None)
        link = self._register(their_sid, sock, reader_thread=False)
        link.read_loop()

    def _register(self, sid, sock, reader_thread):
        link = _Link(self, sid, sock)
        with self._lock:
            old = self._links.get(sid)
            self._links[sid] = link
        if old is not None:
            old.close("replaced by a new link")
        log.info("link to server %d up%s", sid,
                 "" if isinstance(sock, socket.socket) else f" ({sock.version()})")
        link.sender.start()
        if reader_thread:
            threading.Thread(target=link.read_loop, name=f"peer-read-{sid}", daemon=True).start()
        return link

    # -- from links -----------------------------------------------------------

    def on_message(self, sid, message, more=False):
        self._on_message(sid, message, more)

    def on_link_closed(self, link, why):
        with self._lock:
            if self._links.get(link.sid) is link:
                del self._links[link.sid]
        log.info("link to server %d down: %s", link.sid, why)
        self._on_disconnected(link.sid)
