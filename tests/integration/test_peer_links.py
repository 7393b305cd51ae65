"""Peer links on real loopback sockets: FIFO whether a frame is written at
once by the caller or handed to the link's sender thread."""

import threading

from harness import free_port, wait_for

from nookeeper.server.peerport import PeerPort
from nookeeper.zab.messages import Ack, Proposal


def _pair():
    members = {1: ("127.0.0.1", free_port()), 2: ("127.0.0.1", free_port())}
    received, lock = [], threading.Lock()

    def on_message(sid, message, more=False):
        with lock:
            received.append(message)

    ports = {sid: PeerPort(sid, members, members[sid], on_message, lambda sid: None)
             for sid in members}
    for port in ports.values():
        port.start()
    wait_for(lambda: ports[2].connected() == [1] and ports[1].connected() == [2],
             message="the link between 1 and 2")
    return ports, received


def test_frames_arrive_in_order_when_inline_writes_fill_the_socket():
    """Large frames sent inline overflow the socket buffer, so some are cut
    short and their rest goes to the sender thread; small frames sent after
    them must still arrive after them."""
    ports, received = _pair()
    try:
        payload = bytes(range(256)) * 1024  # 256 KiB: a few fill the socket buffer
        sent = []
        for i in range(1, 61):
            message = Proposal(1, i, payload) if i % 3 else Ack(1, i)
            ports[2].send(1, message, inline=True)
            sent.append(message)
        wait_for(lambda: len(received) == len(sent), timeout=30, message="every frame")
        assert [m.zxid for m in received] == list(range(1, 61))
        assert received == sent
    finally:
        for port in ports.values():
            port.stop()


def test_queued_and_inline_sends_interleave_in_order():
    ports, received = _pair()
    try:
        sent = [Ack(1, i) for i in range(1, 2001)]
        for i, message in enumerate(sent):
            ports[1].send(2, message, inline=bool(i % 2))
        wait_for(lambda: len(received) == len(sent), timeout=30, message="every frame")
        assert received == sent
    finally:
        for port in ports.values():
            port.stop()
