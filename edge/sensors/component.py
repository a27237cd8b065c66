"""The sensors component: MQTT ingest with adapters, GPIO and Modbus inputs, the state
tracker, and (demo only) the simulator. Provided as ``interfaces.SENSORS``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..bus import SensorReading
from ..component import Component, Health
from ..context import Context
from ..interfaces import RULES, SENSORS
from .badpayload import BadPayloadReporter
from .gpio import GpioInputs
from .modbus import ModbusInputs
from .mqtt import IngestLanes
from .router import Router
from .state import StateTracker

log = logging.getLogger("edge.sensors")


def client_id_base(ctx: Context) -> str:
    cfg = ctx.config.mqtt
    return cfg.client_id or f"edge-{ctx.credentials.get().serial.lower()}"


def relay_bound_sensors(ctx: Context) -> set[str]:
    rules = getattr(ctx.config, "rules", []) or []
    return {r.sensor for r in rules if any(a.relay for a in r.actions)}


class SensorsComponent(Component):
    name = "sensors"

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        cfg = ctx.config
        self.sensors = list(cfg.sensors)
        self.by_id = {s.id: s for s in self.sensors}
        self.tracker = StateTracker(ctx.bus, lambda: ctx.store, set(self.by_id))
        rules = ctx.registry.get(RULES)
        if rules is not None:  # the hot path: rules decide as the change happens
            self.tracker.listeners.append(rules.on_change)
            rules.attached()
        self.bad = BadPayloadReporter(ctx.metrics.registry)
        self.router = Router(self.sensors, self.feed, self.bad, cfg.mqtt.max_payload_bytes)
        self.gpio = GpioInputs(self.sensors, self.feed, ctx.platform.pin_factory)
        self.modbus = ModbusInputs(self.sensors, self.feed, ctx.platform.modbus)
        base = client_id_base(ctx)
        self.ingest: IngestLanes | None = None
        if cfg.mqtt.enabled and self.router.filters:
            self.ingest = IngestLanes(cfg.mqtt, base, self.router)
        self.simulator = None
        if ctx.demo and cfg.mqtt.enabled:
            from .simulator import Simulator

            self.simulator = Simulator(self.sensors, cfg.mqtt, f"{base}-sim", relay_bound_sensors(ctx), self.gpio,
                                       ready=self.ingest.connected_event if self.ingest is not None else None,
                                       bank=ctx.platform.modbus.bank)
        self._events_in = ctx.metrics.events_in
        ctx.registry.provide(SENSORS, self)

    # what other components use
    def feed(self, reading: SensorReading) -> None:
        self._events_in.labels(reading.source.split(":", 1)[0] or "unknown").inc()
        self.tracker.feed(reading)

    def state(self, sensor: str) -> dict[str, Any]:
        return dict(self.tracker.states.get(sensor, {}))

    def seen(self, sensor: str) -> float | None:
        return self.tracker.updated.get(sensor)

    def carry_over(self, old: "SensorsComponent") -> None:
        """Rebuilt from a new config (edge.live_config): keep what the old one knew of the
        sensors that are still configured, so nothing looks changed (or fires) at the switch."""
        for sid in self.by_id:
            if sid in old.tracker.states:
                self.tracker.states[sid] = dict(old.tracker.states[sid])
            if sid in old.tracker.updated:
                self.tracker.updated[sid] = old.tracker.updated[sid]

    async def start(self) -> None:
        self.gpio.close()
        self.gpio.start()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.ingest is not None:
                tg.create_task(self.ingest.run(), name="mqtt-in")  # fast and bulk lanes
            tg.create_task(self.modbus.run(), name="modbus-in")
            if self.simulator is not None:
                tg.create_task(self.simulator.run(), name="simulator")
            tg.create_task(asyncio.Event().wait())

    async def stop(self) -> None:
        self.gpio.close()

    def health(self) -> Health:
        problems = []
        if self.ingest is not None and not self.ingest.connected:
            problems.append(f"mqtt in: {self.ingest.last_error}")
        problems += list(self.gpio.errors.values()) + [f"modbus {u}: {e}" for u, e in self.modbus.errors.items()]
        if problems:
            return Health(False, "; ".join(problems))
        return Health(True, f"{len(self.sensors)} sensors, {self.tracker.readings} readings, {self.bad.total} bad payloads")
