"""This node's in-memory copy of the cluster status, kept current by watches.

A TreeWatch follows the live-node directory (every member's address and
the status it publishes) and a DataWatch the leader znode. Nothing here
polls nookeeper: each change arrives as a watch event on the client's
watcher thread, which calls on_change() and so must never be blocked by it.
After a reconnect both watches read their nodes again by themselves.
"""

import json
import logging
import threading
from collections import namedtuple

from nookeeper.client import EventType

log = logging.getLogger("datakeeper.view")


class Member(namedtuple("Member", "name url role seq epoch zk_server session pid path")):
    """One live node as its directory entry (at `path`) describes it."""

    __slots__ = ()

    @classmethod
    def from_data(cls, path, data):
        record = json.loads(data.decode("utf-8"))
        return cls(
            path=path, name=str(record["name"]), url=str(record["url"]),
            role=record.get("role", "starting"), seq=int(record.get("seq", 0)),
            epoch=int(record.get("epoch", 0)), zk_server=record.get("zk_server"),
            session=record.get("session"), pid=record.get("pid"),
        )


class LeaderInfo(namedtuple("LeaderInfo", "name url epoch session")):
    """Who leads: the leader znode's data, its czxid as the term's epoch, and its owner."""

    __slots__ = ()


class ClusterView:
    def __init__(self, client, layout, on_change):
        self._client = client
        self._layout = layout
        self._on_change = on_change
        self._lock = threading.Lock()
        self._members = {}
        self._leader = None
        self._closed = False
        self._tree = None

    def start(self):
        """Read both once and follow them; returns when the view is whole."""
        self._client.ensure_path(self._layout.nodes)
        self._tree = self._client.TreeWatch(self._layout.nodes, self._member_changed).start()
        self._client.DataWatch(self._layout.leader, self._leader_changed)
        return self

    def close(self):
        self._closed = True
        if self._tree is not None:
            self._tree.close()

    def members(self):
        """{name: Member} of the live nodes; a name seen twice keeps its newest entry."""
        with self._lock:
            return {member.name: member for member in self._members.values()}

    def leader(self):
        """LeaderInfo, or None while nobody leads."""
        with self._lock:
            return self._leader

    def _member_changed(self, event_type, path, data):
        if path == self._layout.nodes:
            return
        with self._lock:
            self._members.pop(path, None)
            if data is not None and event_type != EventType.DELETED:
                try:
                    self._members[path] = Member.from_data(path, data)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("directory entry %s is not a DataKeeper status (%s); ignored",
                                path, exc)
        self._on_change()

    def _leader_changed(self, data, stat):
        if self._closed:
            return False
        leader = None
        if data:
            try:
                record = json.loads(data.decode("utf-8"))
                leader = LeaderInfo(str(record["name"]), str(record["url"]), stat.czxid,
                                    stat.ephemeralOwner)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("leader znode %s is not a DataKeeper leader (%s); ignored",
                            self._layout.leader, exc)
        with self._lock:
            self._leader = leader
        self._on_change()
        return None
