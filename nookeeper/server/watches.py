"""Watch tables: who gets told about a change.

Watches belong to connections, not sessions: when a connection closes its
watches go with it, and a reconnecting Java client restores them with
SetWatches. The table only decides *who* gets an event; sending is the
caller's job, so this module holds no locks and does no I/O (the caller
serialises access under the tree lock).
"""

from nookeeper.wire.ops import (
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    WATCHER_ANY,
    WATCHER_CHILDREN,
    WATCHER_DATA,
    WATCHER_PERSISTENT,
    WATCHER_PERSISTENT_RECURSIVE,
)

DATA = "data"
CHILD = "child"
PERSISTENT = "persistent"
RECURSIVE = "recursive"
KINDS = (DATA, CHILD, PERSISTENT, RECURSIVE)


def _ancestors(path):
    """The path itself and every ancestor up to the root."""
    yield path
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        yield path


class WatchTable:
    """One-shot data/child watches and persistent(-recursive) watches."""

    def __init__(self):
        self._by_kind = {kind: {} for kind in KINDS}
        self._by_watcher = {}

    def add(self, kind, path, watcher):
        self._by_kind[kind].setdefault(path, set()).add(watcher)
        self._by_watcher.setdefault(watcher, set()).add((kind, path))

    def _discard(self, kind, path, watcher):
        watchers = self._by_kind[kind].get(path)
        if watchers is None or watcher not in watchers:
            return False
        watchers.discard(watcher)
        if not watchers:
            del self._by_kind[kind][path]
        owned = self._by_watcher.get(watcher)
        if owned is not None:
            owned.discard((kind, path))
            if not owned:
                del self._by_watcher[watcher]
        return True

    def trigger(self, event_type, path):
        """Watchers to notify of one change, each once; one-shot watches are consumed."""
        one_shot = []
        if event_type in (NODE_CREATED, NODE_DATA_CHANGED, NODE_DELETED):
            one_shot.append(DATA)
        if event_type in (NODE_CHILDREN_CHANGED, NODE_DELETED):
            one_shot.append(CHILD)
        targets = []
        seen = set()
        for kind in one_shot:
            for watcher in list(self._by_kind[kind].get(path, ())):
                self._discard(kind, path, watcher)
                if watcher not in seen:
                    seen.add(watcher)
                    targets.append(watcher)
        for watcher in self._by_kind[PERSISTENT].get(path, ()):
            if watcher not in seen:
                seen.add(watcher)
                targets.append(watcher)
        if event_type != NODE_CHILDREN_CHANGED and self._by_kind[RECURSIVE]:
            for ancestor in _ancestors(path):
                for watcher in self._by_kind[RECURSIVE].get(ancestor, ()):
                    if watcher not in seen:
                        seen.add(watcher)
                        targets.append(watcher)
        return targets

    def kinds_for_type(self, watcher_type):
        """The tables a checkWatches/removeWatches WatcherType refers to."""
        return {
            WATCHER_CHILDREN: (CHILD,),
            WATCHER_DATA: (DATA,),
            WATCHER_ANY: KINDS,
            WATCHER_PERSISTENT: (PERSISTENT,),
            WATCHER_PERSISTENT_RECURSIVE: (RECURSIVE,),
        }[watcher_type]

    def has(self, watcher, path, watcher_type):
        return any(
            watcher in self._by_kind[kind].get(path, ())
            for kind in self.kinds_for_type(watcher_type)
        )

    def remove(self, watcher, path, watcher_type):
        """Remove the watcher's watches of that type on path; True if any went."""
        removed = False
        for kind in self.kinds_for_type(watcher_type):
            removed |= self._discard(kind, path, watcher)
        return removed

    def drop_watcher(self, watcher):
        """Forget every watch of a connection that closed."""
        for kind, path in list(self._by_watcher.get(watcher, ())):
            self._discard(kind, path, watcher)

    def paths_of(self, watcher):
        return sorted({path for _kind, path in self._by_watcher.get(watcher, ())})

    def watchers(self):
        return list(self._by_watcher)

    def by_path(self):
        """path -> set of watchers, all kinds together (for wchp)."""
        merged = {}
        for table in self._by_kind.values():
            for path, watchers in table.items():
                merged.setdefault(path, set()).update(watchers)
        return merged

    @property
    def count(self):
        return sum(len(owned) for owned in self._by_watcher.values())
