"""`nk status` and `nk health`: an ensemble at a glance, from four-letter words.

Every member is asked `srvr` (the one word a server answers whatever its
`four_letter_words`), then `mntr` for the rest, then `conf` for the server id
when mntr has none (Apache ZooKeeper's mntr never has it). Members are asked
at the same time, so a member that does not answer costs one timeout, not
one per member. What a member did not say is None here, `?` in the table and
null in JSON; what cannot apply to it (a member that does not answer) is `-`.

Nothing here keeps a session: it works on a member that cannot serve clients,
and against Apache ZooKeeper too. bin/nk-ensemble's live table is this one
with the launcher's own columns in front (extra columns).
"""

import concurrent.futures
from dataclasses import dataclass, field

from nookeeper.client.fourletter import four_letter_word
from nookeeper.client.paths import parse_hosts
from nookeeper.shell.results import Done

# The local ensemble of etc/node*.yaml (`make run`): status and health's default hosts.
LOCAL_ENSEMBLE = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"

NOT_SERVING_TEXT = "not currently serving requests"
NOT_ALLOWED_TEXT = "is not executed because it is not in the whitelist"
READ_ONLY_TEXT = "READ-ONLY mode"

# Roles a member that serves clients read-write has.
SERVING_ROLES = ("leader", "follower", "observer", "standalone")
NO_ANSWER = "no answer"
NOT_SERVING = "not serving"

UNKNOWN = "?"   # the member answered, but not this (mntr not allowed, an older server)
NOT_APPLICABLE = "-"


@dataclass
class MemberStatus:
    """What one member said. None: it did not say (or could not: see `answered`)."""

    host: str
    port: int
    answered: bool = False
    error: str | None = None          # why it did not answer
    role: str | None = None           # leader, follower, observer, standalone, read-only,
                                      # "not serving"; None when it did not answer
    server_id: int | None = None
    epoch: int | None = None
    epoch_from_zxid: bool = False     # no Epoch line or zk_epoch: the last zxid's epoch
    last_zxid: int | None = None
    zxid_lag: int | None = None       # txns behind the leader's last zxid
    connections: int | None = None    # client connections to this member (srvr's Connections)
    global_sessions: int | None = None  # sessions of the whole ensemble (mntr)
    local_sessions: int | None = None
    znodes: int | None = None
    outstanding: int | None = None
    p99_read_ms: float | None = None
    p99_write_ms: float | None = None
    log_bytes: int | None = None      # the data dir on disk (mntr zk_data_dir_size, conf's
                                      # dataLogSize on ZooKeeper)
    version: str | None = None
    uptime_ms: int | None = None
    mntr_allowed: bool | None = None  # None: not asked (srvr did not answer, or not serving)
    notes: list = field(default_factory=list)

    @property
    def address(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def serving(self):
        return self.role in SERVING_ROLES

    @property
    def leads(self):
        return self.role in ("leader", "standalone")

    @property
    def label(self):
        """The member as the health line names it: its id when known, else its address."""
        return str(self.server_id) if self.server_id is not None else self.address

    def document(self):
        return {
            "address": self.address,
            "id": self.server_id,
            "answered": self.answered,
            "error": self.error,
            "role": self.role,
            "serving": self.serving,
            "read_only": self.role == "read-only",
            "epoch": self.epoch,
            "last_zxid": None if self.last_zxid is None else f"{self.last_zxid:#x}",
            "zxid_lag": self.zxid_lag,
            "connections": self.connections,
            "global_sessions": self.global_sessions,
            "local_sessions": self.local_sessions,
            "znodes": self.znodes,
            "outstanding_requests": self.outstanding,
            "p99_read_latency_ms": self.p99_read_ms,
            "p99_write_latency_ms": self.p99_write_ms,
            "log_size_bytes": self.log_bytes,
            "version": self.version,
            "uptime_ms": self.uptime_ms,
            "mntr_allowed": self.mntr_allowed,
            "notes": self.all_notes(),
        }

    def all_notes(self):
        """The NOTES column, a note at a time."""
        notes = [] if self.answered else [self.error or "does not answer"]
        notes += self.notes
        if self.epoch_from_zxid:
            notes.append("epoch of the last zxid")
        return notes


# -- asking one member ---------------------------------------------------------


def _fields(text, separator):
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition(separator)
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def _int(text, base=10):
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _no_answer_text(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def probe(host, port, timeout=5.0, ssl_context=None, server_id=None):
    """A MemberStatus from srvr, mntr and (for the id, if mntr lacks it) conf."""
    member = MemberStatus(host, port, server_id=server_id)

    def ask(word):
        return four_letter_word(host, port, word, timeout, ssl_context=ssl_context)

    try:
        srvr = ask("srvr")
    except OSError as exc:
        member.error = _no_answer_text(exc)
        return member
    if NOT_SERVING_TEXT in srvr:
        member.answered = True
        member.role = NOT_SERVING
        if member.server_id is None:
            _read_conf(member, ask)  # conf answers whether or not the server serves
        return member
    if not srvr.startswith("Zookeeper version:"):
        member.error = f"unexpected answer to srvr: {srvr[:60]!r}" if srvr else "empty answer"
        return member
    member.answered = True
    _read_srvr(member, srvr)
    try:
        mntr = ask("mntr")
    except OSError as exc:
        member.notes.append(f"mntr: {_no_answer_text(exc)}")
        mntr = ""
    if NOT_ALLOWED_TEXT in mntr:
        member.mntr_allowed = False
        member.notes.append("mntr not allowed")
    elif mntr.startswith("zk_"):
        member.mntr_allowed = True
        _read_mntr(member, _mntr_fields(mntr))
    if member.server_id is None or member.log_bytes is None:
        _read_conf(member, ask)
    return member


def _read_conf(member, ask):
    """The server id and, from ZooKeeper, the log's size: what conf says of them."""
    try:
        conf = ask("conf")
    except OSError:
        return
    if NOT_ALLOWED_TEXT in conf:
        return
    pairs = _fields(conf, "=")
    if member.server_id is None:
        member.server_id = _int(pairs.get("serverId"))
    if member.log_bytes is None:
        member.log_bytes = _int(pairs.get("dataLogSize"))


def _mntr_fields(text):
    """mntr's "key<TAB>value" lines (blanks instead of the tab taken too)."""
    pairs = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            pairs[parts[0]] = parts[1].strip()
    return pairs


def _read_srvr(member, text):
    pairs = _fields(text, ":")
    member.version = pairs.get("Zookeeper version")
    member.connections = _int(pairs.get("Connections"))
    member.outstanding = _int(pairs.get("Outstanding"))
    member.last_zxid = _int(pairs.get("Zxid"), 0)
    member.znodes = _int(pairs.get("Node count"))
    mode = pairs.get("Mode")
    member.role = "read-only" if READ_ONLY_TEXT in text else (mode or UNKNOWN)
    # nookeeper's srvr says the epoch; ZooKeeper's only has it in the zxid's high bits.
    member.epoch = _int(pairs.get("Epoch"))
    if member.epoch is None and member.last_zxid is not None:
        member.epoch = member.last_zxid >> 32
        member.epoch_from_zxid = True


def _read_mntr(member, pairs):
    if pairs.get("zk_version"):
        member.version = pairs["zk_version"]
    if member.server_id is None:
        member.server_id = _int(pairs.get("zk_server_id"))
    if "zk_epoch" in pairs:
        member.epoch = _int(pairs["zk_epoch"])
        member.epoch_from_zxid = False
    member.global_sessions = _int(pairs.get("zk_global_sessions"))
    member.local_sessions = _int(pairs.get("zk_local_sessions"))
    if "zk_num_alive_connections" in pairs:
        member.connections = _int(pairs["zk_num_alive_connections"])
    if "zk_outstanding_requests" in pairs:
        member.outstanding = _int(pairs["zk_outstanding_requests"])
    if "zk_znode_count" in pairs:
        member.znodes = _int(pairs["zk_znode_count"])
    member.p99_read_ms = _float(pairs.get("zk_p99_readlatency"))
    member.p99_write_ms = _float(pairs.get("zk_p99_updatelatency"))
    member.log_bytes = _int(pairs.get("zk_data_dir_size"))
    member.uptime_ms = _int(pairs.get("zk_uptime"))


# -- the ensemble ----------------------------------------------------------------


@dataclass
class EnsembleStatus:
    members: list

    @property
    def leaders(self):
        return [m for m in self.members if m.role == "leader"]

    @property
    def leader(self):
        """The one member that leads: the leader, or a lone standalone server."""
        leaders = self.leaders
        if len(leaders) == 1:
            return leaders[0]
        if not leaders and len(self.members) == 1 and self.members[0].role == "standalone":
            return self.members[0]
        return None

    def problems(self):
        """What makes the ensemble unhealthy, in words; empty when it is healthy."""
        found = []
        for member in self.members:
            if not member.answered and member.role is not None:
                found.append(f"member {member.address} {member.error}")  # the launcher's words
            elif not member.answered:
                found.append(f"member {member.address} does not answer"
                             + (f" ({member.error})" if member.error else ""))
            elif member.role == NOT_SERVING:
                found.append(f"member {member.address} is not serving")
            elif member.role == "read-only":
                found.append(f"member {member.address} is read-only")
            elif not member.serving:
                found.append(f"member {member.address} is {member.role}")
        leaders = self.leaders
        standalone = [m for m in self.members if m.role == "standalone"]
        if len(leaders) > 1:
            found.append(f"{len(leaders)} members say they lead: "
                         + ", ".join(m.label for m in leaders))
        elif not leaders and not (standalone and len(standalone) == len(self.members)):
            found.append("no leader")
        return found

    @property
    def healthy(self):
        return not self.problems()

    def health_line(self):
        total = len(self.members)
        serving = sum(1 for m in self.members if m.serving)
        leader = self.leader
        if leader is not None:
            lead = f"leader {leader.label}" + (" (standalone)" if leader.role == "standalone"
                                               else "")
        elif self.members and all(m.role == "standalone" for m in self.members):
            lead = "every member standalone"
        else:
            lead = "no leader"
        problems = self.problems()
        if not problems:
            return f"healthy: {serving}/{total} members, {lead}"
        context = f"{serving}/{total} members serve" + ("" if "no leader" in problems
                                                        else f", {lead}")
        return f"unhealthy: {'; '.join(problems)}; {context}"

    def document(self):
        leader = self.leader
        return {
            "healthy": self.healthy,
            "health": self.health_line(),
            "problems": self.problems(),
            "leader": None if leader is None else {"id": leader.server_id,
                                                   "address": leader.address},
            "members": [m.document() for m in self.members],
        }


def _with_lag(members):
    status = EnsembleStatus(members)
    leader = status.leader
    if leader is not None and leader.last_zxid is not None:
        for member in members:
            if member.last_zxid is None or not member.answered:
                continue
            behind = leader.last_zxid - member.last_zxid
            # Counters of different epochs are not comparable: only within one epoch.
            if leader.last_zxid >> 32 == member.last_zxid >> 32 or behind == 0:
                member.zxid_lag = behind
            else:
                member.notes.append("zxid of an older epoch than the leader's")
    return status


def addresses(hosts):
    """[(host, port)] of a connect string; a chroot is ignored. ValueError if malformed."""
    found, _ = parse_hosts(hosts)
    return found


def gather(members, timeout=5.0, ssl_context=None):
    """EnsembleStatus of [(host, port)] or [(host, port, server_id)], every member at once."""
    if not members:
        return EnsembleStatus([])
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(members)) as pool:
        futures = [pool.submit(probe, item[0], item[1], timeout, ssl_context,
                               item[2] if len(item) > 2 else None) for item in members]
        return _with_lag([future.result() for future in futures])


# -- the table -------------------------------------------------------------------


def human_bytes(count):
    """As etcdctl prints DB SIZE: decimal units."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


def human_duration(millis):
    seconds = int(millis // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def _ms(value):
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def short_version(text):
    """"3.8.0-nookeeper-0.1.0, built on ..." -> "nookeeper 0.1.0"; ZooKeeper's -> "3.8.0"."""
    head = text.split(",", 1)[0].strip()
    if "-nookeeper-" in head:
        return "nookeeper " + head.split("-nookeeper-", 1)[1]
    return head.split("-", 1)[0]


# (header, cell of a MemberStatus, numeric: right-aligned, drop order: highest first
# when the table has to fit a terminal; 0 never dropped)
def _cells(member):
    if not member.answered:  # a role here is bin/nk-ensemble's: exited, restarting...
        return {"ID": _or(member.server_id), "ADDRESS": member.address,
                "ROLE": member.role or NO_ANSWER}
    if member.role == NOT_SERVING:
        return {"ID": _or(member.server_id), "ADDRESS": member.address, "ROLE": NOT_SERVING}
    p99 = UNKNOWN
    if member.p99_read_ms is not None and member.p99_write_ms is not None:
        p99 = f"{_ms(member.p99_read_ms)}/{_ms(member.p99_write_ms)}"
    return {
        "ID": _or(member.server_id),
        "ADDRESS": member.address,
        "ROLE": member.role,
        "EPOCH": _or(member.epoch),
        "LAST ZXID": UNKNOWN if member.last_zxid is None else f"{member.last_zxid:#x}",
        "LAG": NOT_APPLICABLE if member.zxid_lag is None else str(member.zxid_lag),
        "CONNS": _or(member.connections),
        "ZNODES": _or(member.znodes),
        "OUTSTANDING": _or(member.outstanding),
        "P99 R/W MS": p99,
        "LOG SIZE": UNKNOWN if member.log_bytes is None else human_bytes(member.log_bytes),
        "VERSION": UNKNOWN if member.version is None else short_version(member.version),
        "UPTIME": UNKNOWN if member.uptime_ms is None else human_duration(member.uptime_ms),
    }


def _or(value):
    return UNKNOWN if value is None else str(value)


COLUMNS = (
    # header, right-aligned, drop rank (dropped first: highest; 0: kept)
    ("ID", True, 0),
    ("ADDRESS", False, 0),
    ("ROLE", False, 0),
    ("EPOCH", True, 4),
    ("LAST ZXID", False, 3),
    ("LAG", True, 0),
    ("CONNS", True, 6),
    ("ZNODES", True, 7),
    ("OUTSTANDING", True, 8),
    ("P99 R/W MS", True, 9),
    ("LOG SIZE", True, 10),
    ("VERSION", False, 11),
    ("UPTIME", True, 12),
    ("NOTES", False, 5),
)


def table_lines(status, width=None, extra=()):
    """etcdctl's `-w table` box, one row per member.

    extra: (header, [cell per member]) columns put in front (the launcher's
    member name and pid). width: drop the least useful columns until the box
    fits, then cut what still does not (a live terminal must not wrap).
    """
    rows = []
    for index, member in enumerate(status.members):
        cells = _cells(member)
        cells["NOTES"] = "; ".join(member.all_notes())
        for header, values in extra:
            cells[header] = values[index]
        rows.append(cells)
    columns = [(header, False, 0) for header, _ in extra] + list(COLUMNS)
    if not any(row.get("NOTES") for row in rows):
        columns = [c for c in columns if c[0] != "NOTES"]

    def render(columns):
        widths = [max([len(header)] + [len(row.get(header, NOT_APPLICABLE)) for row in rows])
                  for header, _, _ in columns]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        head = "|" + "|".join(f" {header:^{w}} " for (header, _, _), w in zip(columns, widths)) + "|"
        lines = [rule, head, rule]
        for row in rows:
            cells = []
            for (header, right, _), w in zip(columns, widths):
                text = row.get(header, NOT_APPLICABLE)
                cells.append(f" {text:>{w}} " if right else f" {text:<{w}} ")
            lines.append("|" + "|".join(cells) + "|")
        lines.append(rule)
        return lines

    lines = render(columns)
    if width is not None:
        while len(lines[0]) > width and any(rank for _, _, rank in columns):
            drop = max(columns, key=lambda c: c[2])
            columns = [c for c in columns if c is not drop]
            lines = render(columns)
        lines = [line[:width] for line in lines]
    return lines


def footnotes(status):
    """Lines under the table: what `?` means where it appears, and what is wrong."""
    lines = []
    blocked = [m.address for m in status.members if m.mntr_allowed is False]
    if blocked:
        lines.append("?: not reported; mntr is not allowed on " + ", ".join(blocked)
                     + " (add it to four_letter_words), so only srvr's figures are shown")
    lines.append(status.health_line())
    return lines


# -- shell commands ----------------------------------------------------------------


@dataclass(frozen=True)
class Report(Done):
    """A result whose one-shot exit status is not always 0 (status, health)."""

    exit_status: int = 0


def default_hosts(words):
    """The hosts nk uses without -s: the local ensemble for status and health."""
    return LOCAL_ENSEMBLE if words[:1] in (["status"], ["health"]) else None


def _ssl_context(session):
    options = session.client_options
    if not options.get("use_ssl"):
        return None
    from nookeeper.client.tls import client_context
    return client_context(options.get("ca"), options.get("certfile"), options.get("keyfile"))


def session_status(session):
    """The EnsembleStatus of the session's hosts (its connect string, chroot ignored)."""
    return gather(addresses(session.hosts), timeout=session.timeout,
                  ssl_context=_ssl_context(session))


def status_report(session):
    status = session_status(session)
    text = "\n".join(table_lines(status) + footnotes(status))
    return Report(text, status.document(), 0 if status.healthy else 1)


def health_report(session):
    status = session_status(session)
    line = status.health_line()
    fields = {"healthy": status.healthy, "health": line, "problems": status.problems(),
              "members": len(status.members),
              "serving": sum(1 for m in status.members if m.serving),
              "leader": None if status.leader is None else status.leader.server_id}
    return Report(line, fields, 0 if status.healthy else 1)
