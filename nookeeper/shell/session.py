"""ShellSession: the shell's one KeeperClient, its command history and its watch output.

Watch callbacks and session state changes arrive on the client's watcher
thread; the session turns both into WatchedEvents and hands them to
`on_event`, which the interactive loop prints between prompts. With no
`on_event` (one-shot mode) they are dropped.
"""

import threading

from nookeeper.client import EventType, KeeperClient, KeeperState, WatchedEvent
from nookeeper.client.exceptions import ConnectionClosedError, ConnectionLoss, KeeperTimeoutError

# What zkCli.sh asks for; the server clamps it to its own limits.
SESSION_TIMEOUT = 30.0

# The prompt's state names are ZooKeeper's (ZooKeeper.States), not kazoo's.
_PROMPT_STATES = {
    KeeperState.CONNECTED: "CONNECTED",
    KeeperState.CONNECTED_RO: "CONNECTEDREADONLY",
    KeeperState.SUSPENDED: "CONNECTING",
    KeeperState.LOST: "CONNECTING",
}


class ShellSession:
    """hosts: the connect string; timeout: seconds to wait for a connection or a reply;
    sasl_options: KeeperClient's, to authenticate each session with SASL."""

    def __init__(self, hosts, timeout=10.0, on_event=None, sasl_options=None,
                 client_options=None):
        self.hosts = hosts
        # More KeeperClient keyword arguments for every session (TLS: use_ssl, certfile...).
        self.client_options = dict(client_options or {})
        self.sasl_options = sasl_options  # KeeperClient's, for every session it opens
        self.timeout = float(timeout)
        self.on_event = on_event
        self.print_watches = True
        self.client = None
        self.history = []
        self._retired = None
        self._watcher = None

    # -- connection ----------------------------------------------------

    def connect(self, hosts=None):
        """Close the current session and open one on `hosts` (default: the same hosts).

        ValueError for a malformed connect string; ConnectionLoss when no
        server answered within the timeout. Returns once the connection event
        has been handed to `on_event`, so it is printed before the next prompt.
        """
        hosts = hosts or self.hosts
        client = KeeperClient(hosts, timeout=SESSION_TIMEOUT, sasl_options=self.sasl_options,
                              **self.client_options)
        self.close()
        self.hosts = hosts
        retired = threading.Event()
        watcher = self._forwarder(retired)
        client.add_listener(lambda state: watcher(WatchedEvent(EventType.NONE, state, None)))
        try:
            client.start(timeout=self.timeout)
        except KeeperTimeoutError:
            retired.set()
            raise ConnectionLoss(
                f"cannot connect to {hosts} within {self.timeout:g} s") from None
        except BaseException:
            retired.set()
            client.stop()
            raise
        self.client, self._retired, self._watcher = client, retired, watcher
        # Any cheap request: its reply's callbacks run after the connection event.
        self._await_handed_on(client.exists_async("/"))

    def close(self):
        """End the session (its ephemerals go); nothing it does is printed after this."""
        client, self.client = self.client, None
        if client is None:
            return
        self._retired.set()
        client.stop()

    @property
    def state_name(self):
        client = self.client
        if client is None:
            return "CLOSED"
        return _PROMPT_STATES.get(client.state, client.state)

    def require_client(self):
        if self.client is None:
            raise ConnectionClosedError("not connected (use: connect host:port)")
        return self.client

    def wait(self, result):
        """An AsyncResult's value, or KeeperTimeoutError once the shell's timeout passes.

        It returns only after the watcher thread has handed on every event
        that arrived before the reply, so the event a command itself causes
        (`set` on a node watched with `get -w`) prints before its result.
        """
        self._await_handed_on(result)
        try:
            return result.get(block=False)
        except KeeperTimeoutError:
            raise KeeperTimeoutError(f"no reply within {self.timeout:g} s") from None

    def get_outside_chroot(self, path):
        """(data, stat) of `path` read without the session's chroot, as ZooKeeper's
        getConfig reads /zookeeper/config: on a short session of its own."""
        hosts = self.hosts.split("/", 1)[0]
        client = KeeperClient(hosts, timeout=SESSION_TIMEOUT, sasl_options=self.sasl_options,
                              **self.client_options)
        try:
            client.start(timeout=self.timeout)
        except KeeperTimeoutError:
            raise ConnectionLoss(
                f"cannot connect to {hosts} within {self.timeout:g} s") from None
        try:
            return client.get_async(path).get(timeout=self.timeout)
        finally:
            client.stop()

    def _await_handed_on(self, result):
        """Wait (at most the timeout) until the watcher thread has run `result`'s callbacks.

        They run after every event queued before the reply, so once they
        have, those events have been handed on too.
        """
        handed_on = threading.Event()
        result.rawlink(lambda result: handed_on.set())
        handed_on.wait(self.timeout)

    # -- history -------------------------------------------------------

    @property
    def next_number(self):
        """The number the next command gets; commands are numbered from 0, none dropped."""
        return len(self.history)

    def record(self, line):
        """Number a command line, as the prompt showed it, and keep it for history/redo."""
        self.history.append(line)

    def replace_last(self, line):
        """redo: the history keeps the command redone, not the redo."""
        self.history[-1] = line

    # -- events --------------------------------------------------------

    @property
    def watcher(self):
        """The callback every -w watch of the current session is set with.

        One callable per session, so asking twice for the same watch sets it
        once, as ZooKeeper does for one watcher object.
        """
        self.require_client()
        return self._watcher

    def _forwarder(self, retired):
        """Events of one client, until that client is closed or replaced."""
        def forward(event):
            if not retired.is_set() and self.print_watches and self.on_event is not None:
                self.on_event(event)
        return forward
