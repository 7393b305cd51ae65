"""Locks: an exclusive Lock, a ReadLock/WriteLock pair on one path, a Semaphore.

Contenders queue up as sequential children of the lock path and each one
watches only the nearest node ahead of it that can keep it waiting, so a
release wakes the one contender it concerns instead of all of them (no herd
effect). Node names are kazoo's ("<uuid>__lock__<seq>" for exclusive and
write locks, "<uuid>__rlock__<seq>" for read locks) so that these locks and
kazoo's exclude each other on the same path.

The lock path is a container (a plain node on servers without them), so
the server removes it once the last contender is gone; a contender that
finds it removed makes it again.

Contender nodes are ephemeral: a lock survives a suspended connection but
not the session. When the session is lost a held lock's is_acquired turns
False; code that must never run unprotected should also watch the client's
state (add_listener) and stop on SUSPENDED.

A blocking acquire() must not run on the client's callback thread (inside a
watch function or listener): the notification it waits for is delivered
on that very thread.
"""

import re
import threading
import uuid

from nookeeper.client.exceptions import (
    CancelledError,
    ClientError,
    ConnectionClosedError,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    ZooKeeperError,
)
from nookeeper.client.recipes._base import (
    TRANSIENT,
    Backoff,
    Deadline,
    child_path,
    clean_path,
    ensure_directory,
    identifier_bytes,
)
from nookeeper.client.states import KeeperState


class _NodeGone(Exception):
    """Our contender node is no longer a child of the lock path."""


class _LostLock(Exception):
    """The Semaphore's guard lock went away while we held it: start over."""


def _sequence_pattern(names):
    """Matches a contender node of one of `names`; group 1 is its sequence number."""
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    return re.compile(rf"(?:{alternatives})(-?\d{{10}})$")


class Lock:
    """An exclusive lock shared by every client using the same path.

        lock = client.Lock("/locks/report", "worker-7")
        with lock:
            ...

    Not re-entrant: a second acquire() on a held Lock object waits for its
    release, as with threading.Lock. `identifier` is what contenders()
    reports for this contender.
    """

    _NODE_NAME = "__lock__"
    # Nodes of these kinds, queued ahead of ours, keep us waiting.
    _EXCLUDE_NAMES = ("__lock__",)

    def __init__(self, client, path, identifier=None, extra_lock_patterns=()):
        self.client = client
        self.path = clean_path(path)
        self.data = identifier_bytes(identifier)
        blockers = set(self._EXCLUDE_NAMES) | set(extra_lock_patterns)
        self._blockers = _sequence_pattern(blockers)
        self._everyone = _sequence_pattern(blockers | {self._NODE_NAME})
        self._new_prefix()
        self.node = None
        self.is_acquired = False
        self.cancelled = False
        self._ephemeral = True
        self._create_tried = False
        self._path_ensured = False
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._busy = False

    def _new_prefix(self):
        # The uuid lets us find our node again when a create's reply is lost.
        self.prefix = uuid.uuid4().hex + self._NODE_NAME
        self.create_path = child_path(self.path, self.prefix)

    # -- acquiring -----------------------------------------------------

    def acquire(self, blocking=True, timeout=None, ephemeral=True):
        """Take the lock; True once held.

        With blocking=False, False at once when someone else holds it. With
        a timeout, LockTimeout when it passes first. CancelledError after
        cancel(). ephemeral=False keeps the lock through session loss (it
        must then be released explicitly, by this object or by hand).
        """
        deadline = Deadline(timeout)
        if not self._claim(blocking, deadline):
            return False
        try:
            return self._contend(blocking, deadline, ephemeral)
        except BaseException:
            self._abandon()
            raise
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _claim(self, blocking, deadline):
        """One acquisition at a time per object; a held object waits for its release."""
        with self._cond:
            while self._busy or self.is_acquired:
                if not blocking:
                    return False
                self._raise_if_cancelled()
                remaining = deadline.remaining()
                if remaining == 0:
                    raise LockTimeout(f"lock {self.path} not acquired in time")
                self._cond.wait(remaining)
            self._busy = True
            return True

    def _raise_if_cancelled(self):
        if self.cancelled:
            self.cancelled = False
            raise CancelledError(f"acquiring {self.path} was cancelled")

    def _contend(self, blocking, deadline, ephemeral):
        self._ephemeral = ephemeral
        self.client.add_listener(self._session_changed)
        backoff = Backoff()
        while True:
            self._raise_if_cancelled()
            try:
                if self.node is None:
                    self.node = self._place_node(ephemeral)
                self._wake.clear()
                blocker = self._blocker()
                if blocker is None:
                    with self._cond:
                        self.is_acquired = True
                    return True
                if not blocking:
                    self._abandon()
                    return False
                if self._watch(blocker) and not self._wake.wait(deadline.remaining()):
                    raise LockTimeout(f"lock {self.path} not acquired in time")
                backoff.reset()
            except _NodeGone:
                self.node = None
                self._create_tried = False
            except NoNodeError:
                # The lock path itself was deleted, and our node with it.
                self.node = None
                self._create_tried = False
                self._path_ensured = False
            except TRANSIENT:
                if deadline.expired():
                    raise LockTimeout(f"lock {self.path} not acquired in time") from None
                backoff.pause(deadline, lambda: self.cancelled)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                # An ephemeral node went with the old session; a persistent
                # one is still there and found again by its prefix.
                self.node = None
                self._create_tried = True

    def _place_node(self, ephemeral):
        if self._create_tried:
            found = self._find_own()
            if found is not None:
                return found
        if not self._path_ensured:
            ensure_directory(self.client, self.path)
            self._path_ensured = True
        self._create_tried = True
        created = self.client.create(self.create_path, self.data,
                                     ephemeral=ephemeral, sequence=True)
        return created.rsplit("/", 1)[1]

    def _find_own(self):
        for child in self.client.get_children(self.path):
            if child.startswith(self.prefix):
                return child
        return None

    def _blocker(self):
        """The nearest node ahead of ours that keeps us waiting; None: the lock is ours."""
        children = self.client.get_children(self.path)
        if self.node not in children:
            raise _NodeGone()
        ours = self.node[len(self.prefix):]
        nearest = None
        for child in children:
            match = self._blockers.search(child)
            if match is None:
                continue
            # Sequence strings compare like kazoo compares them, so mixed
            # clients agree on the order.
            sequence = match.group(1)
            if sequence < ours and (nearest is None or sequence > nearest[0]):
                nearest = (sequence, child)
        return None if nearest is None else nearest[1]

    def _watch(self, name):
        """Watch the blocker; False when it is already gone (look again at once)."""
        try:
            self.client.get(child_path(self.path, name), watch=self._blocker_changed)
        except NoNodeError:
            return False
        return True

    def _blocker_changed(self, event):
        self._wake.set()

    def _session_changed(self, state):
        if state != KeeperState.LOST:
            return None
        self._wake.set()
        with self._cond:
            if not (self.is_acquired and self._ephemeral):
                return None
            self.is_acquired = False
            self.node = None
            self._create_tried = False
            self._cond.notify_all()
        return True

    def cancel(self):
        """Stop a pending acquire() (it raises CancelledError); the next one if none is pending."""
        self.cancelled = True
        self._wake.set()
        with self._cond:
            self._cond.notify_all()

    # -- giving up ---------------------------------------------------------

    def _abandon(self):
        """Leave the queue after a failed acquire, so our node blocks nobody."""
        self.client.remove_listener(self._session_changed)
        node, tried, prefix = self.node, self._create_tried, self.prefix
        self.node = None
        self._create_tried = False
        if node is None and not tried:
            return
        try:
            _delete_contender(self.client, self.path, prefix, node)
            return
        except (ZooKeeperError, ClientError):
            pass
        # The connection is down: finish in the background, and use a fresh
        # prefix so our next acquire cannot pick up the node being removed.
        self._new_prefix()
        threading.Thread(target=_delete_contender_later, name="nookeeper-lock-cleanup",
                         args=(self.client, self.path, prefix, node), daemon=True).start()

    # -- releasing -------------------------------------------------------

    def release(self):
        """Give the lock up; True if it was held."""
        with self._cond:
            if not self.is_acquired:
                return False
            node = self.node
        if node is not None:
            _delete_until_gone(self.client, child_path(self.path, node), self._ephemeral)
        with self._cond:
            self.is_acquired = False
            self.node = None
            self._create_tried = False
            self._cond.notify_all()
        self.client.remove_listener(self._session_changed)
        return True

    def contenders(self):
        """Identifiers of everyone queued on this path, in queue order (holders first)."""
        try:
            children = self.client.retry(self.client.get_children, self.path)
        except NoNodeError:
            return []
        queued = []
        for child in children:
            match = self._everyone.search(child)
            if match is not None:
                queued.append((match.group(1), child))
        identifiers = []
        for _, child in sorted(queued):
            try:
                data, _ = self.client.retry(self.client.get, child_path(self.path, child))
            except NoNodeError:
                continue
            identifiers.append((data or b"").decode("utf-8"))
        return identifiers

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()


def _delete_contender(client, path, prefix, node):
    if node is None:
        for child in client.get_children(path):
            if child.startswith(prefix):
                node = child
                break
        else:
            return
    try:
        client.delete(child_path(path, node))
    except NoNodeError:
        pass


def _delete_contender_later(client, path, prefix, node, patience=60.0):
    """Keep trying to remove an abandoned contender node until it is gone or the session is."""
    deadline = Deadline(patience)
    backoff = Backoff(first=0.2, limit=2.0)
    while not deadline.expired():
        try:
            _delete_contender(client, path, prefix, node)
            return
        except TRANSIENT:
            backoff.pause(deadline)
        except (ZooKeeperError, ClientError):
            return


def _delete_until_gone(client, path, ephemeral):
    """Delete through connection trouble; an ephemeral node also goes with its session."""
    backoff = Backoff()
    forever = Deadline(None)
    while True:
        try:
            client.delete(path)
            return
        except NoNodeError:
            return
        except TRANSIENT:
            backoff.pause(forever)
        except SessionExpiredError as exc:
            # ConnectionClosedError included: the client was stopped.
            if ephemeral:
                return
            if isinstance(exc, ConnectionClosedError):
                raise
            backoff.pause(forever)


class WriteLock(Lock):
    """The exclusive side of a shared lock: waits for every reader and writer ahead of it."""

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES = ("__lock__", "__rlock__")


class ReadLock(Lock):
    """The shared side: readers hold it together, waiting only for writers ahead of them."""

    _NODE_NAME = "__rlock__"
    _EXCLUDE_NAMES = ("__lock__",)


class Semaphore:
    """At most `max_leases` holders at a time.

        with client.Semaphore("/pools/db", "worker-7", max_leases=3):
            ...

    Leases are ephemeral children of `path`, whose data records max_leases
    so that users disagreeing on it are caught (ValueError). Contenders
    queue on a Lock at "<path>-__lock__" and only its holder watches the
    leases, so a freed lease wakes one contender. The layout is kazoo's.
    """

    def __init__(self, client, path, identifier=None, max_leases=1):
        if not isinstance(max_leases, int) or max_leases < 1:
            raise ValueError("max_leases must be a positive int")
        self.client = client
        self.path = clean_path(path)
        self.identifier = "" if identifier is None else str(identifier)
        self.data = identifier_bytes(identifier)
        self.max_leases = max_leases
        self.lease_name = uuid.uuid4().hex
        self.create_path = child_path(self.path, self.lease_name)
        self.lock_path = self.path + "-__lock__"
        self.is_acquired = False
        self.cancelled = False
        self._guard = None
        self._pool_checked = False
        self._wake = threading.Event()
        self._mutex = threading.Lock()

    def acquire(self, blocking=True, timeout=None):
        """Take a lease; True once held (at once if this object holds one).

        blocking=False gives False when none is free; a timeout raises
        LockTimeout; cancel() raises CancelledError.
        """
        deadline = Deadline(timeout)
        with self._mutex:
            if self.is_acquired:
                return True
            self.client.add_listener(self._session_changed)
            try:
                got = self._acquire(blocking, deadline)
            except BaseException as exc:
                self.client.remove_listener(self._session_changed)
                self._drop_lease_quietly()
                if isinstance(exc, CancelledError):
                    self.cancelled = False
                raise
            if not got:
                self.client.remove_listener(self._session_changed)
            self.is_acquired = got
            return got

    def _raise_if_cancelled(self):
        if self.cancelled:
            self.cancelled = False
            raise CancelledError(f"acquiring a lease of {self.path} was cancelled")

    def _acquire(self, blocking, deadline):
        backoff = Backoff()
        while True:
            self._raise_if_cancelled()
            try:
                self._check_pool()
                if self.client.exists(self.create_path) is not None:
                    return True
                return self._acquire_under_guard(blocking, deadline)
            except _LostLock:
                continue
            except TRANSIENT:
                if deadline.expired():
                    raise LockTimeout(f"no lease of {self.path} in time") from None
                backoff.pause(deadline, lambda: self.cancelled)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue

    def _acquire_under_guard(self, blocking, deadline):
        guard = Lock(self.client, self.lock_path, self.identifier)
        self._guard = guard
        try:
            if self.cancelled:
                guard.cancel()
            if not guard.acquire(blocking=blocking, timeout=deadline.remaining()):
                return False
            while True:
                self._raise_if_cancelled()
                if not guard.is_acquired:
                    raise _LostLock()
                self._wake.clear()
                leases = self.client.get_children(self.path, watch=self._leases_changed)
                if self.lease_name in leases:
                    return True
                if len(leases) < self.max_leases:
                    return self._take_lease(guard)
                if not blocking:
                    return False
                if not self._wake.wait(deadline.remaining()):
                    raise LockTimeout(f"no lease of {self.path} in time")
        finally:
            self._guard = None
            guard.release()

    def _take_lease(self, guard):
        """Create our lease only while our guard node still exists (one multi)."""
        if guard.node is None or not guard.is_acquired:
            raise _LostLock()
        transaction = self.client.transaction()
        transaction.check(child_path(guard.path, guard.node), 0)
        transaction.create(self.create_path, self.data, ephemeral=True)
        checked, created = transaction.commit()
        if isinstance(checked, Exception):
            raise _LostLock()
        if isinstance(created, NodeExistsError) or not isinstance(created, Exception):
            return True
        raise created

    def _check_pool(self):
        """Create the lease pool recording max_leases, or check the recorded value."""
        if self._pool_checked:
            return
        record = str(self.max_leases).encode("utf-8")
        try:
            self.client.create(self.path, record, makepath=True)
        except NodeExistsError:
            data, stat = self.client.get(self.path)
            if not data:
                try:
                    self.client.set(self.path, record, version=stat.version)
                except ZooKeeperError:
                    pass
            else:
                try:
                    recorded = int(data.decode("utf-8"))
                except ValueError:
                    recorded = None  # the node's data is someone else's business
                if recorded is not None and recorded != self.max_leases:
                    raise ValueError(f"{self.path} is a semaphore of {recorded} leases, "
                                     f"not {self.max_leases}") from None
        self._pool_checked = True

    def _leases_changed(self, event):
        self._wake.set()

    def _session_changed(self, state):
        if state != KeeperState.LOST:
            return None
        self._wake.set()
        if self.is_acquired:
            self.is_acquired = False
            return True
        return None

    def _drop_lease_quietly(self):
        try:
            self.client.delete(self.create_path)
        except (ZooKeeperError, ClientError):
            pass

    def cancel(self):
        """Stop a pending acquire() (it raises CancelledError)."""
        self.cancelled = True
        self._wake.set()
        guard = self._guard
        if guard is not None:
            guard.cancel()

    def release(self):
        """Give the lease back; True if this object held one."""
        if not self.is_acquired:
            return False
        _delete_until_gone(self.client, self.create_path, ephemeral=True)
        self.is_acquired = False
        self.client.remove_listener(self._session_changed)
        return True

    def lease_holders(self):
        """Identifiers of the current lease holders, in no particular order."""
        try:
            leases = self.client.retry(self.client.get_children, self.path)
        except NoNodeError:
            return []
        holders = []
        for lease in leases:
            try:
                data, _ = self.client.retry(self.client.get, child_path(self.path, lease))
            except NoNodeError:
                continue
            holders.append((data or b"").decode("utf-8"))
        return holders

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()
