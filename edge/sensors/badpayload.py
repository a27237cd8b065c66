"""Bad payloads: counted in /metrics, logged once per topic per minute with the reason."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("edge.sensors")

LOG_EVERY_S = 60.0
MAX_TOPICS = 4096  # a flood of random topics must not grow memory without bound


class BadPayloadReporter:
    def __init__(self, registry: CollectorRegistry | None):
        self.counter = Counter("edge_sensor_bad_payloads", "Sensor payloads that did not parse or match, by adapter and reason",
                               ["adapter", "reason"], registry=registry)
        self.total = 0
        self._last_log: dict[str, float] = {}
        self.suppressed = 0

    def report(self, adapter: str, topic: str, category: str, reason: str) -> None:
        self.total += 1
        self.counter.labels(adapter, category).inc()
        now = time.monotonic()
        last = self._last_log.get(topic)
        if last is not None and now - last < LOG_EVERY_S:
            self.suppressed += 1
            return
        if len(self._last_log) >= MAX_TOPICS:
            self._last_log.clear()
        self._last_log[topic] = now
        log.warning("bad payload on %r (%s adapter): %s (more from this topic are counted, logged again in %.0f s)",
                    topic[:120], adapter, reason, LOG_EVERY_S)
