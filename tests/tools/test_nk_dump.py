"""bin/nk-dump on logs written by real servers through kazoo, run as a child process."""

import base64
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT, wait_for
from nookeeper import snapshot
from nookeeper.tools.dump import Output, entries
from nookeeper.tools.dump_filter import Filter, under
from nookeeper.tools.dump_source import PAGE_ROWS, LogDatabase
from nookeeper.tools.dump_verify import succession_problem
from nookeeper.tools.dump_zxid import follows, parse_zxid
from nookeeper.zab.zxid import fmt

U64 = 1 << 64
NK_DUMP = ROOT / "bin" / "nk-dump"


def run_dump(*args, timeout=60):
    """bin/nk-dump ARGS... once, as a child process; a CompletedProcess (text)."""
    return subprocess.run([sys.executable, str(NK_DUMP), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def copy_db(server, target: Path) -> Path:
    """SQLite's backup reads one consistent view, the -wal file's txns included."""
    source = sqlite3.connect(f"file:{server.workdir / 'data' / 'nookeeper.db'}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    copy.execute("PRAGMA journal_mode=WAL")  # as the server keeps it
    source.close()
    copy.close()
    return target


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def lines(result):
    return ok(result).splitlines()


def json_lines(result):
    return parse_json_lines(ok(result))


def parse_json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def zxids_of(result):
    """The zxid column of a text listing (sub-op lines start with spaces)."""
    return [parse_zxid(line.split()[0]) for line in lines(result) if not line.startswith(" ")]


def hexs(session):
    return f"0x{session % U64:x}"


def db_rows(data_dir, sql, params=()):
    conn = sqlite3.connect(f"file:{data_dir / 'nookeeper.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ---- the pure parts ---------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("0x100000005", (1 << 32) | 5), ("0X1A", 26), ("4294967301", (1 << 32) | 5),
    ("1:5", (1 << 32) | 5), ("0:0", 0), (" 2:1 ", (2 << 32) | 1),
])
def test_zxids_parse_in_three_forms(text, value):
    assert parse_zxid(text) == value


@pytest.mark.parametrize("text", ["", "0x", "0xg1", "-5", "1:", ":1", "1:2:3", "1:-2",
                                  "1:4294967296", "abc", "1.5", "0x8000000000000000"])
def test_bad_zxids_are_refused(text):
    with pytest.raises(ValueError, match="zxid"):
        parse_zxid(text)


def test_zxid_succession_steps_by_one_and_restarts_at_one_in_a_new_epoch():
    e1, e3 = 1 << 32, 3 << 32
    assert follows(0, e1 | 1) and follows(e1 | 4, e1 | 5) and follows(e1 | 9, e3 | 1)
    assert not follows(0, e1 | 2)
    assert not follows(e1 | 4, e1 | 6)
    assert not follows(e1 | 4, e1 | 4)
    assert not follows(e1 | 9, e3 | 2)
    assert not follows(e3 | 1, e1 | 2)


@pytest.mark.parametrize("previous, zxid, message", [
    ("1:4", "1:7", "does not follow 1:4: 2 txns are missing (1:5 to 1:6)"),
    ("1:4", "1:6", "does not follow 1:4: 1:5 is missing"),
    ("1:4", "1:4", "does not follow 1:4: zxids must increase"),
    ("2:4", "1:5", "does not follow 2:4: its epoch is older"),
    ("1:4", "3:2", "does not follow 1:4: a new epoch starts at counter 1, this one at 2"),
    ("0:0", "1:2", "does not follow 0:0: a new epoch starts at counter 1, this one at 2"),
])
def test_succession_problems_say_what_is_wrong(previous, zxid, message):
    assert succession_problem(parse_zxid(previous), parse_zxid(zxid)) == message
    assert succession_problem(parse_zxid(previous), parse_zxid(previous) + 1) is None


def test_path_prefixes_match_whole_components():
    assert under("/app", "/app") and under("/app/x/y", "/app") and under("/anything", "/")
    assert not under("/apple", "/app")


# ---- listing ----------------------------------------------------------------

def test_listing_shows_each_txn_with_time_session_type_path_sizes_and_result(story):
    z, s = story.zxid, story.sessions
    out = lines(run_dump(story.data_dir))
    by_zxid = {parse_zxid(line.split()[0]): line for line in out if not line.startswith(" ")}
    assert len(by_zxid) == db_rows(story.data_dir, "SELECT count(*) FROM txnlog")[0][0]

    create_a = by_zxid[z["create_a"]].split()
    assert create_a[:2] == [fmt(z["create_a"]), hex(z["create_a"])]
    assert create_a[3:6] == [hexs(s["zk1"]), "create", "/app/a"]
    assert create_a[6:] == [f"payload={_payload(story, z['create_a'])}", "data=5", "ok"]
    assert create_a[2].endswith("Z") and "T" in create_a[2]

    assert by_zxid[z["set_a"]].split()[4:] == [
        "setData", "/app/a", f"payload={_payload(story, z['set_a'])}", "data=6", "ok"]
    assert by_zxid[z["seq"]].split()[5] == story.seq_path, "the path the sequential create made"
    assert by_zxid[z["dup"]].split()[-1] == "NodeExistsError"
    assert "BadVersionError (op 2)" in by_zxid[z["bad_multi"]]
    assert by_zxid[z["delete_m1"]].split()[4:6] == ["delete", "/app/m1"]
    assert [line.split()[4] for line in by_zxid.values()].count("createSession") == 3

    multi_at = out.index(by_zxid[z["multi"]])
    assert by_zxid[z["multi"]].split()[4:6] == ["multi", "-"]
    assert [line.split() for line in out[multi_at + 1:multi_at + 4]] == [
        ["-", "create", "/app/m1", "data=1", "ok"],
        ["-", "setData", "/app/a", "data=1", "ok"],
        ["-", "delete", story.seq_path, "ok"],
    ]
    close_at = out.index(by_zxid[z["close_zk2"]])
    assert by_zxid[z["close_zk2"]].split()[3:5] == [hexs(s["zk2"]), "closeSession"]
    assert out[close_at + 1].split() == ["-", "delete", "/app/eph", "(ephemeral)", "ok"]
    assert fmt(z["epoch2_set"]).startswith("2:"), "the restart began a new epoch"


def _payload(story, zxid):
    return db_rows(story.data_dir, "SELECT length(body) FROM txnlog WHERE zxid = ?", (zxid,))[0][0]


def test_json_gives_one_object_per_txn_with_every_field(story):
    z = story.zxid
    entries = json_lines(run_dump(story.data_dir, "--json"))
    rows = db_rows(story.data_dir, "SELECT zxid, length(body), time FROM txnlog ORDER BY zxid")
    assert [(e["zxid_int"], e["payload_bytes"], e["time_ms"]) for e in entries] == rows
    for entry in entries:
        assert parse_zxid(entry["zxid"]) == parse_zxid(entry["zxid_hex"]) == entry["zxid_int"]
        assert entry["problem"] is None and entry["result"] is not None
    by_zxid = {e["zxid_int"]: e for e in entries}
    create_a = by_zxid[z["create_a"]]
    assert (create_a["type"], create_a["path"], create_a["data_bytes"], create_a["result"]) == \
        ("create", "/app/a", 5, "ok")
    assert create_a["time_ms"] == story.view_at_mid["/app/a"][1]["ctime"]
    assert create_a["session"] == hexs(story.sessions["zk1"])
    assert [(op["type"], op["path"], op["result"]) for op in by_zxid[z["bad_multi"]]["ops"]] == [
        ("create", "/app/m2", "rolled back"), ("check", "/app/a", "BadVersionError")]
    assert by_zxid[z["close_zk2"]]["ops"] == [
        {"type": "delete", "path": "/app/eph", "data_bytes": None, "result": "ok",
         "ephemeral": True}]


def test_from_and_to_take_hex_decimal_and_epoch_counter(story):
    z = story.zxid
    outputs = {ok(run_dump(story.data_dir, "--from", form(z["set_a"]), "--to", form(z["multi"])))
               for form in (hex, str, fmt)}
    assert len(outputs) == 1
    shown = zxids_of(run_dump(story.data_dir, "--from", fmt(z["set_a"]), "--to", hex(z["multi"])))
    assert shown == list(range(z["set_a"], z["multi"] + 1))


def test_session_filter(story):
    z, zk2 = story.zxid, story.sessions["zk2"]
    result = run_dump(story.data_dir, "--session", hexs(zk2), "--json")
    assert [(e["type"], e["zxid_int"]) for e in json_lines(result)] == [
        ("createSession", z["app"] - 1), ("create", z["eph"]), ("closeSession", z["close_zk2"])]
    assert ok(run_dump(story.data_dir, "--session", str(zk2), "--json")) == result.stdout


def test_path_filter_is_by_whole_components(story):
    under_app = json_lines(run_dump(story.data_dir, "--path", "/app", "--json"))
    assert under_app and not any(e["path"] == "/apple" for e in under_app)
    assert any(e["type"] == "closeSession" for e in under_app), "it removed /app/eph"
    assert [e["zxid_int"] for e in json_lines(run_dump(story.data_dir, "--path", "/apple",
                                                       "--json"))] == [story.zxid["apple"]]


def test_type_filter(story):
    z = story.zxid
    assert zxids_of(run_dump(story.data_dir, "--type", "multi")) == [z["multi"], z["bad_multi"]]
    sessions = json_lines(run_dump(story.data_dir, "--type", "createSession,closeSession",
                                   "--json"))
    assert sorted(e["type"] for e in sessions) == ["closeSession"] * 2 + ["createSession"] * 3
    mixed = json_lines(run_dump(story.data_dir, "--type", "SETDATA", "--type", "delete", "--json"))
    assert [(e["type"], e["path"]) for e in mixed] == [
        ("setData", "/app/a"), ("delete", "/app/m1"), ("setData", "/app/a")]


def test_filters_combine(story):
    z = story.zxid
    assert zxids_of(run_dump(story.data_dir, "--path", "/app/a", "--type", "setData",
                             "--from", fmt(z["multi"]))) == [z["epoch2_set"]]


# ---- history and the tree at a zxid ------------------------------------------

def test_history_of_a_path_includes_multi_and_session_close(story):
    z = story.zxid
    assert zxids_of(run_dump(story.data_dir, "--history", "/app/a")) == [
        z["create_a"], z["set_a"], z["multi"], z["dup"], z["bad_multi"], z["epoch2_set"]]
    assert zxids_of(run_dump(story.data_dir, "--history", "/app/eph")) == [z["eph"], z["close_zk2"]]
    assert zxids_of(run_dump(story.data_dir, "--history", story.seq_path)) == [z["seq"], z["multi"]]
    assert ok(run_dump(story.data_dir, "--history", "/never/there")) == ""


def test_tree_at_an_earlier_zxid_is_what_kazoo_saw_then(story):
    nodes = json_lines(run_dump(story.data_dir, "--tree-at", fmt(story.zxid["set_a"]),
                                "--path", "/app", "--json"))
    seen = {n["path"]: (base64.b64decode(n["data_base64"]), n["stat"]) for n in nodes}
    assert seen == story.view_at_mid

    text = lines(run_dump(story.data_dir, "--tree-at", hex(story.zxid["eph"]), "--path", "/app"))
    assert text[0].startswith(f"# tree at zxid {fmt(story.zxid['eph'])} ")
    assert "the empty tree and" in text[0]
    assert text[1].startswith("/app  data=4 version=0 children=3 ")
    assert f"  eph  data=1 version=0 children=0 mzxid={fmt(story.zxid['eph'])} " \
           f"ephemeral={hexs(story.sessions['zk2'])}" in text


def test_tree_at_follows_the_log_across_epochs(story):
    nodes = {n["path"]: n for n in json_lines(run_dump(
        story.data_dir, "--tree-at", fmt(story.zxid["epoch2_set"]), "--json"))}
    assert base64.b64decode(nodes["/app/a"]["data_base64"]) == b"epoch two"
    assert "/app/eph" not in nodes and "/app/m1" not in nodes and "/apple" in nodes
    gone = run_dump(story.data_dir, "--tree-at", fmt(story.zxid["close_zk2"]), "--path", "/app/eph")
    assert gone.returncode == 2 and "did not exist" in gone.stderr


# ---- verify -----------------------------------------------------------------

def test_verify_passes_a_clean_log(story):
    out = lines(run_dump(story.data_dir, "--verify"))
    count = db_rows(story.data_dir, "SELECT count(*) FROM txnlog")[0][0]
    assert len(out) == 1
    assert out[0].startswith(f"ok: {count} txns from 1:1 ")
    assert f"to {fmt(story.zxid['epoch2_set'])} " in out[0]
    (summary,) = json_lines(run_dump(story.data_dir, "--verify", "--json"))
    assert summary["ok"] is True and summary["txns"] == count
    assert summary["last"] == fmt(story.zxid["epoch2_set"])


def _flip(conn, zxid, at=-3):
    (body,) = conn.execute("SELECT body FROM txnlog WHERE zxid = ?", (zxid,)).fetchone()
    body = bytearray(body)
    body[at] ^= 0x5A
    conn.execute("UPDATE txnlog SET body = ? WHERE zxid = ?", (bytes(body), zxid))


def test_verify_names_the_first_corrupted_row(story, tmp_path):
    z = story.zxid
    copy = copy_db(story.server, tmp_path / "copy.db")
    with sqlite3.connect(copy) as conn:
        _flip(conn, z["multi"])
        _flip(conn, z["delete_m1"])
        (rowid,) = conn.execute("SELECT rowid FROM txnlog WHERE zxid = ?", (z["multi"],)).fetchone()
    result = run_dump(copy, "--verify")
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"BAD row zxid {fmt(z['multi'])} ({hex(z['multi'])}) rowid {rowid}: "
                           "crc mismatch (stored 0x")

    listing = run_dump(copy)
    assert listing.returncode == 0
    bad = [line for line in listing.stdout.splitlines() if line.startswith(fmt(z["multi"]) + " ")]
    assert "BAD: crc mismatch" in bad[0]
    assert f"results from {fmt(z['multi'])} " in listing.stderr
    after = [line for line in listing.stdout.splitlines()
             if not line.startswith(" ") and parse_zxid(line.split()[0]) > z["multi"]]
    assert after and all("  ?" in line for line in after), "no results past a bad row"

    assert ok(run_dump(copy, "--tree-at", fmt(z["seq"]), "--path", story.seq_path))
    past = run_dump(copy, "--tree-at", fmt(z["dup"]))
    assert past.returncode == 2 and f"the row at {fmt(z['multi'])} " in past.stderr


def test_verify_notices_a_missing_row(story, tmp_path):
    z = story.zxid
    copy = copy_db(story.server, tmp_path / "copy.db")
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM txnlog WHERE zxid = ?", (z["dup"],))
    result = run_dump(copy, "--verify", "--json")
    assert result.returncode == 1
    (problem,) = parse_json_lines(result.stdout)
    assert problem["zxid_int"] == z["bad_multi"] and problem["rowid"] == z["bad_multi"]
    assert problem["problem"] == f"does not follow {fmt(z['multi'])}: {fmt(z['dup'])} is missing"


# ---- snapshots --------------------------------------------------------------

def test_snapshots_are_listed_with_their_checks(snapped):
    table = db_rows(snapped.data_dir, "SELECT zxid, time, nodes, size, chunks, crc FROM snapshots "
                                      "ORDER BY zxid")
    assert len(table) == 2, "snapshot_retain_count"
    listed = json_lines(run_dump(snapped.data_dir, "--snapshots", "--json"))
    assert [(s["zxid_int"], s["time_ms"], s["nodes"], s["size_bytes"], s["chunks"],
             int(s["crc"], 16)) for s in listed] == table
    assert all(s["ok"] for s in listed)
    text = lines(run_dump(snapped.data_dir, "--snapshots"))
    assert [line.split()[0] for line in text] == [fmt(row[0]) for row in table]
    assert all(line.endswith("crc ok") for line in text)


def _points_between_snapshots(snapped):
    zxids = [row[0] for row in db_rows(snapped.data_dir, "SELECT zxid FROM snapshots")]
    oldest = min(zxids)
    later = [p for p in snapped.points if p[0] > oldest and p[0] not in zxids]
    older = [p for p in snapped.points if p[0] < oldest]
    return later, older, sorted(zxids)


def test_tree_at_rebuilds_from_a_snapshot_and_the_log_after_it(snapped):
    later, _older, snapshots = _points_between_snapshots(snapped)
    assert later, "a point after the oldest kept snapshot"
    for zxid, data, stat, parent_stat, children in (later[0], later[-1]):
        result = run_dump(snapped.data_dir, "--tree-at", hex(zxid), "--path", "/s", "--json")
        nodes = {n["path"]: n for n in json_lines(result)}
        assert set(nodes) == {"/s"} | {f"/s/{name}" for name in children}
        assert nodes["/s"]["stat"] == parent_stat
        assert base64.b64decode(nodes["/s/counter"]["data_base64"]) == data
        assert nodes["/s/counter"]["stat"] == stat
        header = lines(run_dump(snapped.data_dir, "--tree-at", fmt(zxid), "--path", "/s/counter"))
        base = max(s for s in snapshots if s <= zxid)
        assert f"the snapshot at {fmt(base)} " in header[0]


def test_tree_at_before_the_purged_log_is_a_clear_error(snapped):
    _later, older, snapshots = _points_between_snapshots(snapped)
    assert older, "a point the purge left behind"
    result = run_dump(snapped.data_dir, "--tree-at", fmt(older[0][0]))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"nk-dump: zxid {fmt(older[0][0])} ({hex(older[0][0])}) is older than the log reaches: "
        f"it was purged up to the snapshot at {fmt(snapshots[0])} ({hex(snapshots[0])})")
    assert ok(run_dump(snapped.data_dir, "--tree-at", fmt(snapshots[0]), "--path", "/s/counter"))
    first = db_rows(snapped.data_dir, "SELECT min(zxid) FROM txnlog")[0][0]
    early = run_dump(snapped.data_dir, "--from", "1:1", "--to", fmt(older[0][0]))
    assert early.returncode == 0 and early.stdout == ""
    assert early.stderr == f"nk-dump: warning: the log starts at {fmt(first)} ({hex(first)}): " \
                           "older txns were purged\n"


def test_verify_passes_a_purged_log_with_snapshots(snapped):
    (line,) = lines(run_dump(snapped.data_dir, "--verify"))
    oldest = db_rows(snapped.data_dir, "SELECT min(zxid) FROM snapshots")[0][0]
    assert line.startswith("ok: ") and f"after the snapshot at {fmt(oldest)}), 2 snapshots" in line


def test_verify_holds_the_first_row_to_the_snapshot_before_it(snapped, tmp_path):
    copy = copy_db(snapped.server, tmp_path / "copy.db")
    with sqlite3.connect(copy) as conn:
        oldest = conn.execute("SELECT min(zxid) FROM snapshots").fetchone()[0]
        conn.execute("DELETE FROM txnlog WHERE zxid = (SELECT min(zxid) FROM txnlog)")
        first = conn.execute("SELECT min(zxid) FROM txnlog").fetchone()[0]
    result = run_dump(copy, "--verify")
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"BAD row zxid {fmt(first)} ({hex(first)}) rowid {first}: does not follow "
        f"{fmt(oldest)}: {fmt(oldest + 1)} is missing")


def test_listing_from_a_later_zxid_replays_from_the_nearest_snapshot(snapped):
    everything = json_lines(run_dump(snapped.data_dir, "--json"))
    assert {e["result"] for e in everything} == {"ok"}
    later, _older, _snapshots = _points_between_snapshots(snapped)
    start = later[-1][0]
    suffix = [e for e in everything if e["zxid_int"] >= start]
    assert json_lines(run_dump(snapped.data_dir, "--from", fmt(start), "--json")) == suffix


def test_verify_names_a_corrupted_snapshot_and_replay_falls_back(snapped, tmp_path):
    copy = copy_db(snapped.server, tmp_path / "copy.db")
    with sqlite3.connect(copy) as conn:
        _older, newest = [z for (z,) in conn.execute("SELECT zxid FROM snapshots ORDER BY zxid")]
        (chunk,) = conn.execute("SELECT data FROM snapshot_chunks WHERE zxid = ? AND seq = 1",
                                (newest,)).fetchone()
        conn.execute("UPDATE snapshot_chunks SET data = ? WHERE zxid = ? AND seq = 1",
                     (chunk[:-1] + bytes([chunk[-1] ^ 1]), newest))
    result = run_dump(copy, "--verify")
    assert result.returncode == 1
    assert result.stdout.startswith(f"BAD snapshot zxid {fmt(newest)} ({hex(newest)}): "
                                    "fails its crc check")
    listed = lines(run_dump(copy, "--snapshots"))
    assert listed[0].endswith("crc ok") and "BAD: fails its crc check" in listed[1]

    zxid, data, stat = next((p[0], p[1], p[2]) for p in reversed(snapped.points) if p[0] >= newest)
    rebuilt = run_dump(copy, "--tree-at", fmt(zxid), "--path", "/s/counter", "--json")
    (node,) = json_lines(rebuilt)
    assert base64.b64decode(node["data_base64"]) == data and node["stat"] == stat
    assert f"snapshot at {fmt(newest)} ({hex(newest)}) skipped: fails its crc" in rebuilt.stderr


def test_verify_decodes_snapshots_whose_crc_matches(snapped, tmp_path):
    copy = copy_db(snapped.server, tmp_path / "copy.db")
    with sqlite3.connect(copy) as conn:
        older = conn.execute("SELECT min(zxid) FROM snapshots").fetchone()[0]
        chunks = [bytes(d) for (d,) in conn.execute(
            "SELECT data FROM snapshot_chunks WHERE zxid = ? ORDER BY seq", (older,))]
        chunks[1] = b"X" + chunks[1][1:]  # the node chunk's tag
        conn.execute("UPDATE snapshot_chunks SET data = ? WHERE zxid = ? AND seq = 1",
                     (chunks[1], older))
        conn.execute("UPDATE snapshots SET crc = ? WHERE zxid = ?",
                     (snapshot.crc_of(chunks), older))
    assert lines(run_dump(copy, "--snapshots"))[0].endswith("crc ok")
    result = run_dump(copy, "--verify")
    assert result.returncode == 1
    assert result.stdout.strip() == f"BAD snapshot zxid {fmt(older)} ({hex(older)}): " \
                                    "bad node chunk header"


# ---- an ensemble ------------------------------------------------------------

def _create_all(zk, paths):
    for result in [zk.create_async(path) for path in paths]:
        result.get(timeout=30)


def test_replicated_logs_across_a_failover_verify_and_agree(ensemble_factory, kazoo_factory):
    """Every member's log, through a leader's death (a new epoch) and its return
    as a follower, passes --verify, and all three list the same txns and results."""
    ensemble = ensemble_factory()
    old = ensemble.leader()
    zk = kazoo_factory(ensemble.hosts)
    zk.create("/e")
    _create_all(zk, [f"/e/one-{i:02d}" for i in range(30)])
    old.kill()
    wait_for(lambda: (new := ensemble._find("leader")) is not None and new is not old,
             timeout=30, message="a new leader")
    zk.retry(zk.ensure_path, "/e/two")
    _create_all(zk, [f"/e/two/{i:02d}" for i in range(30)])
    old.start(timeout=30)
    last = zk.set("/e", b"done").mzxid
    assert last >> 32 >= 2, "the failover began a new epoch"
    dirs = [server.workdir / "data" for server in ensemble.servers.values()]
    for data_dir in dirs:
        wait_for(lambda: db_rows(data_dir, "SELECT max(zxid) FROM txnlog")[0][0] == last,
                 timeout=20, message=f"{data_dir} logged the last write")
    listings = []
    for data_dir in dirs:
        (line,) = lines(run_dump(data_dir, "--verify"))
        assert line.startswith("ok: ") and f"to {fmt(last)} " in line
        listings.append(json_lines(run_dump(data_dir, "--json")))
    assert listings[0] == listings[1] == listings[2]
    assert {e["zxid_int"] >> 32 for e in listings[0]} >= {1, 2}
    assert {e["result"] for e in listings[0]} == {"ok"}


# ---- bad input --------------------------------------------------------------

def _text_file(directory):
    (directory / "text.db").write_text("hello")
    return directory / "text.db"


def _other_sqlite(directory):
    with sqlite3.connect(directory / "other.db") as conn:
        conn.execute("CREATE TABLE other (x)")
    return directory / "other.db"


@pytest.mark.parametrize("make_args, message", [
    (lambda d, s: [d / "missing.db"], "no such file or directory"),
    (lambda d, s: [d], "no nookeeper.db in this directory"),
    (lambda d, s: [_text_file(d)], "not an SQLite file"),
    (lambda d, s: [_other_sqlite(d)], "no txnlog table"),
    (lambda d, s: [s.data_dir, "--from", "1:x"], "argument --from: bad zxid '1:x'"),
    (lambda d, s: [s.data_dir, "--tree-at", "0xzz"], "argument --tree-at: bad zxid '0xzz'"),
    (lambda d, s: [s.data_dir, "--type", "frobnicate"], "unknown txn type 'frobnicate'"),
    (lambda d, s: [s.data_dir, "--session", "12ab"], "bad session id '12ab'"),
    (lambda d, s: [s.data_dir, "--verify", "--path", "/a"], "--path does not apply to --verify"),
    (lambda d, s: [s.data_dir, "--snapshots", "--verify"], "not allowed with argument"),
])
def test_bad_input_is_one_line_and_exit_2(story, tmp_path, make_args, message):
    result = run_dump(*make_args(tmp_path, story))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("nk-dump: ")
    assert message in result.stderr


# ---- a running server -------------------------------------------------------

def test_reading_a_running_server_under_writes(busy):
    """Snapshots are taken and purged every few hundred txns meanwhile, so purges
    overtake the reading: nothing may break, and results resume after them."""
    server, writer = busy
    data_dir = server.workdir / "data"
    for args in (["--verify"], [], ["--json"], ["--snapshots"], ["--verify"]):
        before = writer.done
        result = run_dump(data_dir, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr and "not shown" not in result.stderr
        assert writer.done > before, f"the server kept writing while nk-dump {args} ran"
        if args == ["--json"]:
            entries = parse_json_lines(result.stdout)
            assert len(entries) > 100
            assert {e["result"] for e in entries} == {"ok"}, "every write of the writer succeeded"
            zxids = [e["zxid_int"] for e in entries]
            assert zxids == sorted(set(zxids))
    assert not writer.errors
    assert "purged" in server.log_path.read_text(), "purges ran while the log was read"


def test_tree_at_on_a_running_server(busy):
    """The zxid asked for may be purged before nk-dump reads it (a clear error then);
    whenever it is not, the tree is the one kazoo saw. Writes slow down a little
    so that the log usually still reaches back to a zxid by the time it is read."""
    server, writer = busy
    writer.pause_s = 0.03
    rebuilt = 0
    for _attempt in range(5):
        before, zxid = writer.done, writer.last_zxid
        result = run_dump(server.workdir / "data", "--tree-at", fmt(zxid), "--path", "/w", "--json")
        assert writer.done > before
        if result.returncode == 2:
            assert "is older than the log reaches" in result.stderr, result.stderr
            continue
        node = json.loads(ok(result).splitlines()[0])
        assert node["path"] == "/w" and node["stat"]["mzxid"] == zxid
        assert node["stat"]["numChildren"] == len(result.stdout.splitlines()) - 1
        rebuilt += 1
    writer.pause_s = 0.0
    assert rebuilt >= 1


def test_reads_hold_no_transaction_between_pages(busy, tmp_path):
    """Paused half way through the log, nk-dump's reader holds no read transaction:
    a writer commits and a full checkpoint (which waits for every reader) completes."""
    server, _writer = busy
    copy = copy_db(server, tmp_path / "copy.db")
    with LogDatabase(copy) as db:
        rows = db.rows()
        first = next(rows)
        writer = sqlite3.connect(copy, timeout=0, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("DELETE FROM txnlog WHERE zxid = ?", (first.zxid,))
            writer.execute("COMMIT")
            checkpoint = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            writer.close()
        assert checkpoint[0] == 0, "no reader kept the checkpoint waiting"
        assert sum(1 for _ in rows) > 0


def test_a_listing_overtaken_by_a_purge_resumes_after_the_next_snapshot(busy, tmp_path):
    """A purge between two pages of the listing, done as the server does it
    (snapshots first, then the log rows behind the one kept)."""
    server, _writer = busy
    copy = copy_db(server, tmp_path / "copy.db")
    output = Output(io.StringIO(), io.StringIO(), as_json=False)
    with LogDatabase(copy) as db:
        listing = entries(db, Filter(), output)
        first = next(listing)
        newest = max(info.zxid for info in db.overview().snapshots)
        assert newest > first.zxid + PAGE_ROWS, "the purge must reach past the page read"
        with sqlite3.connect(copy) as writer:
            writer.execute("DELETE FROM snapshots WHERE zxid < ?", (newest,))
            writer.execute("DELETE FROM snapshot_chunks WHERE zxid < ?", (newest,))
            writer.execute("DELETE FROM txnlog WHERE zxid <= ?", (newest,))
        rest = list(listing)
    zxids = [entry.zxid for entry in [first] + rest]
    assert zxids[:PAGE_ROWS] == list(range(first.zxid, first.zxid + PAGE_ROWS))
    assert zxids[PAGE_ROWS] == newest + 1
    assert {entry.result for entry in [first] + rest} == {"ok"}
    assert f"txns after {fmt(first.zxid + PAGE_ROWS - 1)} " in output.err.getvalue()
    assert "were purged while they were read" in output.err.getvalue()


def test_a_closed_pipe_ends_quietly(busy):
    server, _writer = busy
    proc = subprocess.Popen([sys.executable, str(NK_DUMP), server.workdir / "data", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(proc.stdout.readline())["zxid"]
        proc.stdout.close()
        assert proc.wait(timeout=60) == 141
        stderr = proc.stderr.read().decode()
        assert all(line.startswith("nk-dump: warning: ") for line in stderr.splitlines()), stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
