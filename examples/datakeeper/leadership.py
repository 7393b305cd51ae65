"""Which node leads, and how a leadership term begins and ends.

Every node runs one election thread. Once the node is in the live-node
directory it queues on <root>/election with the Election recipe (ephemeral
sequential contenders, each watching only the one ahead of it, so when the
leader's session ends just the next in line wakes). On winning it runs
one term:

1. claim: create the ephemeral leader znode (name, address). Its czxid is
   the term's epoch, higher than any earlier term's: replicas fence with it.
2. recover: ask every live node for its position. The same call makes it
   refuse the previous leader from then on. If one is ahead of us (it got
   writes the old leader never acknowledged), take a full copy from it, so
   no replica holds a write the new history lacks.
3. serve (leader.Leader) until deposed: the session is lost, someone names
   a newer term, a write cannot be confirmed, or the node stops.

Stepping down deletes the leader znode while the session still holds it,
then returns from the Election's function, which deletes our contender and
so wakes the next in line. This node then queues again, as a replica.
"""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from nookeeper.client.exceptions import (
    BadVersionError,
    ClientError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    ZooKeeperError,
)
from nookeeper.client.recipes import Election

from examples.datakeeper.leader import Leader, NotLeader
from examples.datakeeper.peer_client import PeerError, call
from examples.datakeeper.replica import STALE
from examples.datakeeper.store import Copy

log = logging.getLogger("datakeeper.leadership")

FENCE_TIMEOUT_S = 2.0
COPY_TIMEOUT_S = 10.0
RETRY_S = 0.1
# Without a wake-up, look again this often whether we may contend.
IDLE_WAIT_S = 1.0


class _GaveUp(Exception):
    """The term cannot begin: the session changed, or the node stops."""


class Leadership:
    """ready() says whether the node may contend (it is in the directory);
    on_change() runs whenever the role changes."""

    def __init__(self, *, name, url, client, layout, store, view, replica_side, ack_timeout,
                 ready, on_change):
        self._name = name
        self._url = url
        self._client = client
        self._layout = layout
        self._store = store
        self._view = view
        self._replica_side = replica_side
        self._ack_timeout = ack_timeout
        self._ready = ready
        self._on_change = on_change
        self._wake = threading.Event()
        self._stopping = False
        self._election = None
        self.term = None
        self._thread = threading.Thread(target=self._run, name="dk-election", daemon=True)

    def start(self):
        self._thread.start()

    def wake(self):
        self._wake.set()

    def stop(self, timeout):
        """Step down (or stop queueing) and end the election thread."""
        self._stopping = True
        election, term = self._election, self.term
        if election is not None:
            election.cancel()
        if term is not None:
            term.depose(f"{self._name} is stopping")
        self._wake.set()
        self._thread.join(timeout)

    def replicas(self):
        """{name: url} of every live node but this one."""
        return {m.name: m.url for m in self._view.members().values() if m.name != self._name}

    def _run(self):
        while not self._stopping:
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            if self._stopping or not (self._client.connected and self._ready()):
                continue
            self._election = Election(self._client, self._layout.election, self._name)
            try:
                self._election.run(self._lead)
            except ConnectionClosedError:
                return
            except (ZooKeeperError, ClientError) as exc:
                log.info("election interrupted (%r); queueing again", exc)
                time.sleep(RETRY_S)
            self._wake.set()

    def _lead(self):
        client_id = self._client.client_id
        if self._stopping or client_id is None:
            return
        session = client_id[0]
        log.info("won the election")
        try:
            epoch = self._claim(session)
        except _GaveUp as exc:
            log.info("not taking over: %s", exc)
            return
        term = Leader(name=self._name, epoch=epoch, session_id=session, client=self._client,
                      layout=self._layout, store=self._store, ack_timeout=self._ack_timeout,
                      on_deposed=self._wake.set)
        self.term = term
        if self._client.client_id != client_id:
            term.depose("the session that won the election is over")
        self._replica_side.observe(epoch)
        self._on_change()
        try:
            self._recover(term)
            term.begin_serving()
            term.update_replicas(self.replicas())
            log.info("leading term %#x from seq %d", epoch, self._store.seq)
            self._on_change()
            reason = term.wait_deposed()
            log.info("stepping down: %s", reason)
        except NotLeader as exc:
            term.depose(f"taking over failed: {exc}")
        finally:
            term.depose(f"{self._name} stepped down")
            self.term = None
            self._on_change()
            self._unclaim(term)

    def _claim(self, session):
        """Create the leader znode; its czxid, the new term's epoch."""
        data = json.dumps({"name": self._name, "url": self._url}).encode("utf-8")
        path = self._layout.leader
        said = False
        while True:
            client_id = self._client.client_id
            if self._stopping or client_id is None or client_id[0] != session:
                raise _GaveUp("the session that won the election is over")
            try:
                _, stat = self._client.create(path, data, ephemeral=True, include_data=True)
                return stat.czxid
            except NodeExistsError:
                pass
            except (ConnectionLoss, OperationTimeoutError):
                time.sleep(RETRY_S)
                continue
            except SessionExpiredError:
                raise _GaveUp("the session expired") from None
            gone = threading.Event()
            try:
                stat = self._client.exists(path, watch=lambda event: gone.set())
                if stat is not None and stat.ephemeralOwner == session:
                    # Ours, from an earlier term of this session whose release failed.
                    self._client.delete(path, version=stat.version)
                    continue
            except (ConnectionLoss, OperationTimeoutError, NoNodeError, BadVersionError):
                continue
            except SessionExpiredError:
                raise _GaveUp("the session expired") from None
            if stat is not None:
                if not said:
                    log.info("waiting for the previous leader's znode to go (session %#x)",
                             stat.ephemeralOwner)
                    said = True
                gone.wait(IDLE_WAIT_S)

    def _recover(self, term):
        """Fence every live node against the previous leader; take the newest copy."""
        if term.deposed:
            raise NotLeader(term.deposed)
        peers = [m for m in self._view.members().values() if m.name != self._name]
        body = {"epoch": term.epoch, "leader": self._name}
        best, source = self._store.position(), None
        with ThreadPoolExecutor(max_workers=max(len(peers), 1)) as pool:
            asked = [(peer, pool.submit(call, peer.url, "POST", "/replication/fence", body,
                                        FENCE_TIMEOUT_S)) for peer in peers]
            for peer, future in asked:
                try:
                    status, answer = future.result()
                except PeerError as exc:
                    log.info("%s did not answer the fence (%s); it gets a full copy later",
                             peer.name, exc)
                    continue
                if status == 409 and answer.get("error") == STALE:
                    raise NotLeader(answer.get("reason"))
                if status != 200:
                    log.warning("%s answered the fence with %s %s", peer.name, status, answer)
                    continue
                position = (int(answer["epoch"]), int(answer["seq"]))
                if position > best:
                    best, source = position, peer
        if source is None:
            return
        try:
            status, answer = call(source.url, "GET", "/replication/copy", timeout=COPY_TIMEOUT_S)
        except PeerError as exc:
            raise NotLeader(f"{source.name} is ahead of us but its copy is out of reach "
                            f"({exc})") from None
        if status != 200:
            raise NotLeader(f"{source.name} is ahead of us but answered {status} for its copy")
        copy = Copy(int(answer["epoch"]), int(answer["seq"]), answer["items"])
        self._store.install(copy)
        log.info("%s was ahead; took its copy: %d keys at seq %d (term %#x)",
                 source.name, len(copy.items), copy.seq, copy.epoch)

    def _unclaim(self, term):
        """Delete the leader znode if this term's session still holds it."""
        path = self._layout.leader
        while True:
            client_id = self._client.client_id
            if client_id is None or client_id[0] != term.session_id:
                return
            try:
                stat = self._client.exists(path)
                if stat is None or stat.czxid != term.epoch:
                    return
                self._client.delete(path, version=stat.version)
                return
            except (NoNodeError, SessionExpiredError):
                return
            except (ConnectionLoss, OperationTimeoutError, BadVersionError):
                time.sleep(RETRY_S)
