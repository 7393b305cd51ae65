"""setquota, listquota and delquota, done on the client as zkCli.sh 3.8 does them.

ZooKeeper keeps quotas in ordinary nodes, and its shell, not the server,
writes them: a quota on /app is /zookeeper/quota/app/zookeeper_limits
holding the limits as a StatsTrack string
("count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"), and next to it
zookeeper_stats ("count=0,bytes=0"), which the server keeps counting as
nodes under /app are created, changed and deleted. The procedures below
make the same requests in the same order as zkCli.sh's SetQuotaCommand,
ListQuotaCommand and DelQuotaCommand, so either shell reads and changes the
quotas the other set, on nookeeper and on ZooKeeper alike.
"""

import re

from nookeeper.client.exceptions import NodeExistsError, NoNodeError

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"

# zkCli's option letters and the StatsTrack key each one sets.
LIMIT_KEYS = {"-n": "count", "-b": "bytes", "-N": "countHardLimit", "-B": "byteHardLimit"}

# Java's int and long ranges, for numbers zkCli.sh reads with parseInt/parseLong.
JAVA_INT = (-2 ** 31, 2 ** 31 - 1)
JAVA_LONG = (-2 ** 63, 2 ** 63 - 1)
_DIGITS = re.compile(r"[+-]?[0-9]+\Z")


class QuotaRefused(Exception):
    """zkCli.sh would refuse this too; the message is the line it prints."""

    def __init__(self, message, name="QuotaError", code=None):
        super().__init__(message)
        self.name = name
        self.code = code


def java_number(text, bounds):
    """int(text) as Java's Integer/Long.parseLong reads it; ValueError otherwise."""
    if not _DIGITS.match(text):
        raise ValueError(text)
    value = int(text)
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(text)
    return value


class StatsTrack:
    """ZooKeeper's StatsTrack: "key=value" pairs separated by "," or ";".

    Written back, count and bytes come first, then (after a stray "=" that
    lets 3.4 clients still parse it) every other key sorted: the string
    ZooKeeper writes, byte for byte. A key never set reads as -1.
    """

    def __init__(self, text=""):
        self.values = {}
        if not text:
            return
        pairs = re.split(r"[,;]+", text)
        while pairs and pairs[-1] == "":          # Java's split drops trailing empty strings
            pairs.pop()
        for pair in pairs:
            parts = pair.split("=")
            while parts and parts[-1] == "":      # Java's split drops trailing empty strings
                parts.pop()
            if len(parts) < 2:
                raise ValueError(f"not a quota string: {text!r}")
            try:
                self.values[parts[0]] = java_number(parts[1], JAVA_LONG)
            except ValueError:
                raise ValueError(f"not a quota string: {text!r}") from None

    def get(self, key):
        return self.values.get(key, -1)

    def set(self, key, value):
        self.values[key] = value

    def __str__(self):
        text = f"count={self.get('count')},bytes={self.get('bytes')}"
        rest = sorted(key for key in self.values if key not in ("count", "bytes"))
        if rest:
            text += "=" + "".join(f";{key}={self.values[key]}" for key in rest)
        return text

    def encode(self):
        return str(self).encode("utf-8")

    def document(self):
        """For --json: count and bytes, then whatever else the string holds."""
        return {"count": self.get("count"), "bytes": self.get("bytes"),
                **{key: value for key, value in sorted(self.values.items())
                   if key not in ("count", "bytes")}}


def quota_path(path):
    return QUOTA_ROOT + path


def limit_path(path):
    return f"{QUOTA_ROOT}{path}/{LIMIT_NODE}"


def stat_path(path):
    return f"{QUOTA_ROOT}{path}/{STAT_NODE}"


class QuotaNodes:
    """The few node operations the procedures need, on the shell's session."""

    def __init__(self, shell):
        self.shell = shell

    def exists(self, path):
        return self.shell.wait(self.shell.client.exists_async(path)) is not None

    def get(self, path):
        return self.shell.wait(self.shell.client.get_async(path))[0] or b""

    def children(self, path):
        return self.shell.wait(self.shell.client.get_children_async(path))

    def create(self, path, value=None):
        """A persistent node, open to all as zkCli creates it; False if it was there."""
        try:
            self.shell.wait(self.shell.client.create_async(path, value))
            return True
        except NodeExistsError:
            return False

    def set(self, path, value):
        self.shell.wait(self.shell.client.set_async(path, value))

    def delete(self, path):
        self.shell.wait(self.shell.client.delete_async(path))


def _read(nodes, path):
    return StatsTrack(nodes.get(path).decode("utf-8", "replace"))


# -- setquota ------------------------------------------------------------------


def parse_limit(option, text):
    """The limit `setquota -n|-b|-N|-B text` asks for; QuotaRefused with zkCli's words."""
    try:
        if option in ("-n", "-N"):
            value = java_number(text, JAVA_INT)
            if value <= 0:
                raise QuotaRefused("the num quota must be greater than zero", "UsageError")
        else:
            value = java_number(text, JAVA_LONG)
            if value < 0:
                raise QuotaRefused("the bytes quota must be greater than or equal to zero",
                                   "UsageError")
    except ValueError:
        raise QuotaRefused("NumberFormatException happens when parsing the option value",
                           "UsageError") from None
    return value


def set_quota(nodes, path, option, text):
    """Set one limit (`option` -n|-b|-N|-B, its value as typed) on `path`,
    creating the quota if it has none.

    Returns (limits now, zkCli's warning lines: a limit below what is already used).
    """
    if path.startswith(QUOTA_ROOT):
        raise QuotaRefused(f"cannot set a quota under the path: {QUOTA_ROOT}", "UsageError")
    value = parse_limit(option, text)
    if not nodes.exists(path):
        raise NoNodeError()
    _refuse_nested(nodes, path)
    if not nodes.exists(QUOTA_ROOT):
        nodes.create("/zookeeper")
        nodes.create(QUOTA_ROOT)
    here = QUOTA_ROOT
    for name in path[1:].split("/"):
        here = f"{here}/{name}"
        if not nodes.exists(here):
            nodes.create(here)
    wanted = StatsTrack()
    for key in ("count", "bytes", "countHardLimit", "byteHardLimit"):
        wanted.set(key, -1)
    wanted.set(LIMIT_KEYS[option], value)
    if not nodes.exists(limit_path(path)):
        nodes.create(limit_path(path), wanted.encode())
        usage = StatsTrack()
        usage.set("count", 0)
        usage.set("bytes", 0)
        nodes.create(stat_path(path), usage.encode())
        limits = _read(nodes, limit_path(path))
        # Read back: the server may have counted what is already there.
        return limits, _warnings(limits, _read(nodes, stat_path(path)))
    limits = _read(nodes, limit_path(path))
    limits.set(LIMIT_KEYS[option], value)
    warnings = _warnings(limits, _read(nodes, stat_path(path)))
    nodes.set(limit_path(path), limits.encode())
    return limits, warnings


def _warnings(limits, usage):
    """zkCli's checkQuota: soft or hard limits already below the usage."""
    lines = []
    count, size = usage.get("count"), usage.get("bytes")
    if any(-1 < limits.get(key) < count for key in ("count", "countHardLimit")):
        lines.append("[Warning]: the count quota you create is less than the existing"
                     f" count:{count}")
    if any(-1 < limits.get(key) < size for key in ("bytes", "byteHardLimit")):
        lines.append("[Warning]: the bytes quota you create is less than the existing"
                     f" bytes:{size}")
    return lines


def _refuse_nested(nodes, path):
    """Quotas do not nest: no node below `path` and none above it may have one."""
    # Below: every node of the quota tree under path's own (zkCli walks it depth first).
    own = quota_path(path)
    stack = [own]
    while stack:
        here = stack.pop()
        try:
            names = nodes.children(here)
        except NoNodeError:
            continue
        if here != own and LIMIT_NODE in names:
            raise QuotaRefused(f"{path} has a child {here[len(QUOTA_ROOT):]} which has a quota")
        stack.extend(f"{here}/{name}" for name in sorted(names, reverse=True))
    # Above: each ancestor's quota node, stopping where the quota tree ends.
    names_in_path = path[1:].split("/")
    here = QUOTA_ROOT
    for name in names_in_path[:-1]:
        here = f"{here}/{name}"
        try:
            names = nodes.children(here)
        except NoNodeError:
            return
        if not names:
            return
        if LIMIT_NODE in names:
            raise QuotaRefused(f"{path} has a parent {here[len(QUOTA_ROOT):]} which has a quota")


# -- listquota -------------------------------------------------------------------


def list_quota(nodes, path):
    """(limits, usage) of `path`'s quota; QuotaRefused (a NoNodeError) if it has none."""
    try:
        return _read(nodes, limit_path(path)), _read(nodes, stat_path(path))
    except NoNodeError:
        raise QuotaRefused(f"quota for {path} does not exist.", "NoNodeError",
                           NoNodeError.code) from None


# -- delquota ----------------------------------------------------------------------


def del_quota(nodes, path, option=None):
    """Reset one limit to -1 (`option` -n|-b|-N|-B) or, with none, delete the whole
    quota and the parts of the quota tree nothing else needs; the limits left, or None."""
    if not nodes.exists(limit_path(path)):
        raise QuotaRefused(f"Quota does not exist for {path}", "NoNodeError", NoNodeError.code)
    try:
        limits = _read(nodes, limit_path(path))
    except NoNodeError:
        raise QuotaRefused(f"quota for {path} does not exist.", "NoNodeError",
                           NoNodeError.code) from None
    if option is not None:
        limits.set(LIMIT_KEYS[option], -1)
        nodes.set(limit_path(path), limits.encode())
        return limits
    own = quota_path(path)
    for name in nodes.children(own):
        nodes.delete(f"{own}/{name}")
    here = own
    while here != QUOTA_ROOT:
        if nodes.children(here):
            break
        nodes.delete(here)
        here = here[:here.rindex("/")]
    return None
