import logging
import sqlite3
import threading
import time

import pytest

from nookeeper.wal import LogRecord, WriteAheadLog


def rec(zxid, body=None):
    return LogRecord(zxid=zxid, time=1_700_000_000_000 + zxid, session=0x100000000 + zxid,
                     cxid=zxid % 7, type=1, body=body if body is not None else b"txn-%d" % zxid)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "wal.db"


@pytest.fixture
def wal(db_path):
    w = WriteAheadLog(db_path)
    yield w
    w.close()


def test_append_and_read_back(wal):
    wal.append([rec(1)])
    wal.append([rec(2), rec(3)])
    assert list(wal.records()) == [rec(1), rec(2), rec(3)]
    assert list(wal.records(after_zxid=2)) == [rec(3)]
    assert wal.last_zxid() == 3


def test_pragmas(wal):
    conn = wal._db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_many_records_in_one_append(wal):
    batch = [rec(z, body=bytes([z % 256]) * (z % 50)) for z in range(1, 2001)]
    wal.append(batch)
    assert list(wal.records()) == batch
    assert wal.last_zxid() == 2000


def test_empty_append_is_a_noop(wal):
    wal.append([])
    assert wal.last_zxid() == 0


def statements_of(wal, batch):
    statements = []
    wal._db.conn.set_trace_callback(statements.append)
    try:
        wal.append(batch)
    finally:
        wal._db.conn.set_trace_callback(None)
    return [s.strip().split()[0].upper() for s in statements]


def test_a_batch_that_fits_one_insert_is_that_statement_alone(wal):
    assert statements_of(wal, [rec(z) for z in range(1, 11)]) == ["INSERT"]
    assert wal._db.conn.in_transaction is False
    with WriteAheadLog.open_readonly(wal.path) as other:
        assert [r.zxid for r in other.records()] == list(range(1, 11))


def test_a_batch_of_several_inserts_commits_once(wal):
    assert statements_of(wal, [rec(z) for z in range(1, 1201)]) == [
        "BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]


def test_append_is_one_transaction(wal):
    wal.append([rec(1), rec(2)])
    with pytest.raises(sqlite3.IntegrityError):
        wal.append([rec(3), rec(4), rec(2), rec(5)])
    assert [r.zxid for r in wal.records()] == [1, 2]
    wal.append([rec(3)])
    assert wal.last_zxid() == 3


def test_reopen_replays(db_path):
    with WriteAheadLog(db_path) as w:
        w.append([rec(1), rec(2)])
        w.set_meta("currentEpoch", 3)
    with WriteAheadLog(db_path) as w:
        assert list(w.records()) == [rec(1), rec(2)]
        assert w.last_zxid() == 2
        assert w.get_meta("currentEpoch") == 3
        w.append([rec(3)])
        assert [r.zxid for r in w.records()] == [1, 2, 3]


def test_corrupt_row_is_cut_with_every_later_row(db_path, caplog):
    with WriteAheadLog(db_path) as w:
        w.append([rec(z) for z in range(1, 6)])
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE txnlog SET body = ? WHERE zxid = 3", (b"tampered",))
    raw.commit()
    raw.close()
    with WriteAheadLog(db_path) as w:
        with caplog.at_level(logging.WARNING, logger="nookeeper.wal"):
            assert [r.zxid for r in w.records()] == [1, 2]
        assert w.last_zxid() == 2
        assert [r.zxid for r in w.records()] == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(db_path) in warnings[0]
    assert "0x3" in warnings[0]


def test_corrupt_row_beyond_a_page(db_path):
    with WriteAheadLog(db_path) as w:
        w.append([rec(z) for z in range(1, 1501)])
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE txnlog SET session = session + 1 WHERE zxid = 1200")
    raw.commit()
    raw.close()
    with WriteAheadLog(db_path) as w:
        assert [r.zxid for r in w.records()] == list(range(1, 1200))
        assert w.last_zxid() == 1199


def test_mangled_row_types_count_as_corrupt(db_path):
    with WriteAheadLog(db_path) as w:
        w.append([rec(1), rec(2)])
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE txnlog SET body = 'text, not a blob' WHERE zxid = 2")
    raw.commit()
    raw.close()
    with WriteAheadLog(db_path) as w:
        assert [r.zxid for r in w.records()] == [1]


def test_truncate_after(wal):
    wal.append([rec(z) for z in range(1, 6)])
    assert wal.truncate_after(3) == 2
    assert [r.zxid for r in wal.records()] == [1, 2, 3]
    assert wal.truncate_after(0) == 3
    assert wal.last_zxid() == 0


def test_meta(db_path):
    with WriteAheadLog(db_path) as w:
        assert w.get_meta("acceptedEpoch") is None
        assert w.get_meta("acceptedEpoch", 0) == 0
        w.set_meta("acceptedEpoch", 1)
        w.set_meta("acceptedEpoch", 2)
        w.set_meta("name", "node1")
        w.set_meta("blob", b"\x00\x01")
    with WriteAheadLog(db_path) as w:
        assert w.get_meta("acceptedEpoch") == 2
        assert w.get_meta("name") == "node1"
        assert w.get_meta("blob") == b"\x00\x01"


def test_last_zxid_empty(wal):
    assert wal.last_zxid() == 0
    assert list(wal.records()) == []


def test_readonly_cannot_write(db_path, wal):
    wal.append([rec(1)])
    with WriteAheadLog.open_readonly(db_path) as ro:
        assert list(ro.records()) == [rec(1)]
        with pytest.raises(PermissionError):
            ro.append([rec(2)])
        with pytest.raises(PermissionError):
            ro.set_meta("k", 1)


def test_readonly_does_not_cut(db_path, wal, caplog):
    wal.append([rec(1), rec(2)])
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE txnlog SET body = x'00' WHERE zxid = 2")
    raw.commit()
    raw.close()
    with WriteAheadLog.open_readonly(db_path) as ro:
        with caplog.at_level(logging.WARNING, logger="nookeeper.wal"):
            assert [r.zxid for r in ro.records()] == [1]
    assert "0x2" in caplog.text
    assert wal._db.conn.execute("SELECT count(*) FROM txnlog").fetchone()[0] == 2


def test_readonly_after_writer_closed(db_path):
    with WriteAheadLog(db_path) as w:
        w.append([rec(1)])
    with WriteAheadLog.open_readonly(db_path) as ro:
        assert ro.last_zxid() == 1


def test_reader_does_not_block_writer(db_path, wal):
    wal.append([rec(1)])
    with WriteAheadLog.open_readonly(db_path) as ro:
        reader = ro._db.conn
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM txnlog").fetchone()[0] == 1
        start = time.monotonic()
        wal.append([rec(2), rec(3)])
        assert time.monotonic() - start < 1.0
        # The open read keeps its snapshot; a new one sees the commit.
        assert reader.execute("SELECT count(*) FROM txnlog").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert ro.last_zxid() == 3


def test_writer_does_not_block_reader(db_path, wal):
    wal.append([rec(1)])
    # Hold a write transaction open, as append does while it fsyncs.
    conn = wal._db.conn
    with wal._lock:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO txnlog (zxid, time, session, cxid, type, body, crc) "
                     "VALUES (9, 0, 0, 0, 0, x'', 0)")
        with WriteAheadLog.open_readonly(db_path) as ro:
            start = time.monotonic()
            assert [r.zxid for r in ro.records()] == [1]
            assert time.monotonic() - start < 1.0
        conn.execute("ROLLBACK")
    assert wal.last_zxid() == 1


def test_shared_between_threads(wal):
    def write(base):
        for i in range(20):
            wal.append([rec(base + i)])

    threads = [threading.Thread(target=write, args=(b,)) for b in (1, 101, 201)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(wal.records())) == 60


def test_a_batch_larger_than_one_insert_statement_is_all_there(wal):
    """Batches go in as multi-row INSERTs of up to 500 rows; 1201 rows take three."""
    batch = [rec(z) for z in range(1, 1202)]
    wal.append(batch)
    assert list(wal.records()) == batch


def test_a_duplicate_in_a_later_statement_writes_nothing_of_the_batch(wal):
    wal.append([rec(900)])
    with pytest.raises(sqlite3.IntegrityError):
        wal.append([rec(z) for z in range(1, 1001)])
    assert [r.zxid for r in wal.records()] == [900]
