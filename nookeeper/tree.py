"""The data tree: every znode in memory, changed only by applying txns.

``apply`` is a pure function of the tree and the txn (the txn carries the
leader's zxid and clock), so replicas that apply the same txns in zxid order
agree on the tree and on every result: error codes, sequence numbers, stats.
Request-level failures are results, not exceptions, because a follower must
reproduce them rather than crash on them. Reads raise, since they answer one
client and change nothing.
"""

from typing import Any, NamedTuple

from nookeeper import acl
from nookeeper.errors import (
    BadArgumentsError,
    BadVersionError,
    MarshallingError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RuntimeInconsistency,
    SessionExpiredError,
    UnimplementedError,
    ZooKeeperError,
)
from nookeeper.listing import Listing
from nookeeper.paths import name_of, parent_of, validate_path
from nookeeper.quota import (
    LIMITS_NODE,
    QuotaTable,
    format_stats,
    limits_path,
    overruns,
    parse_stats,
    quota_root_of,
    stats_path,
)
from nookeeper.wire.ops import (
    CREATES,
    MAX_TTL,
    MULTI_SUB_OPS,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    OpCode,
)

# Stored ephemeralOwner markers for the kinds that are not session-owned.
CONTAINER_OWNER = -(1 << 63)
_TTL_TAG = 0xFF

BUILTIN_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})
_MAX_QUOTA_WARNINGS = 100


def _int32(value):
    """Java int arithmetic: counters wrap instead of growing."""
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def _int64(value):
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def _next_version(version):
    # -1 means "any version" in requests, so a counter must never land on it.
    value = _int32(version + 1)
    return 0 if value == -1 else value


class Outcome(NamedTuple):
    """What applying one txn produced: the reply's err and body, and the
    watch events (event_type, path) to fire, in the order to fire them."""

    err: int
    body: Any
    events: list


class SessionInfo(NamedTuple):
    timeout: int
    passwd: bytes


_MAX_SHARED_ACLS = 1024
_LISTING_CACHE_MIN = 64  # children from which a node's sorted list is kept

# Most znodes are leaves; sharing one empty frozenset saves an empty set
# (216 bytes) per leaf, a fifth of a small znode's memory.
NO_CHILDREN = frozenset()


class Node:
    """One znode. Stores ZooKeeper's persisted counters; ``stat`` derives the
    client-visible ones (cversion, dataLength, numChildren)."""

    __slots__ = ("data", "acl", "children", "czxid", "mzxid", "pzxid", "ctime",
                 "mtime", "version", "aversion", "ephemeral_owner", "child_creates")

    def __init__(self, data, acls, zxid=0, time=0, ephemeral_owner=0):
        self.data = data
        self.acl = acls
        self.children = NO_CHILDREN
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        self.child_creates = 0

    def copy(self):
        twin = Node.__new__(Node)
        for slot in Node.__slots__:
            setattr(twin, slot, getattr(self, slot))
        twin.children = set(self.children) if self.children else NO_CHILDREN
        return twin

    def add_child(self, name):
        if self.children:
            self.children.add(name)
        else:
            self.children = {name}

    def remove_child(self, name):
        children = self.children
        children.discard(name)
        if not children:
            self.children = NO_CHILDREN

    @property
    def is_container(self):
        return self.ephemeral_owner == CONTAINER_OWNER

    @property
    def ttl(self):
        """The TTL in ms of a TTL node, else None."""
        owner = self.ephemeral_owner
        if owner != CONTAINER_OWNER and (owner >> 56) & 0xFF == _TTL_TAG:
            return owner & MAX_TTL
        return None

    @property
    def session(self):
        """The owning session of an ephemeral node, else 0."""
        if self.ephemeral_owner == 0 or self.is_container or self.ttl is not None:
            return 0
        return self.ephemeral_owner

    @property
    def cversion(self):
        # Built-in nodes got their children without counting, hence < 0.
        return _int32(2 * self.child_creates - len(self.children))

    def stat(self):
        return {
            "czxid": self.czxid,
            "mzxid": self.mzxid,
            "ctime": self.ctime,
            "mtime": self.mtime,
            "version": self.version,
            "cversion": self.cversion,
            "aversion": self.aversion,
            "ephemeralOwner": self.session,
            "dataLength": len(self.data) if self.data else 0,
            "numChildren": len(self.children),
            "pzxid": self.pzxid,
        }


def multi_failure(count, index, code):
    """A failed multi's results: the ops before ``index`` OK (rolled back),
    the failing one with ``code``, the rest not run."""
    codes = [0] * index + [code] + [RuntimeInconsistency.code] * (count - index - 1)
    return [{"type": OpCode.ERROR, "err": c, "body": {"err": c}} for c in codes]


def creates_ttl(op, request):
    """Whether a write creates a TTL node (createTTL, or a TTL mode in a
    create or in a multi's sub-op): a server with TTL nodes off refuses it
    before it becomes a txn, so every tree applies TTL creates alike."""
    if op == OpCode.MULTI:
        return any(creates_ttl(sub.type, sub.request) for sub in request or ())
    if op == OpCode.CREATE_TTL:
        return True
    return op in (OpCode.CREATE, OpCode.CREATE2) and request.flags in (5, 6)


class DataTree:
    """All znodes keyed by path, plus the sessions and their ephemerals."""

    def __init__(self, ttl_enabled=True):
        self.ttl_enabled = ttl_enabled
        self.last_zxid = 0
        self.sessions = {}
        self._nodes = {}
        self._ephemerals = {}
        # While a multi runs: the pre-multi copy of each node/ephemeral set it
        # touched (None = absent), so a failure can put everything back.
        self._undo_nodes = None
        self._undo_sessions = None
        self._listings = {}  # path -> sorted child names, for large directories
        self.quotas = QuotaTable()
        # Quota limits newly gone over, for the shell to log: (zxid, Overrun).
        self.quota_warnings = []
        self._over_quota = set()  # (root, "count"|"bytes") now over a limit
        self._handlers = {
            OpCode.CREATE: self._create,
            OpCode.CREATE2: self._create,
            OpCode.CREATE_CONTAINER: self._create,
            OpCode.CREATE_TTL: self._create,
            OpCode.DELETE: self._delete,
            OpCode.DELETE_CONTAINER: self._delete_container,
            OpCode.SET_DATA: self._set_data,
            OpCode.SET_ACL: self._set_acl,
            OpCode.CHECK: self._check,
        }
        self._acl_lists = {}
        for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            node = Node(b"", acl.OPEN_ACL_UNSAFE)
            self._nodes[path] = node
            if path != "/":
                self._nodes[parent_of(path)].add_child(name_of(path))
        config = self._nodes["/zookeeper/config"]
        config.acl = acl.READ_ACL_UNSAFE
        config.aversion = -1

    # ---- writes -----------------------------------------------------------

    def _shared(self, acls):
        """One stored ACL list for all nodes that have equal ones (most have one
        of very few); bounded, so distinct ACLs cannot grow it without end."""
        shared = self._acl_lists.setdefault(acls, acls)
        if len(self._acl_lists) > _MAX_SHARED_ACLS:
            self._acl_lists.clear()
        return shared

    def apply(self, txn):
        """Apply one txn; never raises for a request-level error."""
        self.last_zxid = txn.zxid
        if txn.type == OpCode.CREATE_SESSION:
            request = txn.request
            self.sessions[txn.session] = SessionInfo(request.timeOut, request.passwd)
            return Outcome(0, None, [])
        if txn.type == OpCode.CLOSE_SESSION:
            return Outcome(0, None, self._close_session(txn))
        if txn.type == OpCode.MULTI:
            return self._multi(txn)
        handler = self._handlers.get(txn.type)
        if handler is None or txn.type == OpCode.CHECK:
            return Outcome(UnimplementedError.code, None, [])
        try:
            body, events = handler(txn, txn.type, txn.request)
        except ZooKeeperError as error:
            return Outcome(error.code, None, [])
        return Outcome(0, body, events)

    def _create(self, txn, op, req):
        mode = req.flags
        if not 0 <= mode <= 6:
            raise BadArgumentsError(f"unknown create flags {mode}")
        is_ttl = mode in (5, 6)
        if (is_ttl or op == OpCode.CREATE_TTL) and not self.ttl_enabled:
            raise UnimplementedError("TTL nodes are disabled")
        ttl = req.ttl if op == OpCode.CREATE_TTL else -1
        if is_ttl and not 0 < ttl <= MAX_TTL:
            raise BadArgumentsError(f"ttl {ttl} out of range")
        if not is_ttl and (ttl >= 0 or op == OpCode.CREATE_TTL):
            raise BadArgumentsError(f"flags {mode} do not take a ttl")
        ephemeral = mode in (1, 3)
        if ephemeral and txn.session not in self.sessions:
            raise SessionExpiredError(f"session 0x{txn.session:x} is not alive")
        path = req.path or ""
        if "/" not in path or "\0" in path:
            raise BadArgumentsError(f"invalid path {path!r}")
        acls = self._shared(acl.fixup(acl.from_wire(req.acl), txn.ids))
        parent_path = parent_of(path)
        parent = self._existing(parent_path)
        acl.check(parent.acl, txn.ids, acl.CREATE)
        if mode in (2, 3, 6):
            path += "%010d" % parent.child_creates
        validate_path(path)
        if path in self._nodes:
            raise NodeExistsError(path)
        if parent.session:
            raise NoChildrenForEphemeralsError(parent_path)

        if op == OpCode.CREATE_CONTAINER:
            owner = CONTAINER_OWNER
        elif is_ttl:
            owner = _int64((_TTL_TAG << 56) | ttl)
        elif ephemeral:
            owner = txn.session
        else:
            owner = 0
        self._touch(parent_path)
        self._touch(path)
        node = Node(req.data, acls, txn.zxid, txn.time, owner)
        self._nodes[path] = node
        parent.add_child(name_of(path))
        parent.child_creates = _int32(parent.child_creates + 1)
        parent.pzxid = txn.zxid
        if node.session:
            self._touch_session(node.session)
            self._ephemerals.setdefault(node.session, set()).add(path)
        quota_root = quota_root_of(path)
        if quota_root is not None:
            if path.endswith(LIMITS_NODE):
                self.quotas.roots.add(quota_root)
            else:
                self._recount(quota_root)
        self._count(txn.zxid, path, 1, len(req.data) if req.data else 0)
        events = [(NODE_CREATED, path), (NODE_CHILDREN_CHANGED, parent_path)]
        if op == OpCode.CREATE:
            return {"path": path}, events
        return {"path": path, "stat": node.stat()}, events

    def _delete(self, txn, op, req):
        path = req.path or ""
        if "/" not in path or "\0" in path or path in BUILTIN_PATHS:
            raise BadArgumentsError(f"cannot delete {path!r}")
        parent = self._existing(parent_of(path))
        acl.check(parent.acl, txn.ids, acl.DELETE)
        node = self._existing(path)
        self._check_version(req.version, node.version, path)
        if node.children:
            raise NotEmptyError(path)
        return None, self._remove(path, txn.zxid)

    def _delete_container(self, txn, op, req):
        """The reaper's delete: no ACL check, and only a node that is still
        reapable by the txn's clock (it may have changed since it was picked)."""
        path = req if isinstance(req, str) else req.path
        validate_path(path)
        if path in BUILTIN_PATHS:
            raise BadArgumentsError(f"cannot delete {path!r}")
        node = self._existing(path)
        if node.children:
            raise NotEmptyError(path)
        ttl = node.ttl
        expired_ttl = ttl is not None and txn.time - node.mtime > ttl
        if not (node.is_container or expired_ttl):
            raise BadVersionError(f"{path} is not a reapable container or TTL node")
        return None, self._remove(path, txn.zxid)

    def _set_data(self, txn, op, req):
        validate_path(req.path)
        node = self._existing(req.path)
        acl.check(node.acl, txn.ids, acl.WRITE)
        self._check_version(req.version, node.version, req.path)
        self._touch(req.path)
        old_size = len(node.data) if node.data else 0
        node.data = req.data
        self._count(txn.zxid, req.path, 0, (len(req.data) if req.data else 0) - old_size)
        node.version = _next_version(node.version)
        node.mzxid = txn.zxid
        node.mtime = txn.time
        return node.stat(), [(NODE_DATA_CHANGED, req.path)]

    def _set_acl(self, txn, op, req):
        validate_path(req.path)
        acls = self._shared(acl.fixup(acl.from_wire(req.acl), txn.ids))
        node = self._existing(req.path)
        acl.check(node.acl, txn.ids, acl.ADMIN)
        self._check_version(req.version, node.aversion, req.path)
        self._touch(req.path)
        node.acl = acls
        node.aversion = _next_version(node.aversion)
        return node.stat(), []

    def _check(self, txn, op, req):
        validate_path(req.path)
        node = self._existing(req.path)
        acl.check(node.acl, txn.ids, acl.READ)
        self._check_version(req.version, node.version, req.path)
        return None, []

    def _multi(self, txn):
        ops = txn.request or []
        if any(sub.type not in MULTI_SUB_OPS for sub in ops):
            return Outcome(MarshallingError.code, None, [])
        self._undo_nodes, self._undo_sessions = {}, {}
        over_quota, warned = set(self._over_quota), len(self.quota_warnings)
        results, events = [], []
        try:
            for sub in ops:
                body, sub_events = self._handlers[sub.type](txn, sub.type, sub.request)
                result_type = (OpCode.CREATE2 if sub.type in CREATES and sub.type != OpCode.CREATE
                               else sub.type)
                results.append({"type": result_type, "err": 0, "body": body})
                events.extend(sub_events)
        except ZooKeeperError as error:
            self._rollback()
            self._over_quota = over_quota  # what a rolled-back op went over was not gone over
            del self.quota_warnings[warned:]
            return Outcome(0, multi_failure(len(ops), len(results), error.code), [])
        finally:
            self._undo_nodes = self._undo_sessions = None
        return Outcome(0, results, events)

    def _rollback(self):
        for path, saved in self._undo_nodes.items():
            if saved is None:
                self._nodes.pop(path, None)
            else:
                self._nodes[path] = saved
        for session, saved in self._undo_sessions.items():
            if saved is None:
                self._ephemerals.pop(session, None)
            else:
                self._ephemerals[session] = saved
        for path in self._undo_nodes:
            root = quota_root_of(path)
            if root is not None and path.endswith(LIMITS_NODE):
                if path in self._nodes:
                    self.quotas.roots.add(root)
                else:
                    self.quotas.roots.discard(root)

    def _close_session(self, txn):
        self.sessions.pop(txn.session, None)
        events = []
        for path in sorted(self._ephemerals.get(txn.session, ())):
            events.extend(self._remove(path, txn.zxid))
        return events

    def _remove(self, path, zxid):
        parent_path = parent_of(path)
        parent = self._nodes[parent_path]
        self._touch(parent_path)
        self._touch(path)
        node = self._nodes.pop(path)
        parent.remove_child(name_of(path))
        parent.pzxid = zxid
        if node.session:
            self._touch_session(node.session)
            owned = self._ephemerals[node.session]
            owned.discard(path)
            if not owned:
                del self._ephemerals[node.session]
        quota_root = quota_root_of(path)
        if quota_root is not None and path.endswith(LIMITS_NODE):
            self.quotas.roots.discard(quota_root)
        self._count(zxid, path, -1, -len(node.data) if node.data else 0)
        return [(NODE_DELETED, path), (NODE_CHILDREN_CHANGED, parent_path)]

    def _count(self, zxid, path, count_diff, bytes_diff):
        """Count a change under a quota root into its stats node, in place
        (no new version, as ZooKeeper does), and note a limit newly gone over."""
        root = self.quotas.root_for(path)
        if root is None:
            return
        stats_at = stats_path(root)
        stats = self._nodes.get(stats_at)
        if stats is None:
            return
        usage = parse_stats(stats.data)
        limits_node = self._nodes.get(limits_path(root))
        if limits_node is not None:
            self._note_overruns(zxid, root, parse_stats(limits_node.data), usage,
                                count_diff, bytes_diff)
        usage["count"] = usage.get("count", -1) + count_diff
        usage["bytes"] = usage.get("bytes", -1) + bytes_diff
        self._touch(stats_at)
        stats.data = format_stats(usage)

    def _note_overruns(self, zxid, root, limits, usage, count_diff, bytes_diff):
        over = {(o.root, o.what): o for o in overruns(root, limits, usage, count_diff, bytes_diff)}
        for what, diff in (("count", count_diff), ("bytes", bytes_diff)):
            key = (root, what)
            if key in over:
                if key not in self._over_quota:
                    self._over_quota.add(key)
                    if len(self.quota_warnings) < _MAX_QUOTA_WARNINGS:
                        self.quota_warnings.append((zxid, over[key]))
            elif diff:
                self._over_quota.discard(key)

    def _recount(self, root):
        """Set a new stats node to its subtree's usage, as ZooKeeper does when
        the node is created: the root itself and every node below it."""
        stats = self._nodes.get(stats_path(root))
        if stats is None:
            return
        count = size = 0
        pending = [root] if root in self._nodes else []
        while pending:
            path = pending.pop()
            node = self._nodes[path]
            count += 1
            size += len(node.data) if node.data else 0
            prefix = path if path != "/" else ""
            pending.extend(f"{prefix}/{name}" for name in node.children)
        self._touch(stats_path(root))
        stats.data = format_stats({"count": count, "bytes": size})

    def _touch(self, path):
        """Remember ``path`` as it was before the running multi changed it,
        and forget its sorted child list, which the change may alter."""
        self._listings.pop(path, None)
        if self._undo_nodes is not None and path not in self._undo_nodes:
            node = self._nodes.get(path)
            self._undo_nodes[path] = node.copy() if node else None

    def _touch_session(self, session):
        if self._undo_sessions is not None and session not in self._undo_sessions:
            owned = self._ephemerals.get(session)
            self._undo_sessions[session] = set(owned) if owned is not None else None

    def _existing(self, path):
        node = self._nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        return node

    @staticmethod
    def _check_version(expected, current, path):
        if expected != -1 and expected != current:
            raise BadVersionError(f"{path}: expected version {expected}, is {current}")

    # ---- reads ------------------------------------------------------------

    def node(self, path):
        return self._nodes.get(path)

    def exists(self, path, ids=None):
        """The Stat, or None when missing. With ``ids``, READ is required on an
        existing node (ZooKeeper 3.8.4+); without, no check (3.8.0)."""
        if path is None or "\0" in path:
            raise BadArgumentsError(f"invalid path {path!r}")
        node = self._nodes.get(path)
        if node is None:
            return None
        if ids is not None:
            acl.check(node.acl, ids, acl.READ)
        return node.stat()

    def get_data(self, path, ids):
        node = self._readable(path, ids, acl.READ)
        return node.data, node.stat()

    def get_children(self, path, ids):
        """Child names sorted (a tuple), so every replica answers alike; a large
        directory's is kept as a Listing until the node changes, since such
        directories (group members, queues) are listed far more often."""
        node = self._readable(path, ids, acl.READ)
        names = self._listings.get(path)
        if names is None:
            if len(node.children) >= _LISTING_CACHE_MIN:
                names = self._listings[path] = Listing(sorted(node.children))
            else:
                names = tuple(sorted(node.children))
        return names, node.stat()

    def get_acl(self, path, ids):
        node = self._readable(path, ids, acl.READ | acl.ADMIN)
        acls = node.acl
        if not acl.permits(acls, ids, acl.ADMIN):
            acls = acl.mask_digests(acls)
        return acl.to_wire(acls), node.stat()

    def get_all_children_number(self, path, ids):
        """Every descendant, not just direct children."""
        node = self._readable(path, ids, acl.READ)
        if path == "/":
            return len(self._nodes) - 1
        count, stack = 0, [(path, node)]
        while stack:
            here, node = stack.pop()
            count += len(node.children)
            stack.extend((f"{here}/{name}", self._nodes[f"{here}/{name}"])
                         for name in node.children)
        return count

    def get_ephemerals(self, session, prefix=None):
        """The session's ephemeral paths starting with ``prefix`` as plain text
        (so '/a' also matches '/ab/x'); a blank or '/' prefix means all."""
        owned = self._ephemerals.get(session, ())
        if prefix is None or not prefix.strip() or prefix == "/":
            return sorted(owned)
        return sorted(p for p in owned if p.startswith(prefix))

    def _readable(self, path, ids, perm):
        node = self._existing(path)
        acl.check(node.acl, ids, perm)
        return node

    # ---- bookkeeping ------------------------------------------------------

    def nodes(self):
        """(path, Node) pairs in no particular order: for snapshots, which must not change them."""
        return self._nodes.items()

    def restore(self, zxid, nodes, sessions):
        """Take over a snapshot's nodes; children and ephemerals follow from the paths."""
        for path, node in nodes.items():
            if path != "/":
                cut = path.rindex("/")
                nodes[path[:cut] or "/"].add_child(path[cut + 1:])
            if node.ephemeral_owner and node.session:
                self._ephemerals.setdefault(node.session, set()).add(path)
        self._nodes = nodes
        self._listings = {}
        # The snapshot holds the stats as counted up to its zxid, so they are
        # kept as they are: every member counts alike whichever way it recovered.
        self.quotas = QuotaTable()
        self.quotas.roots.update(quota_root_of(path) for path in nodes
                                 if path.endswith("/" + LIMITS_NODE) and quota_root_of(path))
        self.sessions = dict(sessions)
        self.last_zxid = zxid

    def set_config(self, data):
        """/zookeeper/config as this member's own configuration has it, set
        outside the log, as ZooKeeper's ZKDatabase.initConfigInZKDatabase does
        at start-up and after a sync: an ensemble's membership with version -1
        and mzxid 0 (a static config's version), as ZooKeeper 3.8 shows it; b""
        (a standalone server) leaves the node as a fresh tree has it. mtime
        stays 0 (ZooKeeper's is the time it was set), so members agree."""
        node = self._nodes["/zookeeper/config"]
        node.data = data
        node.version = -1 if data else 0
        node.mzxid = node.mtime = 0

    def ephemerals(self, session):
        return set(self._ephemerals.get(session, ()))

    def paths(self):
        """Every znode path, sorted: for snapshots, dumps and comparisons."""
        return sorted(self._nodes)

    @property
    def node_count(self):
        return len(self._nodes)

    @property
    def ephemeral_count(self):
        return sum(len(owned) for owned in self._ephemerals.values())

    @property
    def approximate_data_size(self):
        """Path lengths plus data lengths, as ZooKeeper's mntr reports it."""
        return sum(len(path) + (len(node.data) if node.data else 0)
                   for path, node in self._nodes.items())

    def reapable(self, now_ms, max_never_used_ms=0):
        """Paths the reaper should delete: childless containers that once had
        a child (or, with max_never_used_ms, never had one for that long since
        they were created), and childless TTL nodes unmodified for longer than
        their TTL."""
        found = []
        for path, node in self._nodes.items():
            if node.children:
                continue
            ttl = node.ttl
            if node.is_container:
                if node.child_creates != 0 or (
                        max_never_used_ms and now_ms - node.ctime > max_never_used_ms):
                    found.append(path)
            elif ttl is not None and now_ms - node.mtime > ttl:
                found.append(path)
        return sorted(found)
