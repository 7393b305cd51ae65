"""The key-value map one node holds, and where in the leader's history it stands.

A copy is at a position (epoch, seq). The epoch names the leadership term
whose history the copy follows: the czxid of that term's leader znode, so a
later term always compares higher. seq counts writes and goes on across
terms. Entries are applied strictly one after another; a copy that would
skip one, or that follows another term, has to be replaced by a full copy.
"""

import threading
from collections import namedtuple

PUT = "put"
DELETE = "delete"


class Entry(namedtuple("Entry", "epoch seq op key value")):
    """One write of a term's history; value is None for a delete."""

    __slots__ = ()

    def to_json(self):
        return {"seq": self.seq, "op": self.op, "key": self.key, "value": self.value}

    @classmethod
    def from_json(cls, epoch, record):
        op = record["op"]
        if op not in (PUT, DELETE):
            raise ValueError(f"unknown operation {op!r}")
        value = record.get("value")
        if op == PUT and not isinstance(value, str):
            raise ValueError("a put needs a string value")
        return cls(int(epoch), int(record["seq"]), op, str(record["key"]), value)


class Copy(namedtuple("Copy", "epoch seq items")):
    """A whole store at one position: what a full copy sends."""

    __slots__ = ()


class OutOfOrder(Exception):
    """An entry that does not follow the store's position."""


class Store:
    """Thread-safe; on_change() runs after every change, outside the lock."""

    def __init__(self, on_change=lambda: None):
        self._lock = threading.Lock()
        self._items = {}
        self._epoch = 0
        self._seq = 0
        self._on_change = on_change

    def position(self):
        with self._lock:
            return self._epoch, self._seq

    @property
    def seq(self):
        with self._lock:
            return self._seq

    def get(self, key):
        """(value or None, seq)."""
        with self._lock:
            return self._items.get(key), self._seq

    def __contains__(self, key):
        with self._lock:
            return key in self._items

    def copy(self):
        with self._lock:
            return Copy(self._epoch, self._seq, dict(self._items))

    def apply(self, entry):
        with self._lock:
            if entry.epoch != self._epoch or entry.seq != self._seq + 1:
                raise OutOfOrder(f"entry {entry.seq} of term {entry.epoch:#x} does not follow "
                                 f"{self._seq} of term {self._epoch:#x}")
            if entry.op == PUT:
                self._items[entry.key] = entry.value
            else:
                self._items.pop(entry.key, None)
            self._seq = entry.seq
        self._on_change()

    def install(self, copy):
        """Replace everything with a full copy."""
        with self._lock:
            self._epoch, self._seq, self._items = copy.epoch, copy.seq, dict(copy.items)
        self._on_change()

    def continue_as(self, epoch):
        """A new leader's term goes on from this copy: later entries carry its epoch."""
        with self._lock:
            self._epoch = epoch
        self._on_change()
