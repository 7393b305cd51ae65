"""nk-dump's output: one line (plus indented sub-op lines) per txn for people,
one JSON object per line for programs.

Text puts zxid (both forms), time, session and type first, aligned, so
`grep` and `sort` work on it; the path and sizes follow and the result ends
the line. JSON carries every field under a fixed set of keys, null where a
value is unknown, and zxids both as epoch:counter and as an integer.
"""

import base64
import json
from datetime import datetime, timezone

from nookeeper.tools.dump_zxid import hex_of
from nookeeper.zab.zxid import fmt

_U64 = 1 << 64


def session_hex(session) -> str:
    return f"0x{session % _U64:x}" if isinstance(session, int) else repr(session)


def iso_time(ms) -> str:
    """UTC with milliseconds, e.g. 2026-01-31T12:00:00.250Z."""
    if not isinstance(ms, int):
        return repr(ms)
    try:
        moment = datetime.fromtimestamp(ms // 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _zxid_fields(zxid):
    return {"zxid": fmt(zxid), "zxid_hex": hex_of(zxid), "zxid_int": zxid}


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ---- txns -------------------------------------------------------------------

def entry_text(entry) -> str:
    sizes = f"payload={entry.payload_bytes}"
    if entry.data_bytes is not None:
        sizes += f" data={entry.data_bytes}"
    fields = [f"{fmt(entry.zxid):<9}", f"{hex_of(entry.zxid):<12}", iso_time(entry.time),
              f"{session_hex(entry.session):<18}", f"{entry.type:<15}", entry.path or "-",
              sizes, entry.result or "?"]
    if entry.detail:
        fields.append(entry.detail)
    if entry.problem:
        fields.append(f"BAD: {entry.problem}")
    lines = ["  ".join(fields)]
    for op in entry.ops:
        parts = [f"{op.type:<15}", op.path or "-"]
        if op.ephemeral:
            parts.append("(ephemeral)")
        if op.data_bytes is not None:
            parts.append(f"data={op.data_bytes}")
        parts.append(op.result or "?")
        lines.append(" " * 10 + "- " + "  ".join(parts))
    return "\n".join(lines)


def entry_json(entry) -> str:
    return _dumps({
        **_zxid_fields(entry.zxid),
        "rowid": entry.rowid,
        "time": iso_time(entry.time),
        "time_ms": entry.time if isinstance(entry.time, int) else None,
        "session": session_hex(entry.session),
        "cxid": entry.cxid if isinstance(entry.cxid, int) else None,
        "type": entry.type,
        "path": entry.path,
        "payload_bytes": entry.payload_bytes,
        "data_bytes": entry.data_bytes,
        "result": entry.result,
        "ops": [{"type": op.type, "path": op.path, "data_bytes": op.data_bytes,
                 "result": op.result, "ephemeral": op.ephemeral} for op in entry.ops],
        "detail": entry.detail,
        "problem": entry.problem,
    })


# ---- snapshots --------------------------------------------------------------

def snapshot_text(info, problem) -> str:
    return "  ".join([f"{fmt(info.zxid):<9}", f"{hex_of(info.zxid):<12}", iso_time(info.time),
                      f"nodes={info.nodes}", f"size={info.size}", f"chunks={info.chunks}",
                      "crc ok" if problem is None else f"BAD: {problem}"])


def snapshot_json(info, problem) -> str:
    return _dumps({**_zxid_fields(info.zxid), "time": iso_time(info.time), "time_ms": info.time,
                   "nodes": info.nodes, "size_bytes": info.size, "chunks": info.chunks,
                   "crc": f"0x{info.crc:08x}", "ok": problem is None, "problem": problem})


# ---- trees ------------------------------------------------------------------

def _walk(tree, root):
    """(path, depth) depth first, children sorted; iterative, since paths nest deep."""
    stack = [(root, 0)]
    while stack:
        path, depth = stack.pop()
        yield path, depth
        node = tree.node(path)
        prefix = "" if path == "/" else path
        children = sorted(node.children, reverse=True)
        stack.extend((f"{prefix}/{name}", depth + 1) for name in children)


def node_summary(node) -> str:
    stat = node.stat()
    text = (f"data={stat['dataLength']} version={stat['version']} "
            f"children={stat['numChildren']} mzxid={fmt(stat['mzxid'])}")
    if stat["ephemeralOwner"]:
        text += f" ephemeral={session_hex(stat['ephemeralOwner'])}"
    return text


def tree_text(tree, root="/"):
    """The subtree at `root`, indented two spaces a level."""
    for path, depth in _walk(tree, root):
        name = path if depth == 0 else path.rsplit("/", 1)[1]
        yield f"{'  ' * depth}{name}  {node_summary(tree.node(path))}"


def node_kind(node) -> str:
    """persistent, ephemeral, container or ttl: what Stat's ephemeralOwner
    does not tell (ZooKeeper shows 0 there for containers and TTL nodes)."""
    if node.is_container:
        return "container"
    if node.ttl is not None:
        return "ttl"
    return "ephemeral" if node.session else "persistent"


def tree_json(tree, root="/"):
    """One object per znode, parents before children: what `nk-dump --restore`
    reads back (nookeeper/tools/restore.py)."""
    for path, _depth in _walk(tree, root):
        node = tree.node(path)
        yield _dumps({
            "path": path,
            "data_base64": None if node.data is None else base64.b64encode(node.data).decode(),
            "acl": [{"perms": a.perms, "scheme": a.scheme, "id": a.id} for a in node.acl],
            "stat": node.stat(),
            "kind": node_kind(node),
            "ttl_ms": node.ttl,
        })


# ---- backup and restore -----------------------------------------------------

def _zxid_text(zxid):
    return f"{fmt(zxid)} ({hex_of(zxid)})"


def backup_text(info) -> str:
    if info.log_txns:
        log = f"{info.log_txns} txns in the log, {_zxid_text(info.log_first)} to " \
              f"{_zxid_text(info.log_last)}"
    else:
        log = "an empty log"
    snaps = ", ".join(fmt(s.zxid) for s in info.snapshots) or "none"
    return (f"backup of {info.source} written to {info.path} ({info.bytes} bytes): the tree up "
            f"to zxid {_zxid_text(info.zxid)}; {log}; snapshots at {snaps}; accepted epoch "
            f"{info.accepted_epoch}, current epoch {info.current_epoch}")


def backup_json(info) -> str:
    return _dumps({
        "backup": str(info.path), "source": str(info.source), "bytes": info.bytes,
        **_zxid_fields(info.zxid),
        "log_txns": info.log_txns,
        "log_first": None if info.log_first is None else fmt(info.log_first),
        "log_last": None if info.log_last is None else fmt(info.log_last),
        "snapshots": [fmt(s.zxid) for s in info.snapshots],
        "accepted_epoch": info.accepted_epoch, "current_epoch": info.current_epoch,
    })


def restore_text(info) -> str:
    sessions = f"{info.sessions} session{'s' if info.sessions != 1 else ''}"
    return (f"restored the tree at zxid {_zxid_text(info.zxid)} into "
            f"{info.target / 'nookeeper.db'}: {info.nodes} nodes, {sessions}, epoch "
            f"{info.epoch}; seed every member of the new ensemble from the same source")


def restore_json(info) -> str:
    return _dumps({
        "restored": str(info.target / "nookeeper.db"), **_zxid_fields(info.zxid),
        "epoch": info.epoch, "nodes": info.nodes, "sessions": info.sessions,
        "ephemerals_skipped": list(info.ephemerals_skipped), "source": info.source_kind,
    })


# ---- verify -----------------------------------------------------------------

def problem_json(problem) -> str:
    return _dumps({"ok": False, "what": problem.what, **_zxid_fields(problem.zxid),
                   "rowid": problem.rowid, "problem": problem.message})


def summary_json(check, snapshots, text) -> str:
    return _dumps({"ok": True, "txns": check.count,
                   "first": None if check.first is None else fmt(check.first),
                   "last": None if check.last is None else fmt(check.last),
                   "snapshots": snapshots, "summary": text})
