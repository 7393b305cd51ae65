"""This node's entry in the live-node directory.

A Party member: an ephemeral znode under <root>/nodes whose data is the
node's address and status (JSON: role, sequence number, the nookeeper
server it is connected to, its session, its pid). The entry goes with the
session, so a node that dies leaves the directory by itself once its
session expires, and the leader stops waiting for it. After a lost session
this node joins again. The status is rewritten when it changes, at most
every PUBLISH_INTERVAL_S: that is how every node's page learns how far
behind each replica is without asking anyone.
"""

import json
import logging
import threading
import time

from nookeeper.client.exceptions import ClientError, NoNodeError, ZooKeeperError

log = logging.getLogger("datakeeper.membership")

PUBLISH_INTERVAL_S = 0.2
# Without a wake-up, look again this often (a lost session, a status to rewrite).
IDLE_WAIT_S = 1.0


def _encode(status):
    return json.dumps(status, sort_keys=True)


class Membership:
    """status() gives the dict to publish; on_joined() runs after every (re)join."""

    def __init__(self, client, layout, name, status, view, on_joined):
        self._client = client
        self._name = name
        self._status = status
        self._view = view
        self._on_joined = on_joined
        self._party = client.Party(layout.nodes, name)
        self._wake = threading.Event()
        self._stopping = False
        self._waiting_for_name = False
        self._thread = threading.Thread(target=self._run, name="dk-membership", daemon=True)

    @property
    def joined(self):
        return self._party.participating

    def start(self):
        self._thread.start()
        self._wake.set()

    def wake(self):
        """Something changed: the status, the session, or the directory."""
        self._wake.set()

    def stop(self):
        """Stop publishing; the entry itself goes when the client closes its session."""
        self._stopping = True
        self._wake.set()

    def _run(self):
        published = None
        while True:
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            if self._stopping:
                return
            if not self._client.connected:
                continue
            try:
                if not self._party.participating:
                    if self._name_taken():
                        continue
                    published = self._join()
                status = self._status()
                if status != published:
                    self._client.set(self._party.create_path, _encode(status).encode("utf-8"))
                    published = status
            except NoNodeError:
                log.info("our directory entry is gone; joining again")
                self._party.participating = False
                self._wake.set()
            except (ZooKeeperError, ClientError) as exc:
                log.info("directory entry not updated (%r); trying again", exc)
                self._wake.set()
            time.sleep(PUBLISH_INTERVAL_S)

    def _name_taken(self):
        """Another entry carries our name: an earlier process of this node whose
        session has not expired yet (kill -9, then a quick restart), or a
        misconfigured twin. Wait for it to go; the directory's watch wakes us."""
        ours = self._party.create_path
        holder = self._view.members().get(self._name)
        taken = holder is not None and holder.path != ours
        if taken and not self._waiting_for_name:
            log.warning("the directory already has a node named %s (%s, pid %s); "
                        "waiting for its session to end", self._name,
                        holder.url, holder.pid)
        self._waiting_for_name = taken
        return taken

    def _join(self):
        status = self._status()
        self._party.data = _encode(status).encode("utf-8")
        self._party.join()
        log.info("in the live-node directory as %s", self._party.create_path)
        self._on_joined()
        return status
