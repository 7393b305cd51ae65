"""Server configuration: one YAML file in, one frozen ServerConfig out.

Every problem is reported as "FILE: KEY: what is wrong" on one line, so an
operator can fix a bad file without reading a traceback. All checks happen
here, before the server binds a port or opens its log.
"""

import base64
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_KEYS = (
    "server_id", "client_address", "peer_address", "members", "data_dir",
    "tick_ms", "init_limit", "sync_limit", "min_session_timeout_ms", "max_session_timeout_ms",
    "max_frame_bytes", "max_connections_per_ip", "max_connections",
    "four_letter_words", "super_digest", "log_level", "log_file",
    "snapshot_every_txns", "snapshot_retain_count", "metrics_address", "admin_address",
    "container_check_interval_ms", "container_max_per_minute", "container_max_never_used_ms",
    "ttl_nodes", "enforce_quota", "max_outstanding_per_connection", "global_outstanding_limit",
    "read_only_mode",
    "sasl_users_file", "sasl_super_user", "sasl_required",
)
# TLS (server/tls.py): the secure client port, peer links, x509 identities.
_KEYS += (
    "secure_client_address", "tls_cert_file", "tls_key_file", "tls_ca_file", "client_auth",
    "peer_tls", "peer_tls_check_hostname", "x509_superuser",
)
# client_address too, unless secure_client_address is given (checked below).
_REQUIRED = ("server_id", "data_dir")
# ZooKeeper's 4lw.commands.whitelist default: srvr only, so a server does not
# show its connections, sessions and config to whoever reaches its port.
DEFAULT_FOUR_LETTER_WORDS = frozenset({"srvr"})


class ConfigError(Exception):
    def __init__(self, path, key, message):
        self.path = str(path)
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self):
        if self.key is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.key}: {self.message}"


@dataclass(frozen=True)
class ServerConfig:
    source: Path
    server_id: int
    client_host: str | None  # None: no plain client port (secure_client_address only)
    client_port: int | None
    peer_host: str | None
    peer_port: int | None
    members: dict = field(hash=False)   # server id -> (host, port) of its peer port
    data_dir: Path
    tick_ms: int
    init_limit: int          # ticks a new leader and its followers have to synchronise
    sync_limit: int          # ticks of silence after which leader or follower gives up
    min_session_timeout_ms: int
    max_session_timeout_ms: int
    max_frame_bytes: int
    max_connections_per_ip: int
    max_connections: int
    four_letter_words: frozenset | None  # None: every word is allowed
    super_digest: str | None
    log_level: str
    log_file: Path | None
    snapshot_every_txns: int = 100000   # a snapshot of the tree after this many applied txns
    snapshot_retain_count: int = 3      # snapshots kept (with the log after the oldest)
    metrics_host: str | None = None     # Prometheus endpoint; None: off
    metrics_port: int | None = None
    # The admin HTTP port (server/admin.py): ZooKeeper's AdminServer commands
    # at /commands/<name>, /health, /ready and /metrics; None: off.
    admin_host: str | None = None
    admin_port: int | None = None
    # ZooKeeper's znode.container.checkIntervalMs, .maxPerMinute, .maxNeverUsedIntervalMs (0: never)
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    container_max_never_used_ms: int = 0
    ttl_nodes: bool = True  # ZooKeeper's zookeeper.extendedTypesEnabled
    enforce_quota: bool = False  # ZooKeeper's zookeeper.enforceQuota
    # ZooKeeper's readonlymode.enabled: cut off from a quorum, keep serving
    # reads to clients that asked for read-only (server/node.py)
    read_only_mode: bool = False
    # Unanswered requests before a connection's reader stops reading (server/throttle.py);
    # the global one is ZooKeeper's globalOutstandingLimit.
    max_outstanding_per_connection: int = 1000
    global_outstanding_limit: int = 1000
    # server id -> (host, port) its clients use, for the members that give one
    # after their peer address ("host:port;clienthost:clientport"), as
    # ZooKeeper's server.N lines may: /zookeeper/config shows them.
    member_clients: dict = field(default_factory=dict, hash=False)
    # SASL (DIGEST-MD5) on the client port (nookeeper/sasl.py): user -> password
    # from sasl_users_file's JAAS Server section (None: SASL off; never shown),
    # ZooKeeper's zookeeper.superUser(.*) and zookeeper.sessionRequireClientSASLAuth.
    sasl_users_file: Path | None = None
    sasl_users: dict | None = field(default=None, hash=False, compare=False, repr=False)
    sasl_super_users: frozenset = frozenset()
    sasl_required: bool = False
    # TLS (server/tls.py). The secure client port; None: off.
    secure_client_host: str | None = None
    secure_client_port: int | None = None
    tls_cert_file: Path | None = None   # PEM: this server's certificate (chain)
    tls_key_file: Path | None = None    # PEM: its private key, unencrypted
    tls_ca_file: Path | None = None     # PEM: the CAs clients' and peers' certificates chain to
    client_auth: str = "need"           # need|want|none, ZooKeeper's ssl.clientAuth
    peer_tls: bool = False              # every peer link TLS, certificates checked both ways
    peer_tls_check_hostname: bool = True  # ZooKeeper's ssl.quorum.hostnameVerification
    x509_superuser: str | None = None   # ZooKeeper's X509AuthenticationProvider.superUser

    @property
    def tls_files(self):
        """(cert, key, ca) as strings for server/tls.py; None without TLS files."""
        if self.tls_cert_file is None:
            return None
        from nookeeper.server.tls import TlsFiles
        return TlsFiles(str(self.tls_cert_file), str(self.tls_key_file),
                        None if self.tls_ca_file is None else str(self.tls_ca_file))

    @property
    def is_standalone(self) -> bool:
        return not self.members or set(self.members) == {self.server_id}

    def allows_four_letter_word(self, word: str) -> bool:
        return self.four_letter_words is None or word in self.four_letter_words


class _Checker:
    """Carries the file name so each check can raise a complete ConfigError."""

    def __init__(self, path):
        self.path = path

    def fail(self, key, message):
        raise ConfigError(self.path, key, message)

    def integer(self, key, value, low=None, high=None):
        # bool is an int subclass, but "yes" is never a meaningful port or timeout.
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {_describe(value)}")
        if low is not None and value < low or high is not None and value > high:
            if high is None:
                self.fail(key, f"must be at least {low}, got {value}")
            self.fail(key, f"must be between {low} and {high}, got {value}")
        return value

    def boolean(self, key, value):
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_describe(value)}")
        return value

    def string(self, key, value):
        if not isinstance(value, str) or not value:
            self.fail(key, f"expected a non-empty string, got {_describe(value)}")
        return value

    def address(self, key, value):
        """host:port, with [brackets] around an IPv6 host."""
        text = self.string(key, value)
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            self.fail(key, f"expected host:port, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            self.fail(key, f"an IPv6 host needs brackets, as in [::1]:2181; got {text!r}")
        if not host or any(c.isspace() for c in host):
            self.fail(key, f"bad host in {text!r}")
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            self.fail(key, f"port must be a number from 1 to 65535, got {port!r}")
        return host, int(port)


def _describe(value):
    return f"{type(value).__name__} {value!r}"


def _read(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, None, f"cannot read: {e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(path, None, f"not valid YAML: {problem}{where}") from None
    if not isinstance(doc, dict):
        raise ConfigError(path, None, f"the top level must be a mapping of keys, got {_describe(doc)}")
    return doc


def _data_dir(check, value) -> Path:
    """Created now so that a bad path fails at startup, not at the first write."""
    path = Path(check.string("data_dir", value)).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        check.fail("data_dir", f"{path} exists and is not a directory")
    except OSError as e:
        check.fail("data_dir", f"cannot create {path}: {e.strerror or e}")
    if not path.is_dir():
        check.fail("data_dir", f"{path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        check.fail("data_dir", f"{path} is not writable")
    return path


def _members(check, value, server_id, peer):
    if not isinstance(value, dict):
        check.fail("members", f"expected a mapping of server id to host:port, got {_describe(value)}")
    members = {}
    for sid, address in value.items():
        check.integer(f"members.{sid}", sid, 1, 254)
        members[sid] = check.address(f"members.{sid}", _split_member(address)[0])
    if server_id not in members:
        check.fail("members", f"does not list this server (server_id {server_id})")
    if peer is not None and members[server_id][1] != peer[1]:
        check.fail(f"members.{server_id}",
                   f"port {members[server_id][1]} differs from peer_address port {peer[1]}")
    return members


def _split_member(value):
    """(peer, client or None) of "host:port" or "host:port;clienthost:clientport"."""
    if not isinstance(value, str) or ";" not in value:
        return value, None
    peer, _, client = value.partition(";")
    return peer, client


def _member_clients(check, value, server_id, client_port):
    clients = {}
    for sid, address in value.items():
        text = _split_member(address)[1]
        if text is not None:
            clients[sid] = check.address(f"members.{sid}", text)
    if server_id in clients and clients[server_id][1] != client_port:
        check.fail(f"members.{server_id}", f"client port {clients[server_id][1]} differs "
                                           f"from client_address port {client_port}")
    return clients


def _four_letter_words(check, value):
    if value == "*":
        return None
    if not isinstance(value, list):
        check.fail("four_letter_words", f'expected a list of words or "*", got {_describe(value)}')
    words = set()
    for word in value:
        if word == "*":
            return None
        if not isinstance(word, str) or len(word) != 4 or not (word.isascii() and word.isalpha()):
            check.fail("four_letter_words", f"not a four-letter word: {word!r}")
        words.add(word.lower())
    return frozenset(words)


def _super_digest(check, value):
    text = check.string("super_digest", value)
    user, sep, digest = text.partition(":")
    try:
        raw = base64.b64decode(digest, validate=True)
    except ValueError:
        raw = b""
    if not sep or not user or len(raw) != 20:
        check.fail("super_digest", "expected user:base64(sha1(user:password))")
    return text


def _sasl_users(check, value):
    """(path, {user: password}) of a JAAS file in ZooKeeper's format (its Server
    section), which only the server's user may read: it holds passwords."""
    from nookeeper import sasl

    path = Path(check.string("sasl_users_file", value)).expanduser().absolute()
    try:
        info = path.stat()
    except OSError as e:
        check.fail("sasl_users_file", f"cannot read {path}: {e.strerror or e}")
    if not path.is_file():
        check.fail("sasl_users_file", f"{path} is not a file")
    if info.st_uid != os.geteuid():
        check.fail("sasl_users_file", f"{path} holds passwords and must belong to the user "
                                      f"running the server (uid {os.geteuid()}), "
                                      f"not uid {info.st_uid}")
    if info.st_mode & 0o077:
        check.fail("sasl_users_file", f"{path} holds passwords but is open to other users "
                                      f"(mode {info.st_mode & 0o777:o}); chmod 600 it")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        check.fail("sasl_users_file", f"cannot read {path}: {e}")
    try:
        users = sasl.jaas_users(text)
    except sasl.JaasError as e:
        check.fail("sasl_users_file", f"{path}: {e}")
    return path, users


def _sasl_super_users(check, value):
    names = value if isinstance(value, list) else [value]
    return frozenset(check.string("sasl_super_user", name) for name in names)


def _tls(check, doc, optional):
    """The TLS keys as ServerConfig fields, their files read and checked now
    (missing, expired, a key not matching the certificate, no certificate)."""
    secure = optional("secure_client_address", None, check.address)
    client_auth = optional("client_auth", "need", check.string)
    if client_auth not in ("need", "want", "none"):
        check.fail("client_auth", f"expected need, want or none, got {client_auth!r}")
    peer_tls = optional("peer_tls", False, check.boolean)
    check_hostname = optional("peer_tls_check_hostname", True, check.boolean)
    superuser = optional("x509_superuser", None, check.string)
    if superuser is not None:
        from nookeeper.x509 import valid_name
        if not valid_name(superuser):
            check.fail("x509_superuser", f"not a distinguished name (as CN=admin,O=acme): "
                                         f"{superuser!r}")
    files = {key: optional(key, None, lambda k, v: Path(check.string(k, v)).expanduser().absolute())
             for key in ("tls_cert_file", "tls_key_file", "tls_ca_file")}
    uses = [what for what, on in (("secure_client_address", secure is not None),
                                  ("peer_tls", peer_tls)) if on]
    needs_ca = peer_tls or (secure is not None and client_auth != "none")
    if uses:
        for key in ("tls_cert_file", "tls_key_file") + (("tls_ca_file",) if needs_ca else ()):
            if files[key] is None:
                check.fail(key, f"required key is missing (needed by {' and '.join(uses)})")
        from nookeeper.server.tls import TlsFileError, TlsFiles, check_files
        try:
            check_files(TlsFiles(*(None if files[k] is None else str(files[k])
                                   for k in ("tls_cert_file", "tls_key_file", "tls_ca_file"))))
        except TlsFileError as exc:
            check.fail(exc.key, exc.message)
    else:
        for key in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
            if files[key] is not None:
                check.fail(key, "set, but neither secure_client_address nor peer_tls uses it")
    return {
        "secure_client_host": secure[0] if secure else None,
        "secure_client_port": secure[1] if secure else None,
        "tls_cert_file": files["tls_cert_file"],
        "tls_key_file": files["tls_key_file"],
        "tls_ca_file": files["tls_ca_file"],
        "client_auth": client_auth,
        "peer_tls": peer_tls,
        "peer_tls_check_hostname": check_hostname,
        "x509_superuser": superuser,
    }


def load_config(path) -> ServerConfig:
    path = Path(path)
    check = _Checker(path)
    doc = _read(path)
    for key in doc:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            check.fail(key, "unknown key" + (f" (did you mean {close[0]}?)" if close else ""))
    for key in _REQUIRED:
        if doc.get(key) is None:
            check.fail(key, "required key is missing")

    def optional(key, default, parse):
        value = doc.get(key)
        return default if value is None else parse(key, value)

    def positive(key, value):
        return check.integer(key, value, 1)

    server_id = check.integer("server_id", doc["server_id"], 1, 254)
    if doc.get("client_address") is None and doc.get("secure_client_address") is None:
        # (secure_client_address alone is fine: a TLS-only server)
        check.fail("client_address", "required key is missing")
    client_host, client_port = optional("client_address", (None, None), check.address)
    tls = _tls(check, doc, optional)
    peer = optional("peer_address", None, check.address)
    members = optional("members", {}, lambda k, v: _members(check, v, server_id, peer))
    if peer is None and server_id in members:
        peer = members[server_id]
    member_clients = _member_clients(check, doc["members"], server_id,
                                     client_port or tls["secure_client_port"]) \
        if members else {}
    tick = optional("tick_ms", 2000, positive)
    init_limit = optional("init_limit", 10, positive)
    sync_limit = optional("sync_limit", 5, positive)
    min_timeout = optional("min_session_timeout_ms", 2 * tick, positive)
    max_timeout = optional("max_session_timeout_ms", 20 * tick, positive)
    if max_timeout < min_timeout:
        check.fail("max_session_timeout_ms",
                   f"{max_timeout} is less than min_session_timeout_ms {min_timeout}")
    level = optional("log_level", "INFO", check.string).upper()
    if level not in LOG_LEVELS:
        check.fail("log_level", f"expected one of {', '.join(LOG_LEVELS)}, got {doc['log_level']!r}")

    max_frame_bytes = optional("max_frame_bytes", 1048576, positive)
    max_connections_per_ip = optional("max_connections_per_ip", 60, positive)
    max_connections = optional("max_connections", 1024, positive)
    words = optional("four_letter_words", DEFAULT_FOUR_LETTER_WORDS,
                     lambda k, v: _four_letter_words(check, v))
    super_digest = optional("super_digest", None, lambda k, v: _super_digest(check, v))
    log_file = optional("log_file", None, lambda k, v: Path(check.string(k, v)).absolute())
    snapshot_every = optional("snapshot_every_txns", 100000, positive)
    snapshot_retain = optional("snapshot_retain_count", 3, positive)
    metrics = optional("metrics_address", None, check.address)
    admin = optional("admin_address", None, check.address)
    if admin is not None and admin == metrics:
        check.fail("admin_address", f"is metrics_address too ({admin[0]}:{admin[1]}); the admin "
                                    "port serves /metrics itself, so give only admin_address")
    container_interval = optional("container_check_interval_ms", 60000, positive)
    container_rate = optional("container_max_per_minute", 10000, positive)
    container_never_used = optional("container_max_never_used_ms", 0,
                                    lambda k, v: check.integer(k, v, 0))
    ttl_nodes = optional("ttl_nodes", True, check.boolean)
    enforce_quota = optional("enforce_quota", False, check.boolean)
    read_only_mode = optional("read_only_mode", False, check.boolean)
    per_connection_limit = optional("max_outstanding_per_connection", 1000, positive)
    global_limit = optional("global_outstanding_limit", 1000, positive)
    sasl_file, sasl_users = optional("sasl_users_file", (None, None),
                                     lambda k, v: _sasl_users(check, v))
    sasl_super_users = optional("sasl_super_user", frozenset(),
                                lambda k, v: _sasl_super_users(check, v))
    sasl_required = optional("sasl_required", False, check.boolean)
    if sasl_required and sasl_users is None:
        check.fail("sasl_required", "needs sasl_users_file: without users no session "
                                    "could ever authenticate")
    # Last, so that a file with any other mistake leaves no directory behind.
    data_dir = _data_dir(check, doc["data_dir"])

    return ServerConfig(
        source=path.absolute(),
        server_id=server_id,
        client_host=client_host,
        client_port=client_port,
        peer_host=peer[0] if peer else None,
        peer_port=peer[1] if peer else None,
        members=members,
        data_dir=data_dir,
        tick_ms=tick,
        init_limit=init_limit,
        sync_limit=sync_limit,
        min_session_timeout_ms=min_timeout,
        max_session_timeout_ms=max_timeout,
        four_letter_words=words,
        super_digest=super_digest,
        log_level=level,
        max_frame_bytes=max_frame_bytes,
        max_connections_per_ip=max_connections_per_ip,
        max_connections=max_connections,
        log_file=log_file,
        snapshot_every_txns=snapshot_every,
        snapshot_retain_count=snapshot_retain,
        metrics_host=metrics[0] if metrics else None,
        metrics_port=metrics[1] if metrics else None,
        admin_host=admin[0] if admin else None,
        admin_port=admin[1] if admin else None,
        container_check_interval_ms=container_interval,
        container_max_per_minute=container_rate,
        container_max_never_used_ms=container_never_used,
        ttl_nodes=ttl_nodes,
        enforce_quota=enforce_quota,
        read_only_mode=read_only_mode,
        max_outstanding_per_connection=per_connection_limit,
        global_outstanding_limit=global_limit,
        member_clients=member_clients,
        **tls,
        sasl_users_file=sasl_file,
        sasl_users=sasl_users,
        sasl_super_users=sasl_super_users,
        sasl_required=sasl_required,
    )
