"""Jute's binary-archive primitives as construct objects.

construct has no notion of jute's nullable types (a -1 length meaning null,
distinct from an empty value), so those are small hand-written Constructs.
Lengths and counts come from the peer, so they are bounded before anything
is read: a hostile length must fail the parse, not allocate.
"""

import codecs
import struct

from construct import (
    Construct,
    Flag,
    Int32sb,
    Int64sb,
    SizeofError,
    Struct,
    StringError,
    ValidationError,
)
from construct.core import stream_read, stream_write

MAX_LENGTH = 2 * 1024 * 1024
MAX_ELEMENTS = 1_000_000

_LENGTH = struct.Struct(">i")
_NULL = _LENGTH.pack(-1)

Int = Int32sb
Long = Int64sb
Bool = Flag


def _java_replacement(exc):
    """One U+FFFD per malformed sequence where Java's decoder makes one: Python's
    stops an encoded surrogate (ED A0..BF, then a continuation byte) after ED."""
    data, at = exc.object, exc.start
    if data[at] == 0xED and at + 1 < len(data) and 0xA0 <= data[at + 1] <= 0xBF:
        end = at + 2
        if end < len(data) and 0x80 <= data[end] <= 0xBF:
            end += 1
        return "\ufffd", end
    return "\ufffd", exc.end


codecs.register_error("nookeeper.java", _java_replacement)


def java_string(data):
    """`data` as Java's new String(bytes, UTF_8) reads it, never failing.

    ZooKeeper reads an auth credential so, then hashes the string's UTF-8, so
    the digest id of a credential that is not UTF-8 is only ZooKeeper's if
    each malformed sequence becomes the U+FFFD Java makes of it.
    """
    return bytes(data).decode("utf-8", "nookeeper.java")


def _read_length(stream, path, cap):
    """The int32 length or count prefix; None for jute's null (-1)."""
    length = _LENGTH.unpack(stream_read(stream, 4, path))[0]
    if length == -1:
        return None
    if length < -1 or length > cap:
        raise ValidationError(f"length {length} out of range", path=path)
    return length


class _Variable(Construct):
    def _sizeof(self, context, path):
        raise SizeofError("jute length-prefixed values have no fixed size", path=path)


class _Buffer(_Variable):
    """Raw bytes; None and b"" stay distinct because clients see the difference."""

    def _parse(self, stream, context, path):
        length = _read_length(stream, path, MAX_LENGTH)
        if length is None:
            return None
        return stream_read(stream, length, path)

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream_write(stream, _NULL, 4, path)
            return obj
        data = bytes(obj)
        stream_write(stream, _LENGTH.pack(len(data)) + data, 4 + len(data), path)
        return obj


class _UString(_Variable):
    """UTF-8 text; surrogatepass because Java sends CESU-8 for astral characters."""

    def _parse(self, stream, context, path):
        length = _read_length(stream, path, MAX_LENGTH)
        if length is None:
            return None
        try:
            return stream_read(stream, length, path).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise StringError(f"bad UTF-8: {exc}", path=path) from exc

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream_write(stream, _NULL, 4, path)
            return obj
        data = obj.encode("utf-8", "surrogatepass")
        stream_write(stream, _LENGTH.pack(len(data)) + data, 4 + len(data), path)
        return obj


class _OptionalBool(_Variable):
    """A boolean that may be missing at the end of a record.

    Clients older than 3.4 omit ConnectRequest.readOnly and must get a
    ConnectResponse without it, so None means "absent" both ways.
    """

    def _parse(self, stream, context, path):
        byte = stream.read(1)
        if not byte:
            return None
        return byte != b"\x00"

    def _build(self, obj, stream, context, path):
        if obj is not None:
            stream_write(stream, b"\x01" if obj else b"\x00", 1, path)
        return obj


class Vector(_Variable):
    """A count-prefixed sequence of `subcon`; None for a null (-1) vector."""

    def __init__(self, subcon):
        super().__init__()
        self.subcon = subcon

    def _parse(self, stream, context, path):
        count = _read_length(stream, path, MAX_ELEMENTS)
        if count is None:
            return None
        parse = self.subcon._parsereport
        return [parse(stream, context, path) for _ in range(count)]

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream_write(stream, _NULL, 4, path)
            return obj
        items = list(obj)
        stream_write(stream, _LENGTH.pack(len(items)), 4, path)
        for item in items:
            self.subcon._build(item, stream, context, path)
        return obj


class Record(Struct):
    """A jute record: fields in order, no tags or padding.

    Parsed Containers outlive the frame (they are kept in txns), so the
    reference construct leaves to the input stream is dropped.
    """

    def _parse(self, stream, context, path):
        obj = super()._parse(stream, context, path)
        obj.pop("_io", None)
        return obj


Buffer = _Buffer()
UString = _UString()
OptionalBool = _OptionalBool()
