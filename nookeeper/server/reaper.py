"""The container reaper, as ZooKeeper's ContainerManager.

On the serving leader only, every container_check_interval_ms, it asks the
applied tree which containers (and TTL nodes) are due and proposes a
deleteContainer txn for each, through the pipeline like any other write,
so every member applies the same deletes and their watches fire. A check
proposes at most its share of container_max_per_minute, so a backlog is
worked off over several checks rather than stalling the writes of clients;
the tree checks again when it applies each delete, as a node may have got
a child since it was picked.
"""

import logging

from construct import Container

from nookeeper.server.state import now_ms
from nookeeper.wire.ops import OpCode

log = logging.getLogger("nookeeper.reaper")


class ContainerReaper:
    def __init__(self, pipeline, interval_ms, max_per_minute, max_never_used_ms):
        self.pipeline = pipeline
        self.interval_ms = interval_ms
        self.max_never_used_ms = max_never_used_ms
        self.per_check = max(1, max_per_minute * interval_ms // 60000)

    def run(self, stopping):
        """The reaper thread, until stopping is set."""
        while not stopping.wait(self.interval_ms / 1000.0):
            self.check()

    def check(self):
        """Proposes the deletes due now; returns how many."""
        state = self.pipeline.state
        if not (state.serving and state.is_leader):
            return 0
        with state.tree_lock:
            due = state.tree.reapable(now_ms(), self.max_never_used_ms)
        for path in due[:self.per_check]:
            self.pipeline.submit_write(0, 0, OpCode.DELETE_CONTAINER, (), Container(path=path))
        if due:
            log.info("proposed deleteContainer for %d of %d due (containers and TTL nodes)",
                     min(len(due), self.per_check), len(due))
        return min(len(due), self.per_check)
