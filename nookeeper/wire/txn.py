"""The byte form of a Txn, as the write-ahead log stores it.

A header carrying the leader's stamp and the caller's identities, then the
client's own request record: replaying a txn means re-applying that request,
so storing it in the client's encoding needs no second schema.
"""

from construct import ConstructError, Error, Pass, Switch, this

from nookeeper.errors import MarshallingError
from nookeeper.txn import CLOSE_SESSION, CREATE_SESSION, Txn
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


def encode_txn(txn: Txn) -> bytes:
    """Serialize a txn; a type with no known body is a MarshallingError."""
    if txn.type not in TXN_BODIES:
        raise MarshallingError(f"no txn body for type {txn.type}")
    return TxnRecord.build(
        {
            "zxid": txn.zxid,
            "time": txn.time,
            "session": txn.session,
            "cxid": txn.cxid,
            "type": txn.type,
            "ids": [{"scheme": scheme, "id": ident} for scheme, ident in txn.ids],
            "request": txn.request,
        }
    )


def decode_txn(data: bytes) -> Txn:
    """The Txn encode_txn produced; any damage is a MarshallingError."""
    try:
        record = TxnRecord.parse(data)
    except ConstructError as exc:
        raise MarshallingError(str(exc)) from exc
    return Txn(
        zxid=record.zxid,
        time=record.time,
        session=record.session,
        cxid=record.cxid,
        type=record.type,
        ids=tuple((ident.scheme, ident.id) for ident in record.ids or ()),
        request=record.request,
    )
