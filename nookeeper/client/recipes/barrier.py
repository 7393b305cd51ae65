"""Barriers: a gate that opens when its node is removed, and a double barrier
that waits for a whole group to arrive and again for it to leave.

Both wait on watches, which the client keeps across reconnections; calls
interrupted by a lost connection are repeated.
"""

import os
import socket
import threading
import uuid

from nookeeper.client.exceptions import (
    ClientError,
    ConnectionClosedError,
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
    create_in_directory,
)


class Barrier:
    """Holds everyone in wait() while its node exists; remove() lets them through."""

    def __init__(self, client, path):
        self.client = client
        self.path = clean_path(path)

    def create(self):
        """Put the barrier up (nothing happens if it already is); the directories
        above it are containers, removed by the server once the barrier is."""
        self.client.retry(self._put_up)

    def _put_up(self):
        try:
            create_in_directory(self.client, self.path)
        except NodeExistsError:
            pass

    def remove(self):
        """Take the barrier down; False if it was not up."""
        try:
            self.client.retry(self.client.delete, self.path)
        except NoNodeError:
            return False
        return True

    def wait(self, timeout=None):
        """Block until the barrier is down: True, or False if `timeout` passed first."""
        deadline = Deadline(timeout)
        changed = threading.Event()

        def on_event(event):
            changed.set()

        backoff = Backoff()
        while True:
            changed.clear()
            try:
                if self.client.exists(self.path, watch=on_event) is None:
                    return True
            except TRANSIENT:
                if deadline.expired():
                    return False
                backoff.pause(deadline)
                continue
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue
            if not changed.wait(deadline.remaining()):
                return False


class DoubleBarrier:
    """enter() returns once `num_clients` members are in; leave() once all are out.

    Members are ephemeral children of `path`, plus a "ready" node the last
    one in creates; the last one out removes it, so the path can be used
    again for the next round. `path` is a container: the server removes it
    once a round is over, and the next one makes it again.
    """

    READY = "ready"

    def __init__(self, client, path, num_clients, identifier=None):
        if not isinstance(num_clients, int) or num_clients < 1:
            raise ValueError("num_clients must be a positive int")
        self.client = client
        self.path = clean_path(path)
        self.num_clients = num_clients
        self.identifier = identifier or f"{socket.getfqdn()}-{os.getpid()}"
        self.node_name = uuid.uuid4().hex
        self.create_path = child_path(self.path, self.node_name)
        self.ready_path = child_path(self.path, self.READY)
        self.participating = False
        self._wake = threading.Event()

    def _woken(self, event):
        self._wake.set()

    def _members(self):
        try:
            children = self.client.get_children(self.path)
        except NoNodeError:
            return []
        return sorted(c for c in children if c != self.READY)

    def enter(self, timeout=None):
        """Join and wait for the others: True, or False (and out again) if `timeout` passed."""
        deadline = Deadline(timeout)
        backoff = Backoff()
        while True:
            try:
                if self._try_enter():
                    self.participating = True
                    return True
                if not self._wake.wait(deadline.remaining()):
                    self._drop_own_node()
                    return False
            except TRANSIENT:
                if deadline.expired():
                    self._drop_own_node()
                    return False
                backoff.pause(deadline)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue

    def _try_enter(self):
        try:
            create_in_directory(self.client, self.create_path,
                                str(self.identifier).encode("utf-8"), ephemeral=True)
        except NodeExistsError:
            pass
        self._wake.clear()
        if self.client.exists(self.ready_path, watch=self._woken) is not None:
            return True
        if len(self._members()) < self.num_clients:
            return False
        try:
            self.client.create(self.ready_path)
        except NodeExistsError:
            pass
        return True

    def leave(self, timeout=None):
        """Leave and wait until every member has: True, or False if `timeout` passed."""
        deadline = Deadline(timeout)
        backoff = Backoff()
        while True:
            try:
                outcome = self._try_leave()
                if outcome is True:
                    self.participating = False
                    return True
                if outcome is None:
                    self._wake.wait(deadline.remaining())
                if deadline.expired():
                    self._drop_own_node()
                    self.participating = False
                    return False
            except TRANSIENT:
                if deadline.expired():
                    self._drop_own_node()
                    self.participating = False
                    return False
                backoff.pause(deadline)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue

    def _try_leave(self):
        """One step of leaving: True when done, None after setting a watch, False to look again.

        The lowest member leaves last and waits on the highest; everyone
        else leaves at once and waits on the lowest. Departures thus wake
        only the lowest member, and its own departure wakes the rest once.
        """
        self._wake.clear()
        members = self._members()
        if not members:
            self._delete_quietly(self.ready_path)
            return True
        if members == [self.node_name]:
            self._delete_quietly(self.ready_path)
            self._delete_quietly(self.create_path)
            return True
        if members[0] == self.node_name:
            watched = members[-1]
        else:
            self._delete_quietly(self.create_path)
            watched = members[0]
        try:
            self.client.get(child_path(self.path, watched), watch=self._woken)
        except NoNodeError:
            return False
        return None

    def _delete_quietly(self, path):
        try:
            self.client.delete(path)
        except NoNodeError:
            pass

    def _drop_own_node(self):
        try:
            self._delete_quietly(self.create_path)
        except (ZooKeeperError, ClientError):
            pass
