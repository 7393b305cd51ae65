"""Parties: who is currently in a group.

Each member is an ephemeral child of the party path, so a member whose
session ends leaves the party by itself; the party path is a container,
removed by the server once the last member is gone. Party keeps each member's
identifier in its node's data; ShallowParty puts it in the node's name so
listing the members is a single call. Names follow kazoo's parties.
"""

import uuid

from nookeeper.client.exceptions import NodeExistsError, NoNodeError
from nookeeper.client.recipes._base import (
    child_path,
    clean_path,
    create_in_directory,
    identifier_bytes,
)
from nookeeper.client.states import KeeperState


class _BaseParty:
    def __init__(self, client, path, identifier=None):
        self.client = client
        self.path = clean_path(path)
        self.data = identifier_bytes(identifier)
        self.participating = False

    def join(self):
        """Become a member (again, if the session that joined was lost)."""
        try:
            # Repeating after a lost reply finds our node there: same name.
            self.client.retry(create_in_directory, self.client, self.create_path, self.data,
                              ephemeral=True)
        except NodeExistsError:
            pass
        self.participating = True
        self.client.add_listener(self._session_changed)

    def leave(self):
        """Stop being a member; False if we were not one (any more)."""
        self.participating = False
        self.client.remove_listener(self._session_changed)
        try:
            self.client.retry(self.client.delete, self.create_path)
        except NoNodeError:
            return False
        return True

    def _session_changed(self, state):
        # Our node went with the session: we are out until join() again.
        if state == KeeperState.LOST:
            self.participating = False
            return True
        return None

    def _children(self):
        try:
            return self.client.retry(self.client.get_children, self.path)
        except NoNodeError:
            return []

    def __len__(self):
        return len(self._members())


class Party(_BaseParty):
    """party = client.Party("/parties/workers", "host-1"); party.join(); list(party)."""

    _NODE_NAME = "__party__"

    def __init__(self, client, path, identifier=None):
        super().__init__(client, path, identifier)
        self.node = uuid.uuid4().hex + self._NODE_NAME
        self.create_path = child_path(self.path, self.node)

    def _members(self):
        return [child for child in self._children() if self._NODE_NAME in child]

    def __iter__(self):
        """The members' identifiers."""
        for child in self._members():
            try:
                data, _ = self.client.retry(self.client.get, child_path(self.path, child))
            except NoNodeError:
                continue
            yield (data or b"").decode("utf-8")


class ShallowParty(_BaseParty):
    """Like Party, with the identifier in the node name ("<uuid>-<identifier>").

    The identifier must then be valid in a node name (no "/").
    """

    def __init__(self, client, path, identifier=None):
        super().__init__(client, path, identifier)
        name = self.data.decode("utf-8")
        if "/" in name:
            raise ValueError("a ShallowParty identifier cannot contain '/'")
        self.node = f"{uuid.uuid4().hex}-{name}"
        self.create_path = child_path(self.path, self.node)

    def _members(self):
        return self._children()

    def __iter__(self):
        """The members' identifiers."""
        for child in self._members():
            yield child.partition("-")[2]
