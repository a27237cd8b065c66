"""The receivers component: alarms, restores, rule actions and its own link trouble -> reports
for each configured receiver, through the outbox, in order, until each receiver took them.

What becomes a report:
- a sensor of a kind a receiver lists in ``kinds`` going into alarm (door open, leak, smoke)
  or back (door closed): the kind's codes (``edge.kinds``), the sensor's zone, its name and
  state as text; unless a rule already has a ``report`` action to that receiver for that sensor
  (the rule's codes and zone replace the default);
- an alarm on the bus of an alarm kind a receiver lists (``door_prop``, ``intrusion``,
  ``communication``...) and its clearing;
- a rule's ``report`` action (``report()``, through the registry key REPORTS);
- a path of an SIA receiver going down (YS, zone 1 primary / 2 backup) and answering again
  (YK), queued for that receiver (sent over its other path, or once it is back);
- test reports: periodic (RP, ``test_report_time``) and manual (RX, ``edge report test``).

Visible state: ComponentHealth ``receiver/<name>`` per receiver (dashboard link health, LCD),
a ``communication`` Alarm per path while it does not answer (dashboard, LCD, ONVIF, MQTT),
/healthz, /metrics, ``GET /api/receivers``, and each delivery as a ``report`` event in the
store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from .. import kinds
from ..bus import Alarm, ComponentHealth, SensorChanged
from ..component import Component, Health
from ..context import Context
from ..interfaces import REPORTS, record
from . import api
from .queue import Item, ReportQueue
from .receiver import Receiver
from .report import NotReportable, Report, plan, sensor_text
from .transport import Delivery, Link

LOAD_WAIT_S = 1.0  # at start: reading a receiver's queue from the store waits this long at most

log = logging.getLogger("edge.receivers")

ALARM_SENSOR = "receiver:{}"  # the "sensor" of a receiver's communication alarms
PATH_ZONES = {"primary": 1, "backup": 2, "http": 1}


class ReceiversComponent(Component):
    name = "receivers"

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.config.receivers
        self.site = ctx.config.site.name
        self.sensors = {s.id: s for s in ctx.config.sensors}
        creds = ctx.credentials.get()
        device = f"edge-{creds.serial.lower()}"
        self.receivers: dict[str, Receiver] = {}
        for name, rcfg in self.cfg.all().items():
            q = ReportQueue(name, lambda: self.ctx.store, self._spawn_ack)
            self.receivers[name] = Receiver(name, self.cfg.type_of(name), rcfg, q, data_dir=ctx.data_dir, site=self.site,
                                            device=device, on_link=self._link_changed, on_done=self._delivered)
        # a rule's report action to a receiver replaces the sensor kind's default report to it
        self.overridden = {(r.sensor, a.report) for r in ctx.config.rules if r.enabled for a in r.actions if a.report}
        self.comm_alarms: dict[str, Alarm] = {}
        self._alarm_active: dict[str, bool] = {}  # alarms of alarm kinds on the bus: raised or not
        # subscribed now, before any producer starts: no change is missed
        self.sub: Any = ctx.bus.subscribe(SensorChanged, Alarm, maxsize=100_000, name="receivers")
        ctx.registry.provide(REPORTS, self)
        self._metrics()
        api.add_routes(ctx.web, self)

    def _metrics(self) -> None:
        r = self.ctx.metrics.registry
        up = Gauge("edge_receiver_connected", "1 while the receiver path answers, 0 when it does not (or not yet tried)",
                   ["receiver", "path"], registry=r)
        last = Gauge("edge_receiver_last_ack_timestamp_seconds", "Unix time of the receiver's last answer",
                     ["receiver"], registry=r)
        qlen = Gauge("edge_receiver_queue_length", "Reports waiting for the receiver", ["receiver"], registry=r)
        self.m_failures = Counter("edge_receiver_failures", "Attempts the receiver did not acknowledge", ["receiver"],
                                  registry=r)
        self.m_delivered = Counter("edge_receiver_delivered", "Reports the receiver acknowledged", ["receiver"], registry=r)
        for name, rx in self.receivers.items():
            for pname in ([p for p, _, _ in rx.cfg.paths] if rx.type == "sia" else ["http"]):  # type: ignore[attr-defined]
                up.labels(name, pname).set_function(lambda rx=rx, pname=pname: float(any(
                    link.up for link in rx.links if link.name == pname)))
            last.labels(name).set_function(lambda rx=rx: max([link.last_ack or 0.0 for link in rx.links] or [0.0]))
            qlen.labels(name).set_function(lambda rx=rx: float(len(rx.queue)))
            self.m_failures.labels(name)
            self.m_delivered.labels(name)

    def _spawn_ack(self, coro: Any) -> None:
        record(self.spawn(coro, name="receivers-ack"))

    # ---- what becomes a report ---------------------------------------------------------------------
    def report(self, receiver: str, *, active: bool, sensor: str, kind: str, text: str, code: str | None = None,
               cid: int | None = None, zone: int | None = None, source: str = "") -> bool:
        """Queue a report for ``receiver`` (a rule's action); False when nothing was queued."""
        rx = self.receivers.get(receiver)
        if rx is None:
            log.error("report to unknown receiver %r (have: %s)", receiver, ", ".join(self.receivers) or "none")
            return False
        try:
            rep = plan(self.cfg, receiver, kind=kind, active=active, sensor=sensor, text=text, site=self.site, code=code,
                       cid=cid, zone=zone, source=source)
        except NotReportable as exc:
            log.error("receiver %s: cannot report %s from %s: %s", receiver, kind, source or sensor, exc)
            return False
        if rep is None:
            return False
        rx.queue.put(rep)
        return True

    def on_event(self, ev: Any) -> None:
        if isinstance(ev, SensorChanged):
            self._sensor_changed(ev)
        elif isinstance(ev, Alarm):
            self._alarm(ev)

    def _sensor_changed(self, ev: SensorChanged) -> None:
        s = self.sensors.get(ev.sensor)
        if s is None or not s.binary or s.kind_info.report is None or s.primary_field not in ev.changed:
            return
        k = s.kind_info
        field = s.primary_field
        value = ev.state.get(field)
        alarm = isinstance(value, bool) and value == k.alarm_value
        before = ev.previous.get(field)
        was = isinstance(before, bool) and before == k.alarm_value
        if alarm == was or (not alarm and field not in ev.previous):
            return  # no edge (or the first state after start is a quiet one)
        words = k.active_words if value else k.inactive_words
        text = sensor_text(s.name, words)
        for name, rx in self.receivers.items():
            if s.kind in rx.cfg.kinds and (s.id, name) not in self.overridden:
                self.report(name, active=alarm, sensor=s.id, kind=s.kind, text=text, source="kind")

    def _alarm(self, ev: Alarm) -> None:
        if ev.kind in kinds.KINDS:
            return  # a sensor kind: reported from the sensor's own change
        if self._alarm_active.get(ev.alarm, False) == ev.active:
            return  # no edge: e.g. the same alarm again, acknowledged
        self._alarm_active[ev.alarm] = ev.active
        for name, rx in self.receivers.items():
            if ev.kind in rx.cfg.kinds and ev.sensor != ALARM_SENSOR.format(name):
                self.report(name, active=ev.active, sensor=ev.sensor, kind=ev.kind, text=ev.message,
                            source=f"alarm:{ev.alarm}")

    # ---- link state: health, alarm, trouble reports ---------------------------------------------------
    def _link_changed(self, link: Link) -> None:
        rx = self.receivers.get(link.receiver)
        if rx is None:
            return
        self._publish_health(rx)
        self._comm(rx, link.name, link.where, link.up is False, link.last_error)

    def _comm(self, rx: Receiver, path: str, where: str, active: bool, why: str, report: bool = True) -> None:
        """Raise or clear the communication alarm of one path (and tell the receiver: YS/YK)."""
        alarm_id = f"{ALARM_SENSOR.format(rx.name)}:{path}"
        prev = self.comm_alarms.get(alarm_id)
        if active == (prev is not None and prev.active):
            return
        now = time.time()
        message = (f"Alarm receiver {rx.name}: {path} path {where} not answering ({why})"
                   if active else f"Alarm receiver {rx.name}: {path} path {where} answers again")
        ev = Alarm(alarm_id, ALARM_SENSOR.format(rx.name), active, "communication", message,
                   since=prev.since if (prev and not active) else now, ts=now)
        self.comm_alarms[alarm_id] = ev
        self.ctx.bus.publish(ev)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("alarm", ev.sensor, {"alarm": alarm_id, "active": active, "kind": ev.kind,
                                                           "message": message, "since": ev.since}, ts=now))
        if rx.type == "sia" and report:  # the receiving centre hears of its own link trouble (YS) and its end (YK)
            self.report(rx.name, active=active, sensor=ev.sensor, kind="communication", text=message,
                        zone=PATH_ZONES.get(path, 0), source="supervision")

    def _publish_health(self, rx: Receiver) -> None:
        self.ctx.bus.publish(ComponentHealth(f"receiver/{rx.name}", rx.ok, rx.detail(ages=False)))

    def _delivered(self, rx: Receiver, item: Item, outcome: Any) -> None:
        r: Report = item.report
        ok = isinstance(outcome, Delivery)
        if ok:
            self.m_delivered.labels(rx.name).inc()
        payload = {"receiver": rx.name, "code": r.code, "zone": r.zone, "event": r.event, "sensor": r.sensor,
                   "text": r.text, "seq": r.n, "ok": ok, "queued_s": round(time.time() - r.ts, 3),
                   "answer": outcome.answer if ok else "", "path": outcome.where if ok else "",
                   "error": "" if ok else str(outcome)}
        store = self.ctx.store
        if store is not None:
            record(store.record_event("report", rx.name, payload))
        log.info("receiver %s: %s zone %d %s -> %s", rx.name, r.code, r.zone, r.text,
                 f"{outcome.answer} via {outcome.path} in {outcome.ms:.1f} ms" if ok else f"dropped: {outcome}")

    # ---- component ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        for rx in self.receivers.values():
            if rx.queue.ready:
                continue
            try:  # what waits from before, and the sequence numbers: from the disk
                waiting = await asyncio.wait_for(rx.queue.load(), LOAD_WAIT_S)  # reads only: safe to cancel
            except TimeoutError:
                # a store that cannot open must not hold the service's start: the reports wait in
                # memory and go out once the store has been read (run() waits for it)
                store = self.ctx.store
                log.error("receiver %s: its queue cannot be read from the store yet (%s); reports wait until "
                          "it can", rx.name, store.problem if store is not None else "no store")
                continue
            if waiting:
                log.warning("receiver %s: %d reports waiting from before the restart", rx.name, waiting)
            self._trouble_from_before(rx)

    async def _load_then_run(self, rx: Receiver) -> None:
        if not rx.queue.ready:
            waiting = await rx.queue.load()
            log.warning("receiver %s: queue read from the store at last (%d reports from before)", rx.name, waiting)
            self._trouble_from_before(rx)
        await rx.run()

    def _trouble_from_before(self, rx: Receiver) -> None:
        """A link trouble (YS) still queued from before a restart has not been restored (YK)
        yet: its alarm is up again, and it is cleared (YK queued) once the path answers."""
        if rx.type != "sia":
            return
        open_zones: set[int] = set()
        for item in rx.queue.items:
            if item.report.kind == "communication":
                (open_zones.add if item.report.code == "YS" else open_zones.discard)(item.report.zone)
        for path, host, port in rx.cfg.paths:  # type: ignore[attr-defined]
            if PATH_ZONES[path] in open_zones:
                self._comm(rx, path, f"{host}:{port}", True, "since before the restart", report=False)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._read_bus(), name="receivers-bus")
            tg.create_task(self._watch(), name="receivers-watch")
            for rx in self.receivers.values():
                tg.create_task(self._load_then_run(rx), name=f"receiver-{rx.name}")

    async def _read_bus(self) -> None:
        while True:
            ev = await self.sub.get()
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - one bad event must not stop the reports
                log.exception("receivers: handling %s failed", type(ev).__name__)

    async def _watch(self) -> None:
        """Failure counts for /metrics, and each receiver's health at least every 30 s."""
        seen: dict[str, int] = {}
        last_pub = 0.0
        while True:
            for rx in self.receivers.values():
                if rx.failures > seen.get(rx.name, 0):
                    self.m_failures.labels(rx.name).inc(rx.failures - seen.get(rx.name, 0))
                    seen[rx.name] = rx.failures
            if time.monotonic() - last_pub > 30:
                last_pub = time.monotonic()
                for rx in self.receivers.values():
                    self._publish_health(rx)
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self.sub is not None:  # what is already on the bus goes into the outbox before the store closes
            while (ev := self.sub.get_nowait()) is not None:
                try:
                    self.on_event(ev)
                except Exception:  # noqa: BLE001
                    log.exception("receivers: handling %s at stop failed", type(ev).__name__)
        for rx in self.receivers.values():
            await rx.close()

    def health(self) -> Health:
        ok = all(rx.ok for rx in self.receivers.values())
        return Health(ok, "; ".join(f"{rx.name}: {rx.detail()}" for rx in self.receivers.values()))

    # ---- the API's view ------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        return [rx.describe() for rx in self.receivers.values()]

    async def test(self, name: str, timeout: float) -> dict[str, Any]:
        """Send a manual test report to ``name`` and wait for its answer (up to ``timeout``)."""
        rx = self.receivers[name]
        waiter = rx.test()
        t0 = time.monotonic()
        try:
            d = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return {"receiver": name, "ok": False, "queued": len(rx.queue),
                    "error": f"no answer within {timeout:g} s ({rx.detail()}); the test report stays queued"}
        except Exception as exc:  # noqa: BLE001 - Rejected
            return {"receiver": name, "ok": False, "error": str(exc)}
        return {"receiver": name, "ok": True, "answer": d.answer, "path": d.path, "where": d.where,
                "ms": round(d.ms, 1), "waited_ms": round((time.monotonic() - t0) * 1000, 1)}
