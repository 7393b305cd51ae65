"""nk-dump's only contact with SQLite: a read-only view of a server's database.

The file may belong to a running server, so the connection is opened with
`mode=ro` (it cannot take a write lock, and cannot cut a tail the server is
still writing), and every read is a short transaction of its own: the log
a page at a time, one snapshot's row and chunks together. The server uses
WAL journal mode, where readers never block the writer.
"""

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from nookeeper.snapstore import SnapshotInfo
from nookeeper.wal import DB_NAME, stored_row_crc

PAGE_ROWS = 512
BUSY_TIMEOUT_S = 5.0


class UnreadableDatabase(Exception):
    """The path is not a readable nookeeper database; the message says why, on one line."""


class Overview(NamedTuple):
    snapshots: list        # SnapshotInfo, oldest first
    first: int | None      # the log's first zxid; None when it is empty


class Row(NamedTuple):
    """One txnlog row as stored, with the crc its columns should have (None: unpackable)."""

    rowid: int
    zxid: int
    time: int
    session: int
    cxid: int
    type: int
    body: bytes
    crc: int
    computed_crc: int | None

    @property
    def crc_ok(self) -> bool:
        return self.computed_crc == self.crc


def _blob(value) -> bytes:
    """A BLOB column as bytes, even where damage left another type in it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def database_path(path) -> Path:
    """A data directory means the nookeeper.db inside it."""
    path = Path(path)
    if path.is_dir():
        path = path / DB_NAME
        if not path.exists():
            raise UnreadableDatabase(f"{path.parent}: no {DB_NAME} in this directory")
    elif not path.exists():
        raise UnreadableDatabase(f"{path}: no such file or directory")
    return path


class LogDatabase:
    """The txnlog and the snapshots of one server's database, read-only."""

    def __init__(self, path):
        self.path = database_path(path)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as e:
            raise UnreadableDatabase(f"{self.path}: cannot open: {e}") from None
        try:
            tables = {name for (name,) in self._read(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except UnreadableDatabase:
            self._conn.close()
            raise
        if "txnlog" not in tables:
            self._conn.close()
            raise UnreadableDatabase(f"{self.path}: not a nookeeper database (no txnlog table)")
        self._has_snapshots = {"snapshots", "snapshot_chunks"} <= tables

    def _read(self, sql, params=()):
        """One statement is one read transaction: nothing is held between calls."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise UnreadableDatabase(f"{self.path}: {_reason(e)}") from None

    def rows(self, after: int = -1, upto: int | None = None) -> Iterator[Row]:
        """Rows with after < zxid <= upto, in zxid order, a page per read."""
        last = after
        limit = (1 << 63) - 1 if upto is None else upto
        while True:
            page = self._read(
                "SELECT rowid, zxid, time, session, cxid, type, body, crc FROM txnlog "
                "WHERE zxid > ? AND zxid <= ? ORDER BY zxid LIMIT ?", (last, limit, PAGE_ROWS))
            for rowid, zxid, time, session, cxid, type_, body, crc in page:
                computed = stored_row_crc(zxid, time, session, cxid, type_, body)
                yield Row(rowid, zxid, time, session, cxid, type_, _blob(body), crc, computed)
            if len(page) < PAGE_ROWS:
                return
            last = page[-1][1]

    def row_count(self) -> int:
        """How many rows the log holds now: what --verify's progress counts towards."""
        return self._read("SELECT count(*) FROM txnlog")[0][0]

    def first_zxid(self) -> int | None:
        """Where the log starts now (a purge moves it)."""
        return self._read("SELECT min(zxid) FROM txnlog")[0][0]

    def last_zxid(self) -> int | None:
        """The log's last zxid now; None when it is empty."""
        return self._read("SELECT max(zxid) FROM txnlog")[0][0]

    def meta(self) -> dict:
        """The meta table (ZAB's acceptedEpoch and currentEpoch); {} without one."""
        tables = {name for (name,) in self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return {}
        return dict(self._read("SELECT key, value FROM meta"))

    @contextmanager
    def _one_moment(self):
        """Statements inside see the database as it was at one moment: one read transaction."""
        try:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise UnreadableDatabase(f"{self.path}: {_reason(e)}") from None

    def overview(self) -> Overview:
        """Snapshots and the log's extent together: a purge deletes snapshots and
        then log rows, and the two must be seen at the same moment."""
        with self._one_moment() as conn:
            (first,) = conn.execute("SELECT min(zxid) FROM txnlog").fetchone()
            infos = [SnapshotInfo(*row) for row in conn.execute(
                "SELECT zxid, time, nodes, size, chunks, crc FROM snapshots ORDER BY zxid")] \
                if self._has_snapshots else []
        return Overview(infos, first)

    def snapshot_chunks(self, zxid: int) -> list[bytes] | None:
        """A snapshot's chunks in order, read with its row so that a purge cannot
        remove half of them meanwhile; None once it is purged."""
        if not self._has_snapshots:
            return None
        with self._one_moment() as conn:
            if not conn.execute("SELECT 1 FROM snapshots WHERE zxid = ?", (zxid,)).fetchall():
                return None
            return [_blob(data) for (data,) in conn.execute(
                "SELECT data FROM snapshot_chunks WHERE zxid = ? ORDER BY seq", (zxid,))]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "LogDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(error: sqlite3.Error) -> str:
    text = str(error)
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        return "not a nookeeper database (not an SQLite file)"
    return f"cannot read: {text}"
