"""The request pipeline of one server: its stages, wired here and only here.

A write, from the client's bytes to its reply (ZooKeeper's
setupRequestProcessors, as threads and the records they hand on):

    stage         runs on                       takes -> hands on
    decode        the connection's reader       frame bytes -> Request        (server/ordering.py)
    order         the connection's reader       a read with nothing ahead: served now from the
                                                tree; a write or sync: submit (below); else
                                                it waits behind the write
    submit        the connection's reader       encodes the txn, keeps the waiter in
                                                InFlightWrites -> events.ClientWrite
    propose       whoever holds the ZAB core    leader: Peer.propose stamps zxid and clock,
                                                Persist + Proposals; follower: Request to the
                                                leader, whose core stamps it on arrival
    log           wal-writer                    Append -> one group commit -> events.Logged
    ack, commit   whoever holds the ZAB core    a quorum logged -> events.Committed
    apply         apply thread, or the thread   DataTree.apply; watch events queued on the
                  that stepped the commit       watchers' connections; the waiter is called
    reply         the same thread               Connection.completed: the reply, then the
                                                reads that waited behind it; one send per
                                                connection per applied batch

A sync takes the same way from submit on (events.ClientSync, answered by
events.SyncReached once applied), a read only decode and order.
"""

import gc
import logging
import time

from nookeeper.errors import ZooKeeperError
from nookeeper.server import readops
from nookeeper.server.applier import Applier
from nookeeper.server.commit import CommitStage
from nookeeper.server.events import (
    ClientSync,
    ClientWrite,
    LinkDown,
    Logged,
    PeerMessage,
    SessionTouched,
    Snapshotted,
)
from nookeeper.server.logwriter import LogWriter
from nookeeper.server.peerport import PeerPort
from nookeeper.server.tls import PeerTls
from nookeeper.server.replication import META_ACCEPTED, META_CURRENT, Replication
from nookeeper.server.snapshotter import Snapshotter
from nookeeper.server.state import ServerState
from nookeeper.server.throttle import Throttle
from nookeeper.snapstore import SnapshotStore
from nookeeper.txn import Txn
from nookeeper.wire.ops import CLOSE_SESSION
from nookeeper.wire.txn import encode_txn, stamp
from nookeeper.zab.peer import Limits, Peer
from nookeeper.zab.zxid import fmt

log = logging.getLogger("nookeeper.pipeline")

READ_ONLY_GRACE_MS = 2000


class Pipeline:
    """What the rest of the server sees of the write path: submit a request,
    and its waiter is called once it is applied here."""

    def __init__(self, config, wal, stats, fatal, network=None):
        """network: how to reach the other members; a PeerPort of real sockets
        unless a test passes its own (same interface: start, stop, send)."""
        self.config = config
        self.stats = stats
        self.state = state = ServerState(config.tick_ms)
        self.throttle = Throttle(config.max_outstanding_per_connection,
                                 config.global_outstanding_limit)
        store = SnapshotStore(wal)
        core = _recovered_core(config, wal, store, state)

        # The stages, from the disk up; each hands its records to the next through `zab.post`.
        self.commit = CommitStage(state, stats, fatal, membership=membership(config))
        applier = Applier(self.commit.run)
        writer = LogWriter(wal, lambda zxid, gen: self.zab.post(Logged(zxid, gen)), fatal)
        writer.on_batch = stats.wal_batch
        snapshotter = Snapshotter(state, store, config.snapshot_every_txns,
                                  config.snapshot_retain_count,
                                  lambda zxid, gen: self.zab.post(Snapshotted(zxid, gen)))
        self.commit.on_applied = snapshotter.applied
        if network is None and len(core.members) > 1:
            network = PeerPort(config.server_id, config.members,
                               (config.peer_host, config.peer_port),
                               lambda sid, msg, more: self.zab.post(PeerMessage(sid, msg, more)),
                               lambda sid: self.zab.post(LinkDown(sid)),
                               tls=PeerTls.from_config(config))
        self.zab = Replication(core, config.tick_ms, writer, applier, store, snapshotter, stats,
                               fatal, state.sessions_alive, network,
                               read_only_grace(config) if network is not None else None)

    def start(self):
        self.zab.start()

    def stop(self):
        self.zab.stop()

    # -- submit: the one way in for whatever changes state -------------------

    def submit_write(self, session, cxid, txn_type, ids, request, done=None, request_bytes=None):
        """done(txn, outcome) runs once the txn is applied on this server.

        Encoded here, on the caller's thread, so ZAB only stamps it;
        request_bytes is the request as the client sent it, if at hand."""
        txn = Txn(zxid=0, time=0, session=session, cxid=cxid, type=txn_type,
                  ids=tuple(ids), request=request)
        payload = encode_txn(txn, request_bytes)
        self.commit.in_flight.add(payload, txn, done)
        self.zab.post(ClientWrite(payload))

    def submit_sync(self, done):
        """done() once this server has applied everything a leader that a quorum
        still follows had proposed when the sync reached it (a confirmed sync:
        a leader cut off from its quorum, which takes itself for the leader
        until its sync limit, cannot answer from a history a newer leader has
        moved past). Never, if this server stops serving first."""
        self.zab.post(ClientSync(done))

    def close_session(self, session_id, done=None, cxid=0):
        """The session's close goes through ZAB; it is marked closing at once
        so no new write of it is taken."""
        self.state.begin_close(session_id)
        self.submit_write(session_id, cxid, CLOSE_SESSION, (), None, done)

    def touch(self, session_id):
        """A request of this session arrived: it lives on (the leader hears on a ping)."""
        if self.state.touch(session_id):
            self.zab.post(SessionTouched(session_id))

    def disconnected(self, conn):
        """Its reader is gone: its watches go; its session lives on until it expires."""
        state = self.state
        with state.tree_lock:
            state.watches.drop_watcher(conn)
        state.unbind(conn)

    # -- reads, from the applied tree --------------------------------------------

    def read(self, conn, opcode, request):
        """(zxid, err, result) of a read, with the watch it leaves."""
        state = self.state
        with state.tree_lock:
            try:
                result, err = readops.serve(state, conn, opcode, request), 0
            except ZooKeeperError as exc:
                result, err = None, exc.code
            return state.tree.last_zxid, err, result

    def quota_refusal(self, opcode, request):
        """(op index, Overrun) when a write would take a quota root over a
        hard limit (with enforce_quota on), else None."""
        state = self.state
        if not self.config.enforce_quota or not state.tree.quotas.roots:
            return None
        with state.tree_lock:
            return state.tree.quotas.refusal(state.tree, opcode, request)

    def set_watches(self, conn, request, persistent):
        """(events fired at once, zxid): a reconnecting client's watches re-armed."""
        state = self.state
        with state.tree_lock:
            fired = readops.set_watches(state, conn, request, persistent=persistent)
            return fired, state.tree.last_zxid

    @property
    def last_zxid(self):
        return self.state.tree.last_zxid


def read_only_grace(config):
    """Seconds of looking for a leader before read-only clients are served
    (ZooKeeper's max(2000 ms, tickTime)); None without read_only_mode."""
    if not config.read_only_mode:
        return None
    return max(READ_ONLY_GRACE_MS, config.tick_ms) / 1000.0


def _recovered_core(config, wal, store, state):
    """The ZAB core as the disk left it: the tree is the newest snapshot, the
    log after it is handed to the core, which applies it once it has a leader."""
    snap_zxid = _load_snapshot(store, state)
    state.tree.set_config(membership(config))
    entries = [(record.zxid, record.body) for record in wal.records(after_zxid=snap_zxid)]
    accepted = int(wal.get_meta(META_ACCEPTED, 0))
    current = int(wal.get_meta(META_CURRENT, 0))
    members = config.members or {config.server_id: None}
    core = Peer(config.server_id, members, accepted, current, entries,
                Limits(init=config.init_limit, sync=config.sync_limit, finalize=1,
                       diff_window=config.snapshot_every_txns),
                snap_zxid=snap_zxid, stamp=stamp)
    log.info("log holds %d txns after the snapshot at zxid %s, up to zxid %s; "
             "accepted epoch %d, current epoch %d",
             len(entries), fmt(snap_zxid), fmt(core.last_zxid), accepted, current)
    return core


def membership(config):
    """/zookeeper/config's data as ZooKeeper 3.8 writes it for a static config:
    a line per member, `server.<id>=<host>:<peer port>:<election port>:participant`
    with `;<client host>:<client port>` where members gives one, then
    `version=0`. nookeeper has one port per peer, for election and replication
    alike, so it stands for both. Empty for a standalone server, as ZooKeeper's."""
    if config.is_standalone:
        return b""
    clients = config.member_clients
    lines = []
    for sid, (host, port) in sorted(config.members.items()):
        line = f"server.{sid}={_bracketed(host)}:{port}:{port}:participant"
        if sid in clients:
            line += f";{_bracketed(clients[sid][0])}:{clients[sid][1]}"
        lines.append(line)
    lines.append("version=0")
    return "\n".join(lines).encode()


def _bracketed(host):
    return f"[{host}]" if ":" in host else host


def _load_snapshot(store, state):
    """The tree starts as the newest readable snapshot; the log after it is replayed by ZAB."""
    started = time.monotonic()
    zxid, tree = store.load_newest()
    if tree is None:
        return 0
    state.reset_tree(tree)
    # Everything loaded lives as long as the server: keep it out of the collector's scans.
    gc.freeze()
    logging.getLogger("nookeeper.zab").info(
        "loaded the snapshot at zxid %s: %d nodes in %.2f s",
        fmt(zxid), tree.node_count, time.monotonic() - started)
    return zxid

