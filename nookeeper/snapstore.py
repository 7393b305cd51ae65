"""Snapshots kept beside the txn log, in the same SQLite file.

A snapshot is a row in ``snapshots`` (written last, so its presence means
every chunk is in) plus its chunks in ``snapshot_chunks``. Chunks go in a
few per transaction, so a big snapshot never holds the database's write
lock for more than a moment and the log writer's commits slip in between.
Start-up takes the newest snapshot whose crc checks and falls back to older
ones; purging keeps the newest few and the log after the oldest of them.
"""

import logging
import zlib
from typing import Iterable, NamedTuple

from nookeeper import snapshot
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.tree import DataTree
from nookeeper.wal import LogRecord, WriteAheadLog, insert_records
from nookeeper.zab.zxid import fmt

log = logging.getLogger(__name__)

_CHUNKS_PER_COMMIT = 8


class SnapshotInfo(NamedTuple):
    zxid: int
    time: int      # ms since the epoch when it was written
    nodes: int
    size: int      # bytes over all chunks
    chunks: int
    crc: int


class SnapshotStore:
    def __init__(self, wal: WriteAheadLog):
        self.wal = wal
        if not wal.readonly:
            with wal.writing() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS snapshots (zxid INTEGER PRIMARY KEY, "
                             "time INTEGER NOT NULL, nodes INTEGER NOT NULL, "
                             "size INTEGER NOT NULL, chunks INTEGER NOT NULL, "
                             "crc INTEGER NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS snapshot_chunks (zxid INTEGER NOT NULL, "
                             "seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (zxid, seq))")
                # Chunks of a snapshot whose writer died before its row.
                conn.execute("DELETE FROM snapshot_chunks WHERE zxid NOT IN "
                             "(SELECT zxid FROM snapshots)")

    def _has_tables(self) -> bool:
        return bool(self.wal.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'"))

    def infos(self) -> list[SnapshotInfo]:
        """Complete snapshots, newest first."""
        if not self._has_tables():
            return []
        rows = self.wal.query("SELECT zxid, time, nodes, size, chunks, crc FROM snapshots "
                              "ORDER BY zxid DESC")
        return [SnapshotInfo(*row) for row in rows]

    def chunks(self, zxid: int) -> list[bytes]:
        """Every chunk of one snapshot, checked against its crc."""
        rows = self.wal.query("SELECT chunks, crc FROM snapshots WHERE zxid = ?", (zxid,))
        if not rows:
            raise CorruptSnapshot(f"no snapshot at zxid {fmt(zxid)}")
        count, crc = rows[0]
        data = [bytes(row[0]) for row in self.wal.query(
            "SELECT data FROM snapshot_chunks WHERE zxid = ? ORDER BY seq", (zxid,))]
        if len(data) != count:
            raise CorruptSnapshot(f"snapshot {fmt(zxid)} has {len(data)} of {count} chunks")
        if snapshot.crc_of(data) != crc:
            raise CorruptSnapshot(f"snapshot {fmt(zxid)} fails its crc check")
        return data

    def load(self, zxid: int, tree: DataTree | None = None) -> DataTree:
        tree = snapshot.decode(self.chunks(zxid), tree)
        if tree.last_zxid != zxid:
            raise CorruptSnapshot(f"snapshot {fmt(zxid)} holds a tree at {fmt(tree.last_zxid)}")
        return tree

    def load_newest(self, make_tree=DataTree, at_most: int | None = None):
        """(zxid, tree) of the newest readable snapshot (at or below at_most),
        or (0, None) when there is none; a bad one is logged and skipped."""
        for info in self.infos():
            if at_most is not None and info.zxid > at_most:
                continue
            try:
                return info.zxid, self.load(info.zxid, make_tree())
            except CorruptSnapshot as e:
                log.warning("%s: skipping snapshot at zxid %s: %s", self.wal.path, fmt(info.zxid), e)
        return 0, None

    def save(self, zxid: int, time_ms: int, nodes: int, chunks: Iterable[bytes]) -> SnapshotInfo:
        """Writes the chunks as they come; the snapshot exists once this returns."""
        with self.wal.writing() as conn:
            conn.execute("DELETE FROM snapshot_chunks WHERE zxid = ?", (zxid,))
        crc, size, seq, batch = 0, 0, 0, []
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            batch.append((zxid, seq, chunk))
            seq += 1
            if len(batch) >= _CHUNKS_PER_COMMIT:
                self._insert_chunks(batch)
                batch = []
        if batch:
            self._insert_chunks(batch)
        info = SnapshotInfo(zxid, time_ms, nodes, size, seq, crc)
        with self.wal.writing() as conn:
            conn.execute("INSERT OR REPLACE INTO snapshots (zxid, time, nodes, size, chunks, crc) "
                         "VALUES (?, ?, ?, ?, ?, ?)", info)
        return info

    def _insert_chunks(self, batch):
        with self.wal.writing() as conn:
            conn.executemany("INSERT INTO snapshot_chunks (zxid, seq, data) VALUES (?, ?, ?)", batch)

    def install(self, zxid: int, time_ms: int, chunks: list[bytes],
                records: list[LogRecord]) -> None:
        """A leader's snapshot and the log after it replace everything here, atomically."""
        nodes = snapshot.read_header(chunks[0]).nodes if chunks else 0
        with self.wal.writing() as conn:
            conn.execute("DELETE FROM snapshot_chunks")
            conn.execute("DELETE FROM snapshots")
            conn.execute("DELETE FROM txnlog")
            if chunks:
                conn.executemany("INSERT INTO snapshot_chunks (zxid, seq, data) VALUES (?, ?, ?)",
                                 [(zxid, seq, chunk) for seq, chunk in enumerate(chunks)])
                conn.execute("INSERT INTO snapshots (zxid, time, nodes, size, chunks, crc) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (zxid, time_ms, nodes, sum(map(len, chunks)), len(chunks),
                              snapshot.crc_of(chunks)))
            insert_records(conn, records)

    def purge(self, retain: int, batch: int | None = None) -> tuple[int, int]:
        """Keeps the newest `retain` snapshots and the log after the oldest kept.
        Log rows go `batch` at a time, so the log writer never waits long.
        Returns (snapshots removed, log rows removed)."""
        kept = [info.zxid for info in self.infos()[:retain]]
        if len(kept) < retain or not kept:
            return 0, 0
        oldest = kept[-1]
        with self.wal.writing() as conn:
            gone = conn.execute("DELETE FROM snapshots WHERE zxid < ?", (oldest,)).rowcount
            conn.execute("DELETE FROM snapshot_chunks WHERE zxid < ?", (oldest,))
        rows = 0
        while True:
            with self.wal.writing() as conn:
                if batch is None:
                    removed = conn.execute("DELETE FROM txnlog WHERE zxid <= ?", (oldest,)).rowcount
                else:
                    removed = conn.execute(
                        "DELETE FROM txnlog WHERE zxid IN (SELECT zxid FROM txnlog "
                        "WHERE zxid <= ? ORDER BY zxid LIMIT ?)", (oldest, batch)).rowcount
            rows += removed
            if batch is None or removed < batch:
                return gone, rows
