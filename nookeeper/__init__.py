"""nookeeper: a ZooKeeper-compatible coordination service in Python."""

# The one place the version is written: pyproject.toml reads it (setuptools'
# dynamic version), and so do --version, the first log line, srvr and envi.
__version__ = "0.1.0"

# The version string clients see (envi, srvr, mntr). kazoo parses the leading
# "major.minor.patch" to decide which protocol features it may use, so we
# report the ZooKeeper release whose client protocol we implement.
ZOOKEEPER_COMPAT_VERSION = "3.8.0"


def version_text():
    """What every command's --version prints: `nookeeper 0.1.0`."""
    return f"nookeeper {__version__}"


_build_time = None  # (not `_build`: importing nookeeper._build sets that name here)


def build_time():
    """(seconds since the epoch, what they are) of the code running now, read once:

    - "built": an installed wheel, whose build wrote nookeeper/_build.py
      (setup.py's build_py; SOURCE_DATE_EPOCH is honoured, for reproducible builds);
    - "committed": a git checkout (an editable install included), HEAD's commit date;
    - "modified": neither, this file's modification time.
    """
    global _build_time
    if _build_time is None:
        _build_time = _find_build_time()
    return _build_time


def build_stamp():
    """The build time as ZooKeeper prints it in srvr: `2026-12-05 09:04 UTC`."""
    import time
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(build_time()[0]))


def _find_build_time():
    import os
    import subprocess
    try:
        from nookeeper._build import BUILD_TIME
        return int(BUILD_TIME), "built"
    except (ImportError, ValueError, TypeError):
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if os.path.exists(os.path.join(root, ".git")):
        try:
            out = subprocess.run(["git", "-C", root, "log", "-1", "--format=%ct", "HEAD"],
                                 capture_output=True, text=True, timeout=5, check=True,
                                 stdin=subprocess.DEVNULL).stdout.strip()
            return int(out), "committed"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return int(os.stat(__file__).st_mtime), "modified"
