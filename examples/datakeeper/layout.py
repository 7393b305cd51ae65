"""Where one DataKeeper cluster keeps its coordination state in nookeeper.

    <root>/election   the Election recipe's contenders (a queue of ephemeral nodes)
    <root>/leader     ephemeral, written by the winner: its name, address and session
    <root>/nodes      the Party recipe's members: one ephemeral node per live node,
                      its data the node's address and status (JSON)

Several clusters can share an ensemble under different roots.
"""

from collections import namedtuple


class Layout(namedtuple("Layout", "root")):
    __slots__ = ()

    @property
    def election(self):
        return self.root + "/election"

    @property
    def leader(self):
        return self.root + "/leader"

    @property
    def nodes(self):
        return self.root + "/nodes"
