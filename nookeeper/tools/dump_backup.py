"""`nk-dump DATA_DIR --backup FILE`: a consistent copy of a server's database, online.

SQLite's backup API copies the whole file in one step, that is inside one
read transaction of a read-only connection: the copy is the database as it
was at one moment, a commit boundary, however busy the server is. In WAL
journal mode (the server's) a reader never holds up the writer, so the
server keeps committing meanwhile; its checkpoints merely leave alone the
pages the backup still reads.

The copy is written beside FILE under a temporary name, turned into a
self-contained file (rollback journal, so no -wal beside it; vacuumed, so
no free pages), synced, and only then given its name, which must be new:
a backup never overwrites anything, and a failed one leaves nothing behind.
"""

import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

from nookeeper.tools.dump_source import (
    BUSY_TIMEOUT_S, LogDatabase, UnreadableDatabase, database_path,
)


class BackupError(Exception):
    """The backup could not be made; the message says why, on one line."""


class BackupInfo(NamedTuple):
    source: Path
    path: Path
    bytes: int
    zxid: int                  # the last txn the copy holds (its newest snapshot's without a log)
    log_first: int | None      # the log's first and last zxid in the copy; None: empty log
    log_last: int | None
    log_txns: int
    snapshots: list            # SnapshotInfo, oldest first
    accepted_epoch: int
    current_epoch: int


def backup(source, target) -> BackupInfo:
    """Copies the database of `source` (a data dir or its nookeeper.db) to the new file `target`."""
    path = database_path(source)
    target = Path(target)
    if target.exists() or target.is_symlink():
        raise BackupError(f"{target}: already exists; a backup is written to a new file only")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    # Opening it checks that it is a nookeeper database before anything is written.
    LogDatabase(path).close()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _copy(path, partial)
        try:
            os.link(partial, target)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            raise BackupError(f"{target}: already exists; a backup is written to a new "
                              "file only") from None
        _fsync_dir(target.parent)
    finally:
        _remove(partial)
    return describe(target, source=path)


def _copy(path, partial):
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        src = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as e:
        raise UnreadableDatabase(f"{path}: cannot open: {e}") from None
    try:
        dst = sqlite3.connect(str(partial), isolation_level=None)
        try:
            # pages=-1: every page in one step, so in one read transaction.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            dst.execute("VACUUM")
        except sqlite3.Error as e:
            raise BackupError(f"copying {path} failed: {e}") from None
        finally:
            dst.close()
    finally:
        src.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path):
    for name in (path, Path(f"{path}-journal")):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def describe(path, source=None) -> BackupInfo:
    """What a backup file (or any nookeeper database) holds."""
    with LogDatabase(path) as db:
        view = db.overview()
        last = db.last_zxid()
        txns = db.row_count()
        meta = db.meta()
    newest = view.snapshots[-1].zxid if view.snapshots else 0
    return BackupInfo(
        source=Path(source) if source is not None else None, path=Path(path),
        bytes=Path(path).stat().st_size, zxid=max(last or 0, newest),
        log_first=view.first, log_last=last, log_txns=txns, snapshots=view.snapshots,
        accepted_epoch=_int(meta.get("acceptedEpoch")),
        current_epoch=_int(meta.get("currentEpoch")))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
