"""The shell's commands: parse one command line, run it on a ShellSession, return a result.

Options follow zkCli.sh (`ls -R -s /a`, `set -v 3 /a data`); they may come
before or after the path, and `--` ends them, so data that starts with a
dash is written `set /a -- -1`. Commands never print: they return a value
from results.py or raise CommandFailure.
"""

import collections
import getopt
import shlex
from dataclasses import dataclass

from nookeeper.client.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    ClientError,
    ConnectionLoss,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoWatcherError,
    QuotaExceededError,
    SessionExpiredError,
    ZooKeeperError,
)
from nookeeper.paths import validate_path
from nookeeper.shell import quotas, status
from nookeeper.shell.acltext import parse_acl
from nookeeper.shell.configtext import client_config_string
from nookeeper.shell.results import (
    Acl, Children, Config, Created, Data, Done, NodeStat, QuotaListing, Tree,
)
from nookeeper.wire.ops import MAX_TTL

# How many commands `history` lists, counting itself (zkCli shows the same span).
HISTORY_SHOWN = 11

# Error texts for the failures a user meets every day; others use the client's own text.
_PHRASES = {
    NoNodeError: "Node does not exist",
    NodeExistsError: "Node already exists",
    NotEmptyError: "Node not empty",
    BadVersionError: "Version does not match",
    NoAuthError: "Not authorised",
    InvalidACLError: "Invalid ACL",
    NoChildrenForEphemeralsError: "Ephemeral nodes cannot have children",
    BadArgumentsError: "Bad arguments",
    AuthFailedError: "Authentication failed",
    SessionExpiredError: "Session expired",
    ConnectionLoss: "Connection lost",
    NoWatcherError: "No such watcher",
    QuotaExceededError: "Quota has exceeded",
}

# Errors about the node a command named: their message ends with its path.
_ABOUT_THE_NODE = (NoNodeError, NodeExistsError, NotEmptyError, BadVersionError, NoAuthError,
                   InvalidACLError, NoChildrenForEphemeralsError, BadArgumentsError,
                   NoWatcherError, QuotaExceededError)


# The node ZooKeeper's getConfig reads, whatever the session's chroot.
CONFIG_NODE = "/zookeeper/config"

# addWatch's modes, as ZooKeeper's AddWatchMode names them; the default is zkCli's.
WATCH_MODES = ("PERSISTENT", "PERSISTENT_RECURSIVE")
DEFAULT_WATCH_MODE = "PERSISTENT_RECURSIVE"


class UsageError(Exception):
    """The command line itself is wrong: unknown command, bad option, missing argument."""


class CommandFailure(Exception):
    """A command that did not succeed, ready to show.

    name: the error's class name as kazoo spells it (NoNodeError), or
    UsageError; code: the ZooKeeper error code, None when the failure never
    reached the wire.
    """

    def __init__(self, name, code, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.code = code
        self.message = message

    @classmethod
    def from_usage(cls, error):
        return cls("UsageError", None, str(error))

    @classmethod
    def from_error(cls, error, path=None):
        name = type(error).__name__
        detail = str(error)
        if detail == name or (path is not None and detail == path):
            # No text beyond the class name or the path: say it in words.
            detail = ""
        message = detail or _PHRASES.get(type(error)) or name
        if path is not None and isinstance(error, _ABOUT_THE_NODE):
            message = f"{message}: {path}"
        code = error.code if isinstance(error, ZooKeeperError) else None
        return cls(name, code, message)


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    run: object
    options: str = ""
    min_args: int = 0
    max_args: int = 0
    # False for the commands one-shot mode runs without connecting first.
    needs_session: bool = True


def split(line):
    """Words of a command line; quotes group words as in a POSIX shell."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse the line: {exc}") from None


def _path(text, sequential=False):
    """The path as typed, if ZooKeeper would accept it.

    The client would quietly tidy "/a/" or "/a//b"; the shell refuses them
    as zkCli.sh does, so what runs is what was typed. A sequential node's
    path may end in "/", since the server appends the counter.
    """
    try:
        validate_path(text + "0" if sequential else text)
    except BadArgumentsError as exc:
        raise UsageError(str(exc)) from None
    return text


def _version(opts):
    text = opts.get("-v", "-1")
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"version must be a number: {text}") from None


def _child(parent, name):
    return parent.rstrip("/") + "/" + name


class Shell:
    """Runs command lines against one ShellSession; `finished` turns True on quit."""

    def __init__(self, session):
        self.session = session
        self.finished = False

    def run_line(self, line):
        """The result of one command line, or None for a blank line; raises CommandFailure."""
        try:
            words = split(line)
        except UsageError as exc:
            raise CommandFailure.from_usage(exc) from None
        if not words:
            return None
        self.session.record(line.strip())
        return self.run(words)

    def run(self, words):
        command = COMMANDS.get(words[0])
        path = None
        try:
            if command is None:
                raise UsageError(f"unknown command {words[0]!r} (try: help)")
            try:
                pairs, args = getopt.gnu_getopt(words[1:], command.options)
            except getopt.GetoptError as exc:
                raise UsageError(f"{exc}; usage: {command.usage}") from None
            if not command.min_args <= len(args) <= command.max_args:
                raise UsageError(f"usage: {command.usage}")
            path = args[0] if args and args[0].startswith("/") else None
            return command.run(self, dict(pairs), args)
        except UsageError as exc:
            raise CommandFailure.from_usage(exc) from None
        except quotas.QuotaRefused as exc:
            raise CommandFailure(exc.name, exc.code, str(exc)) from None
        except (ZooKeeperError, ClientError) as exc:
            raise CommandFailure.from_error(exc, path) from None
        except ValueError as exc:
            # Text nk or the client could not read: ACL text (AclSyntaxError),
            # a connect string, a request the client cannot encode.
            raise CommandFailure.from_usage(exc) from None

    # -- helpers shared by commands --------------------------------------

    @property
    def client(self):
        return self.session.require_client()

    def wait(self, result):
        return self.session.wait(result)

    def watch(self, opts):
        return self.session.watcher if "-w" in opts else None

    def walk(self, path, watch=None):
        """`path` and every node under it, breadth first, children sorted (as zkCli's ls -R)."""
        paths = [path]
        queue = collections.deque([path])
        while queue:
            parent = queue.popleft()
            try:
                names = self.wait(self.client.get_children_async(parent, watch))
            except NoNodeError:
                if parent == path:
                    raise
                continue
            for name in sorted(names):
                child = _child(parent, name)
                paths.append(child)
                queue.append(child)
        return paths


# -- the commands ------------------------------------------------------------


def _ls(shell, opts, args):
    path = _path(args[0])
    watch = shell.watch(opts)
    if "-R" in opts:
        return Tree(path, shell.walk(path, watch))
    if "-s" in opts:
        names, stat = shell.wait(shell.client.get_children_async(path, watch, include_data=True))
        return Children(path, sorted(names), stat)
    return Children(path, sorted(shell.wait(shell.client.get_children_async(path, watch))))


def _create(shell, opts, args):
    """Options are checked in zkCli's order and refused in its words."""
    ephemeral, sequence, container = "-e" in opts, "-s" in opts, "-c" in opts
    if container and (ephemeral or sequence):
        raise UsageError("-c cannot be combined with -s or -e."
                         " Containers cannot be ephemeral or sequential.")
    extra = {"container": True} if container else {}
    if "-t" in opts:
        try:
            ttl = quotas.java_number(opts["-t"], quotas.JAVA_LONG)
        except ValueError:
            raise UsageError("-t argument must be a long value") from None
        if ephemeral:
            raise UsageError("TTLs cannot be used with Ephemeral znodes")
        if container:
            raise UsageError("TTLs cannot be used with Container znodes")
        if not 0 < ttl <= MAX_TTL:
            raise UsageError(f"ttl must be positive and cannot be larger than: {MAX_TTL}")
        extra["ttl"] = ttl
    path = _path(args[0], sequential=sequence)
    value = args[1].encode("utf-8") if len(args) > 1 else None
    acl = parse_acl(args[2]) if len(args) > 2 else None
    created = shell.wait(shell.client.create_async(
        path, value, acl=acl, ephemeral=ephemeral, sequence=sequence, **extra))
    return Created(created)


def _get(shell, opts, args):
    path = _path(args[0])
    value, stat = shell.wait(shell.client.get_async(path, shell.watch(opts)))
    return Data(path, value, stat if "-s" in opts else None)


def _set(shell, opts, args):
    path = _path(args[0])
    stat = shell.wait(shell.client.set_async(path, args[1].encode("utf-8"), _version(opts)))
    return NodeStat(path, stat, shown="-s" in opts)


def _stat(shell, opts, args):
    path = _path(args[0])
    stat = shell.wait(shell.client.exists_async(path, shell.watch(opts)))
    if stat is None:
        raise NoNodeError()
    return NodeStat(path, stat)


def _delete(shell, opts, args):
    path = _path(args[0])
    shell.wait(shell.client.delete_async(path, _version(opts)))
    return Done(fields={"path": path, "deleted": True})


def _deleteall(shell, opts, args):
    """Deepest nodes first; nodes that vanish meanwhile are fine, /zookeeper is kept."""
    path = _path(args[0])
    for node in reversed(shell.walk(path)):
        if node == "/" or node == "/zookeeper" or node.startswith("/zookeeper/"):
            continue
        try:
            shell.wait(shell.client.delete_async(node))
        except NoNodeError:
            pass
    return Done(fields={"path": path, "deleted": True})


def _sync(shell, opts, args):
    path = _path(args[0])
    shell.wait(shell.client.sync_async(path))
    return Done("Sync is OK", {"path": path, "synced": True})


def _get_acl(shell, opts, args):
    path = _path(args[0])
    entries, stat = shell.wait(shell.client.get_acls_async(path))
    return Acl(path, entries, stat if "-s" in opts else None)


def _set_acl(shell, opts, args):
    """With -R the tree is listed before any ACL changes, so an ACL without
    read permission cannot hide the nodes below from the walk."""
    path = _path(args[0])
    acl = parse_acl(args[1])
    version = _version(opts)
    below = shell.walk(path)[1:] if "-R" in opts else []
    stat = shell.wait(shell.client.set_acls_async(path, acl, version))
    for node in below:
        try:
            shell.wait(shell.client.set_acls_async(node, acl))
        except NoNodeError:
            pass
    return NodeStat(path, stat, shown="-s" in opts)


def _add_auth(shell, opts, args):
    scheme, credential = args
    shell.wait(shell.client.add_auth_async(scheme, credential))
    return Done(fields={"scheme": scheme, "added": True})


def _add_watch(shell, opts, args):
    path = _path(args[0])
    mode = opts.get("-m", DEFAULT_WATCH_MODE).upper()
    if mode not in WATCH_MODES:
        raise UsageError(f"unknown mode {opts['-m']!r}; usage: {COMMANDS['addWatch'].usage}")
    shell.wait(shell.client.add_watch_async(path, shell.session.watcher,
                                            recursive=mode == "PERSISTENT_RECURSIVE"))
    return Done(fields={"path": path, "mode": mode, "added": True})


def _remove_watches(shell, opts, args):
    """Which watches: -c, else -d, else all (-a or nothing), as zkCli picks."""
    path = _path(args[0])
    if "-l" in opts:
        raise UsageError("removewatches -l is not offered: nk's client removes watches"
                         " only through the server, so it needs a connection")
    kind = "children" if "-c" in opts else "data" if "-d" in opts else "any"
    shell.wait(shell.client.remove_watches_async(path, kind))
    return Done(fields={"path": path, "kind": kind, "removed": True})


def _get_ephemerals(shell, opts, args):
    """The session's own ephemeral nodes whose path starts with the text given."""
    prefix = _path(args[0]) if args else "/"
    paths = sorted(shell.wait(shell.client.get_ephemerals_async(prefix)))
    return Done("[" + ", ".join(paths) + "]", {"path": prefix, "ephemerals": paths})


def _get_all_children_number(shell, opts, args):
    path = _path(args[0])
    count = shell.wait(shell.client.get_all_children_number_async(path))
    return Done(str(count), {"path": path, "count": count})


def _whoami(shell, opts, args):
    identities = list(shell.wait(shell.client.whoami_async()))
    lines = ["Auth scheme: User"] + [f"{scheme}: {ident}" for scheme, ident in identities]
    return Done("\n".join(lines), {"identities": [{"scheme": scheme, "id": ident}
                                                  for scheme, ident in identities]})


def _config(shell, opts, args):
    """/zookeeper/config, which ZooKeeper's getConfig reads outside any chroot."""
    watch = shell.watch(opts)
    if shell.client.chroot:
        if watch is not None:
            raise UsageError(f"config -w needs a session without a chroot"
                             f" (this one is in {shell.client.chroot})")
        value, stat = shell.session.get_outside_chroot(CONFIG_NODE)
    else:
        value, stat = shell.wait(shell.client.get_async(CONFIG_NODE, watch))
    client = None
    if "-c" in opts:
        client = client_config_string(
            "null" if value is None else value.decode("utf-8", "replace"))
    return Config(CONFIG_NODE, value, client, stat if "-s" in opts else None)


def _quota_target(shell, text):
    """The path a quota command names. Quotas live under /zookeeper/quota, which a
    chroot would move (zkCli.sh writes them under the chroot then), so nk refuses."""
    path = _path(text)
    if path == "/":
        raise UsageError("the root node cannot have a quota")
    if shell.client.chroot:
        raise UsageError(f"quota commands need a session without a chroot"
                         f" (this one is in {shell.client.chroot})")
    return path


def _one_limit(opts, usage, required):
    """The one -n|-b|-N|-B given; zkCli takes exactly one (delquota: at most one)."""
    given = [option for option in quotas.LIMIT_KEYS if option in opts]
    if len(given) > 1:
        raise UsageError(f"only one of -n, -b, -N, -B at a time; usage: {usage}")
    if not given and required:
        raise UsageError(f"one of -n, -b, -N, -B is needed; usage: {usage}")
    return given[0] if given else None


def _set_quota(shell, opts, args):
    option = _one_limit(opts, COMMANDS["setquota"].usage, required=True)
    path = _quota_target(shell, args[0])
    limits, warnings = quotas.set_quota(quotas.QuotaNodes(shell), path, option, opts[option])
    return Done("\n".join(warnings) or None,
                {"path": path, "limits": limits.document(), "warnings": warnings})


def _list_quota(shell, opts, args):
    path = _quota_target(shell, args[0])
    limits, usage = quotas.list_quota(quotas.QuotaNodes(shell), path)
    return QuotaListing(path, quotas.limit_path(path), limits, usage)


def _del_quota(shell, opts, args):
    option = _one_limit(opts, COMMANDS["delquota"].usage, required=False)
    path = _quota_target(shell, args[0])
    limits = quotas.del_quota(quotas.QuotaNodes(shell), path, option)
    if limits is None:
        return Done(fields={"path": path, "deleted": True})
    return Done(fields={"path": path, "limits": limits.document()})


def _connect(shell, opts, args):
    try:
        shell.session.connect(args[0] if args else None)
    except ValueError as exc:
        raise UsageError(f"bad connect string: {exc}") from None
    return Done(fields={"hosts": shell.session.hosts, "state": shell.session.state_name})


def _close(shell, opts, args):
    shell.session.close()
    return Done(fields={"closed": True})


def _print_watches(shell, opts, args):
    if args:
        if args[0] not in ("on", "off"):
            raise UsageError("usage: printwatches on|off")
        shell.session.print_watches = args[0] == "on"
        return Done(fields={"printwatches": shell.session.print_watches})
    on = shell.session.print_watches
    return Done(f"printwatches is {'on' if on else 'off'}", {"printwatches": on})


def _history(shell, opts, args):
    history = shell.session.history
    first = max(0, len(history) - HISTORY_SHOWN)
    shown = list(enumerate(history))[first:]
    return Done("\n".join(f"{number} - {line}" for number, line in shown),
                {"history": [{"number": number, "command": line} for number, line in shown]})


def _redo(shell, opts, args):
    """Run command number `cmdno` again; as in zkCli.sh, the history then holds
    that command in place of the redo, so a redo is never redone."""
    if not args[0].isdigit():
        raise UsageError("usage: redo cmdno")
    number = int(args[0])
    if number >= len(shell.session.history):
        raise UsageError(f"no command number {args[0]} in the history")
    line = shell.session.history[number]
    words = split(line)
    if words[0] == "redo":
        raise UsageError(f"command {args[0]} is itself a redo")
    shell.session.replace_last(line)
    return shell.run(words)


def _help(shell, opts, args):
    usages = [COMMANDS[name].usage for name in sorted(COMMANDS)]
    header = ("nk [-s host:port[,host:port...][/chroot]] [--json] [--timeout seconds]"
              " [command [args]]")
    return Done("\n".join([header] + [f"\t{usage}" for usage in usages]), {"commands": usages})


def _status(shell, opts, args):
    """Every member of the session's hosts, from four-letter words (shell/status.py)."""
    return status.status_report(shell.session)


def _health(shell, opts, args):
    return status.health_report(shell.session)


def _quit(shell, opts, args):
    shell.finished = True
    return Done(fields={"quit": True})


_TABLE = (
    Command("ls", "ls [-s] [-w] [-R] path", _ls, "swR", 1, 1),
    Command("create", "create [-e] [-s] [-c] [-t ttl] path [data] [acl]", _create, "esct:", 1, 3),
    Command("get", "get [-s] [-w] path", _get, "sw", 1, 1),
    Command("set", "set [-s] [-v version] path data", _set, "sv:", 2, 2),
    Command("stat", "stat [-w] path", _stat, "w", 1, 1),
    Command("delete", "delete [-v version] path", _delete, "v:", 1, 1),
    Command("deleteall", "deleteall path", _deleteall, "", 1, 1),
    Command("rmr", "rmr path (the same as deleteall)", _deleteall, "", 1, 1),
    Command("sync", "sync path", _sync, "", 1, 1),
    Command("getAcl", "getAcl [-s] path", _get_acl, "s", 1, 1),
    Command("setAcl", "setAcl [-s] [-v version] [-R] path acl", _set_acl, "sv:R", 2, 2),
    Command("addauth", "addauth scheme auth", _add_auth, "", 2, 2),
    Command("whoami", "whoami", _whoami),
    Command("addWatch", "addWatch [-m mode] path (mode: PERSISTENT or PERSISTENT_RECURSIVE,"
            " the default)", _add_watch, "m:", 1, 1),
    Command("removewatches", "removewatches path [-c|-d|-a]", _remove_watches, "cdal", 1, 1),
    Command("getEphemerals", "getEphemerals [path]", _get_ephemerals, "", 0, 1),
    Command("getAllChildrenNumber", "getAllChildrenNumber path", _get_all_children_number,
            "", 1, 1),
    Command("config", "config [-c] [-w] [-s]", _config, "cws"),
    Command("setquota", "setquota -n|-b|-N|-B val path", _set_quota, "n:b:N:B:", 1, 1),
    Command("listquota", "listquota path", _list_quota, "", 1, 1),
    Command("delquota", "delquota [-n|-b|-N|-B] path", _del_quota, "nbNB", 1, 1),
    Command("connect", "connect [host:port[,host:port...][/chroot]]", _connect, "", 0, 1,
            needs_session=False),
    Command("close", "close", _close, needs_session=False),
    Command("printwatches", "printwatches on|off", _print_watches, "", 0, 1, needs_session=False),
    Command("history", "history", _history, needs_session=False),
    Command("redo", "redo cmdno", _redo, "", 1, 1, needs_session=False),
    Command("help", "help", _help, needs_session=False),
    Command("quit", "quit", _quit, needs_session=False),
    Command("status", "status (every member: role, zxid, lag...; exit 1 if unhealthy)", _status,
            needs_session=False),
    Command("health", "health (one line; exit 1 if unhealthy)", _health, needs_session=False),
)
COMMANDS = {command.name: command for command in _TABLE}
