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
