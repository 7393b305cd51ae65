"""SASL for KeeperClient: DIGEST-MD5 through pure-sasl, as kazoo does it.

``sasl_options`` is kazoo's parameter: {"mechanism": "DIGEST-MD5",
"username": ..., "password": ...}. The exchange runs on every connection,
right after the handshake and before anything else is sent (the connection
drives it, client/connection.py); this module checks the options and wraps
pure-sasl's client, the way ZooKeeper's client names the server: service
"zookeeper", host "zk-sasl-md5" (both hard-wired in ZooKeeper).

GSSAPI (Kerberos) is not offered: neither nookeeper's server nor this
client speak it, and asking for it is refused before connecting.
"""

MECHANISM = "DIGEST-MD5"
SERVICE = "zookeeper"
HOST = "zk-sasl-md5"
# A DIGEST-MD5 exchange is two round trips; a server that keeps asking is not one.
MAX_STEPS = 5

_KEYS = ("mechanism", "username", "password")


def check_options(options):
    """A copy of `options` fit for a DIGEST-MD5 exchange, or ValueError saying why
    (ImportError when pure-sasl is missing)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ValueError(f"sasl_options must be a dict, not {type(options).__name__}")
    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise ValueError(f"sasl_options: unknown keys {', '.join(map(repr, unknown))} "
                         f"(expected {', '.join(_KEYS)})")
    mechanism = str(options.get("mechanism", "")).upper()
    if mechanism == "GSSAPI":
        raise ValueError("sasl_options: GSSAPI (Kerberos) is not supported; nookeeper "
                         "offers DIGEST-MD5 only")
    if mechanism != MECHANISM:
        raise ValueError(f"sasl_options: mechanism {options.get('mechanism')!r} is not "
                         f"supported; use {MECHANISM!r}")
    for key in ("username", "password"):
        if not isinstance(options.get(key), str) or not options[key]:
            raise ValueError(f"sasl_options: {key} must be a non-empty string")
    _puresasl()
    return {"mechanism": MECHANISM, "username": options["username"],
            "password": options["password"]}


def _puresasl():
    try:
        import puresasl.client
    except ImportError:
        raise ImportError("sasl_options needs the pure-sasl package "
                          "(pip install pure-sasl)") from None
    return puresasl


class SaslError(Exception):
    """The exchange cannot go on (the client's side refused a server token)."""


class DigestMD5Client:
    """One connection's exchange: step(server token or None) -> token to send,
    None once complete."""

    def __init__(self, options):
        puresasl = _puresasl()
        self.username = options["username"]
        self._errors = (puresasl.SASLError, puresasl.SASLProtocolException)
        self._client = puresasl.client.SASLClient(
            host=HOST, service=SERVICE, mechanism=MECHANISM,
            username=options["username"], password=options["password"])
        self.steps = 0

    @property
    def complete(self):
        return self._client.complete

    def step(self, challenge):
        """The token to send for the server's `challenge` (None for the first),
        or None when the exchange is complete and nothing more is sent."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise SaslError(f"the server asked for more than {MAX_STEPS} SASL steps")
        try:
            token = self._client.process(challenge)
        except self._errors as exc:
            raise SaslError(str(exc)) from None
        if self._client.complete:
            self.dispose()
            return token or None
        return token or b""

    def dispose(self):
        """Forget the password."""
        self._client.dispose()
