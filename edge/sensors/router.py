"""MQTT message -> sensor readings: find the sensors whose topic filter matches, decode the
payload once, run each sensor's adapter. Bad payloads are reported, never raised."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..bus import SensorReading
from .adapters import ADAPTERS, BadPayload, parse_json
from .adapters.base import SENT_AT
from .availability import AVAILABLE
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


def reading_for(s: SensorConfig, fields: dict[str, Any], source: str, now: float, ts: float | None = None) -> SensorReading:
    """The reading of ``fields`` decoded for sensor ``s``: at the payload's own time when the
    adapter found one (``SENT_AT``, taken out of the fields), with its age and whether that
    is older than the sensor's ``max_age_s`` (stale: shown and stored, acts on nothing)."""
    sent = fields.pop(SENT_AT, None) if SENT_AT in fields else None
    if sent is None:
        return SensorReading(s.id, fields, source, now if ts is None else ts)
    age = now - sent
    return SensorReading(s.id, fields, source, sent, round(age, 3), 0 < s.max_age_s < age)


class Router:
    def __init__(self, sensors: list[SensorConfig], feed: Callable[[SensorReading], Any], bad: BadPayloadReporter,
                 max_payload_bytes: int = 65536,
                 on_availability: Callable[[str, bool, str, float | None], Any] | None = None):
        self.exact: dict[str, list[SensorConfig]] = {}
        self.wild: list[tuple[str, SensorConfig]] = []
        for s in sensors:
            if s.source != "mqtt" or not s.topic:
                continue
            # a bridge's availability topic next to the sensor's own (Zigbee2MQTT, Z-Wave JS UI)
            extra = getattr(ADAPTERS[s.adapter], "extra_topics", lambda _s: [])(s)
            for topic in dict.fromkeys([s.topic, *extra]):
                if "+" in topic or "#" in topic:
                    self.wild.append((topic, s))
                else:
                    self.exact.setdefault(topic, []).append(s)
        self.feed = feed
        self.on_availability = on_availability
        self.bad = bad
        self.max_payload_bytes = max_payload_bytes
        self.messages = 0

    @property
    def filters(self) -> list[str]:
        return sorted(set(self.exact) | {t for t, _ in self.wild})

    def filters_for(self, lane: str) -> list[str]:
        """Topic filters of the sensors in a lane: "fast" = state sensors, "bulk" = telemetry."""
        want = lane == "fast"
        topics = {t for t, group in self.exact.items() for s in group if s.binary == want}
        topics |= {t for t, s in self.wild if s.binary == want}
        return sorted(topics)

    def sensors_for(self, topic: str) -> list[SensorConfig]:
        found = self.exact.get(topic, [])
        if self.wild:
            found = found + [s for t, s in self.wild if topic_matches(t, topic) and s not in found]
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
            if AVAILABLE in fields:
                fields = dict(fields)
                online, detail = fields.pop(AVAILABLE)
                if self.on_availability is not None:
                    self.on_availability(s.id, online, detail, ts)
                if not fields:
                    n += 1
                    continue
            self.feed(reading_for(s, fields, f"mqtt:{s.adapter}", now, ts))
            n += 1
        return n
