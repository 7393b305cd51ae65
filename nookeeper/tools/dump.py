"""`nk-dump DATA_DIR_OR_DB`: read a server's write-ahead log and snapshots.

Lists txns (filtered by zxid, session, path, type), the history of one
path, the snapshots, the tree as it was at any zxid the log still covers,
and verifies crcs, zxid succession and snapshots. Safe on the database of a
running server: everything is read through dump_source's read-only view.
Also backs a database up while its server runs (dump_backup.py) and seeds a
new data directory from a backup or a --tree-at JSON export (restore.py).

Exit status: 0 done; 1 --verify found a problem; 2 bad arguments, or a
database that cannot be read or cannot answer (purged too far back, say);
141 when stdout was closed early (`| head`).
"""

import argparse
import os
import sys
import time
from functools import partial

from nookeeper import version_text
from nookeeper.snapshot import CorruptSnapshot
from nookeeper.tools import dump_render as render
from nookeeper.tools import restore as restoring
from nookeeper.tools.dump_backup import BackupError, backup
from nookeeper.tools.dump_filter import Filter, parse_path, parse_session
from nookeeper.tools.dump_replay import (
    LogDoesNotReach, Timeline, check_chunks, choose_base, earliest_base, snapshot_tree,
)
from nookeeper.tools.dump_source import LogDatabase, UnreadableDatabase
from nookeeper.tools.dump_txns import parse_types
from nookeeper.tools.dump_verify import LogCheck, first_row_follows, snapshot_problem, summary
from nookeeper.tools.dump_zxid import follows, parse_zxid, show
from nookeeper.zab.zxid import fmt

PROG = "nk-dump"
REBUILD_ATTEMPTS = 3
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2
EXIT_PIPE_CLOSED = 141


class CannotAnswer(Exception):
    """The database is fine but holds no answer to what was asked."""


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, like every other error of nk-dump."""

    def error(self, message):
        print(f"{PROG}: {message} (try {PROG} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _argument(parse):
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parse.__name__
    return convert


def build_parser():
    parser = _Parser(
        prog=PROG,
        description="Read a nookeeper server's write-ahead log and snapshots "
                    "(read-only; safe while the server runs).",
        epilog="zxids may be written 0x100000005, 4294967301 or 1:5 (epoch:counter). "
               "Exit status: 0 ok, 1 --verify found a problem, 2 bad input.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("database", metavar="DATA_DIR_OR_DB",
                        help="a server's data_dir, or its nookeeper.db file (a backup file too; "
                             "with --restore also a --tree-at JSON export, - for stdin)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--history", metavar="PATH", type=_argument(parse_path),
                      help="every txn that touched PATH (multi sub-ops and the ephemerals a "
                           "closeSession removed included), oldest first")
    mode.add_argument("--tree-at", metavar="ZXID", type=_argument(parse_zxid),
                      help="the tree as it was right after ZXID, rebuilt from the nearest "
                           "snapshot at or below it and the log after it")
    mode.add_argument("--snapshots", action="store_true",
                      help="list the snapshots: zxid, time, nodes, size, chunks, crc check")
    mode.add_argument("--verify", action="store_true",
                      help="check row crcs and bodies, zxid succession and every snapshot; "
                           "exit 1 naming the first bad row")
    mode.add_argument("--backup", metavar="FILE",
                      help="copy the database to the new file FILE, consistently, while its "
                           "server runs (SQLite's backup API), and say up to which zxid it goes")
    mode.add_argument("--restore", metavar="NEW_DATA_DIR",
                      help="seed the new or empty data directory NEW_DATA_DIR with the tree "
                           "of DATA_DIR_OR_DB (a backup, a data dir; --to ZXID for an earlier "
                           "tree) or of a --tree-at --json export: one snapshot, for a server "
                           "of a new ensemble")
    filters = parser.add_argument_group("filters (txn listing and --history)")
    filters.add_argument("--from", dest="first", metavar="ZXID", type=_argument(parse_zxid),
                         help="from this zxid on (inclusive)")
    filters.add_argument("--to", dest="last", metavar="ZXID", type=_argument(parse_zxid),
                         help="up to this zxid (inclusive); with --restore, the tree at this zxid")
    filters.add_argument("--session", metavar="ID", type=_argument(parse_session),
                         help="only txns of this session (0xHEX or decimal)")
    filters.add_argument("--path", metavar="PREFIX", type=_argument(parse_path),
                         help="only txns touching PREFIX or a node below it "
                              "(with --tree-at: print only that subtree)")
    filters.add_argument("--type", dest="types", metavar="TYPES", action="append",
                         type=_argument(parse_types),
                         help="only these txn types, comma separated: create, delete, setData, "
                              "setACL, multi, create2, createContainer, deleteContainer, "
                              "createTTL, createSession, closeSession (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _check_combination(parser, args):
    if args.tree_at is not None or args.snapshots or args.verify or \
            args.backup is not None or args.restore is not None:
        mode = "--tree-at" if args.tree_at is not None else \
            "--snapshots" if args.snapshots else "--verify" if args.verify else \
            "--backup" if args.backup is not None else "--restore"
        allowed = {"path"} if args.tree_at is not None else \
            {"last"} if args.restore is not None else set()
        for name, flag in (("first", "--from"), ("last", "--to"), ("session", "--session"),
                           ("path", "--path"), ("types", "--type")):
            if getattr(args, name) is not None and name not in allowed:
                parser.error(f"{flag} does not apply to {mode}")
    if args.first is not None and args.last is not None and args.first > args.last:
        parser.error(f"--from {show(args.first)} is after --to {show(args.last)}")


class Progress:
    """One line on stderr, rewritten in place, saying how far a long run is; on a
    terminal only, so scripts and pipes see exactly what they saw before."""

    INTERVAL_S = 0.2

    def __init__(self, err):
        self.err = err
        self.on = hasattr(err, "isatty") and err.isatty()
        self._next = 0.0
        self._shown = False

    def show(self, text, now=False):
        """text: a string, or a function making it (called only when shown)."""
        if not self.on:
            return
        clock = time.monotonic()
        if not now and clock < self._next:
            return
        self._next = clock + self.INTERVAL_S
        self.err.write(f"\r\x1b[K{PROG}: {text() if callable(text) else text}")
        self.err.flush()
        self._shown = True

    def clear(self):
        if self._shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._shown = False


class Output:
    """Where lines and warnings go; a warning flushes the lines before it, so
    that on a terminal it appears where it happened."""

    def __init__(self, out, err, as_json):
        self.out = out
        self.err = err
        self.as_json = as_json

    def line(self, text):
        print(text, file=self.out)

    def warn(self, text):
        self.out.flush()
        print(f"{PROG}: warning: {text}", file=self.err)


def main(argv=None):
    """The exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_combination(parser, args)
    except SystemExit as exc:
        return exc.code
    # A path the log holds need not be printable as is: escape it rather than fail.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    output = Output(sys.stdout, sys.stderr, args.json)
    try:
        try:
            if args.backup is not None:
                status = make_backup(args.database, args.backup, output)
            elif args.restore is not None:
                status = restore(args.database, args.restore, args.last, output)
            else:
                with LogDatabase(args.database) as db:
                    status = _run(db, args, output)
        except (UnreadableDatabase, LogDoesNotReach, CannotAnswer, BackupError,
                restoring.RestoreError) as e:
            sys.stdout.flush()
            print(f"{PROG}: {e}", file=sys.stderr)
            status = EXIT_BAD_INPUT
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader is gone: point stdout at /dev/null so the flush at exit is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        return 130


def _run(db, args, output):
    if args.snapshots:
        return list_snapshots(db, output)
    if args.verify:
        return verify(db, output)
    if args.tree_at is not None:
        return print_tree_at(db, args.tree_at, args.path or "/", output)
    types = frozenset().union(*args.types) if args.types else None
    flt = Filter(first=args.first, last=args.last, session=args.session,
                 path_prefix=args.path, exact_path=args.history, types=types)
    return list_txns(db, flt, output)


def _load_snapshot(db, info):
    """A snapshot's tree, its chunks read now: CorruptSnapshot if bad or purged meanwhile."""
    return snapshot_tree(info, db.snapshot_chunks(info.zxid))


def _warn_skipped(base, output):
    for zxid, reason in base.skipped:
        output.warn(f"snapshot at {show(zxid)} skipped: {reason}")


# ---- txns -------------------------------------------------------------------

def entries(db, flt, output):
    """Every entry from the first one `flt` could match, with results where replay can give them."""
    view = db.overview()
    wanted_after = (flt.first or 0) - 1
    try:
        earliest = earliest_base(view.snapshots, view.first)
        if earliest and view.first is not None and (
                flt.exact_path is not None or flt.first is not None and flt.first < view.first):
            output.warn(f"the log starts at {show(view.first)}: older txns were purged")
        base = choose_base(view.snapshots, view.first, max(earliest, wanted_after),
                           partial(_load_snapshot, db))
    except LogDoesNotReach as e:
        output.warn(f"results not shown: {e}")
        timeline, after = Timeline(0, None, stopped=str(e)), wanted_after
    else:
        _warn_skipped(base, output)
        # Rows from the base on are replayed; rows before it (a log that starts
        # before its oldest snapshot) are still shown, without results.
        timeline, after = Timeline(base.zxid, base.tree), min(base.zxid, wanted_after)
    replay = _ListingReplay(db, view.first, timeline, output)
    for row in db.rows(after=max(after, -1), upto=flt.last):
        yield replay.step(row)


class _ListingReplay:
    """A timeline fed the rows as they are listed. On a running server a purge
    can overtake the reading: the rows it deleted are gone, so results pick up
    again from the snapshot the log now continues from."""

    def __init__(self, db, first, timeline, output):
        self.db = db
        self.first = first  # where the log started when the listing began
        self.timeline = timeline
        self.output = output
        self.resume_from = []

    def step(self, row):
        timeline = self.timeline
        if timeline.stopped is None and timeline.skips_to(row) and \
                _purged_since(self.db, self.first, timeline.zxid):
            timeline.stop("purged while it was read")
            self.resume_from = self.db.overview().snapshots
            self.output.warn(f"txns after {show(timeline.zxid)} were purged while they were "
                             "read; results resume after the next snapshot")
        if self.resume_from and timeline.stopped is not None:
            self._resume_before(row)
        running = timeline.stopped is None
        entry = timeline.step(row)
        if running and timeline.stopped is not None:
            self.output.warn(f"results from {show(row.zxid)} on not shown: {timeline.stopped}")
        return entry

    def _resume_before(self, row):
        for info in self.resume_from:
            if follows(info.zxid, row.zxid):
                try:
                    tree = _load_snapshot(self.db, info)
                except CorruptSnapshot:
                    return
                self.timeline.restart(info.zxid, tree)
                self.resume_from = []
                return


def _purged_since(db, first, zxid):
    """Whether the log now starts after both `zxid` and `first`, where it started
    when we began: a purge, not damage, removed the rows after `zxid`."""
    now = db.first_zxid()
    return now is not None and now > max(zxid, first or 0)


def list_txns(db, flt, output):
    for entry in entries(db, flt, output):
        if flt.matches(entry):
            output.line(render.entry_json(entry) if output.as_json else render.entry_text(entry))
    return 0


# ---- snapshots --------------------------------------------------------------

def list_snapshots(db, output):
    infos = db.overview().snapshots
    if not infos:
        output.warn(f"{db.path}: no snapshots")
    for info in infos:
        chunks = db.snapshot_chunks(info.zxid)
        if chunks is None:
            continue  # purged since the list was read
        try:
            check_chunks(info, chunks)
            problem = None
        except CorruptSnapshot as e:
            problem = str(e)
        output.line(render.snapshot_json(info, problem) if output.as_json
                    else render.snapshot_text(info, problem))
    return 0


# ---- the tree at a zxid -----------------------------------------------------

def tree_at(db, target, output):
    """(tree, base, txns applied after the base) as it was right after `target`.

    On a running server a purge may remove the snapshot or the log rows being
    read; when the start of the log moved meanwhile, the rebuild starts over.
    """
    for attempt in range(1, REBUILD_ATTEMPTS + 1):
        view = db.overview()
        try:
            return _rebuild(db, view, target, output)
        except LogDoesNotReach:
            if attempt == REBUILD_ATTEMPTS or db.first_zxid() == view.first:
                raise


def _rebuild(db, view, target, output):
    base = choose_base(view.snapshots, view.first, target, partial(_load_snapshot, db))
    _warn_skipped(base, output)
    timeline = Timeline(base.zxid, base.tree)
    for row in db.rows(after=base.zxid, upto=target):
        timeline.step(row)
        if timeline.stopped is not None:
            raise LogDoesNotReach(f"cannot rebuild the tree at {show(target)}: {timeline.stopped}")
    return timeline.tree, base, timeline.applied


def print_tree_at(db, target, root, output):
    tree, base, applied = tree_at(db, target, output)
    if tree.node(root) is None:
        raise CannotAnswer(f"{root} did not exist at zxid {show(target)}")
    if output.as_json:
        for line in render.tree_json(tree, root):
            output.line(line)
        return 0
    origin = "the empty tree" if base.snapshot is None else f"the snapshot at {show(base.zxid)}"
    output.line(f"# tree at zxid {show(target)}: {origin} and {applied} txns after it, "
                f"{tree.node_count} nodes; last txn applied: {fmt(tree.last_zxid)}")
    for line in render.tree_text(tree, root):
        output.line(line)
    return 0


# ---- backup and restore -----------------------------------------------------

def make_backup(source, target, output):
    info = backup(source, target)
    if output.as_json:
        output.line(render.backup_json(info))
    else:
        output.line(render.backup_text(info))
    return 0


def restore(source, target, to, output):
    info = restoring.restore(source, target, to=to,
                             rebuild=lambda db, zxid: tree_at(db, zxid, output)[0])
    if info.ephemerals_skipped:
        shown = ", ".join(info.ephemerals_skipped[:5])
        more = f" and {len(info.ephemerals_skipped) - 5} more" \
            if len(info.ephemerals_skipped) > 5 else ""
        output.warn(f"{len(info.ephemerals_skipped)} ephemeral nodes left out (an export has "
                    f"no sessions to own them): {shown}{more}")
    output.line(render.restore_json(info) if output.as_json else render.restore_text(info))
    return 0


# ---- verify -----------------------------------------------------------------

def verify(db, output):
    progress = Progress(output.err)
    try:
        problems, check, checked = _verify(db, progress)
    finally:
        progress.clear()
    for problem in problems:
        output.line(render.problem_json(problem) if output.as_json else str(problem))
    if problems:
        return EXIT_PROBLEM
    text = summary(check, checked)
    output.line(render.summary_json(check, checked, text) if output.as_json else text)
    return 0


def _verify(db, progress):
    """(problems, the log's check, snapshots checked); says how far it is on a terminal."""
    view = db.overview()
    check = LogCheck(first_row_follows(view.snapshots, view.first),
                     lambda zxid: _purged_since(db, view.first, zxid))
    total = db.row_count() if progress.on else 0
    problems = []
    for row in db.rows():
        problem = check.check(row)
        if problem is not None:
            problems.append(problem)
            break
        if progress.on and check.count % 512 == 1:
            progress.show(lambda: f"verifying the log: {check.count:,} of {total:,} txns "
                                  f"({100 * check.count // max(total, 1)}%), at zxid "
                                  f"{show(check.last)}")
    checked = 0
    for number, info in enumerate(view.snapshots, 1):
        progress.show(f"verifying snapshot {number} of {len(view.snapshots)}: zxid "
                      f"{show(info.zxid)}, {info.nodes:,} nodes, {info.size / 1e6:.1f} MB",
                      now=True)
        chunks = db.snapshot_chunks(info.zxid)
        if chunks is None:
            continue  # purged since the list was read
        checked += 1
        problem = snapshot_problem(info, chunks)
        if problem is not None:
            problems.append(problem)
    return problems, check, checked
