"""Availability: is each sensor still reporting, and is its battery low.

Every reading counts as "seen". A supervised sensor (an expected interval > 0: the kind's
default, or ``offline_after_s`` per sensor) silent longer than its interval is offline until
its next message. A bridge that knows better says so directly: Zigbee2MQTT's ``availability``
topic and Z-Wave JS UI's node status arrive as the reserved field ``AVAILABLE`` from their
adapters (``bridge()``). Battery low is its own condition: the ``battery_low`` field, else the
battery percentage at or below the kind's (or the sensor's) threshold.

Each change is one ``SensorAvailability`` on the bus (dashboard, LCD, uplink, ONVIF and the
rules read it) and one ``availability`` event in the store. At start every sensor is published
online with nothing seen yet: it has its whole interval to speak.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from ..bus import Bus, SensorAvailability, SensorReading
from ..interfaces import record
from .config import SensorConfig

log = logging.getLogger("edge.sensors")

AVAILABLE = "_available"  # reserved reading field: (online, detail) from a bridge's availability message


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s / 3600:.1f} h".replace(".0 h", " h")


class AvailabilityTracker:
    def __init__(self, sensors: Iterable[SensorConfig], bus: Bus, store: Callable[[], Any],
                 clock: Callable[[], float] = time.time):
        self.sensors = {s.id: s for s in sensors}
        self.expect = {s.id: s.expected_interval_s for s in self.sensors.values()}
        self.bus = bus
        self._store = store
        self.clock = clock
        self.started = clock()
        self.last_seen: dict[str, float] = {}
        self.last_via: dict[str, str] = {}
        self.messages: dict[str, int] = {}
        self.bridge_offline: dict[str, str] = {}
        self.current: dict[str, SensorAvailability] = {}
        self.changes = 0

    # ---- inputs -------------------------------------------------------------------------
    def start(self) -> None:
        """Every sensor online, nothing seen yet (called once the service starts)."""
        self.started = self.clock()
        for sid in self.sensors:
            if sid not in self.current:
                self._set(sid, True, False, "", publish_same=True)

    def seen(self, reading: SensorReading) -> None:
        sid = reading.sensor
        if sid not in self.sensors:
            return
        self.last_seen[sid] = reading.ts
        self.last_via[sid] = reading.source
        self.messages[sid] = self.messages.get(sid, 0) + 1
        self.bridge_offline.pop(sid, None)  # the device spoke: whatever its bridge said before
        low = self._battery_low(sid, reading.fields)
        cur = self.current.get(sid)
        self._set(sid, True, cur.battery_low if (low is None and cur is not None) else bool(low), "")

    def bridge(self, sensor: str, online: bool, detail: str, ts: float | None = None) -> None:
        """A bridge's word on the device (Zigbee2MQTT availability, Z-Wave JS UI node status)."""
        if sensor not in self.sensors:
            return
        cur = self.current.get(sensor)
        low = cur.battery_low if cur is not None else False
        if online:
            self.bridge_offline.pop(sensor, None)
            self.last_seen[sensor] = ts if ts is not None else self.clock()  # the bridge vouches for it
            self._set(sensor, True, low, "")
        else:
            self.bridge_offline[sensor] = detail
            self._set(sensor, False, low, detail)

    def check(self, now: float | None = None) -> None:
        """Mark offline every supervised sensor silent past its interval."""
        now = self.clock() if now is None else now
        for sid, interval in self.expect.items():
            if interval <= 0 or sid in self.bridge_offline:
                continue
            cur = self.current.get(sid)
            if cur is not None and not cur.online:
                continue
            last = self.last_seen.get(sid)
            silent = now - (last if last is not None else self.started)
            if silent > interval:
                what = f"silent for {duration(silent)}" if last is not None else f"not heard since start ({duration(silent)})"
                self._set(sid, False, cur.battery_low if cur else False, f"{what}, expected every {duration(interval)}")

    # ---- state ------------------------------------------------------------------------------
    def _battery_low(self, sid: str, fields: dict[str, Any]) -> bool | None:
        v = fields.get("battery_low")
        if isinstance(v, bool):
            return v
        b = fields.get("battery")
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            return b <= self.sensors[sid].battery_threshold
        return None

    def _set(self, sid: str, online: bool, battery_low: bool, reason: str, publish_same: bool = False) -> None:
        cur = self.current.get(sid)
        if not publish_same and cur is not None and cur.online == online and cur.battery_low == battery_low:
            return
        ev = SensorAvailability(sid, online, battery_low, self.last_seen.get(sid), reason, ts=self.clock())
        self.current[sid] = ev
        self.bus.publish(ev)
        if cur is None:
            return  # the start state is not news
        self.changes += 1
        name = self.sensors[sid].name
        if cur.online != online:
            (log.warning if not online else log.info)("sensor %s (%s) %s%s", sid, name, "ONLINE" if online else "OFFLINE",
                                                      f": {reason}" if reason else " again")
        if cur.battery_low != battery_low:
            (log.warning if battery_low else log.info)("sensor %s (%s): battery %s", sid, name, "LOW" if battery_low else "ok")
        store = self._store()
        if store is not None:
            record(store.record_event("availability", sid, {"online": online, "battery_low": battery_low, "reason": reason,
                                                            "last_seen": ev.last_seen}, ts=ev.ts))

    def tick_s(self) -> float:
        supervised = [v for v in self.expect.values() if v > 0]
        return max(0.05, min([1.0] + [v / 4 for v in supervised]))

    async def run(self) -> None:
        tick = self.tick_s()
        while True:
            await asyncio.sleep(tick)
            self.check()

    def describe(self, now: float | None = None) -> list[dict[str, Any]]:
        """One row per sensor for ``edge sources check``."""
        now = self.clock() if now is None else now
        out = []
        for sid, s in self.sensors.items():
            cur = self.current.get(sid)
            last = self.last_seen.get(sid)
            out.append({"id": sid, "name": s.name, "kind": s.kind, "source": self.last_via.get(sid) or source_label(s),
                        "last_seen": last, "age_s": None if last is None else round(now - last, 1),
                        "messages": self.messages.get(sid, 0), "offline_after_s": self.expect[sid],
                        "online": cur.online if cur else True, "battery_low": cur.battery_low if cur else False,
                        "reason": cur.reason if cur else ""})
        return out


def source_label(s: SensorConfig) -> str:
    if s.source == "mqtt":
        return f"mqtt:{s.adapter}"
    if s.source == "yolink":
        return f"yolink:{s.yolink or ''}".rstrip(":")
    return s.source
