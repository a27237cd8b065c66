"""Readings -> state: merge each reading into the sensor's state and publish SensorChanged
only when a field really changed (a repeated report changes nothing).

The bus events go out first (the rules decide in memory and drive the relay at once); the
store records the reading and the change alongside, without the caller waiting for it.
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
        self.sensor_ids = sensor_ids
        self.record_readings = record_readings
        self.readings = 0
        self.changes = 0
        # called with each SensorChanged right after it is published (the rules: the relay is
        # driven from here, with no loop iteration in between)
        self.listeners: list[Callable[[SensorChanged], None]] = []

    def feed(self, reading: SensorReading) -> SensorChanged | None:
        if self.sensor_ids is not None and reading.sensor not in self.sensor_ids:
            return None
        self.readings += 1
        prev = self.states.get(reading.sensor, {})
        changed = tuple(k for k, v in reading.fields.items() if k not in prev or prev[k] != v)
        ev: SensorChanged | None = None
        self.bus.publish(reading)
        if changed:
            new = {**prev, **reading.fields}
            self.states[reading.sensor] = new
            self.changes += 1
            ev = SensorChanged(reading.sensor, new, changed, prev, ts=reading.ts)
            self.bus.publish(ev)
            for listener in self.listeners:
                try:
                    listener(ev)
                except Exception:  # noqa: BLE001 - a listener's bug must not stop the ingest
                    log.exception("sensor change listener failed for %s", ev.sensor)
        self.updated[reading.sensor] = reading.ts
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
                store.record_event("sensor", reading.sensor, {**reading.fields, "_via": reading.source},
                                   ts=reading.ts, telemetry=not states)
            if ev is not None:
                if states:
                    record(store.record_event("state_change", reading.sensor,
                                              {"changed": {k: ev.state[k] for k in states},
                                               "previous": {k: prev.get(k) for k in states}}, ts=reading.ts))
                store.set_state(reading.sensor, ev.state, ts=reading.ts)
        return ev
