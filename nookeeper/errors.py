"""ZooKeeper error codes as exceptions.

Every failure a request can meet is one of these; its ``code`` is what goes
into the reply header. Names follow kazoo's so that the server and the client
package share one vocabulary.
"""


class ZooKeeperError(Exception):
    """Base of every error that maps to a ZooKeeper error code."""

    code = -1

    def __init__(self, message=""):
        super().__init__(message or self.__class__.__name__)


class RolledBackError(ZooKeeperError):
    """A multi sub-op that was fine but rolled back with the rest (code 0)."""

    code = 0


class SystemZookeeperError(ZooKeeperError):
    code = -1


class RuntimeInconsistency(ZooKeeperError):
    code = -2


class DataInconsistency(ZooKeeperError):
    code = -3


class ConnectionLoss(ZooKeeperError):
    code = -4


class MarshallingError(ZooKeeperError):
    code = -5


class UnimplementedError(ZooKeeperError):
    code = -6


class OperationTimeoutError(ZooKeeperError):
    code = -7


class BadArgumentsError(ZooKeeperError):
    code = -8


class UnknownSessionError(ZooKeeperError):
    code = -12


class NewConfigNoQuorumError(ZooKeeperError):
    code = -13


class ReconfigInProcessError(ZooKeeperError):
    code = -14


class APIError(ZooKeeperError):
    code = -100


class NoNodeError(ZooKeeperError):
    code = -101


class NoAuthError(ZooKeeperError):
    code = -102


class BadVersionError(ZooKeeperError):
    code = -103


class NoChildrenForEphemeralsError(ZooKeeperError):
    code = -108


class NodeExistsError(ZooKeeperError):
    code = -110


class NotEmptyError(ZooKeeperError):
    code = -111


class SessionExpiredError(ZooKeeperError):
    code = -112


class InvalidCallbackError(ZooKeeperError):
    code = -113


class InvalidACLError(ZooKeeperError):
    code = -114


class AuthFailedError(ZooKeeperError):
    code = -115


class SessionMovedError(ZooKeeperError):
    code = -118


class NotReadOnlyCallError(ZooKeeperError):
    code = -119


class EphemeralOnLocalSessionError(ZooKeeperError):
    code = -120


class NoWatcherError(ZooKeeperError):
    code = -121


class RequestTimeoutError(ZooKeeperError):
    code = -122


class ReconfigDisabledError(ZooKeeperError):
    code = -123


class SessionClosedRequireSaslError(ZooKeeperError):
    code = -124


class QuotaExceededError(ZooKeeperError):
    code = -125


class ThrottledOpError(ZooKeeperError):
    code = -127


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in ZooKeeperError.__subclasses__()
}


def error_for_code(code):
    """The exception class for a wire error code; KeyError if ZooKeeper has none."""
    return ERRORS_BY_CODE[code]
