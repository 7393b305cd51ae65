"""Requests served from the local tree: reads, watch registration, sync.

Each function takes the state, the connection and the decoded request and
returns the response body, or raises a ZooKeeperError. Callers hold the tree
lock, so a read and the watch it leaves see one state of the tree.
"""

from nookeeper import acl
from nookeeper.errors import MarshallingError, NoNodeError, NoWatcherError, ZooKeeperError
from nookeeper.server import watches as w
from nookeeper.wire.ops import (
    MODE_PERSISTENT,
    MODE_PERSISTENT_RECURSIVE,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    WATCHER_TYPES,
    OpCode,
)


def _exists(state, conn, req):
    if req.path is not None and "\x00" in req.path:
        state.tree.exists(req.path)  # raises BadArgumentsError for the NUL
    if req.watch:
        state.watches.add(w.DATA, req.path, conn)
    stat = state.tree.exists(req.path)
    if stat is None:
        raise NoNodeError(req.path)
    return stat


def _get_data(state, conn, req):
    data, stat = state.tree.get_data(req.path, conn.ids)
    if req.watch:
        state.watches.add(w.DATA, req.path, conn)
    return {"data": data, "stat": stat}


def _get_children(state, conn, req):
    children, stat = state.tree.get_children(req.path, conn.ids)
    if req.watch:
        state.watches.add(w.CHILD, req.path, conn)
    return {"children": children, "stat": stat}


def _get_acl(state, conn, req):
    acl, stat = state.tree.get_acl(req.path, conn.ids)
    return {"acl": acl, "stat": stat}


def _watcher_type(value):
    if value not in WATCHER_TYPES:
        raise MarshallingError(f"unknown watcher type {value}")
    return value


def _check_watches(state, conn, req):
    if not state.watches.has(conn, req.path, _watcher_type(req.type)):
        raise NoWatcherError(req.path)
    return None


def _remove_watches(state, conn, req):
    if not state.watches.remove(conn, req.path, _watcher_type(req.type)):
        raise NoWatcherError(req.path)
    return None


def _add_watch(state, conn, req):
    if req.mode == MODE_PERSISTENT:
        state.watches.add(w.PERSISTENT, req.path, conn)
    elif req.mode == MODE_PERSISTENT_RECURSIVE:
        state.watches.add(w.RECURSIVE, req.path, conn)
    else:
        raise MarshallingError(f"unknown addWatch mode {req.mode}")
    return {"err": 0}


def _get_ephemerals(state, conn, req):
    return {"ephemerals": state.tree.get_ephemerals(conn.session_id, req.prefixPath)}


def _get_all_children_number(state, conn, req):
    return {"totalNumber": state.tree.get_all_children_number(req.path, conn.ids)}


def _who_am_i(state, conn, req):
    """As ZooKeeper 3.8 answers (AuthUtil.getClientInfos): each identity with
    its provider's user name (ip: the address; digest: the user before the
    hash), super as ZooKeeper holds it (id '' and no provider, so user ''),
    in the order a ZooKeeper connection keeps them."""
    held = dict.fromkeys(("super", "") if scheme == "super" else (scheme, ident)
                         for scheme, ident in conn.ids)
    infos = []
    for scheme, ident in acl.zookeeper_order(held):
        user = ident.split(":", 1)[0] if scheme == "digest" else ident
        infos.append({"authScheme": scheme, "user": user})
    return {"clientInfo": infos}


def _multi_read(state, conn, ops):
    results = []
    for op in ops:
        try:
            if op.type == OpCode.GET_DATA:
                data, stat = state.tree.get_data(op.request.path, conn.ids)
                results.append({"type": op.type, "err": 0, "body": {"data": data, "stat": stat}})
            else:
                children, _stat = state.tree.get_children(op.request.path, conn.ids)
                results.append({"type": op.type, "err": 0, "body": {"children": children}})
        except ZooKeeperError as exc:
            results.append({"type": OpCode.ERROR, "err": exc.code, "body": {"err": exc.code}})
    return results


def set_watches(state, conn, req, persistent=False):
    """Restore a reconnecting client's watches, firing what it missed (spec 9.5).

    Returns the events to send, in order, before the -8 reply.
    """
    tree = state.tree
    since = req.relativeZxid
    fired = []
    for path in req.dataWatches or ():
        found = tree.node(path)
        if found is None:
            fired.append((NODE_DELETED, path))
        elif found.mzxid > since:
            fired.append((NODE_DATA_CHANGED, path))
        else:
            state.watches.add(w.DATA, path, conn)
    for path in req.existWatches or ():
        if tree.node(path) is not None:
            fired.append((NODE_CREATED, path))
        else:
            state.watches.add(w.DATA, path, conn)
    for path in req.childWatches or ():
        found = tree.node(path)
        if found is None:
            fired.append((NODE_DELETED, path))
        elif found.pzxid > since:
            fired.append((NODE_CHILDREN_CHANGED, path))
        else:
            state.watches.add(w.CHILD, path, conn)
    if persistent:
        for path in req.persistentWatches or ():
            state.watches.add(w.PERSISTENT, path, conn)
        for path in req.persistentRecursiveWatches or ():
            state.watches.add(w.RECURSIVE, path, conn)
    return fired


# The handler of each op the registry (wire/ops.py) calls a read.
READS = {
    OpCode.EXISTS: _exists,
    OpCode.GET_DATA: _get_data,
    OpCode.GET_ACL: _get_acl,
    OpCode.GET_CHILDREN: lambda state, conn, req: {"children": _get_children(state, conn, req)["children"]},
    OpCode.GET_CHILDREN2: _get_children,
    OpCode.CHECK_WATCHES: _check_watches,
    OpCode.REMOVE_WATCHES: _remove_watches,
    OpCode.ADD_WATCH: _add_watch,
    OpCode.GET_EPHEMERALS: _get_ephemerals,
    OpCode.GET_ALL_CHILDREN_NUMBER: _get_all_children_number,
    OpCode.WHO_AM_I: _who_am_i,
    OpCode.MULTI_READ: _multi_read,
}


def serve(state, conn, opcode, req):
    return READS[opcode](state, conn, req)
