"""MQTT message -> sensor readings: find the sensors whose topic filter matches, decode the
payload once, run each sensor's adapter. Bad payloads are reported, never raised."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..bus import SensorReading
from .adapters import ADAPTERS, BadPayload, parse_json
from .badpayload import BadPayloadReporter
from .config import SensorConfig

log = logging.getLogger("edge.sensors")


def topic_matches(filt: str, topic: str) -> bool:
    fp = filt.split("/")
    tp = topic.split("/")
    for i, f in enumerate(fp):
        if f == "#":
            return True
        if i >= len(tp):
            return False
        if f != "+" and f != tp[i]:
            return False
    return len(fp) == len(tp)


class Router:
    def __init__(self, sensors: list[SensorConfig], feed: Callable[[SensorReading], Any], bad: BadPayloadReporter,
                 max_payload_bytes: int = 65536):
        self.exact: dict[str, list[SensorConfig]] = {}
        self.wild: list[SensorConfig] = []
        for s in sensors:
            if s.source != "mqtt" or not s.topic:
                continue
            if "+" in s.topic or "#" in s.topic:
                self.wild.append(s)
            else:
                self.exact.setdefault(s.topic, []).append(s)
        self.feed = feed
        self.bad = bad
        self.max_payload_bytes = max_payload_bytes
        self.messages = 0

    @property
    def filters(self) -> list[str]:
        return sorted(set(self.exact) | {s.topic for s in self.wild if s.topic})

    def filters_for(self, lane: str) -> list[str]:
        """Topic filters of the sensors in a lane: "fast" = state sensors, "bulk" = telemetry."""
        want = lane == "fast"
        topics = {s.topic for group in self.exact.values() for s in group if s.binary == want and s.topic}
        topics |= {s.topic for s in self.wild if s.binary == want and s.topic}
        return sorted(topics)

    def sensors_for(self, topic: str) -> list[SensorConfig]:
        found = self.exact.get(topic, [])
        if self.wild:
            found = found + [s for s in self.wild if topic_matches(s.topic or "", topic)]
        return found

    def handle(self, topic: str, payload: bytes, ts: float | None = None, lane: str | None = None) -> int:
        """Decode one message (for the sensors of ``lane`` only, when given); returns the number
        of readings fed. Never raises."""
        self.messages += 1
        sensors = self.sensors_for(topic)
        if lane is not None:
            want = lane == "fast"
            sensors = [s for s in sensors if s.binary == want]
        if not sensors:
            return 0
        data: Any = None
        parse_error: BadPayload | None = None
        n = 0
        now = time.time()
        for s in sensors:
            adapter = ADAPTERS[s.adapter]
            try:
                if adapter.needs_json and data is None:
                    if parse_error is not None:
                        raise parse_error
                    try:
                        data = parse_json(payload, self.max_payload_bytes)
                    except BadPayload as exc:
                        parse_error = exc
                        raise
                elif len(payload) > self.max_payload_bytes:
                    raise BadPayload(f"payload of {len(payload)} bytes is over the {self.max_payload_bytes} byte limit", "size")
                fields = adapter.decode(topic, data, payload, s)
            except BadPayload as exc:
                self.bad.report(s.adapter, topic, exc.category, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the ingest
                self.bad.report(s.adapter, topic, "error", f"adapter failed: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            if fields is None:
                continue
            sent = adapter.sent_at(data) if data is not None else None
            if sent is None:
                reading = SensorReading(s.id, fields, f"mqtt:{s.adapter}", now if ts is None else ts)
            else:
                age = now - sent
                reading = SensorReading(s.id, fields, f"mqtt:{s.adapter}", sent, round(age, 3),
                                        0 < s.max_age_s < age)
            self.feed(reading)
            n += 1
        return n
