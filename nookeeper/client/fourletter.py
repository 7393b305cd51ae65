"""Four-letter words: ZooKeeper's admin commands, outside any session.

The word goes out on a fresh connection and the answer runs until the
server closes it; there is no framing, so this needs nothing of the client.
"""

import socket


def four_letter_word(host, port, word, timeout):
    """The server's answer to `word` (str or bytes), as text."""
    if isinstance(word, str):
        word = word.encode("ascii")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)
