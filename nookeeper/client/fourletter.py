"""Four-letter words: ZooKeeper's admin commands, outside any session.

The word goes out on a fresh connection and the answer runs until the
server closes it; there is no framing, so this needs nothing of the client.
"""

import contextlib
import socket


def four_letter_word(host, port, word, timeout, ssl_context=None):
    """The server's answer to `word` (str or bytes), as text; with ssl_context
    (client/tls.py) over TLS, as a secure client port answers them."""
    if isinstance(word, str):
        word = word.encode("ascii")
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=host))
        sock.sendall(word)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)
