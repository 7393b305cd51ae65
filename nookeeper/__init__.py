"""nookeeper: a ZooKeeper-compatible coordination service in Python."""

__version__ = "0.1.0"

# The version string clients see (envi, srvr, mntr). kazoo parses the leading
# "major.minor.patch" to decide which protocol features it may use, so we
# report the ZooKeeper release whose client protocol we implement.
ZOOKEEPER_COMPAT_VERSION = "3.8.0"
