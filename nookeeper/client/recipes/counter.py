"""A shared number changed by optimistic, version-checked updates.

Each change reads the value and its version and writes the new value only
if the version is still the same; a concurrent writer makes it read and
try again, so no increment is lost however many clients add at once. The
value is stored as its repr() in ASCII, as kazoo's Counter stores it.
"""

from nookeeper.client.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    UnknownOutcomeError,
)
from nookeeper.client.recipes._base import TRANSIENT, Backoff, Deadline, clean_path


class Counter:
    """counter = client.Counter("/counters/jobs"); counter += 1; counter.value.

    The type of `default` (int by default, or float) is the counter's type.
    After a change, pre_value and post_value hold the value just before and
    just after it.
    """

    def __init__(self, client, path, default=0):
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise TypeError("default must be an int or a float")
        self.client = client
        self.path = clean_path(path)
        self.default = default
        self.default_type = type(default)
        self.pre_value = None
        self.post_value = None
        self._ensured = False

    def _ensure_node(self):
        if self._ensured:
            return
        try:
            self.client.create(self.path, self._encode(self.default), makepath=True)
        except NodeExistsError:
            pass
        self._ensured = True

    def _encode(self, value):
        return repr(value).encode("ascii")

    def _decode(self, data):
        if not data:
            return self.default
        return self.default_type(data.decode("ascii"))

    def _read(self):
        self._ensure_node()
        try:
            data, stat = self.client.get(self.path)
        except NoNodeError:
            self._ensured = False
            raise
        return self._decode(data), stat.version

    @property
    def value(self):
        """The current value (the default while nothing was stored)."""
        return self.client.retry(self._read)[0]

    def _change(self, delta):
        if isinstance(delta, bool) or not isinstance(delta, self.default_type):
            raise TypeError(f"this counter changes by {self.default_type.__name__} values")
        backoff = Backoff()
        forever = Deadline(None)
        while True:
            try:
                before, version = self._read()
                after = before + delta
                if self._write(after, version):
                    self.pre_value, self.post_value = before, after
                    return self
            except NoNodeError:
                continue
            except UnknownOutcomeError:
                raise
            except TRANSIENT:
                backoff.pause(forever)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue

    def _write(self, value, version):
        """True if our version-checked write landed, False if someone wrote first."""
        data = self._encode(value)
        try:
            self.client.set(self.path, data, version=version)
            return True
        except BadVersionError:
            return False
        except TRANSIENT:
            return self._landed(data, version)

    def _landed(self, data, version):
        """After a lost reply: False when our write surely did not happen.

        An unchanged version, or one write on with another value, means
        someone else's write won and ours was refused. Otherwise the write
        seen may be ours or an identical one from another client; repeating
        ours could count twice, so the caller is told instead (ConnectionLoss).
        """
        backoff = Backoff()
        forever = Deadline(None)
        while True:
            try:
                current, stat = self.client.get(self.path)
                break
            except TRANSIENT:
                backoff.pause(forever)
            except ConnectionClosedError:
                raise
            except SessionExpiredError:
                continue
        if stat.version == version or (stat.version == version + 1 and current != data):
            return False
        raise UnknownOutcomeError(f"unknown whether the change of {self.path} was applied")

    def __add__(self, delta):
        return self._change(delta)

    def __sub__(self, delta):
        return self._change(-delta)

    __iadd__ = __add__
    __isub__ = __sub__
