"""Hand-packed codecs for the records nearly every request touches.

construct's generic parser costs tens of microseconds a record, which on a
busy server is most of the time spent per request. The handful of requests
and replies that make up almost all traffic (create, delete, exists,
getData, setData, getChildren and their replies, the reply header, watch
events) are read and written here with ``struct``; everything else still
goes through the construct records in wire/records.py, which stay the schema.
Results are Containers with the same field names (subclasses whose fields
read at C speed), and the same inputs are refused
(tests/unit/test_wire_hotpath.py holds the two to it).
"""

import operator
import struct

from construct import Container

from nookeeper.errors import MarshallingError
from nookeeper.listing import Listing
from nookeeper.wire import ops
from nookeeper.wire import records
from nookeeper.wire.jute import MAX_ELEMENTS, MAX_LENGTH

_INT = struct.Struct(">i")
REPLY_HEADER = struct.Struct(">iqi")
STAT = struct.Struct(">qqqqiiiqiiq")
_EVENT = struct.Struct(">ii")


class _Reader:
    __slots__ = ("data", "at")

    def __init__(self, data):
        self.data = data
        self.at = 0

    def int(self):
        try:
            (value,) = _INT.unpack_from(self.data, self.at)
        except struct.error:
            raise MarshallingError("record ends inside an int") from None
        self.at += 4
        return value

    def bool(self):
        if self.at >= len(self.data):
            raise MarshallingError("record ends inside a bool")
        value = self.data[self.at] != 0
        self.at += 1
        return value

    def _length(self, cap):
        length = self.int()
        if length == -1:
            return None
        if length < -1 or length > cap:
            raise MarshallingError(f"length {length} out of range")
        return length

    def buffer(self):
        length = self._length(MAX_LENGTH)
        if length is None:
            return None
        value = self.data[self.at:self.at + length]
        if len(value) != length:
            raise MarshallingError("record ends inside a buffer")
        self.at += length
        return value

    def ustring(self):
        raw = self.buffer()
        if raw is None:
            return None
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise MarshallingError(f"bad UTF-8: {exc}") from None

    def acls(self):
        count = self._length(MAX_ELEMENTS)
        if count is None:
            return None
        acls = []
        for _ in range(count):
            perms = self.int()
            scheme = self.ustring()
            ident = self.ustring()
            acls.append(Container(perms=perms, id=Container(scheme=scheme, id=ident)))
        return acls


def _record_type(name, fields):
    """A Container whose fields are properties: Container's own attribute
    access runs a Python __getattr__ after a failed lookup (about 0.4 us),
    and the tree reads several fields of every request it applies."""
    namespace = {field: property(operator.itemgetter(field)) for field in fields}
    namespace["__slots__"] = ()
    return type(name, (Container,), namespace)


PathWatchRequest = _record_type("PathWatchRequest", ("path", "watch"))
SetDataRequest = _record_type("SetDataRequest", ("path", "data", "version"))
DeleteRequest = _record_type("DeleteRequest", ("path", "version"))
CreateRequest = _record_type("CreateRequest", ("path", "data", "acl", "flags"))


def _path_watch(r):
    return PathWatchRequest(path=r.ustring(), watch=r.bool())


def _set_data(r):
    return SetDataRequest(path=r.ustring(), data=r.buffer(), version=r.int())


def _delete(r):
    return DeleteRequest(path=r.ustring(), version=r.int())


def _create(r):
    return CreateRequest(path=r.ustring(), data=r.buffer(), acl=r.acls(), flags=r.int())


# A fast codec stands in for a record, so the ops it serves are those whose
# record it is (wire/ops.py).
_DECODERS = {
    records.ExistsRequest: _path_watch,
    records.GetDataRequest: _path_watch,
    records.GetChildrenRequest: _path_watch,
    records.GetChildren2Request: _path_watch,
    records.SetDataRequest: _set_data,
    records.DeleteRequest: _delete,
    records.CreateRequest: _create,
}
REQUEST_DECODERS = {op.code: _DECODERS[op.request] for op in ops.OPS if op.request in _DECODERS}


def decode_request(opcode, body):
    """The request record, or None when `opcode` has no fast decoder."""
    decode = REQUEST_DECODERS.get(opcode)
    if decode is None:
        return None
    return decode(_Reader(bytes(body)))


# ---- replies ----------------------------------------------------------------

def _stat(stat):
    return STAT.pack(stat["czxid"], stat["mzxid"], stat["ctime"], stat["mtime"],
                     stat["version"], stat["cversion"], stat["aversion"],
                     stat["ephemeralOwner"], stat["dataLength"], stat["numChildren"],
                     stat["pzxid"])


def _buffer(data):
    if data is None:
        return b"\xff\xff\xff\xff"
    data = bytes(data)
    return _INT.pack(len(data)) + data


def _ustring(text):
    if text is None:
        return b"\xff\xff\xff\xff"
    raw = text.encode("utf-8", "surrogatepass")
    return _INT.pack(len(raw)) + raw


def _strings(items):
    """A vector of strings: a child list may hold thousands, so no call per item.
    A tree Listing keeps its encoding (hundreds of us for a thousand names)."""
    if items is None:
        return b"\xff\xff\xff\xff"
    if type(items) is not Listing:
        return _encode_strings(items)
    if items.wire is None:
        items.wire = _encode_strings(items)
    return items.wire


def _encode_strings(items):
    raws = [item.encode("utf-8", "surrogatepass") for item in items]
    parts = [b""] * (2 * len(raws))
    parts[0::2] = map(_INT.pack, map(len, raws))
    parts[1::2] = raws
    return _INT.pack(len(raws)) + b"".join(parts)


_ENCODERS = {
    records.Stat: _stat,
    records.GetDataResponse: lambda body: _buffer(body["data"]) + _stat(body["stat"]),
    records.CreateResponse: lambda body: _ustring(body["path"]),
    records.Create2Response: lambda body: _ustring(body["path"]) + _stat(body["stat"]),
    records.GetChildrenResponse: lambda body: _strings(body["children"]),
    records.GetChildren2Response: lambda body: _strings(body["children"]) + _stat(body["stat"]),
}
REPLY_ENCODERS = {op.code: _ENCODERS[op.reply] for op in ops.OPS if op.reply in _ENCODERS}


def encode_reply_body(opcode, body):
    """The reply record's bytes, or None when `opcode` has no fast encoder."""
    encode = REPLY_ENCODERS.get(opcode)
    if encode is None:
        return None
    try:
        return encode(body)
    except (struct.error, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot encode the reply to opcode {opcode}: {exc!r}") from exc


def reply_header(xid, zxid, err):
    return REPLY_HEADER.pack(xid, zxid, err)


def event_body(event_type, state, path):
    return _EVENT.pack(event_type, state) + _ustring(path)
