"""TreeWatch: a local copy of a subtree, kept current by one persistent recursive watch.

What Curator's CuratorCache does: one addWatch (recursive) on the root, one
read of the whole subtree once the watch is set, then a getData per created
or changed node and a removal per deleted one. A recursive watch never says
"children changed", so a node's children are the view's paths below it, and
its Stat (numChildren, cversion, pzxid) is read again when one comes or goes.

Everything that changes the view runs on the client's watcher thread, in
event order, so the view only moves forward. Events sent while the
connection was down are lost and the watch does not replay them, so the
subtree is read again after every reconnect (and the watch set again on a
new session); what differs from the view is reported to the listener like
any other change.
"""

import logging
import threading

from nookeeper.client.exceptions import (
    ClientError,
    NoAuthError,
    NoNodeError,
    ZooKeeperError,
)
from nookeeper.client.paths import normalize
from nookeeper.client.states import EventType, KeeperState

log = logging.getLogger("nookeeper.client")


def _child(parent, name):
    return ("" if parent == "/" else parent) + "/" + name


class TreeWatch:
    """view = client.TreeWatch("/config", listener).start(); view.get("/config/db").

    listener(event_type, path, data) hears every change the view takes in
    (EventType.CREATED, CHANGED or DELETED; data is the node's new data,
    or its last one for DELETED), on the watcher thread. Paths are the
    client's (inside its chroot), the root's own included. The client
    offers it bound to itself, like DataWatch: client.TreeWatch(path).
    """

    def __init__(self, client, path, listener=None):
        if listener is not None and not callable(listener):
            raise TypeError("listener must be callable")
        self.client = client
        self.path = normalize(path)
        self._listener = listener
        self._lock = threading.Lock()
        self._nodes = {}
        # Watcher thread only: whether our watch is set, whether the view may
        # have missed events since it was last read whole.
        self._watching = False
        self._stale = True
        self._closed = False

    # -- reading the view (any thread) ------------------------------------

    def get(self, path):
        """(data, ZnodeStat) of a node in the view, or None."""
        with self._lock:
            return self._nodes.get(normalize(path))

    def children(self, path):
        """Sorted child names of a node in the view ([] for a leaf), or None."""
        path = normalize(path)
        prefix = _child(path, "")
        with self._lock:
            if path not in self._nodes:
                return None
            return sorted(p[len(prefix):] for p in self._nodes
                          if p != path and p.startswith(prefix) and "/" not in p[len(prefix):])

    def snapshot(self):
        """{path: (data, ZnodeStat)} of the whole view, a copy."""
        with self._lock:
            return dict(self._nodes)

    # -- lifetime ----------------------------------------------------------

    def start(self):
        """Set the watch and read the subtree; returns self once the view is whole."""
        self.client.add_listener(self._state_changed)
        failure = []

        def load():
            try:
                self.client.retry(self._refresh)
            except Exception as exc:
                failure.append(exc)

        self.client._run_as_callback(load)
        if failure:
            self.close()
            raise failure[0]
        return self

    def close(self):
        """Stop following the subtree; the view keeps what it had."""
        self._closed = True
        self.client.remove_listener(self._state_changed)
        self.client._discard_watch(self.path, self._on_event, recursive=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.close()

    # -- the watcher thread ------------------------------------------------

    def _state_changed(self, state):
        if self._closed:
            return True
        if state == KeeperState.LOST:
            self._watching = False
            self._stale = True
        elif state == KeeperState.SUSPENDED:
            self._stale = True
        elif self._stale:
            self._refresh_quietly()
        return None

    def _on_event(self, event):
        if self._closed:
            return
        if event.type == EventType.NONE:
            # The session is gone and our watch with it; set again on the next one.
            self._watching = False
            self._stale = True
            return
        if event.type == EventType.DELETED:
            self._remove(event.path)
        else:
            self._read(event.path)
        if event.type != EventType.CHANGED and event.path != self.path:
            # A recursive watch never says children changed; the parent's Stat did.
            parent = event.path.rsplit("/", 1)[0] or "/"
            if self.get(parent) is not None:
                self._read(parent)

    def _read(self, path):
        try:
            data, stat = self.client.get(path)
        except NoNodeError:
            return  # deleted since; its DELETED event follows
        except (ZooKeeperError, ClientError) as exc:
            log.info("tree watch %s: cannot read %s (%r); read again on reconnect",
                     self.path, path, exc)
            self._stale = True
            return
        self._put(path, data, stat)

    def _refresh_quietly(self):
        try:
            self._refresh()
        except (ZooKeeperError, ClientError) as exc:
            # A new connection (a state change) tries again.
            log.info("tree watch %s: reload failed (%r)", self.path, exc)

    def _refresh(self):
        """Set the watch if the session lacks it, then read the subtree and take the differences."""
        if self._closed:
            return
        if not self._watching:
            self.client.add_watch(self.path, self._on_event, recursive=True)
            self._watching = True
        fresh = self._read_tree()
        with self._lock:
            gone = [p for p in self._nodes if p not in fresh]
        for path in sorted(gone, reverse=True):
            self._remove(path)
        for path in sorted(fresh):
            self._put(path, *fresh[path])
        self._stale = False

    def _read_tree(self):
        """{path: (data, stat)} of the subtree now, level by level, each level pipelined."""
        nodes = {}
        level = [self.path]
        while level:
            reads = [(path, self.client.get_async(path)) for path in level]
            parents = []
            for path, result in reads:
                try:
                    nodes[path] = result.get()
                except (NoNodeError, NoAuthError):
                    continue
                if nodes[path][1].numChildren:
                    parents.append(path)
            listings = [(path, self.client.get_children_async(path)) for path in parents]
            level = []
            for path, result in listings:
                try:
                    level.extend(_child(path, name) for name in result.get())
                except NoNodeError:
                    continue
        return nodes

    def _put(self, path, data, stat):
        """Take a node as read; the listener hears of it if it is new or its data changed."""
        with self._lock:
            old = self._nodes.get(path)
            self._nodes[path] = (data, stat)
        if old is None:
            self._tell(EventType.CREATED, path, data)
        elif (old[1].czxid, old[1].mzxid) != (stat.czxid, stat.mzxid):
            self._tell(EventType.CHANGED, path, data)

    def _remove(self, path):
        prefix = _child(path, "")
        with self._lock:
            gone = sorted((p for p in self._nodes if p == path or p.startswith(prefix)),
                          reverse=True)
            removed = [(p, self._nodes.pop(p)[0]) for p in gone]
        for p, data in removed:
            self._tell(EventType.DELETED, p, data)

    def _tell(self, event_type, path, data):
        if self._listener is None:
            return
        try:
            self._listener(event_type, path, data)
        except Exception:
            log.exception("tree watch %s: listener failed on %s %s", self.path, event_type, path)
