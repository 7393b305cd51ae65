"""Request counters and latencies behind srvr, stat, mntr and cons."""

import threading


class ServerStats:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.received = 0
            self.sent = 0
            self.min_latency = None
            self.max_latency = 0
            self.total_latency = 0
            self.last_response_size = 0
            self.min_response_size = None
            self.max_response_size = 0
            self.auth_failed = 0

    def record(self, latency_ms, response_size):
        with self._lock:
            self.sent += 1
            self.total_latency += latency_ms
            self.max_latency = max(self.max_latency, latency_ms)
            self.min_latency = latency_ms if self.min_latency is None else min(self.min_latency, latency_ms)
            self.last_response_size = response_size
            self.max_response_size = max(self.max_response_size, response_size)
            if self.min_response_size is None or response_size < self.min_response_size:
                self.min_response_size = response_size

    @property
    def avg_latency(self):
        return self.total_latency / self.sent if self.sent else 0.0
