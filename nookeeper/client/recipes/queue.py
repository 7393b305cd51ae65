"""Queues: a plain Queue whose get() removes the entry it returns, and a
LockingQueue whose entries stay queued, locked, until they are consumed.

Entries are sequential children named "entry-<priority>-<sequence>", so
sorting the names gives priority order (lower first) and, within one
priority, the order in which they were put. kazoo's queues use the same
names and layout. The directories are containers: the server removes an
emptied one, and the next put makes it again.
"""

import threading
import uuid

from nookeeper.client.exceptions import (
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from nookeeper.client.recipes._base import (
    TRANSIENT,
    Backoff,
    Deadline,
    child_path,
    clean_path,
    create_in_directory,
    ensure_directory,
)

# _take/_claim found the entry gone or taken by someone else.
_MISSED = object()


def _check_priority(priority):
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError("priority must be an int")
    if not 0 <= priority <= 999:
        raise ValueError("priority must be between 0 and 999")


def _check_value(value):
    if not isinstance(value, bytes):
        raise TypeError("value must be bytes")


def _repeat(func, *args, **kwargs):
    """Repeat a call that is safe to repeat through a lost connection or a new session."""
    backoff = Backoff()
    forever = Deadline(None)
    while True:
        try:
            return func(*args, **kwargs)
        except TRANSIENT:
            backoff.pause(forever)
        except ConnectionClosedError:
            raise
        except SessionExpiredError:
            continue


def _failure(results):
    """The error that made a multi fail (not the rolled-back bystanders), or None."""
    errors = [r for r in results if isinstance(r, Exception)]
    for error in errors:
        if not isinstance(error, (RolledBackError, RuntimeInconsistency)):
            return error
    return errors[0] if errors else None


class _BaseQueue:
    prefix = "entry-"

    def __init__(self, client, path):
        self.client = client
        self.path = clean_path(path)
        self._entries_path = self.path
        self._structure = (self.path,)
        self._ensured = False

    def _ensure_paths(self):
        if not self._ensured:
            for path in self._structure:
                _repeat(ensure_directory, self.client, path)
            self._ensured = True

    def _entry_prefix(self, priority):
        return child_path(self._entries_path, f"{self.prefix}{priority:03d}-")

    def put(self, value, priority=100):
        """Add an entry; lower priorities come out first (0..999, 100 by default).

        A connection lost during the put raises ConnectionLoss: the entry may
        or may not be in, and putting it again could queue it twice.
        """
        _check_value(value)
        _check_priority(priority)
        self._ensure_paths()
        create_in_directory(self.client, self._entry_prefix(priority), value, sequence=True)

    def put_all(self, values, priority=100):
        """Add several entries, all or none, consecutively in the queue's order."""
        values = list(values)
        for value in values:
            _check_value(value)
        _check_priority(priority)
        if not values:
            return
        self._ensure_paths()
        failure = self._put_together(values, priority)
        if isinstance(failure, NoNodeError):
            # The directory was reaped since; a failed multi put nothing in.
            _repeat(ensure_directory, self.client, self._entries_path)
            failure = self._put_together(values, priority)
        if failure is not None:
            raise failure

    def _put_together(self, values, priority):
        transaction = self.client.transaction()
        for value in values:
            transaction.create(self._entry_prefix(priority), value, sequence=True)
        return _failure(transaction.commit())

    def __len__(self):
        try:
            _, stat = _repeat(self.client.get, self._entries_path)
        except NoNodeError:
            return 0
        return stat.numChildren


class Queue(_BaseQueue):
    """queue = client.Queue("/queues/jobs"); queue.put(b"job"); queue.get().

    get() removes the entry before the caller processes it, so an entry
    whose consumer dies before finishing is lost (LockingQueue avoids
    that). When the connection drops while get() removes an entry and the
    entry is then found gone, get() returns it: in the rare case another
    consumer removed it in that instant, both have it.
    """

    def get(self):
        """Remove and return the first entry's value; None when the queue is empty."""
        while True:
            try:
                names = sorted(_repeat(self.client.get_children, self.path))
            except NoNodeError:
                return None
            if not names:
                return None
            for name in names:
                value = self._claim(child_path(self.path, name))
                if value is not _MISSED:
                    return value

    def _claim(self, path):
        """The entry's value if we are the one who deleted it."""
        try:
            value, _ = _repeat(self.client.get, path)
        except NoNodeError:
            return _MISSED
        backoff = Backoff()
        forever = Deadline(None)
        while True:
            try:
                self.client.delete(path)
                return value
            except NoNodeError:
                return _MISSED
            except TRANSIENT:
                backoff.pause(forever)
                if _repeat(self.client.exists, path) is None:
                    return value
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue


class LockingQueue(_BaseQueue):
    """A queue whose entries are locked, not removed, by get().

        queue = client.LockingQueue("/queues/jobs")
        value = queue.get()
        ...process value...
        queue.consume()     # or queue.release() to hand it back

    Entries live under "<path>/entries"; the lock on one is an ephemeral
    node of the same name under "<path>/taken" holding this object's id, so
    an entry whose consumer dies (its session ends) is offered again.
    """

    def __init__(self, client, path):
        super().__init__(client, path)
        self.id = uuid.uuid4().hex.encode()
        self.processing_element = None
        self._taken_path = child_path(self.path, "taken")
        self._entries_path = child_path(self.path, "entries")
        self._structure = (self._taken_path, self._entries_path)
        self._wake = threading.Event()
        self._getting = threading.Lock()

    def get(self, timeout=None):
        """Lock the first free entry and return its value; None if none came in time.

        Until consume() or release(), get() returns that same value again.
        """
        with self._getting:
            if self.processing_element is not None:
                return self.processing_element[1]
            self._ensure_paths()
            deadline = Deadline(timeout)
            backoff = Backoff()
            while True:
                try:
                    value = self._take_first()
                    if value is not _MISSED:
                        return value
                    if not self._wake.wait(deadline.remaining()):
                        return None
                except TRANSIENT:
                    if deadline.expired():
                        return None
                    backoff.pause(deadline)
                except ConnectionClosedError:
                    raise
                except SessionExpiredError:
                    continue

    def _take_first(self):
        self._wake.clear()
        # Either list changing may free an entry: a new one, or a released lock.
        try:
            entries = self.client.get_children(self._entries_path, watch=self._changed)
            taken = set(self.client.get_children(self._taken_path, watch=self._changed))
        except NoNodeError:
            # A directory reaped once emptied: make it again (and watch it), then look again.
            self._ensured = False
            self._ensure_paths()
            self._wake.set()
            return _MISSED
        for name in sorted(entries):
            if name in taken:
                continue
            value = self._take(name)
            if value is not _MISSED:
                self.processing_element = (name, value)
                return value
        return _MISSED

    def _changed(self, event):
        self._wake.set()

    def _take(self, name):
        lock = child_path(self._taken_path, name)
        backoff = Backoff()
        forever = Deadline(None)
        while True:
            try:
                create_in_directory(self.client, lock, self.id, ephemeral=True)
                break
            except NodeExistsError:
                # Ours if an earlier create's reply was lost.
                if self._lock_owner(lock) != self.id:
                    return _MISSED
                break
            except TRANSIENT:
                backoff.pause(forever)
                owner = self._lock_owner(lock)
                if owner == self.id:
                    break
                if owner is not None:
                    return _MISSED
        try:
            value, _ = _repeat(self.client.get, child_path(self._entries_path, name))
        except NoNodeError:
            # Consumed just before we locked it: let the lock go again.
            self._delete_lock(lock)
            return _MISSED
        return value

    def _lock_owner(self, lock):
        try:
            owner, _ = _repeat(self.client.get, lock)
        except NoNodeError:
            return None
        return owner

    def _delete_lock(self, lock):
        try:
            _repeat(self.client.delete, lock)
        except NoNodeError:
            pass

    def holds_lock(self):
        """Whether this object still holds the lock of the entry get() returned.

        False after the session that took it was lost, even if the client
        reconnected since.
        """
        if self.processing_element is None:
            return False
        lock = child_path(self._taken_path, self.processing_element[0])
        _repeat(self.client.sync, lock)
        return self._lock_owner(lock) == self.id

    def consume(self):
        """Remove the entry get() returned; False if its lock was lost (it stays queued)."""
        if not self.holds_lock():
            self.processing_element = None
            return False
        name = self.processing_element[0]
        entry = child_path(self._entries_path, name)
        lock = child_path(self._taken_path, name)
        backoff = Backoff()
        forever = Deadline(None)
        while True:
            try:
                transaction = self.client.transaction()
                transaction.delete(entry)
                transaction.delete(lock)
                done = _failure(transaction.commit()) is None
                break
            except TRANSIENT:
                backoff.pause(forever)
                # We hold the lock, so the entry being gone means our delete went through.
                if _repeat(self.client.exists, entry) is None:
                    done = True
                    break
                if not self.holds_lock():
                    done = False
                    break
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                done = _repeat(self.client.exists, entry) is None
                break
        self.processing_element = None
        return done

    def release(self):
        """Unlock the entry get() returned, leaving it queued; False if the lock was already lost."""
        if not self.holds_lock():
            self.processing_element = None
            return False
        self._delete_lock(child_path(self._taken_path, self.processing_element[0]))
        self.processing_element = None
        return True
