"""Real Apache ZooKeeper processes for tests and benchmarks.

Uses the Debian package `zookeeper` (3.8; `make compat-deps` installs it):
the server jar /usr/share/java/zookeeper.jar, whose manifest Class-Path names
its dependencies, started with java directly (no zkServer.sh, no pid files,
no /var/log). Every process has its own directory holding zoo.cfg, the data
directory, a log4j configuration and the logs, listens only on 127.0.0.1 on
free ports, and is killed by its owner (the fixtures in tests/client/conftest.py
kill them at teardown, pass or fail). By default each JVM also gets
PDEATHSIG=KILL (via setpriv) so it cannot outlive a killed test run; that
signal follows the *thread* that started it, so start servers from a
long-lived thread or pass die_with_parent=False.

Environment overrides: NK_JAVA (java binary), NK_ZOOKEEPER_CLASSPATH (a
complete classpath, e.g. for an upstream tarball's jars), NK_ZKENV (zkEnv.sh).
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

try:
    from harness import four_letter_word, free_port, wait_for
except ImportError:  # imported as tests.zookeeper_harness (e.g. by a benchmark)
    from tests.harness import four_letter_word, free_port, wait_for

ZOOKEEPER_HOME = Path("/usr/share/zookeeper")
ZKENV = Path(os.environ.get("NK_ZKENV", ZOOKEEPER_HOME / "bin" / "zkEnv.sh"))
ZKCLI = ZOOKEEPER_HOME / "bin" / "zkCli.sh"
JAVA_DIR = Path("/usr/share/java")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

# Small, quick-starting JVMs: a test server needs neither a big heap nor C2.
JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Xss512k",
    "-Djava.net.preferIPv4Stack=true",
    "-Djava.awt.headless=true",
    "-Dzookeeper.jmx.log4j.disable=true",
    "-Dzookeeper.admin.enableServer=false",
)

# Debian's zkEnv.sh puts only the conf dir and zookeeper.jar on the classpath;
# slf4j then has no binding and the server logs nothing. These give it log4j 1.2.
_LOG_BINDING_JARS = ("slf4j-log4j12.jar", "log4j-1.2.jar")

_LOG4J_PROPERTIES = """\
log4j.rootLogger={level}, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={path}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""

# For a classpath with logback (upstream 3.8 tarballs) instead of log4j.
_LOGBACK_XML = """\
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{path}</file>
    <encoder><pattern>%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="{level}"><appender-ref ref="FILE"/></root>
</configuration>
"""


def java_binary():
    java = os.environ.get("NK_JAVA")
    if java:
        return java if os.access(java, os.X_OK) else None
    if os.access("/usr/bin/java", os.X_OK):
        return "/usr/bin/java"
    return shutil.which("java")


def _zkenv_classpath():
    """The CLASSPATH="..." that zkEnv.sh (Debian's variant) sets, if any."""
    try:
        text = ZKENV.read_text()
    except OSError:
        return []
    match = re.search(r'^\s*CLASSPATH="?([^"\n]*)"?\s*$', text, re.MULTILINE)
    return match.group(1).split(":") if match else []


def zookeeper_classpath():
    """The server's classpath as a list of entries, or [] if ZooKeeper is not installed."""
    override = os.environ.get("NK_ZOOKEEPER_CLASSPATH")
    if override:
        return override.split(":")
    # Jars only: a conf dir on the classpath would bring its own log4j.properties.
    entries = [e for e in _zkenv_classpath() if e.endswith(".jar") and os.path.isfile(e)]
    if not any(Path(e).name.startswith("zookeeper") for e in entries):
        entries = [str(JAVA_DIR / "zookeeper.jar")] if (JAVA_DIR / "zookeeper.jar").is_file() else []
    if not entries:
        return []
    # The jar's manifest Class-Path names netty, jute, slf4j-api...; add a logging binding.
    for name in _LOG_BINDING_JARS:
        if (JAVA_DIR / name).is_file():
            entries.append(str(JAVA_DIR / name))
    return entries


def missing_zookeeper():
    """Why a ZooKeeper server cannot be started here, or None if it can."""
    if not java_binary():
        return "java is missing (make compat-deps installs default-jre-headless)"
    classpath = zookeeper_classpath()
    if not classpath:
        return (f"Apache ZooKeeper jars are missing ({JAVA_DIR}/zookeeper.jar; "
                "make compat-deps installs Debian's zookeeper package)")
    if "NK_ZOOKEEPER_CLASSPATH" not in os.environ and not (JAVA_DIR / "zookeeper-jute.jar").is_file():
        return f"{JAVA_DIR}/zookeeper-jute.jar is missing (incomplete zookeeper package)"
    return None


def zookeeper_available():
    """True if java and the ZooKeeper server jars are installed."""
    return missing_zookeeper() is None


def free_ports(count):
    """`count` distinct free ports on 127.0.0.1."""
    return [free_port() for _ in range(count)]


def srvr_mode(port, timeout=2.0):
    """The `Mode:` of `srvr` (standalone, leader, follower, observer), or None if not serving."""
    for line in four_letter_word(port, "srvr", timeout=timeout).splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return None


def mode_or_none(port, timeout):
    """srvr_mode, with None also for a port that does not answer: for polling
    servers that may be down or still starting."""
    try:
        return srvr_mode(port, timeout=timeout)
    except OSError:
        return None


class ZooKeeperProcess:
    """One Apache ZooKeeper server (standalone, or one member of a ZooKeeperEnsemble).

    Files in `workdir`: zoo.cfg, data/ (plus data/myid in an ensemble),
    log4j.properties, zookeeper.log (the server log) and zookeeper.out (the
    JVM's stdout/stderr: crashes, bad flags).
    """

    def __init__(self, workdir, tick_ms=2000, *, min_session_timeout_ms=None,
                 max_session_timeout_ms=None, extended_types=False, port=None,
                 server_id=None, members=None, init_limit=10, sync_limit=5,
                 heap="256m", log_level="INFO", extra_config=None, jvm_flags=(),
                 die_with_parent=True):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "zoo.cfg"
        self.log_path = self.workdir / "zookeeper.log"
        self.out_path = self.workdir / "zookeeper.out"
        self.log4j_path = self.workdir / "log4j.properties"
        self.logback_path = self.workdir / "logback.xml"
        self.tick_ms = tick_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.extended_types = extended_types
        self.server_id = server_id
        self.members = members            # {sid: (peer_port, election_port)} in an ensemble
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.heap = heap
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self.jvm_flags = tuple(jvm_flags)
        self.die_with_parent = die_with_parent
        self._fixed_port = port is not None
        self.port = port if port is not None else free_ports(1)[0]
        self.proc = None
        self.started_at = None
        self.ready_after = None           # seconds from launch to serving, last start

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def config(self):
        """zoo.cfg's settings, in order."""
        cfg = {
            "tickTime": self.tick_ms,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "forceSync": "yes",
            "preAllocSize": 4096,                 # KB; the 64 MB default is wasted on tests
            "autopurge.purgeInterval": 0,
            "maxClientCnxns": 0,
        }
        if self.min_session_timeout_ms is not None:
            cfg["minSessionTimeout"] = self.min_session_timeout_ms
        if self.max_session_timeout_ms is not None:
            cfg["maxSessionTimeout"] = self.max_session_timeout_ms
        if self.extended_types:
            cfg["extendedTypesEnabled"] = "true"
        if self.members:
            cfg.update({
                "initLimit": self.init_limit,
                "syncLimit": self.sync_limit,
                "standaloneEnabled": "false",     # an ensemble of one is still a quorum
                "reconfigEnabled": "false",
            })
            for sid, (peer, election) in sorted(self.members.items()):
                cfg[f"server.{sid}"] = f"127.0.0.1:{peer}:{election}"
        cfg.update(self.extra_config)
        return cfg

    def write_config(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.members:
            (self.data_dir / "myid").write_text(f"{self.server_id}\n")
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in self.config().items()))
        self.log4j_path.write_text(_LOG4J_PROPERTIES.format(level=self.log_level, path=self.log_path))
        self.logback_path.write_text(_LOGBACK_XML.format(level=self.log_level, path=self.log_path))

    def command_line(self):
        java = java_binary()
        classpath = zookeeper_classpath()
        if not java or not classpath:
            raise RuntimeError(f"cannot start ZooKeeper: {missing_zookeeper()}")
        argv = []
        if self.die_with_parent and shutil.which("setpriv"):
            argv += [shutil.which("setpriv"), "--pdeathsig", "KILL", "--"]
        argv += [java, f"-Xmx{self.heap}", "-Xms32m", *JVM_FLAGS,
                 f"-Dzookeeper.log.dir={self.workdir}",
                 f"-Dlog4j.configuration={self.log4j_path.as_uri()}",
                 f"-Dlogback.configurationFile={self.logback_path}",
                 *self.jvm_flags,
                 "-cp", ":".join(classpath), MAIN_CLASS, str(self.config_path)]
        return argv

    def launch(self):
        """Start the JVM without waiting for it to serve."""
        if self.alive():
            raise RuntimeError(f"ZooKeeper {self.hosts} is already running")
        self.write_config()
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command_line(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=str(self.workdir),
            )
        self.started_at = time.monotonic()
        return self

    def start(self, timeout=30.0):
        """Launch and wait until `srvr` reports a Mode. A standalone server whose
        free port was taken meanwhile is retried on another port."""
        for attempt in range(3):
            self.launch()
            try:
                return self.wait_serving(timeout)
            except RuntimeError:
                if (attempt < 2 and not self._fixed_port and not self.members
                        and not self.alive() and "Address already in use" in self.log_tail(200)):
                    self.port = free_ports(1)[0]
                    continue
                self.kill()
                raise
        raise AssertionError("unreachable")

    def wait_serving(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper {self.hosts} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.safe_mode():
                self.ready_after = time.monotonic() - self.started_at
                return self
            time.sleep(0.05)
        raise RuntimeError(f"ZooKeeper {self.hosts} did not serve within {timeout}s:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def mode(self):
        """`srvr`'s Mode; raises OSError if the port does not answer."""
        return srvr_mode(self.port)

    def safe_mode(self):
        return mode_or_none(self.port, timeout=1.0)

    def command(self, word):
        """A four-letter word's answer (all are whitelisted)."""
        return four_letter_word(self.port, word)

    def kill(self, sig=signal.SIGKILL):
        """Send `sig` and wait for the JVM to exit (SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self):
        """A clean shutdown (SIGTERM runs ZooKeeper's shutdown hook)."""
        self.kill(signal.SIGTERM)

    def restart(self, timeout=30.0):
        """Kill -9 and start again on the same port with the same data, waiting
        until it serves (an ensemble member: until it has rejoined a quorum;
        use kill() and launch() to restart one without waiting)."""
        self.kill()
        self._fixed_port = True
        return self.start(timeout)

    def log_tail(self, lines=60):
        parts = []
        for path in (self.log_path, self.out_path):
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if text:
                parts.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(no log)"


class ZooKeeperEnsemble:
    """`size` ZooKeeper servers forming one quorum on 127.0.0.1 with free ports.

    servers: {sid: ZooKeeperProcess}, sids 1..size; each in workdir/node<sid>.
    Members can be killed and restarted one by one (server.kill(), server.restart()).
    """

    def __init__(self, workdir, size=3, tick_ms=2000, **settings):
        ports = free_ports(3 * size)
        members = {sid: (ports[3 * i + 1], ports[3 * i + 2]) for i, sid in enumerate(range(1, size + 1))}
        self.servers = {
            sid: ZooKeeperProcess(Path(workdir) / f"node{sid}", tick_ms, port=ports[3 * i],
                                  server_id=sid, members=members, **settings)
            for i, sid in enumerate(range(1, size + 1))
        }

    @property
    def hosts(self):
        return ",".join(server.hosts for server in self.servers.values())

    def start(self, timeout=60.0):
        """Launch every member, then wait until all of them serve (a quorum formed)."""
        try:
            for server in self.servers.values():
                server.launch()
            for server in self.servers.values():
                server.wait_serving(timeout)
        except BaseException:
            self.kill_all()
            raise
        return self

    def modes(self):
        return {sid: (s.safe_mode() if s.alive() else None) for sid, s in self.servers.items()}

    def leader(self, timeout=30.0):
        """The member whose `srvr` says Mode: leader (waits for an election)."""
        return wait_for(lambda: self._find("leader"), timeout=timeout, message="a ZooKeeper leader")

    def followers(self):
        return [s for s in self.servers.values() if s.alive() and s.safe_mode() == "follower"]

    def _find(self, mode):
        for server in self.servers.values():
            if server.alive() and server.safe_mode() == mode:
                return server
        return None

    def kill_all(self, sig=signal.SIGKILL):
        """Signal every member at once, then wait for each (SIGKILL after 10 s)."""
        for server in self.servers.values():
            if server.alive():
                server.proc.send_signal(sig)
        for server in self.servers.values():
            server.kill(sig)

    def log_tails(self, lines=30):
        return "\n".join(f"=== node{sid}\n{s.log_tail(lines)}" for sid, s in self.servers.items())


__all__ = [
    "ZooKeeperProcess", "ZooKeeperEnsemble", "zookeeper_available", "missing_zookeeper",
    "zookeeper_classpath", "free_ports", "srvr_mode", "mode_or_none",
]
