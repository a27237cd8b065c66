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
from .availability import AvailabilityTracker
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


def yolink_sources(ctx: Context, feed: Any, bad: BadPayloadReporter, base: str) -> dict[str, Any]:
    """One runner per [yolink.NAME] that has sensors."""
    from .yolink.source import YoLinkSourceRunner

    cfg = ctx.config
    out = {}
    for name, ycfg in getattr(cfg, "yolink", {}).items():
        mine = [(i, s) for i, s in enumerate(cfg.sensors)
                if s.source == "yolink" and (s.yolink == name or (s.yolink is None and len(cfg.yolink) == 1))]
        if mine:
            out[name] = YoLinkSourceRunner(name, ycfg, ctx.data_dir, mine, feed, bad, base, lambda: ctx.store)
    return out


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
        self.availability = AvailabilityTracker(self.sensors, ctx.bus, lambda: ctx.store)
        self.bad = BadPayloadReporter(ctx.metrics.registry)
        self.router = Router(self.sensors, self.feed, self.bad, cfg.mqtt.max_payload_bytes,
                             on_availability=self.availability.bridge)
        self.gpio = GpioInputs(self.sensors, self.feed, ctx.platform.pin_factory)
        self.modbus = ModbusInputs(self.sensors, self.feed, ctx.platform.modbus)
        base = client_id_base(ctx)
        self.ingest: IngestLanes | None = None
        if cfg.mqtt.enabled and self.router.filters:
            self.ingest = IngestLanes(cfg.mqtt, base, self.router, lambda: ctx.store)
        self.yolink = yolink_sources(ctx, self.feed, self.bad, base)
        self.simulator = None
        if ctx.demo and cfg.mqtt.enabled:
            from .simulator import Simulator

            self.simulator = Simulator(self.sensors, cfg.mqtt, f"{base}-sim", relay_bound_sensors(ctx), self.gpio,
                                       ready=self.ingest.connected_event if self.ingest is not None else None,
                                       bank=ctx.platform.modbus.bank)
        self._events_in = ctx.metrics.events_in
        self._counters: dict[str, Any] = {}
        ctx.registry.provide(SENSORS, self)
        if not ctx.web.frozen:  # once per service: a sensors component rebuilt live keeps the route
            from .api import add_routes

            add_routes(ctx.web, lambda: ctx.registry.get(SENSORS))  # type: ignore[arg-type, return-value]

    # what other components use
    def feed(self, reading: SensorReading) -> None:
        counter = self._counters.get(reading.source)
        if counter is None:  # one labelled child per source (labels() takes a lock and builds a key)
            counter = self._counters[reading.source] = self._events_in.labels(reading.source.split(":", 1)[0] or "unknown")
        counter.inc()
        self.tracker.feed(reading)
        self.availability.seen(reading)

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

    async def listening(self, timeout: float) -> bool:
        """Wait up to ``timeout`` until MQTT ingest has subscribed every topic (at once when
        there is no MQTT ingest): a sensor added live is listened to before the edit returns."""
        if self.ingest is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self.ingest.connected_event.wait()
            return True
        except TimeoutError:
            return False

    async def start(self) -> None:
        self.gpio.close()
        self.gpio.start()
        self.availability.start()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.ingest is not None:
                tg.create_task(self.ingest.run(), name="mqtt-in")  # fast and bulk lanes
            tg.create_task(self.modbus.run(), name="modbus-in")
            tg.create_task(self.availability.run(), name="availability")
            for name, src in self.yolink.items():
                tg.create_task(src.run(), name=f"yolink:{name}")
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
        problems += [f"yolink.{n}: {y.last_error or 'connecting'}" for n, y in self.yolink.items() if not y.connected]
        if problems:
            return Health(False, "; ".join(problems))
        offline = sum(1 for a in self.availability.current.values() if not a.online)
        dup = f", {self.ingest.duplicates} duplicates" if self.ingest is not None and self.ingest.duplicates else ""
        return Health(True, f"{len(self.sensors)} sensors ({offline} offline), {self.tracker.readings} readings, "
                            f"{self.bad.total} bad payloads{dup}")

    def sources(self) -> dict[str, Any]:
        """Every source's connection and every sensor's last message (``edge sources check``)."""
        out: list[dict[str, Any]] = []
        if self.ingest is not None:
            m = self.ctx.config.mqtt
            for lane in self.ingest.lanes:
                out.append({"name": f"mqtt:{lane.identifier}", "type": "mqtt", "connected": lane.connected,
                            "address": f"{m.host}:{m.port}", "messages": lane.received, "connects": lane.connects,
                            "last_error": "" if lane.connected else (lane.last_error or "connecting"),
                            "topics": len(lane.filters)})
        out += [y.describe() for y in self.yolink.values()]
        for kind, errors in (("gpio", self.gpio.errors), ("modbus", self.modbus.errors)):
            for where, err in errors.items():
                out.append({"name": f"{kind}:{where}", "type": kind, "connected": False, "last_error": err})
        return {"sources": out, "sensors": self.availability.describe(), "bad_payloads": self.bad.total}
