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
    SessionExpiredError,
    ZooKeeperError,
)
from nookeeper.paths import validate_path
from nookeeper.shell.acltext import parse_acl
from nookeeper.shell.results import Acl, Children, Created, Data, Done, NodeStat, Tree

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
}

# Errors about the node a command named: their message ends with its path.
_ABOUT_THE_NODE = (NoNodeError, NodeExistsError, NotEmptyError, BadVersionError, NoAuthError,
                   InvalidACLError, NoChildrenForEphemeralsError, BadArgumentsError)


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
        if detail == name:
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
    path = _path(args[0], sequential="-s" in opts)
    value = args[1].encode("utf-8") if len(args) > 1 else None
    acl = parse_acl(args[2]) if len(args) > 2 else None
    created = shell.wait(shell.client.create_async(
        path, value, acl=acl, ephemeral="-e" in opts, sequence="-s" in opts))
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


def _quit(shell, opts, args):
    shell.finished = True
    return Done(fields={"quit": True})


_TABLE = (
    Command("ls", "ls [-s] [-w] [-R] path", _ls, "swR", 1, 1),
    Command("create", "create [-e] [-s] path [data] [acl]", _create, "es", 1, 3),
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
    Command("connect", "connect [host:port[,host:port...][/chroot]]", _connect, "", 0, 1,
            needs_session=False),
    Command("close", "close", _close, needs_session=False),
    Command("printwatches", "printwatches on|off", _print_watches, "", 0, 1, needs_session=False),
    Command("history", "history", _history, needs_session=False),
    Command("redo", "redo cmdno", _redo, "", 1, 1, needs_session=False),
    Command("help", "help", _help, needs_session=False),
    Command("quit", "quit", _quit, needs_session=False),
)
COMMANDS = {command.name: command for command in _TABLE}
