"""A node's side of the leader's replication calls, fenced by term.

The node remembers the newest term it has heard of: from the leader
znode's DataWatch, or from a new leader's fence call, which a new leader
makes to every live node before it serves. After that a deposed leader
(SIGSTOPped, or cut off until its session expired) gets its calls refused
with 409 "stale", and steps down on hearing it. Entries are taken only in
order and only for the term the store follows; anything else answers 409
"gap", and the leader sends a full copy instead.
"""

import logging
import threading

from examples.datakeeper.store import Copy, Entry, OutOfOrder

log = logging.getLogger("datakeeper.replica")

STALE = "stale"
GAP = "gap"


class ReplicaSide:
    """on_newer_term(epoch) runs (outside any lock) when a newer term shows up."""

    def __init__(self, name, store, on_newer_term):
        self._name = name
        self._store = store
        self._on_newer_term = on_newer_term
        self._lock = threading.Lock()
        self._accepted = 0

    @property
    def accepted_epoch(self):
        with self._lock:
            return self._accepted

    def observe(self, epoch):
        """A term seen in the leader znode: nothing older is taken from now on."""
        with self._lock:
            newer = epoch > self._accepted
            if newer:
                self._accepted = epoch
        if newer:
            self._on_newer_term(epoch)

    def fence(self, epoch, leader):
        """A new leader's first call: refuse its predecessors, report our position."""
        return self._call(epoch, leader, lambda: None)

    def take_entries(self, epoch, leader, records):
        def apply():
            for record in records:
                entry = Entry.from_json(epoch, record)
                if (epoch, entry.seq) <= self._store.position():
                    continue  # sent again after a lost answer
                self._store.apply(entry)

        return self._call(epoch, leader, apply)

    def take_copy(self, epoch, leader, seq, items):
        def install():
            self._store.install(Copy(epoch, seq, items))
            log.info("full copy from %s: %d keys at seq %d (term %#x)",
                     leader, len(items), seq, epoch)

        return self._call(epoch, leader, install)

    def _call(self, epoch, leader, work):
        """(status, body) of one replication call: refused if from an older term,
        else work() under the lock, and our position."""
        with self._lock:
            if epoch < self._accepted:
                log.info("refused %s, leader of term %#x: term %#x has begun",
                         leader, epoch, self._accepted)
                return 409, {"error": STALE, "accepted_epoch": self._accepted,
                             "reason": f"{self._name} follows a newer leader "
                                       f"(term {self._accepted:#x} > {epoch:#x})"}
            newer = epoch > self._accepted
            self._accepted = epoch
            try:
                work()
                answer = 200, self._position_body()
            except OutOfOrder as exc:
                answer = 409, {"error": GAP, "reason": str(exc), **self._position_body()}
        if newer:
            self._on_newer_term(epoch)
        return answer

    def _position_body(self):
        epoch, seq = self._store.position()
        return {"node": self._name, "epoch": epoch, "seq": seq}
