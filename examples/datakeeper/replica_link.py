"""The leader's stream to one replica.

A full copy first, since the replica may be new, behind, or left over from
another term; then every entry in order as soon as it is logged. Each
answer says how far the replica has got, which the write path waits on. A
replica that answers "gap" gets a full copy again; one that answers
"stale" follows a newer leader, which deposes this one. A replica that
does not answer (dead, or SIGSTOPped) is tried again every RETRY_S until
it answers or leaves the directory, when its session expires, and the
leader drops its link.
"""

import logging
import threading

from examples.datakeeper.peer_client import PeerError, call
from examples.datakeeper.replica import GAP, STALE

log = logging.getLogger("datakeeper.link")

RETRY_S = 0.2
CALL_TIMEOUT_S = 2.0
COPY_TIMEOUT_S = 10.0
# Without new entries, wake up this often anyway (a stop, a change of mind).
IDLE_WAIT_S = 1.0


class ReplicaLink:
    """One thread; the term (leader.Leader) owns the condition it waits on."""

    def __init__(self, term, name, url):
        self.term = term
        self.name = name
        self.url = url
        self.acked = None          # the replica's seq in this term, once it has answered
        self.needs_copy = True
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name=f"dk-link-{name}", daemon=True)
        self._failing = False

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        """Set under the term's condition; the thread ends at its next wait."""
        self.stopped = True

    def _run(self):
        term = self.term
        while term.wait_for_work(self, IDLE_WAIT_S):
            try:
                if self.needs_copy:
                    self._send_copy()
                else:
                    entries = term.entries_after(self.acked)
                    if entries is None:
                        self.needs_copy = True
                    elif entries:
                        self._send_entries(entries)
            except PeerError as exc:
                if not self._failing:
                    log.info("replica %s does not answer (%s); trying again every %.1fs",
                             self.name, exc, RETRY_S)
                self._failing = True
                term.pause(self, RETRY_S)

    def _send_copy(self):
        copy = self.term.store.copy()
        status, body = call(self.url, "POST", "/replication/copy", {
            "epoch": self.term.epoch, "leader": self.term.name, "seq": copy.seq,
            "items": copy.items}, timeout=COPY_TIMEOUT_S)
        if self._answered(status, body):
            log.info("sent %s a full copy: %d keys at seq %d",
                     self.name, len(copy.items), copy.seq)
            self.needs_copy = False

    def _send_entries(self, entries):
        status, body = call(self.url, "POST", "/replication/entries", {
            "epoch": self.term.epoch, "leader": self.term.name,
            "entries": [entry.to_json() for entry in entries]}, timeout=CALL_TIMEOUT_S)
        self._answered(status, body)

    def _answered(self, status, body):
        """Take in the replica's answer; True if it took what was sent."""
        if self._failing:
            log.info("replica %s answers again", self.name)
            self._failing = False
        body = body if isinstance(body, dict) else {}
        error = body.get("error")
        if status == 200 and body.get("epoch") == self.term.epoch:
            self.term.acknowledged(self, int(body["seq"]))
            return True
        if status == 200:
            self.needs_copy = True  # it holds another term's copy
        elif status == 409 and error == STALE:
            self.term.depose(f"replica {self.name} refused us: {body.get('reason')}")
        elif status == 409 and error == GAP:
            log.info("replica %s needs a full copy (%s)", self.name, body.get("reason"))
            self.needs_copy = True
        else:
            log.warning("replica %s answered %s %s; trying again", self.name, status, body)
            self.term.pause(self, RETRY_S)
        return False
