"""The metrics port: GET /metrics in Prometheus's text format, on its own thread.

A separate listener from the client port, so a scraper never competes with
clients for connection slots and needs no four-letter-word whitelist. Since
the admin port (server/admin.py) it is that port under its older key: the
same /commands/<name>, /health, /ready and /metrics, so a config that names
metrics_address keeps working and gains the rest.
"""

from nookeeper.server.admin import AdminPort


class MetricsPort(AdminPort):
    """The admin port on metrics_address: the same pages as admin_address's
    (server/admin.py), /metrics first among them. Binds at construction (so a
    taken port fails start-up); serves from start() to stop()."""

    def __init__(self, host, port, registry):
        super().__init__(host, port, registry.node, registry, key="metrics_address",
                         thread_name="metrics-port")
