"""A connection's outbound bytes: order kept whether the apply thread holds
them for a batch, the sender thread writes them, or the connection closes."""

import socket
import threading

import pytest

from nookeeper.server.connection import Connection, replies_held
from nookeeper.server.throttle import Throttle


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def conn(pair):
    """Its sender thread starts only when a test says so."""
    return Connection(None, pair[0], ("127.0.0.1", 1), throttle=Throttle(1000, 1000))


def read_all(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def drained(conn, sock):
    """Everything the connection sends until it closes, sender thread included."""
    conn.start_sending()
    conn.close()
    return read_all(sock)


def test_held_sends_are_written_together_by_the_holding_thread(pair, conn):
    ours, theirs = pair
    with replies_held():
        conn.send(b"reply-1;")
        conn.send(b"event;")
        conn.send(b"reply-2;")
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(100)  # nothing leaves before the batch ends
        theirs.setblocking(True)
    theirs.settimeout(5)
    assert theirs.recv(100) == b"reply-1;event;reply-2;"


def test_another_thread_sending_during_a_hold_waits_behind_it(pair, conn):
    with replies_held():
        conn.send(b"write-reply;")
        reader = threading.Thread(target=conn.send, args=(b"read-reply;",))
        reader.start()
        reader.join()
    assert drained(conn, pair[1]) == b"write-reply;read-reply;"


def test_a_hold_never_overtakes_what_the_sender_thread_still_has(pair, conn):
    conn.send(b"first;")          # queued for the sender thread, not started yet
    with replies_held():
        conn.send(b"second;")
    assert drained(conn, pair[1]) == b"first;second;"


def test_closing_inside_a_hold_still_sends_what_was_held(pair, conn):
    conn.start_sending()  # running, so it shuts the socket as soon as it sees the close
    with replies_held():
        conn.send(b"close-session-reply;")
        conn.close()
        conn.send(b"after-close;")
    assert read_all(pair[1]) == b"close-session-reply;"
