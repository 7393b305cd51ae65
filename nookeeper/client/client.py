"""KeeperClient: the public, synchronous API.

Every operation has an *_async form that queues the request and returns an
AsyncResult at once; the plain form waits on it. Paths are relative to the
chroot of the connect string. The session lives on an I/O thread
(connection.py); user callbacks run on one watcher thread, in order.
Synchronous calls never wait for the watcher thread, so they may be made
from inside callbacks.
"""

import functools
import logging
import threading

from nookeeper.client.asyncresult import AsyncResult
from nookeeper.client.connection import Connection, Request
from nookeeper.client.datawatch import ChildrenWatch, DataWatch
from nookeeper.client.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    InvalidArgumentsError,
    KeeperTimeoutError,
    NodeExistsError,
    NoNodeError,
    UnimplementedError,
    ZooKeeperError,
)
from nookeeper.client.fourletter import four_letter_word
from nookeeper.client.paths import Chroot, parse_hosts
from nookeeper.client.protocol import encode_body
from nookeeper.client.retry import KeeperRetry
from nookeeper.client.sasl import check_options as check_sasl_options
from nookeeper.client.security import OPEN_ACL_UNSAFE, acl_from_record, acl_to_record
from nookeeper.client.states import KeeperState, ZnodeStat
from nookeeper.client.tls import client_context
from nookeeper.client.transaction import READS, Transaction
from nookeeper.client.treewatch import TreeWatch
from nookeeper.client.watchers import (
    CHILD,
    DATA,
    PERSISTENT,
    RECURSIVE,
    TABLES_FOR_WATCHER_TYPE,
    CallbackThread,
    WatchRegistry,
)
from nookeeper.wire.client import OpCode
from nookeeper.wire.ops import (
    MAX_TTL,
    MODE_PERSISTENT,
    MODE_PERSISTENT_RECURSIVE,
    WATCHER_ANY,
    WATCHER_CHILDREN,
    WATCHER_DATA,
    WATCHER_PERSISTENT,
    WATCHER_PERSISTENT_RECURSIVE,
)

log = logging.getLogger("nookeeper.client")

_EPHEMERAL = 1
_SEQUENCE = 2
_CONTAINER = 4
_TTL = 5
_TTL_SEQUENCE = 6

# remove_watches' kinds: names or removeWatches' WatcherType numbers. The
# persistent kinds need a server that removes them one kind at a time
# (nookeeper, ZooKeeper 3.9+); "any" removes them on every server.
WATCHER_KINDS = {
    "children": WATCHER_CHILDREN,
    "data": WATCHER_DATA,
    "any": WATCHER_ANY,
    "persistent": WATCHER_PERSISTENT,
    "persistent_recursive": WATCHER_PERSISTENT_RECURSIVE,
}


def _parent(full_path):
    parent = full_path.rsplit("/", 1)[0]
    return parent or "/"


def _create_mode(ephemeral, sequence, ttl, container):
    """(opcode, CreateMode flags), refusing the combinations ZooKeeper has no mode for."""
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise TypeError("ttl must be an int (milliseconds)")
        if not 0 < ttl <= MAX_TTL:
            raise InvalidArgumentsError(f"ttl must be between 1 and {MAX_TTL} ms, not {ttl}")
        if ephemeral or container:
            raise InvalidArgumentsError("only persistent nodes take a ttl")
        return OpCode.CREATE_TTL, _TTL_SEQUENCE if sequence else _TTL
    if container:
        if ephemeral or sequence:
            raise InvalidArgumentsError("a container cannot be ephemeral or sequential")
        return OpCode.CREATE_CONTAINER, _CONTAINER
    return OpCode.CREATE, (_EPHEMERAL if ephemeral else 0) | (_SEQUENCE if sequence else 0)


def _watcher_type(kind):
    """remove_watches' kind as removeWatches' WatcherType."""
    if isinstance(kind, int) and not isinstance(kind, bool):
        if kind in TABLES_FOR_WATCHER_TYPE:
            return kind
    elif isinstance(kind, str) and kind.lower() in WATCHER_KINDS:
        return WATCHER_KINDS[kind.lower()]
    raise ValueError(f"unknown watch kind {kind!r}: one of {', '.join(WATCHER_KINDS)} or 1..5")


class KeeperClient:
    """A ZooKeeper session, shaped like kazoo's KazooClient.

    hosts: "host:port,host:port/optional/chroot"; timeout: the session
    timeout asked for, in seconds; auth_data: [(scheme, credential)] sent on
    every connection; read_only: accept read-only servers (state
    CONNECTED_RO), and while on one ask the other hosts `isro` in the
    background and move to a read-write one (as Java's client); sasl_options:
    {"mechanism": "DIGEST-MD5", "username": ..., "password": ...} as kazoo's,
    to authenticate with SASL right after every (re)connection.

    TLS, with kazoo's names and meaning (client/tls.py): use_ssl; certfile,
    keyfile (keyfile_password): the client certificate, which the server
    takes as the session's x509 identity; ca: the CA file the server's
    certificate is checked against (with the system's CAs) unless
    verify_certs=False; check_hostname: also check that it names the host
    dialed (off by default, as in kazoo).
    """

    def __init__(self, hosts="127.0.0.1:2181", timeout=10.0, auth_data=None,
                 read_only=False, randomize_hosts=True, default_acl=None,
                 command_retry=None, sasl_options=None, use_ssl=False, certfile=None,
                 keyfile=None, keyfile_password=None, ca=None, verify_certs=True,
                 check_hostname=False):
        self.hosts, self.chroot = parse_hosts(hosts)
        # kazoo's sasl_options: DIGEST-MD5 on every connection (client/sasl.py)
        self._sasl_options = check_sasl_options(sasl_options)
        self._chroot = Chroot(self.chroot)
        self._timeout = float(timeout)
        self._read_only = read_only
        self._randomize = randomize_hosts
        self.default_acl = default_acl
        self.auth_data = [(scheme, self._credential(cred)) for scheme, cred in auth_data or ()]
        self.use_ssl = use_ssl
        self._ssl_context = client_context(ca, certfile, keyfile, keyfile_password, verify_certs,
                                           check_hostname) if use_ssl else None
        if isinstance(command_retry, KeeperRetry):
            self._retry = command_retry
        else:
            self._retry = KeeperRetry(**{"max_tries": None, "max_delay": 3600,
                                         **(command_retry or {})})
        self._lock = threading.Lock()
        self._listeners = []
        self._state = KeeperState.LOST
        self._registry = WatchRegistry()
        # Cleared the first time a server answers createContainer UNIMPLEMENTED.
        self._containers = True
        self._callbacks = CallbackThread("nookeeper-watcher")
        self._connection = None
        self.DataWatch = functools.partial(DataWatch, self)
        self.ChildrenWatch = functools.partial(ChildrenWatch, self)
        self.TreeWatch = functools.partial(TreeWatch, self)

    def __getattr__(self, name):
        """Recipes (Lock, Election, ...) from nookeeper.client.recipes, bound to this client."""
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            from nookeeper.client import recipes
        except ModuleNotFoundError as exc:
            if exc.name != "nookeeper.client.recipes":
                raise
            raise AttributeError(name) from None
        if name not in getattr(recipes, "__all__", ()):
            raise AttributeError(name)
        return functools.partial(getattr(recipes, name), self)

    # -- session -------------------------------------------------------

    def start(self, timeout=15):
        """Connect; KeeperTimeoutError if no server accepted us within `timeout` s."""
        with self._lock:
            if self._connection is not None:
                connection = self._connection
            else:
                self._callbacks.start()
                connection = Connection(
                    self.hosts, self._chroot, self._timeout, self._registry,
                    self._callbacks, self._state_changed, auth_data=self.auth_data,
                    sasl_options=self._sasl_options,
                    read_only=self._read_only, randomize_hosts=self._randomize,
                    ssl_context=self._ssl_context,
                )
                self._connection = connection
                connection.start()
        if not connection.started.wait(timeout):
            self.stop()
            raise KeeperTimeoutError(f"no connection to {self._hosts_text()} in {timeout}s")
        if connection.failure is not None:
            self.stop()
            raise connection.failure

    def stop(self):
        """Close the session (its ephemerals go) and end both threads."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.close(timeout=min(self._timeout, 10.0))
        self._callbacks.stop(timeout=10.0)

    def close(self):
        """Release everything; a stopped client needs nothing more, but this is safe."""
        self.stop()

    def __enter__(self):
        if self._connection is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        self.close()

    def _state_changed(self, state):
        """Called on the I/O thread; listeners run later on the watcher thread."""
        self._state = state
        self._callbacks.post(self._notify_listeners, state)

    def _notify_listeners(self, state):
        for listener in list(self._listeners):
            try:
                if listener(state) is True:
                    self.remove_listener(listener)
            except Exception:
                log.exception("listener %r failed", listener)

    def add_listener(self, listener):
        """Call `listener(state)` on each state change; returning True removes it."""
        if not callable(listener):
            raise TypeError("listener must be callable")
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener):
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def state(self):
        return self._state

    @property
    def connected(self):
        return self._state in (KeeperState.CONNECTED, KeeperState.CONNECTED_RO)

    @property
    def client_id(self):
        """(session id, password) of the live session, or None."""
        connection = self._connection
        if connection is None or not connection.session_id:
            return None
        return connection.session_id, connection.passwd

    @property
    def current_host(self):
        """(host, port) of the server we are connected to, or None."""
        connection = self._connection
        return connection.current_host if connection is not None else None

    @property
    def session_timeout(self):
        """The negotiated session timeout in seconds (None before the first connect)."""
        connection = self._connection
        return connection.negotiated_timeout if connection is not None else None

    @property
    def last_zxid(self):
        connection = self._connection
        return connection.last_zxid if connection is not None else 0

    def _hosts_text(self):
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    # -- plumbing ------------------------------------------------------

    def _new_result(self):
        return AsyncResult(self._callbacks.post)

    def _submit(self, opcode, body, convert=None, watch=None, unwatch=None):
        result = self._new_result()
        request = Request(opcode, encode_body(opcode, body), result, convert, watch, unwatch)
        connection = self._connection
        if connection is None:
            result.set_exception(ConnectionClosedError("the client is not started"))
        else:
            connection.submit(request)
        return result

    def _full(self, path, trailing=False):
        return self._chroot.full(path, trailing)

    def unchroot(self, path):
        """A server path as this client names it."""
        return self._chroot.strip(path)

    @staticmethod
    def _check_value(value):
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise TypeError(f"value must be bytes, not {type(value).__name__}")

    @staticmethod
    def _credential(credential):
        return credential.encode("utf-8") if isinstance(credential, str) else bytes(credential)

    def _acl_records(self, acl):
        if acl is None:
            acl = self.default_acl or OPEN_ACL_UNSAFE
        return [acl_to_record(entry) for entry in acl]

    def _create_record(self, path, value, acl, ephemeral, sequence, ttl=None, container=False):
        """(opcode, record) of a create: createTTL with a ttl, createContainer for a container."""
        opcode, flags = _create_mode(ephemeral, sequence, ttl, container)
        record = {
            "path": self._full(path, trailing=sequence),
            "data": self._check_value(value),
            "acl": self._acl_records(acl),
            "flags": flags,
        }
        if opcode == OpCode.CREATE_TTL:
            record["ttl"] = ttl
        return opcode, record

    @staticmethod
    def _watch(table, full_path, watch):
        if watch is None:
            return None
        if not callable(watch):
            raise TypeError("watch must be callable")
        return table, full_path, watch

    def _stat(self, body):
        return ZnodeStat.from_record(body)

    def _in_background(self, fn, *args):
        """Run a multi-step call on its own thread, so no wait ever needs the watcher thread."""
        result = self._new_result()

        def run():
            try:
                result.set(fn(*args))
            except Exception as exc:
                result.set_exception(exc)

        threading.Thread(target=run, name="nookeeper-call", daemon=True).start()
        return result

    # -- operations ----------------------------------------------------

    def create(self, path, value=b"", acl=None, ephemeral=False, sequence=False,
               makepath=False, include_data=False, ttl=None, container=False):
        """Create a node; returns its path, or (path, ZnodeStat) with include_data.

        ttl (ms): a persistent node the server removes once it has had no
        children and no change for that long (the server must allow TTL
        nodes: ZooKeeper's extendedTypesEnabled). container: a node the
        server removes once its last child is gone. Neither goes with
        ephemeral, nor together, nor a container with sequence
        (InvalidArgumentsError, before anything is sent, as Java's client).
        """
        opcode, record = self._create_record(path, value, acl, ephemeral, sequence, ttl, container)
        attempt = functools.partial(self._create_full, opcode, record, include_data)
        if not makepath:
            return attempt().get()
        try:
            return attempt().get()
        except NoNodeError:
            self._ensure_full(_parent(record["path"]), record["acl"])
        return attempt().get()

    def create_async(self, path, value=b"", acl=None, ephemeral=False, sequence=False,
                     makepath=False, include_data=False, ttl=None, container=False):
        opcode, record = self._create_record(path, value, acl, ephemeral, sequence, ttl, container)
        if makepath:
            return self._in_background(
                self.create, path, value, acl, ephemeral, sequence, True, include_data,
                ttl, container)
        return self._create_full(opcode, record, include_data)

    def _create_full(self, opcode, record, include_data):
        strip = self._chroot.strip
        if opcode == OpCode.CREATE and include_data:
            opcode = OpCode.CREATE2
        if include_data:
            return self._submit(
                opcode, record,
                convert=lambda body: (strip(body.path), ZnodeStat.from_record(body.stat)))
        return self._submit(opcode, record, convert=lambda body: strip(body.path))

    def ensure_path(self, path, acl=None, container=False):
        """Create `path` and any missing ancestors (the chroot's too); True.

        container=True makes the missing nodes under the chroot containers,
        which the server removes once emptied (Curator's
        creatingParentContainersIfNeeded); a server without containers gets
        plain nodes instead.
        """
        self._ensure_full(self._full(path), self._acl_records(acl), container)
        return True

    def ensure_path_async(self, path, acl=None, container=False):
        return self._in_background(self.ensure_path, path, acl, container)

    def _ensure_full(self, full_path, acl_records, container=False):
        if full_path == "/":
            return
        if self._submit(OpCode.EXISTS, {"path": full_path, "watch": False},
                        convert=self._stat).get() is not None:
            return
        try:
            self._create_directory(full_path, acl_records, container)
            return
        except NodeExistsError:
            return
        except NoNodeError:
            self._ensure_full(_parent(full_path), acl_records, container)
        try:
            self._create_directory(full_path, acl_records, container)
        except NodeExistsError:
            pass

    def _create_directory(self, full_path, acl_records, container):
        """An empty node for ensure_path: a container if asked and the server has them."""
        record = {"path": full_path, "data": b"", "acl": acl_records, "flags": 0}
        inside_chroot = not self.chroot or full_path.startswith(self.chroot + "/")
        if container and inside_chroot and self._containers:
            try:
                self._submit(OpCode.CREATE_CONTAINER, {**record, "flags": _CONTAINER}).get()
                return
            except UnimplementedError:
                log.info("the server has no containers; creating plain nodes instead")
                self._containers = False
        self._submit(OpCode.CREATE, record).get()

    def delete(self, path, version=-1, recursive=False):
        """Delete a node (and, with recursive, everything under it); True."""
        if recursive:
            self._delete_tree(self._full(path))
            return True
        return self.delete_async(path, version).get()

    def delete_async(self, path, version=-1):
        return self._submit(OpCode.DELETE, {"path": self._full(path), "version": version},
                            convert=lambda body: True)

    def _delete_tree(self, full_path):
        try:
            children = self._submit(OpCode.GET_CHILDREN, {"path": full_path, "watch": False},
                                    convert=lambda body: list(body.children)).get()
        except NoNodeError:
            return
        for child in children:
            if full_path == "/" and child == "zookeeper":
                continue
            self._delete_tree(full_path.rstrip("/") + "/" + child)
        if full_path == "/":
            return
        try:
            self._submit(OpCode.DELETE, {"path": full_path, "version": -1}).get()
        except NoNodeError:
            pass

    def get(self, path, watch=None):
        """(data, ZnodeStat); `watch(event)` fires on the next change or deletion."""
        return self.get_async(path, watch).get()

    def get_async(self, path, watch=None):
        full = self._full(path)
        return self._submit(
            OpCode.GET_DATA, {"path": full, "watch": watch is not None},
            convert=lambda body: (body.data, ZnodeStat.from_record(body.stat)),
            watch=self._watch(DATA, full, watch))

    def exists(self, path, watch=None):
        """ZnodeStat or None; a watch is set either way (creation, change or deletion)."""
        return self.exists_async(path, watch).get()

    def exists_async(self, path, watch=None):
        full = self._full(path)
        return self._submit(OpCode.EXISTS, {"path": full, "watch": watch is not None},
                            convert=self._stat, watch=self._watch(DATA, full, watch))

    def set(self, path, value, version=-1):
        """Replace a node's data; its new ZnodeStat."""
        return self.set_async(path, value, version).get()

    def set_async(self, path, value, version=-1):
        return self._submit(
            OpCode.SET_DATA,
            {"path": self._full(path), "data": self._check_value(value), "version": version},
            convert=self._stat)

    def get_children(self, path, watch=None, include_data=False):
        """Child names, or (names, ZnodeStat) with include_data."""
        return self.get_children_async(path, watch, include_data).get()

    def get_children_async(self, path, watch=None, include_data=False):
        full = self._full(path)
        body = {"path": full, "watch": watch is not None}
        registration = self._watch(CHILD, full, watch)
        if include_data:
            return self._submit(
                OpCode.GET_CHILDREN2, body,
                convert=lambda b: (list(b.children), ZnodeStat.from_record(b.stat)),
                watch=registration)
        return self._submit(OpCode.GET_CHILDREN, body,
                            convert=lambda b: list(b.children), watch=registration)

    def get_acls(self, path):
        """(list of ACL, ZnodeStat)."""
        return self.get_acls_async(path).get()

    def get_acls_async(self, path):
        return self._submit(
            OpCode.GET_ACL, {"path": self._full(path)},
            convert=lambda b: ([acl_from_record(r) for r in b.acl], ZnodeStat.from_record(b.stat)))

    def set_acls(self, path, acls, version=-1):
        """Replace a node's ACL; its new ZnodeStat."""
        return self.set_acls_async(path, acls, version).get()

    def set_acls_async(self, path, acls, version=-1):
        return self._submit(
            OpCode.SET_ACL,
            {"path": self._full(path), "acl": self._acl_records(acls), "version": version},
            convert=self._stat)

    def sync(self, path):
        """Wait until this server has everything the leader had; returns `path`."""
        return self.sync_async(path).get()

    def sync_async(self, path):
        strip = self._chroot.strip
        return self._submit(OpCode.SYNC, {"path": self._full(path)},
                            convert=lambda body: strip(body.path))

    def add_auth(self, scheme, credential):
        """Add an identity to this session (re-sent on every reconnect once accepted)."""
        return self.add_auth_async(scheme, credential).get()

    def add_auth_async(self, scheme, credential):
        result = self._new_result()
        connection = self._connection
        if connection is None:
            result.set_exception(ConnectionClosedError("the client is not started"))
        else:
            connection.add_auth(scheme, self._credential(credential), result)
        return result

    def transaction(self):
        """A multi: writes that all happen or none do, or reads answered together."""
        return Transaction(self)

    def read_transaction(self):
        """A multi of reads only (get, get_children), sent as one multiRead."""
        return Transaction(self, kind=READS)

    def add_watch(self, path, callback, recursive=False):
        """Call `callback(WatchedEvent)` on every change of `path`, until removed; True.

        A persistent watch stays after firing. Plain, it hears what a data
        and a child watch on the path would (created, changed, deleted,
        children changed); recursive, it hears created, changed and deleted
        for the path and every node below it, never children changed. It
        survives reconnects (SetWatches2); when the session is lost it gets
        one NONE event and is gone, like every watch.
        """
        return self.add_watch_async(path, callback, recursive).get()

    def add_watch_async(self, path, callback, recursive=False):
        if not callable(callback):
            raise TypeError("callback must be callable")
        full = self._full(path)
        mode = MODE_PERSISTENT_RECURSIVE if recursive else MODE_PERSISTENT
        return self._submit(OpCode.ADD_WATCH, {"path": full, "mode": mode},
                            convert=lambda body: True,
                            watch=(RECURSIVE if recursive else PERSISTENT, full, callback))

    def remove_watches(self, path, kind):
        """Remove this session's watches of one kind on `path`, here and on the server; True.

        kind: "children", "data" (exists watches too), "any" (persistent
        ones too), "persistent" or "persistent_recursive", or removeWatches'
        WatcherType number (1..5). NoWatcherError when there is none. The
        removed callbacks are not called (Java's client sends them a
        *WatchRemoved event, a type kazoo-shaped callbacks do not know).
        """
        return self.remove_watches_async(path, kind).get()

    def remove_watches_async(self, path, kind):
        watcher_type = _watcher_type(kind)
        full = self._full(path)
        return self._submit(OpCode.REMOVE_WATCHES, {"path": full, "type": watcher_type},
                            convert=lambda body: True,
                            unwatch=(TABLES_FOR_WATCHER_TYPE[watcher_type], full))

    def _discard_watch(self, path, callback, recursive=False):
        """Drop one persistent watch callback; the server is told once no other is left.

        Servers that cannot remove one persistent kind alone (ZooKeeper
        before 3.9) keep sending its events, which find no callback here.
        """
        full = self._full(path)
        table = RECURSIVE if recursive else PERSISTENT
        if self._registry.discard(table, full, callback):
            return
        watcher_type = WATCHER_PERSISTENT_RECURSIVE if recursive else WATCHER_PERSISTENT
        try:
            self._submit(OpCode.REMOVE_WATCHES, {"path": full, "type": watcher_type}).get()
        except (ZooKeeperError, KeeperTimeoutError) as exc:
            log.debug("persistent watch on %s not removed on the server: %r", full, exc)

    def get_ephemerals(self, prefix="/"):
        """Paths of this session's ephemeral nodes that start with `prefix` (a plain
        string prefix, as ZooKeeper matches it: "/a" also finds "/ab")."""
        return self.get_ephemerals_async(prefix).get()

    def get_ephemerals_async(self, prefix="/"):
        chroot = self._chroot
        root = self.chroot

        def paths(body):
            # The server matches full paths: a chroot "/app" would also find "/apple".
            return [chroot.strip(p) for p in body.ephemerals
                    if not root or p == root or p.startswith(root + "/")]

        return self._submit(OpCode.GET_EPHEMERALS, {"prefixPath": self._full(prefix)},
                            convert=paths)

    def get_all_children_number(self, path):
        """How many nodes are below `path`, at every depth."""
        return self.get_all_children_number_async(path).get()

    def get_all_children_number_async(self, path):
        return self._submit(OpCode.GET_ALL_CHILDREN_NUMBER, {"path": self._full(path)},
                            convert=lambda body: body.totalNumber)

    def whoami(self):
        """The identities the server gives this connection: [(scheme, id)], e.g. ("ip", "127.0.0.1")."""
        return self.whoami_async().get()

    def whoami_async(self):
        return self._submit(
            OpCode.WHO_AM_I, None,
            convert=lambda body: [(info.authScheme, info.user) for info in body.clientInfo])

    def retry(self, func, *args, **kwargs):
        """func(*args, **kwargs), retried through ConnectionLoss and friends."""
        return self._retry.copy()(func, *args, **kwargs)

    # -- four-letter words ---------------------------------------------

    def command(self, cmd=b"ruok"):
        """A four-letter word sent to the server we are connected to; its answer."""
        host = self.current_host
        if host is None:
            raise ConnectionLoss("no connection to a server")
        return four_letter_word(host[0], host[1], cmd, timeout=self._timeout,
                                ssl_context=self._ssl_context)

    def server_version(self, retries=3):
        """The server's version as a tuple of ints, from `envi`."""
        attempt = 0
        while True:
            try:
                text = self.command(b"envi")
                break
            except OSError:
                attempt += 1
                if attempt >= retries:
                    raise
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "zookeeper.version":
                numbers = []
                for piece in value.strip().split("-")[0].split("."):
                    if not piece.isdigit():
                        break
                    numbers.append(int(piece))
                return tuple(numbers)
        raise ZooKeeperError("the server did not report zookeeper.version")

    # -- watcher-thread helpers for DataWatch/ChildrenWatch ---------------

    def _run_as_callback(self, fn, *args):
        """Run fn on the watcher thread and wait for it (inline if already there)."""
        if self._callbacks.in_thread():
            fn(*args)
            return
        done = threading.Event()

        def run():
            try:
                fn(*args)
            finally:
                done.set()

        self._callbacks.post(run)
        done.wait()
