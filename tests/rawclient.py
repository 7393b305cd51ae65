"""A minimal client speaking the wire protocol, for what kazoo cannot show:
the exact handshake answer, or that there was none."""

import socket
import struct

from nookeeper.wire.client import (
    decode_connect_response,
    decode_reply,
    encode_connect_request,
    encode_request,
)

NO_PASSWORD = b"\0" * 16


def handshake(port, timeout_ms=10000, session_id=0, passwd=NO_PASSWORD, last_zxid=0,
              wait_s=5.0, host="127.0.0.1"):
    """The server's ConnectResponse, or None if it closed the connection without one."""
    try:
        client = RawClient(port, timeout_ms, session_id, passwd, last_zxid, wait_s, host)
    except EOFError:
        return None
    client.close()
    return client.response


class RawClient:
    def __init__(self, port, timeout_ms=10000, session_id=0, passwd=NO_PASSWORD, last_zxid=0,
                 wait_s=5.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=wait_s)
        try:
            self.sock.sendall(encode_connect_request(timeout_ms, session_id, passwd, last_zxid))
            self.response = decode_connect_response(self._frame())
        except EOFError:
            self.sock.close()
            raise
        self.xid = 0

    def _frame(self):
        head = self._exact(4)
        return self._exact(struct.unpack(">i", head)[0])

    def _exact(self, count):
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise EOFError("closed")
            data += chunk
        return data

    def send(self, opcode, request=None, xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(encode_request(xid, opcode, request))
        return xid

    def reply(self, opcode=None):
        return decode_reply(self._frame(), opcode)

    def call(self, opcode, request=None):
        self.send(opcode, request)
        return self.reply(opcode)

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()
