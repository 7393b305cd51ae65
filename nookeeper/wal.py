"""The write-ahead log: every accepted txn, durable before it is acknowledged.

One SQLite file per server. WAL journal mode lets tools (nk-dump) read while
the server writes; synchronous=FULL makes each commit an fsync, and a whole
batch of txns goes in one transaction so a busy server pays one fsync per
group, not per write. Each row carries a crc so that a torn or corrupted tail
is noticed and cut on replay instead of being applied.
"""

import logging
import sqlite3
import struct
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import sqlite_utils

log = logging.getLogger(__name__)

# The one file of a data directory: log, meta and snapshots.
DB_NAME = "nookeeper.db"

_HEADER = struct.Struct(">qqqii")
_PAGE = 512
_COLUMNS = "zxid, time, session, cxid, type, body, crc"


class LogRecord(NamedTuple):
    """One row of the log; a tuple because the log writer makes one per write."""

    zxid: int
    time: int
    session: int
    cxid: int
    type: int
    body: bytes


def record_crc(zxid, time, session, cxid, type, body) -> int:
    """Covers every column, so a flipped bit anywhere in the row is caught."""
    return zlib.crc32(body, zlib.crc32(_HEADER.pack(zxid, time, session, cxid, type))) & 0xFFFFFFFF


def stored_row_crc(zxid, time, session, cxid, type, body) -> int | None:
    """The crc a stored row should have; None when its columns are too mangled
    (wrong types, out of range) to pack."""
    if not isinstance(body, bytes):
        return None
    try:
        return record_crc(zxid, time, session, cxid, type, body)
    except (struct.error, TypeError):
        return None


def _rows(records):
    rows = []
    for zxid, time, session, cxid, type_, body in records:
        fields = (zxid, time, session, cxid, type_, bytes(body))
        rows.append(fields + (record_crc(*fields),))
    return rows


# Rows per INSERT statement. One statement per batch rather than executemany:
# each step of executemany releases and retakes the GIL, and on a busy server
# every retake can wait a whole switch interval (5 ms) behind other threads.
_ROWS_PER_STATEMENT = 500
_ROW_MARKS = "(?, ?, ?, ?, ?, ?, ?)"


def _insert_statement(count: int) -> str:
    return f"INSERT INTO txnlog ({_COLUMNS}) VALUES " + ", ".join([_ROW_MARKS] * count)


_FULL_INSERT = _insert_statement(_ROWS_PER_STATEMENT)


def _insert(conn, rows) -> None:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        sql = _FULL_INSERT if len(chunk) == _ROWS_PER_STATEMENT else _insert_statement(len(chunk))
        conn.execute(sql, [value for row in chunk for value in row])


def insert_records(conn, records: Iterable[LogRecord]) -> None:
    """Inside a transaction of writing(): for stores that replace the log with other rows."""
    _insert(conn, _rows(records))


class WriteAheadLog:
    """The txn log and a small key/value table for what must survive a restart.

    One connection, shared by the server's threads under a lock.
    """

    def __init__(self, path, *, _readonly: bool = False):
        self.path = Path(path)
        self.readonly = _readonly
        self._lock = threading.Lock()
        if _readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        else:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # Driver-level autocommit: transactions are only the ones _transaction opens.
        self._db = sqlite_utils.Database(conn)
        if not _readonly:
            self._db.enable_wal()
            self._db.execute("PRAGMA synchronous=FULL")
            # A snapshot passes through the -wal file; let it shrink back afterwards.
            self._db.execute("PRAGMA journal_size_limit=16777216")
            self._create_schema()

    @classmethod
    def open_readonly(cls, path) -> "WriteAheadLog":
        """For tools: cannot write, so it can never cut a tail a live server is still writing."""
        return cls(path, _readonly=True)

    def _create_schema(self) -> None:
        self._db["txnlog"].create(
            {"zxid": int, "time": int, "session": int, "cxid": int,
             "type": int, "body": bytes, "crc": int},
            pk="zxid",
            not_null={"time", "session", "cxid", "type", "body", "crc"},
            if_not_exists=True,
        )
        # BLOB affinity stores each value as given: an int stays an int.
        self._db["meta"].create({"key": str, "value": bytes}, pk="key", if_not_exists=True)

    @contextmanager
    def writing(self):
        """The connection inside one IMMEDIATE transaction, for stores sharing this file."""
        self._check_writable()
        with self._lock, self._transaction() as conn:
            yield conn

    def query(self, sql: str, params=()) -> list:
        with self._lock:
            return self._db.conn.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self):
        """IMMEDIATE takes the write lock up front, so a batch never fails half way on BUSY."""
        conn = self._db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_writable(self) -> None:
        if self.readonly:
            raise PermissionError(f"{self.path}: opened read-only")

    def append(self, records: Iterable[LogRecord]) -> None:
        """All of the batch or none of it, with one commit (one fsync).

        A zxid already in the log raises sqlite3.IntegrityError and writes nothing.
        A batch that fits one INSERT is that statement alone, which SQLite
        commits atomically by itself: two statements (and two waits for the
        GIL) fewer on a quiet server's group commit of one txn.
        """
        self._check_writable()
        rows = _rows(records)
        if not rows:
            return
        if len(rows) <= _ROWS_PER_STATEMENT:
            with self._lock:
                _insert(self._db.conn, rows)
            return
        with self._lock, self._transaction() as conn:
            _insert(conn, rows)

    def records(self, after_zxid: int = 0) -> Iterator[LogRecord]:
        """Replays in zxid order and stops at the first row that fails its crc.

        That row and every later one are deleted: a txn after a hole must not be
        applied. Rows are fetched a page at a time so no read is held open across
        yields (the caller may append or truncate meanwhile).
        """
        last = after_zxid
        while True:
            with self._lock:
                page = self._db.conn.execute(
                    f"SELECT {_COLUMNS} FROM txnlog WHERE zxid > ? ORDER BY zxid LIMIT ?",
                    (last, _PAGE),
                ).fetchall()
            if not page:
                return
            for row in page:
                if stored_row_crc(*row[:6]) != row[6]:
                    self._cut(row[0])
                    return
                yield LogRecord(*row[:6])
                last = row[0]

    def _cut(self, zxid: int) -> None:
        if self.readonly:
            log.warning("%s: txnlog row at zxid 0x%x fails its crc check; "
                        "stopping there (read-only, not cut)", self.path, zxid)
            return
        with self._lock, self._transaction() as conn:
            removed = conn.execute("DELETE FROM txnlog WHERE zxid >= ?", (zxid,)).rowcount
        log.warning("%s: txnlog row at zxid 0x%x fails its crc check; "
                    "cut it and every later row (%d in all)", self.path, zxid, removed)

    def last_zxid(self) -> int:
        """Does not check crcs: replay with records() first to cut a bad tail."""
        with self._lock:
            (zxid,) = self._db.conn.execute("SELECT max(zxid) FROM txnlog").fetchone()
        return zxid or 0

    def truncate_after(self, zxid: int) -> int:
        """Drops the txns a new leader never committed (TRUNC); returns how many."""
        self._check_writable()
        with self._lock, self._transaction() as conn:
            return conn.execute("DELETE FROM txnlog WHERE zxid > ?", (zxid,)).rowcount

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        """Durable on return: epochs must survive a crash to keep ZAB's promises."""
        self._check_writable()
        with self._lock, self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "WriteAheadLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
