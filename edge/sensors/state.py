"""Readings -> state: merge each reading into the sensor's state and publish SensorChanged
only when a field really changed (a repeated report changes nothing).

The bus events go out first (the rules decide in memory and drive the relay at once); the
store records the reading and the change alongside, without the caller waiting for it.

Old news: a reading that carries its own time says how old it is (``age_s``); a stale one
(older than its sensor's ``max_age_s``) still changes the state and is recorded, with its
age and ``stale`` in the records, and the rules act on nothing in it. A reading older than
the one the state already holds (by their own times: delivered out of order) is recorded,
marked ``_late``, and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ..bus import Bus, SensorChanged, SensorReading
from ..interfaces import record

log = logging.getLogger("edge.sensors")


class StateTracker:
    def __init__(self, bus: Bus, store: Callable[[], Any], sensor_ids: set[str] | None = None,
                 record_readings: bool = True):
        self.bus = bus
        self._store = store
        self.states: dict[str, dict[str, Any]] = {}
        self.updated: dict[str, float] = {}
        self.sent_at: dict[str, float] = {}  # the own time of the reading each state is from
        self.stale = 0
        self.late = 0
        self.sensor_ids = sensor_ids
        self.record_readings = record_readings
        self.readings = 0
        self.changes = 0
        # called with each SensorChanged before it is published on the bus (the rules: the
        # relay command they start is queued ahead of every subscriber's wake-up)
        self.listeners: list[Callable[[SensorChanged], None]] = []

    def feed(self, reading: SensorReading) -> SensorChanged | None:
        if self.sensor_ids is not None and reading.sensor not in self.sensor_ids:
            return None
        self.readings += 1
        sensor = reading.sensor
        prev = self.states.get(sensor, {})
        late = False
        if reading.age_s is not None:
            if reading.ts < self.sent_at.get(sensor, 0.0):
                late = True  # older than the state we hold: delivered out of order
                self.late += 1
            else:
                self.sent_at[sensor] = reading.ts
        changed = () if late else tuple(k for k, v in reading.fields.items() if k not in prev or prev[k] != v)
        if reading.stale:
            self.stale += 1
            if changed:
                log.warning("sensor %s: a change %.0f s old (over its max_age_s): recorded, acts on nothing",
                            sensor, reading.age_s)
        ev: SensorChanged | None = None
        if changed:
            new = {**prev, **reading.fields}
            self.states[sensor] = new
            self.changes += 1
            ev = SensorChanged(sensor, new, changed, prev, reading.ts, reading.age_s, reading.stale)
            # the listeners (the rules) first: the relay command they start is then ahead of
            # every bus subscriber's wake-up in the loop's queue (uplink, dashboard, console...)
            for listener in self.listeners:
                try:
                    listener(ev)
                except Exception:  # noqa: BLE001 - a listener's bug must not stop the ingest
                    log.exception("sensor change listener failed for %s", ev.sensor)
        self.bus.publish(reading)
        if ev is not None:
            self.bus.publish(ev)
        if not late:
            self.updated[sensor] = reading.ts
        store = self._store()
        if store is not None:
            # a state change is a change of a state field (contact, occupancy, a mapped text
            # value...); numeric telemetry (temperature, battery, linkquality) is in the readings
            states = [k for k in changed if isinstance(reading.fields[k], (bool, str))]
            if self.record_readings:
                # kind "sensor" with the fields at the top level: the store keeps hourly aggregates
                # of them; a reading that changed no state field is telemetry (a longer commit window)
                # (no done-callback per reading: a batch of thousands would each cost a loop
                # callback when it commits; the store logs its own failures)
                payload = {**reading.fields, "_via": reading.source}
                if reading.age_s is not None:
                    payload["_age_s"] = round(reading.age_s, 1)
                    if reading.stale:
                        payload["_stale"] = True
                    if late:
                        payload["_late"] = True
                store.record_event("sensor", sensor, payload, ts=reading.ts, telemetry=not states)
            if ev is not None:
                if states:
                    change = {"changed": {k: ev.state[k] for k in states}, "previous": {k: prev.get(k) for k in states}}
                    if reading.age_s is not None:
                        change["age_s"] = round(reading.age_s, 1)
                        if reading.stale:
                            change["stale"] = True  # the rules acted on nothing in it
                    record(store.record_event("state_change", sensor, change, ts=reading.ts))
                store.set_state(sensor, ev.state, ts=reading.ts)
        return ev
