"""One DataKeeper process: its store, its nookeeper session, its view of the
cluster, its place in the directory and in the election.

Threads: the HTTP server's (one per request, api.py), the client's I/O and
watcher threads, the membership thread, the election thread (which runs a
leadership term when it wins) and, while leading, one link per replica.
Watch events and session changes arrive on the client's watcher thread;
the handlers here only record and wake, never block.
"""

import logging
import os
import time

from nookeeper.client import KeeperClient, KeeperState

from examples.datakeeper.cluster_view import ClusterView
from examples.datakeeper.feed import StatusFeed
from examples.datakeeper.layout import Layout
from examples.datakeeper.leader import NotLeader
from examples.datakeeper.leadership import Leadership
from examples.datakeeper.membership import Membership
from examples.datakeeper.replica import ReplicaSide
from examples.datakeeper.store import Store

log = logging.getLogger("datakeeper.node")

LEADER = "leader"
TAKING_OVER = "taking over"
REPLICA = "replica"
# How many keys the page is sent; the API has them all.
PAGE_KEYS = 500
STOP_TIMEOUT_S = 5.0


class NoLeader(Exception):
    """Nobody leads at the moment (an election is under way)."""


class Redirect(Exception):
    """The write belongs to the leader, at self.leader.url."""

    def __init__(self, leader):
        super().__init__(f"{leader.name} leads, at {leader.url}")
        self.leader = leader


class DataKeeperNode:
    def __init__(self, *, name, hosts, root, url, session_timeout, ack_timeout=None):
        self.name = name
        self.url = url.rstrip("/")
        self.hosts = hosts
        self.session_timeout = session_timeout
        self.ack_timeout = ack_timeout if ack_timeout is not None else 2 * session_timeout + 1
        self.pid = os.getpid()
        self.feed = StatusFeed()
        self.store = Store(on_change=self._changed)
        self.layout = Layout(root.rstrip("/") or "/datakeeper")
        self.client = KeeperClient(hosts, timeout=session_timeout,
                                   command_retry={"max_delay": 1.0})
        self.view = ClusterView(self.client, self.layout, on_change=self._view_changed)
        self.replica_side = ReplicaSide(name, self.store, on_newer_term=self._newer_term)
        self.membership = Membership(self.client, self.layout, name, self.status, self.view,
                                     on_joined=self._joined)
        self.leadership = Leadership(
            name=name, url=self.url, client=self.client, layout=self.layout, store=self.store,
            view=self.view, replica_side=self.replica_side, ack_timeout=self.ack_timeout,
            ready=lambda: self.membership.joined, on_change=self._changed)

    # -- lifetime ----------------------------------------------------------

    def start(self, connect_timeout=15.0):
        """Connect, read the cluster's state, join the directory and the election."""
        self.client.start(timeout=connect_timeout)
        self.client.add_listener(self._session_changed)
        log.info("nookeeper session %s on %s", self._session_text(), self._server_text())
        self.view.start()
        self.membership.start()
        self.leadership.start()

    def stop(self):
        """Step down, then close the session: our ephemeral znodes go at once,
        so the next leader need not wait for a session timeout."""
        self.membership.stop()
        self.leadership.stop(STOP_TIMEOUT_S)
        self.view.close()
        self.client.stop()
        self.feed.close()
        log.info("stopped")

    # -- what the API asks -------------------------------------------------

    @property
    def role(self):
        term = self.leadership.term
        if term is None:
            return REPLICA
        return LEADER if term.serving else TAKING_OVER

    def write(self, op, key, value=None):
        """The leader's Entry for the write; Redirect, NoLeader, NotLeader, NotAcknowledged."""
        term = self.leadership.term
        if term is not None and term.serving:
            return term.write(op, key, value)
        if term is not None:
            raise NotLeader(f"{self.name} is taking over as leader; try again shortly")
        leader = self.view.leader()
        if leader is None or leader.name == self.name:
            raise NoLeader("no node leads at the moment; try again shortly")
        raise Redirect(leader)

    def response_headers(self, seq=None):
        """Who answered, in which role, at which point of the history."""
        role = self.role
        leader = self.view.leader()
        return {
            "X-DataKeeper-Node": self.name,
            "X-DataKeeper-Role": role,
            "X-DataKeeper-Seq": str(self.store.seq if seq is None else seq),
            "X-DataKeeper-Leader": leader.name if leader is not None else "",
            "X-DataKeeper-Consistency": "strong" if role == LEADER else "eventual",
        }

    def status(self):
        """This node as its directory entry publishes it."""
        epoch, seq = self.store.position()
        return {"name": self.name, "url": self.url, "role": self.role, "seq": seq,
                "epoch": epoch, "zk_server": self._server_text(),
                "session": self._session_text(), "pid": self.pid}

    def health(self):
        """(healthy, details): healthy once connected and in the directory."""
        leader = self.view.leader()
        details = {**self.status(), "zk_state": self.client.state,
                   "in_directory": self.membership.joined,
                   "leader": leader.name if leader is not None else None}
        return self.client.connected and self.membership.joined, details

    def cluster_status(self):
        """Everything the page shows, from memory: the view, this node, its keys."""
        members = {name: member._asdict() for name, member in self.view.members().items()}
        mine = self.status()
        members[self.name] = {**members.get(self.name, {}), **mine,
                              "in_directory": self.membership.joined}
        leader = self.view.leader()
        term = self.leadership.term
        if term is not None and term.serving:
            leader_seq = mine["seq"]
        elif leader is not None and leader.name in members:
            leader_seq = members[leader.name]["seq"]
        else:
            leader_seq = None
        nodes = []
        for name in sorted(members):
            member = members[name]
            member.pop("path", None)
            member["behind"] = (max(leader_seq - member["seq"], 0)
                                if leader_seq is not None else None)
            nodes.append(member)
        copy = self.store.copy()
        keys = sorted(copy.items.items())
        return {
            "node": {**mine, "zk_state": self.client.state, "hosts": self.hosts,
                     "session_timeout": self.client.session_timeout},
            "leader": ({"name": leader.name, "url": leader.url, "epoch": leader.epoch}
                       if leader is not None else None),
            "nodes": nodes,
            "keys": [{"key": k, "value": v} for k, v in keys[:PAGE_KEYS]],
            "key_count": len(keys),
            "time": time.time(),
        }

    # -- events (the client's watcher thread: record and wake only) --------

    def _changed(self):
        self.feed.changed()
        self.membership.wake()

    def _joined(self):
        self.leadership.wake()
        self._changed()

    def _view_changed(self):
        leader = self.view.leader()
        if leader is not None:
            self.replica_side.observe(leader.epoch)
        term = self.leadership.term
        if term is not None:
            if leader is not None and leader.epoch == term.epoch:
                term.seen_in_view = True
            elif term.seen_in_view:
                term.depose("the leader znode no longer names this term")
            if term.serving:
                term.update_replicas(self.leadership.replicas())
        self.leadership.wake()
        self._changed()

    def _newer_term(self, epoch):
        term = self.leadership.term
        if term is not None and epoch > term.epoch:
            term.depose(f"a newer leader (term {epoch:#x}) has taken over")
        self._changed()

    def _session_changed(self, state):
        log.info("nookeeper session %s %s (server %s)", self._session_text(),
                 state, self._server_text())
        term = self.leadership.term
        if term is not None:
            if state == KeeperState.LOST:
                term.depose("the nookeeper session expired")
            term.session_changed()
        self.leadership.wake()
        self._changed()

    def _server_text(self):
        host = self.client.current_host
        return f"{host[0]}:{host[1]}" if host else None

    def _session_text(self):
        client_id = self.client.client_id
        return f"{client_id[0]:#x}" if client_id else None
