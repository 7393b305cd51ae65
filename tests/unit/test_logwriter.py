"""LogWriter: appends written in order, by the wal-writer thread or by a caller that kept one."""

import threading

from nookeeper.server.logwriter import LogWriter
from nookeeper.txn import Txn
from nookeeper.wal import WriteAheadLog
from nookeeper.wire.txn import encode_txn


def payload(zxid):
    return encode_txn(Txn(zxid, 0, 1, zxid, -11, (), None))


def writer_on(tmp_path):
    reports = []
    reported = threading.Condition()

    def on_logged(upto, generation):
        with reported:
            reports.append((upto, threading.current_thread().name))
            reported.notify_all()

    wal = WriteAheadLog(str(tmp_path / "log.db"))
    writer = LogWriter(wal, on_logged, lambda message: reports.append(("fatal", message)))
    writer.start()
    return wal, writer, reports, reported


def test_a_kept_append_is_written_by_the_thread_that_kept_it(tmp_path):
    wal, writer, reports, _ = writer_on(tmp_path)
    try:
        writer.persist(((1, payload(1)),), 0, 1, may_keep=True)
        assert reports == []  # nothing written until the keeper runs it
        writer.run_kept()
        assert reports == [(1, threading.current_thread().name)]
        assert [r.zxid for r in wal.records(after_zxid=0)] == [1]
    finally:
        writer.stop()
        wal.close()


def test_an_append_queued_behind_a_kept_one_waits_for_it(tmp_path):
    wal, writer, reports, reported = writer_on(tmp_path)
    try:
        writer.persist(((1, payload(1)),), 0, 1, may_keep=True)
        # Kept but not yet written: the next append may not be kept, and the
        # wal-writer thread must not write it first.
        writer.persist(((2, payload(2)),), 0, 2, may_keep=True)
        with reported:
            assert not reported.wait_for(lambda: reports, timeout=0.3)
        writer.run_kept()
        with reported:
            assert reported.wait_for(lambda: len(reports) == 2, timeout=5)
        assert [upto for upto, _ in reports] == [1, 2]
        assert reports[1][1] == "wal-writer"
        assert [r.zxid for r in wal.records(after_zxid=0)] == [1, 2]
    finally:
        writer.stop()
        wal.close()


def test_nothing_is_kept_while_the_writer_has_work(tmp_path):
    wal, writer, reports, reported = writer_on(tmp_path)
    try:
        gate = threading.Event()
        started = threading.Event()

        def slow(wal_):
            started.set()
            gate.wait(5)

        thread = threading.Thread(target=writer.run_sync, args=(slow,))
        thread.start()
        assert started.wait(5)
        writer.persist(((1, payload(1)),), 0, 1, may_keep=True)
        writer.run_kept()  # nothing kept: it is queued behind the disk operation
        assert reports == []
        gate.set()
        thread.join(5)
        with reported:
            assert reported.wait_for(lambda: reports, timeout=5)
        assert reports == [(1, "wal-writer")]
    finally:
        writer.stop()
        wal.close()
