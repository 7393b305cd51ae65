"""Reading a whole frame's worth of bytes from a blocking socket.

Server and client both read length-prefixed frames; a peer that closes in
the middle of one is a lost connection, never a short frame.
"""

from nookeeper.errors import ConnectionLoss


class PeerClosed(ConnectionLoss):
    """The other end closed the connection before `count` bytes arrived.

    `received` tells a clean close between frames (0) from one inside a frame.
    """

    def __init__(self, received, count):
        super().__init__(f"connection closed after {received} of {count} bytes")
        self.received = received
        self.count = count


def read_exact(sock, count):
    """Exactly `count` bytes, however the network splits them."""
    buf = bytearray(count)
    view = memoryview(buf)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:], count - got)
        if n == 0:
            raise PeerClosed(got, count)
        got += n
    return bytes(buf)


class BufferedReader:
    """read(count) through a buffer, so that frames arriving together cost one
    recv; `buffered` tells whether more input is already in hand, which a
    reader uses to know that a burst is arriving."""

    def __init__(self, sock, size=65536):
        self._sock = sock
        self._size = size
        self._buf = b""
        self._pos = 0

    @property
    def buffered(self):
        return len(self._buf) - self._pos

    def read(self, count):
        buf, pos = self._buf, self._pos
        end = pos + count
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        have = len(buf) - pos
        while have < count:
            chunk = self._sock.recv(max(self._size, count - have))
            if not chunk:
                raise PeerClosed(have, count)
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buf, self._pos = data, count
        return data[:count]
