"""Results, errors and watch events as zkCli.sh prints them, or as JSON documents."""

import base64
import functools
import json
import time

from nookeeper.client import EventType, KeeperState
from nookeeper.shell.acltext import perms_text
from nookeeper.shell.results import (
    Acl, Children, Config, Created, Data, Done, NodeStat, QuotaListing, Tree,
)

# (zkCli's label, ZnodeStat field, shown in hex, shown as a date)
_STAT_LINES = (
    ("cZxid", "czxid", True, False),
    ("ctime", "ctime", False, True),
    ("mZxid", "mzxid", True, False),
    ("mtime", "mtime", False, True),
    ("pZxid", "pzxid", True, False),
    ("cversion", "cversion", False, False),
    ("dataVersion", "version", False, False),
    ("aclVersion", "aversion", False, False),
    ("ephemeralOwner", "ephemeralOwner", True, False),
    ("dataLength", "dataLength", False, False),
    ("numChildren", "numChildren", False, False),
)

# Watch events in ZooKeeper's own words (Watcher.Event.EventType / KeeperState).
_EVENT_NAMES = {
    EventType.CREATED: "NodeCreated",
    EventType.DELETED: "NodeDeleted",
    EventType.CHANGED: "NodeDataChanged",
    EventType.CHILD: "NodeChildrenChanged",
    EventType.NONE: "None",
}
_STATE_NAMES = {
    KeeperState.CONNECTED: "SyncConnected",
    KeeperState.CONNECTED_RO: "ConnectedReadOnly",
    KeeperState.SUSPENDED: "Disconnected",
    KeeperState.LOST: "Expired",
}


def java_date(millis):
    """Java's Date.toString(), in local time: "Thu Jan 01 00:00:00 UTC 1970"."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(millis / 1000.0))


def stat_text(stat):
    lines = []
    for label, name, hexadecimal, date in _STAT_LINES:
        value = getattr(stat, name)
        if hexadecimal:
            shown = f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"
        elif date:
            shown = java_date(value)
        else:
            shown = str(value)
        lines.append(f"{label} = {shown}")
    return "\n".join(lines)


def stat_document(stat):
    """The Stat record under its wire field names."""
    return stat._asdict()


def data_text(value):
    if value is None:
        return "null"
    return value.decode("utf-8", "backslashreplace")


def data_document(value):
    if value is None:
        return {"data": None}
    try:
        return {"data": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


def _with_stat(text, stat):
    return text if stat is None else f"{text}\n{stat_text(stat)}"


# -- text ------------------------------------------------------------------


@functools.singledispatch
def text(result):
    """What zkCli.sh would print, without the last newline; None prints nothing.

    "" is an empty line: `get` of a node with empty data prints one, as zkCli.sh does.
    """
    raise TypeError(f"no text form for {type(result).__name__}")


@text.register
def _(result: Children):
    return _with_stat("[" + ", ".join(result.names) + "]", result.stat)


@text.register
def _(result: Tree):
    return "\n".join(result.paths)


@text.register
def _(result: Data):
    return _with_stat(data_text(result.value), result.stat)


@text.register
def _(result: NodeStat):
    return stat_text(result.stat) if result.shown else None


@text.register
def _(result: Created):
    return f"Created {result.path}"


@text.register
def _(result: Acl):
    lines = [f"'{acl.id.scheme},'{acl.id.id}\n: {perms_text(acl.perms)}" for acl in result.entries]
    return _with_stat("\n".join(lines), result.stat)


@text.register
def _(result: Config):
    shown = data_text(result.value) if result.client is None else result.client
    return _with_stat(shown, result.stat)


@text.register
def _(result: QuotaListing):
    return "\n".join([f"absolute path is {result.limit_path}",
                      f"Output quota for {result.path} {result.limits}",
                      f"Output stat for {result.path} {result.usage}"])


@text.register
def _(result: Done):
    return result.text


# -- JSON ------------------------------------------------------------------


@functools.singledispatch
def document(result):
    """The result as a JSON-ready dict."""
    raise TypeError(f"no JSON form for {type(result).__name__}")


def _stat_field(stat):
    return {} if stat is None else {"stat": stat_document(stat)}


@document.register
def _(result: Children):
    return {"path": result.path, "children": list(result.names), **_stat_field(result.stat)}


@document.register
def _(result: Tree):
    return {"path": result.path, "paths": list(result.paths)}


@document.register
def _(result: Data):
    return {"path": result.path, **data_document(result.value), **_stat_field(result.stat)}


@document.register
def _(result: NodeStat):
    return {"path": result.path, "stat": stat_document(result.stat)}


@document.register
def _(result: Created):
    return {"path": result.path}


@document.register
def _(result: Acl):
    entries = [{"scheme": acl.id.scheme, "id": acl.id.id, "perms": perms_text(acl.perms)}
               for acl in result.entries]
    return {"path": result.path, "acl": entries, **_stat_field(result.stat)}


@document.register
def _(result: Config):
    client = {} if result.client is None else {"client": result.client}
    return {"path": result.path, **data_document(result.value), **client,
            **_stat_field(result.stat)}


@document.register
def _(result: QuotaListing):
    return {"path": result.path, "limit_path": result.limit_path,
            "limits": result.limits.document(), "usage": result.usage.document()}


@document.register
def _(result: Done):
    return dict(result.fields)


def as_json(result):
    return json.dumps(document(result))


# -- errors and events -----------------------------------------------------


def error_text(failure):
    """"NoNodeError: Node does not exist: /x": the kazoo name first, for grep."""
    return f"{failure.name}: {failure.message}"


def error_json(failure):
    return json.dumps({"error": failure.name, "code": failure.code, "message": failure.message})


def _event_names(event):
    """(type, state) in ZooKeeper's words.

    A type not in the table (the watch-removed events: CHILD_WATCH_REMOVED,
    DATA_WATCH_REMOVED, PERSISTENT_WATCH_REMOVED) is spelt as ZooKeeper spells
    its own: ChildWatchRemoved, DataWatchRemoved, PersistentWatchRemoved.
    """
    kind = _EVENT_NAMES.get(event.type)
    if kind is None:
        kind = _camel(event.type)
    return kind, _STATE_NAMES.get(event.state, event.state)


def _camel(name):
    if not isinstance(name, str) or not name.isupper():
        return name
    return "".join(word.capitalize() for word in name.split("_"))


def event_text(event):
    """A watch or session event, laid out as zkCli.sh prints it."""
    kind, state = _event_names(event)
    path = event.path if event.path is not None else "null"
    return f"\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path}"


def event_json(event):
    kind, state = _event_names(event)
    return json.dumps({"watcher": {"type": kind, "state": state, "path": event.path}})


# -- the form nk was asked for -----------------------------------------------


def result_output(result, in_json):
    """What to print for a result; None prints nothing."""
    return as_json(result) if in_json else text(result)


def failure_output(failure, in_json):
    return error_json(failure) if in_json else error_text(failure)


def event_output(event, in_json):
    return event_json(event) if in_json else event_text(event)
