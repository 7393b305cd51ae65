"""The snapshot format: a DataTree as a sequence of self-contained chunks.

A snapshot is cut into chunks of at most about a megabyte so that it can be
streamed (from a forked writer, into SQLite rows, onto a peer link) without
ever holding a second copy of a large tree in one buffer. Node fields are
packed column-wise with ``struct`` because decoding a million znodes is on
the restart path: one C-level unpack per node beats any per-field parser.
Every length is checked, so a damaged snapshot raises CorruptSnapshot
instead of producing a wrong tree.

Layout. The first chunk is the header::

    magic "NKSNAP1\\n" | zxid:int64 | nodes:int64 | sessions:int32
    then per session: id:int64 | timeout:int32 | passwd_len:int32 | passwd

Every other chunk holds nodes::

    "N" | count:int32 | acl_lists:int32
    then per ACL list: entries:int32, per entry perms:int32 | scheme | id
        (each string as len:int32 + UTF-8)
    then count fixed records (_NODE), then each node's path and data in turn

The header is its own chunk so that a reader can learn a snapshot's zxid and
size without decoding the tree.
"""

import gc
import struct
import zlib
from typing import Iterable, Iterator, NamedTuple

from nookeeper import acl
from nookeeper.tree import NO_CHILDREN, DataTree, Node, SessionInfo

MAGIC = b"NKSNAP1\n"
_HEAD = struct.Struct(">qqi")
_SESSION = struct.Struct(">qii")
_CHUNK = struct.Struct(">cii")
_I32 = struct.Struct(">i")
# czxid mzxid pzxid ctime mtime version aversion owner child_creates acl path_len data_len
_NODE = struct.Struct(">qqqqqiiqiiii")
_NO_DATA = -1
CHUNK_BYTES = 1 << 20
CHUNK_NODES = 8192


class CorruptSnapshot(Exception):
    """The bytes are not a whole, well-formed snapshot."""


class SnapshotHeader(NamedTuple):
    zxid: int
    nodes: int
    sessions: dict  # session id -> SessionInfo


def crc_of(chunks: Iterable[bytes]) -> int:
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    return crc & 0xFFFFFFFF


# ---- encoding ---------------------------------------------------------------

def encode(tree: DataTree) -> Iterator[bytes]:
    """The tree as it is now, chunk by chunk; the caller keeps it still meanwhile."""
    yield _encode_header(tree)
    batch, size = [], 0
    for path, node in tree.nodes():
        batch.append((path, node))
        size += len(path) + (len(node.data) if node.data else 0) + _NODE.size
        if size >= CHUNK_BYTES or len(batch) >= CHUNK_NODES:
            yield _encode_nodes(batch)
            batch, size = [], 0
    if batch:
        yield _encode_nodes(batch)


def _encode_header(tree):
    parts = [MAGIC, _HEAD.pack(tree.last_zxid, tree.node_count, len(tree.sessions))]
    for session, info in tree.sessions.items():
        passwd = bytes(info.passwd or b"")
        parts.append(_SESSION.pack(session, info.timeout, len(passwd)))
        parts.append(passwd)
    return b"".join(parts)


def _string(text):
    raw = text.encode("utf-8", "surrogatepass")
    return _I32.pack(len(raw)) + raw


def _encode_nodes(batch):
    acl_index = {}
    acl_parts = []
    records = []
    blobs = []
    for path, node in batch:
        acls = tuple(node.acl)
        index = acl_index.get(acls)
        if index is None:
            index = acl_index[acls] = len(acl_index)
            acl_parts.append(_I32.pack(len(acls)))
            for entry in acls:
                acl_parts.append(_I32.pack(entry.perms) + _string(entry.scheme) + _string(entry.id))
        raw_path = path.encode("utf-8", "surrogatepass")
        data = node.data
        blobs.append(raw_path)
        if data is None:
            data_len = _NO_DATA
        else:
            data_len = len(data)
            blobs.append(data)
        records.append(_NODE.pack(
            node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime, node.version,
            node.aversion, node.ephemeral_owner, node.child_creates, index,
            len(raw_path), data_len))
    head = _CHUNK.pack(b"N", len(batch), len(acl_index))
    return b"".join([head, *acl_parts, *records, *blobs])


# ---- decoding ---------------------------------------------------------------

def read_header(chunk: bytes) -> SnapshotHeader:
    view = memoryview(chunk)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        raise CorruptSnapshot("not a nookeeper snapshot (bad magic)")
    try:
        zxid, nodes, count = _HEAD.unpack_from(view, len(MAGIC))
        offset = len(MAGIC) + _HEAD.size
        sessions = {}
        for _ in range(count):
            session, timeout, length = _SESSION.unpack_from(view, offset)
            offset += _SESSION.size
            passwd = bytes(view[offset:offset + length])
            if length < 0 or len(passwd) != length:
                raise CorruptSnapshot("session password runs past the header")
            offset += length
            sessions[session] = SessionInfo(timeout, passwd)
    except struct.error as e:
        raise CorruptSnapshot(f"short header: {e}") from None
    if offset != len(view) or nodes < 0 or count < 0:
        raise CorruptSnapshot("header has trailing bytes or negative counts")
    return SnapshotHeader(zxid, nodes, sessions)


def decode(chunks: Iterable[bytes], tree: DataTree | None = None) -> DataTree:
    """A tree equal to the one encoded; raises CorruptSnapshot on any damage."""
    chunks = iter(chunks)
    try:
        header = read_header(next(chunks))
    except StopIteration:
        raise CorruptSnapshot("empty snapshot") from None
    tree = tree if tree is not None else DataTree()
    nodes = {}
    shared_acls = {}  # equal ACL lists of different chunks stored once
    # A million new objects would trigger a collection every few hundred of
    # them, each scanning the whole growing heap: quadratic time for nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            _decode_nodes(chunk, nodes, shared_acls)
    finally:
        if was_enabled:
            gc.enable()
    if len(nodes) != header.nodes:
        raise CorruptSnapshot(f"header says {header.nodes} nodes, chunks hold {len(nodes)}")
    try:
        tree.restore(header.zxid, nodes, header.sessions)
    except (KeyError, ValueError) as e:
        raise CorruptSnapshot(f"a node's path or parent is wrong: {e}") from None
    if tree.node("/") is None:
        raise CorruptSnapshot("the snapshot has no root node")
    return tree


def _decode_string(view, offset):
    (length,) = _I32.unpack_from(view, offset)
    offset += _I32.size
    raw = bytes(view[offset:offset + length])
    if length < 0 or len(raw) != length:
        raise CorruptSnapshot("a string runs past its chunk")
    return raw.decode("utf-8", "surrogatepass"), offset + length


def _decode_nodes(chunk, nodes, shared_acls):
    view = memoryview(chunk)
    try:
        tag, count, acl_count = _CHUNK.unpack_from(view, 0)
        if tag != b"N" or count < 0 or acl_count < 0:
            raise CorruptSnapshot("bad node chunk header")
        offset = _CHUNK.size
        acl_lists = []
        for _ in range(acl_count):
            (entries,) = _I32.unpack_from(view, offset)
            offset += _I32.size
            acls = []
            for _ in range(entries):
                (perms,) = _I32.unpack_from(view, offset)
                scheme, offset = _decode_string(view, offset + _I32.size)
                ident, offset = _decode_string(view, offset)
                acls.append(acl.ACL(perms, scheme, ident))
            acls = tuple(acls)
            acl_lists.append(shared_acls.setdefault(acls, acls))
        end = offset + count * _NODE.size
        if end > len(view):
            raise CorruptSnapshot("node records run past their chunk")
        records = _NODE.iter_unpack(view[offset:end])
        blob = bytes(view[end:])
    except (struct.error, UnicodeDecodeError) as e:
        raise CorruptSnapshot(f"bad node chunk: {e}") from None
    at = 0
    new = Node.__new__
    for (czxid, mzxid, pzxid, ctime, mtime, version, aversion, owner, creates,
         acl_at, path_len, data_len) in records:
        path = blob[at:at + path_len]
        at += path_len
        node = new(Node)
        # Equal counters share one int object, as they do in a tree built by
        # apply: 32 bytes each, a fifth of a small node.
        node.czxid = czxid
        node.mzxid = czxid if mzxid == czxid else mzxid
        node.pzxid = czxid if pzxid == czxid else node.mzxid if pzxid == mzxid else pzxid
        node.ctime = ctime
        node.mtime = ctime if mtime == ctime else mtime
        node.version, node.aversion = version, aversion
        node.ephemeral_owner, node.child_creates = owner, creates
        node.children = NO_CHILDREN
        if not 0 <= acl_at < len(acl_lists) or path_len < 0 or len(path) != path_len:
            raise CorruptSnapshot("a node record points outside its chunk")
        node.acl = acl_lists[acl_at]
        if data_len == _NO_DATA:
            node.data = None
        elif data_len < 0:
            raise CorruptSnapshot("a node has a negative data length")
        else:
            node.data = blob[at:at + data_len]
            at += data_len
        try:
            nodes[path.decode("utf-8", "surrogatepass")] = node
        except UnicodeDecodeError:
            raise CorruptSnapshot("a path is not UTF-8") from None
    if at != len(blob):
        raise CorruptSnapshot("a node chunk has bytes left over")
