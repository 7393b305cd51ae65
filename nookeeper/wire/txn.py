"""The byte form of a Txn, as the write-ahead log stores it.

A header carrying the leader's stamp and the caller's identities, then the
client's own request record: replaying a txn means re-applying that request,
so storing it in the client's encoding needs no second schema.

Every write passes through here several times (stamped on the leader,
logged on every server, applied on every server), so the fixed header is
read and written with ``struct`` rather than construct's generic parser:
the log writer only needs the header, the leader stamps a txn by patching
its first two fields, and a request can be carried in the bytes the client
sent, never encoded again. TxnRecord remains the schema of the whole.
"""

import struct

from construct import ConstructError, Error, Pass, Switch, this

from nookeeper.errors import MarshallingError
from nookeeper.txn import Txn
from nookeeper.wire.ops import CLOSE_SESSION, CREATE_SESSION
from nookeeper.wire import hotpath
from nookeeper.wire.client import REQUEST_RECORDS, CreateSessionTxn, Id
from nookeeper.wire.jute import Int, Long, Record, Vector

TXN_BODIES = {
    **REQUEST_RECORDS,
    CREATE_SESSION: CreateSessionTxn,
    CLOSE_SESSION: Pass,
}

TxnHeader = Record(
    "zxid" / Long,
    "time" / Long,
    "session" / Long,
    "cxid" / Int,
    "type" / Int,
    "ids" / Vector(Id),
)

TxnRecord = Record(
    *TxnHeader.subcons,
    "request" / Switch(this.type, TXN_BODIES, default=Error),
)


_HEADER = struct.Struct(">qqqii")
_STAMP = struct.Struct(">qq")
_LENGTH = struct.Struct(">i")


def _ustring(text):
    raw = text.encode("utf-8", "surrogatepass")
    return _LENGTH.pack(len(raw)) + raw


def encode_txn(txn: Txn, request_bytes: bytes | None = None) -> bytes:
    """Serialize a txn; request_bytes, when given, is txn.request exactly as
    the client encoded it. A type with no known body is a MarshallingError."""
    body = TXN_BODIES.get(txn.type)
    if body is None:
        raise MarshallingError(f"no txn body for type {txn.type}")
    parts = [_HEADER.pack(txn.zxid, txn.time, txn.session, txn.cxid, txn.type),
             _LENGTH.pack(len(txn.ids))]
    for scheme, ident in txn.ids:
        parts.append(_ustring(scheme))
        parts.append(_ustring(ident))
    if request_bytes is not None:
        parts.append(bytes(request_bytes))
    else:
        try:
            parts.append(body.build(txn.request))
        except (ConstructError, struct.error) as exc:
            raise MarshallingError(str(exc)) from exc
    return b"".join(parts)


def stamp(payload: bytes, zxid: int, time: int) -> bytes:
    """The same txn with the leader's zxid and clock."""
    return _STAMP.pack(zxid, time) + payload[_STAMP.size:]


def is_stamped(sent: bytes, payload: bytes) -> bool:
    """Whether payload is the txn sent, as the leader stamped it."""
    return sent[_STAMP.size:] == payload[_STAMP.size:]


def txn_header(payload: bytes):
    """(zxid, time, session, cxid, type) without decoding the request."""
    try:
        return _HEADER.unpack_from(payload)
    except struct.error as exc:
        raise MarshallingError(f"short txn header: {exc}") from exc


def _read_ustring(data, offset):
    (length,) = _LENGTH.unpack_from(data, offset)
    offset += _LENGTH.size
    raw = data[offset:offset + length]
    if length < 0 or len(raw) != length:
        raise MarshallingError("txn identity runs past the end")
    return raw.decode("utf-8", "surrogatepass"), offset + length


def decode_txn(data: bytes) -> Txn:
    """The Txn encode_txn produced; any damage is a MarshallingError."""
    data = bytes(data)
    try:
        zxid, time, session, cxid, type_ = _HEADER.unpack_from(data)
        offset = _HEADER.size
        (count,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if count > 4096:
            raise MarshallingError(f"txn claims {count} identities")
        ids = []
        for _ in range(max(count, 0)):
            scheme, offset = _read_ustring(data, offset)
            ident, offset = _read_ustring(data, offset)
            ids.append((scheme, ident))
        request = hotpath.decode_request(type_, data[offset:])
        if request is None:
            body = TXN_BODIES.get(type_)
            if body is None:
                raise MarshallingError(f"no txn body for type {type_}")
            request = body.parse(data[offset:])
    except (struct.error, UnicodeDecodeError, ConstructError) as exc:
        raise MarshallingError(str(exc)) from exc
    if isinstance(request, dict):
        request.pop("_io", None)
    return Txn(zxid=zxid, time=time, session=session, cxid=cxid, type=type_,
               ids=tuple(ids), request=request)
