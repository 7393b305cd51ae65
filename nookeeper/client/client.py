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
    KeeperTimeoutError,
    NodeExistsError,
    NoNodeError,
    ZooKeeperError,
)
from nookeeper.client.fourletter import four_letter_word
from nookeeper.client.paths import Chroot, parse_hosts
from nookeeper.client.protocol import encode_body
from nookeeper.client.retry import KeeperRetry
from nookeeper.client.security import OPEN_ACL_UNSAFE, acl_from_record, acl_to_record
from nookeeper.client.states import KeeperState, ZnodeStat
from nookeeper.client.transaction import Transaction
from nookeeper.client.watchers import CHILD, DATA, CallbackThread, WatchRegistry
from nookeeper.wire.client import OpCode

log = logging.getLogger("nookeeper.client")

_EPHEMERAL = 1
_SEQUENCE = 2


def _parent(full_path):
    parent = full_path.rsplit("/", 1)[0]
    return parent or "/"


class KeeperClient:
    """A ZooKeeper session, shaped like kazoo's KazooClient.

    hosts: "host:port,host:port/optional/chroot"; timeout: the session
    timeout asked for, in seconds; auth_data: [(scheme, credential)] sent on
    every connection; read_only: accept read-only servers.
    """

    def __init__(self, hosts="127.0.0.1:2181", timeout=10.0, auth_data=None,
                 read_only=False, randomize_hosts=True, default_acl=None,
                 command_retry=None):
        self.hosts, self.chroot = parse_hosts(hosts)
        self._chroot = Chroot(self.chroot)
        self._timeout = float(timeout)
        self._read_only = read_only
        self._randomize = randomize_hosts
        self.default_acl = default_acl
        self.auth_data = [(scheme, self._credential(cred)) for scheme, cred in auth_data or ()]
        if isinstance(command_retry, KeeperRetry):
            self._retry = command_retry
        else:
            self._retry = KeeperRetry(**{"max_tries": None, "max_delay": 3600,
                                         **(command_retry or {})})
        self._lock = threading.Lock()
        self._listeners = []
        self._state = KeeperState.LOST
        self._registry = WatchRegistry()
        self._callbacks = CallbackThread("nookeeper-watcher")
        self._connection = None
        self.DataWatch = functools.partial(DataWatch, self)
        self.ChildrenWatch = functools.partial(ChildrenWatch, self)

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
                    read_only=self._read_only, randomize_hosts=self._randomize,
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

    def _submit(self, opcode, body, convert=None, watch=None):
        result = self._new_result()
        request = Request(opcode, encode_body(opcode, body), result, convert, watch)
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

    def _create_record(self, path, value, acl, ephemeral, sequence):
        return {
            "path": self._full(path, trailing=sequence),
            "data": self._check_value(value),
            "acl": self._acl_records(acl),
            "flags": (_EPHEMERAL if ephemeral else 0) | (_SEQUENCE if sequence else 0),
        }

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
               makepath=False, include_data=False):
        """Create a node; returns its path, or (path, ZnodeStat) with include_data."""
        record = self._create_record(path, value, acl, ephemeral, sequence)
        attempt = functools.partial(self._create_full, record, include_data)
        if not makepath:
            return attempt().get()
        try:
            return attempt().get()
        except NoNodeError:
            self._ensure_full(_parent(record["path"]), record["acl"])
        return attempt().get()

    def create_async(self, path, value=b"", acl=None, ephemeral=False, sequence=False,
                     makepath=False, include_data=False):
        if makepath:
            return self._in_background(
                self.create, path, value, acl, ephemeral, sequence, True, include_data)
        record = self._create_record(path, value, acl, ephemeral, sequence)
        return self._create_full(record, include_data)

    def _create_full(self, record, include_data):
        strip = self._chroot.strip
        if include_data:
            return self._submit(
                OpCode.CREATE2, record,
                convert=lambda body: (strip(body.path), ZnodeStat.from_record(body.stat)))
        return self._submit(OpCode.CREATE, record, convert=lambda body: strip(body.path))

    def ensure_path(self, path, acl=None):
        """Create `path` and any missing ancestors (the chroot's too); True."""
        self._ensure_full(self._full(path), self._acl_records(acl))
        return True

    def ensure_path_async(self, path, acl=None):
        return self._in_background(self.ensure_path, path, acl)

    def _ensure_full(self, full_path, acl_records):
        if full_path == "/":
            return
        if self._submit(OpCode.EXISTS, {"path": full_path, "watch": False},
                        convert=self._stat).get() is not None:
            return
        record = {"path": full_path, "data": b"", "acl": acl_records, "flags": 0}
        try:
            self._submit(OpCode.CREATE, record).get()
            return
        except NodeExistsError:
            return
        except NoNodeError:
            self._ensure_full(_parent(full_path), acl_records)
        try:
            self._submit(OpCode.CREATE, record).get()
        except NodeExistsError:
            pass

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
        return Transaction(self)

    def retry(self, func, *args, **kwargs):
        """func(*args, **kwargs), retried through ConnectionLoss and friends."""
        return self._retry.copy()(func, *args, **kwargs)

    # -- four-letter words ---------------------------------------------

    def command(self, cmd=b"ruok"):
        """A four-letter word sent to the server we are connected to; its answer."""
        host = self.current_host
        if host is None:
            raise ConnectionLoss("no connection to a server")
        return four_letter_word(host[0], host[1], cmd, timeout=self._timeout)

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
