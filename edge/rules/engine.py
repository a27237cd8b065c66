"""Rules: a sensor's state change -> actions, decided in memory, relays driven at once.

The config (``edge.rules.config``) says what to do; this engine does it. Only edges fire (a
repeated report changes nothing). A sensor whose state is unknown counts as "condition
false", so the first "open" after start fires. Relay actions are started as tasks at once;
their outcome (CommandResult) is recorded in the store with the rule firing.

Old news (a ``stale`` change: its payload says it is older than the sensor's ``max_age_s``)
moves the rule's condition but fires no pulse or latch, raises no new alarm and starts no
door-prop timer; what was not done is recorded ("skipped"). Clearing an alarm and ``follow``
(a relay mirroring the latest known state) still happen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from .. import kinds
from ..bus import Alarm, SensorAvailability, SensorChanged
from ..component import Component, Health
from ..context import Context
from ..interfaces import ALARMS, RELAYS, REPORTS, RULES, SENSORS, AckResult, record
from ..sensors.config import SensorConfig
from .config import RuleAction, RuleConfig, condition_holds, rule_field

log = logging.getLogger("edge.rules")


class Rule:
    def __init__(self, cfg: RuleConfig, sensor: SensorConfig, index: int):
        self.cfg = cfg
        self.sensor = sensor
        self.name = cfg.name or f"{cfg.sensor}-{index}"
        self.when = cfg.when
        self.field = rule_field(cfg, sensor)
        self.active = False
        self.since = 0.0
        self.prop_handle: asyncio.TimerHandle | None = None
        self.prop_active = False
        self.fired = 0

    def condition(self, state: dict[str, Any]) -> bool:
        return condition_holds(self.cfg, self.sensor, state)

    @property
    def alarm_id(self) -> str:
        return f"{self.sensor.id}:{self.name}"

    @property
    def prop_alarm_id(self) -> str:
        return f"{self.sensor.id}:door_prop"


class RulesEngine(Component):
    name = "rules"

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        sensors = {s.id: s for s in ctx.config.sensors}
        self.rules: list[Rule] = [Rule(r, sensors[r.sensor], i) for i, r in enumerate(ctx.config.rules)]
        self.by_sensor: dict[str, list[Rule]] = {}
        self._index()
        self.alarms: dict[str, Alarm] = {}
        self.failures = 0
        # subscribed now, before any producer starts: no state change is missed
        self.sub: Any = ctx.bus.subscribe(SensorChanged, maxsize=100_000, name="rules")
        # always: a rule on a sensor's availability may come with a config edit (they are rare)
        self.avail_sub: Any = ctx.bus.subscribe(SensorAvailability, maxsize=10_000, name="rules-availability")
        self.availability: dict[str, SensorAvailability] = {}  # the latest per sensor
        ctx.registry.provide(RULES, self)
        ctx.registry.provide(ALARMS, self)

    def _index(self) -> None:
        self.by_sensor = {}
        for r in self.rules:
            if r.cfg.enabled:
                self.by_sensor.setdefault(r.sensor.id, []).append(r)

    # ---- a new config, live ----------------------------------------------------------------
    def reconfigure(self, config: Any) -> None:
        """Take new ``[[rules]]`` / ``[[sensors]]`` at once, without firing anything now.

        A rule that did not change keeps its state and timers. A new or changed rule starts
        with its condition as the sensor's current state says (a door open now makes it
        active: it acts at the next change, not at the save). Alarms that no rule holds any
        more are cleared.
        """
        sensors = {s.id: s for s in config.sensors}
        states = self.ctx.registry.get(SENSORS)
        old = {r.name: r for r in self.rules}
        rules: list[Rule] = []
        for i, rc in enumerate(config.rules):
            rule = Rule(rc, sensors[rc.sensor], i)
            prev = old.pop(rule.name, None)
            if prev is not None and prev.cfg == rc and prev.sensor == rule.sensor:
                rules.append(prev)
                continue
            if prev is not None:
                self._retire(prev, keep=rule)
            rule.active = rc.enabled and self._holds_now(rule, states)
            rule.since = time.time()
            rules.append(rule)
        for gone in old.values():
            self._retire(gone, keep=None)
        self.rules = rules
        self._index()
        log.info("rules reconfigured: %d rules (%d enabled)", len(rules), sum(r.cfg.enabled for r in rules))

    def _retire(self, rule: Rule, keep: Rule | None) -> None:
        """``rule`` is replaced by ``keep`` (same name) or removed: end its timer and the alarms
        the replacement does not hold."""
        if rule.prop_handle is not None:
            rule.prop_handle.cancel()
            rule.prop_handle = None
        holds_alarm = keep is not None and keep.cfg.enabled and any(a.type == "alarm" for a in keep.cfg.actions)
        for alarm_id in (rule.alarm_id, rule.prop_alarm_id):
            prev = self.alarms.get(alarm_id)
            if prev is None or not prev.active:
                continue
            if alarm_id == rule.alarm_id and holds_alarm and keep is not None and keep.sensor.id == rule.sensor.id:
                continue  # the new rule holds the same alarm (cleared by it when the condition ends)
            self._publish_alarm(dataclasses.replace(prev, active=False, ts=time.time()))

    # ---- alarms as others see them (interfaces.AlarmControl) ----------------------------------
    def active_alarms(self) -> list[Alarm]:
        return sorted((a for a in self.ctx.bus.last_of(Alarm) if a.active), key=lambda a: a.since)

    def acknowledge(self, alarm: str, by: str) -> AckResult:
        """Mark an active alarm acknowledged: recorded in the store and published on the bus
        (the alarm again, with ``acknowledged``) for the LCD, the uplink, ONVIF and the console."""
        # the bus's last value: the rules' own alarms and any other component's
        prev = self.alarms.get(alarm) or self.ctx.bus.last(Alarm, alarm)
        if prev is None or not prev.active:
            return AckResult(False, alarm, f"no active alarm {alarm!r} (cleared already?)")
        if prev.acknowledged:
            return AckResult(True, alarm)
        now = time.time()
        ev = dataclasses.replace(prev, acknowledged=True, acked_by=by, ts=now)
        if alarm in self.alarms:
            self.alarms[alarm] = ev
        self.ctx.bus.publish(ev)
        log.info("alarm %s acknowledged by %s", alarm, by)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("alarm_ack", by, {"alarm": alarm}, ts=now))
        return AckResult(True, alarm)

    def _publish_alarm(self, ev: Alarm) -> None:
        self.alarms[ev.alarm] = ev
        self.ctx.bus.publish(ev)

    # ---- the hot path ----------------------------------------------------------------
    def attached(self) -> None:
        """The sensors' state tracker now calls ``on_change`` directly (instead of the bus
        queue): the relay command starts in the same loop iteration the message was decoded in."""
        if self.sub is not None:
            self.sub.close()
            self.sub = None

    def on_change(self, ev: SensorChanged) -> None:
        for rule in self.by_sensor.get(ev.sensor, ()):
            if rule.when != "state" or rule.field not in ev.changed:
                continue
            now_active = rule.condition(ev.state)
            if now_active == rule.active:
                continue
            rule.active = now_active
            rule.since = ev.ts
            rule.fired += 1
            trigger = {rule.field: ev.state.get(rule.field)}
            for action in rule.cfg.actions:
                if ev.stale and now_active and action.type != "follow":
                    self._skip_stale(rule, action, trigger, ev)
                    continue
                self._run_action(rule, action, now_active, trigger)
            if rule.cfg.door_prop_s is not None:
                self._door_prop(rule, now_active and not ev.stale)

    def _skip_stale(self, rule: Rule, action: RuleAction, trigger: dict[str, Any], ev: SensorChanged) -> None:
        why = f"stale: the reading is {ev.age_s or 0:.0f} s old (max_age_s {rule.sensor.max_age_s:g} s)"
        log.warning("rule %s: %s %s not done: %s", rule.name, action.type, action.relay or action.alarm or "", why)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("rule", rule.name, {
                "sensor": rule.sensor.id, "trigger": trigger, "action": action.type, "relay": action.relay,
                "ok": False, "skipped": why}, ts=ev.ts))

    def _holds_now(self, rule: Rule, states: Any) -> bool:
        """Whether a (new) rule's condition holds now, as the latest state or availability says."""
        if rule.when == "state":
            return condition_holds(rule.cfg, rule.sensor, states.state(rule.sensor.id) if states else {})
        av = self.availability.get(rule.sensor.id)
        if av is None:
            return False
        return (not av.online) if rule.when == "offline" else av.battery_low

    def on_availability(self, ev: SensorAvailability) -> None:
        """Rules on the sensor itself: offline (supervision) and battery low."""
        self.availability[ev.sensor] = ev
        for rule in self.by_sensor.get(ev.sensor, ()):
            if rule.when == "state":
                continue
            now_active = (not ev.online) if rule.when == "offline" else ev.battery_low
            if now_active == rule.active:
                continue
            rule.active = now_active
            rule.since = ev.ts
            rule.fired += 1
            trigger = {"online": ev.online, "battery_low": ev.battery_low, "reason": ev.reason}
            for action in rule.cfg.actions:
                self._run_action(rule, action, now_active, trigger)

    def _run_action(self, rule: Rule, action: RuleAction, active: bool, trigger: dict[str, Any]) -> None:
        t = action.type
        if t == "alarm":
            kind = action.kind or {"offline": "supervision", "battery_low": "battery_low"}.get(rule.when, rule.sensor.kind)
            message = action.alarm or ""
            if rule.when == "offline" and not message:
                message = f"{rule.sensor.name} offline" + (f": {trigger.get('reason')}" if trigger.get("reason") else "")
            self._alarm(rule.alarm_id, rule, active, kind, message)
            return
        if t == "report":
            self._report(rule, action, active, trigger)
            return
        if t in ("pulse", "latch") and not active:
            return
        relays = self.ctx.registry.get(RELAYS)
        assert action.relay is not None
        source = f"rule:{rule.name}"
        if relays is None:
            self._record_firing(rule, action, trigger, ok=False, latency_ms=0.0, error="no relay service")
            return
        if t == "pulse":
            coro = relays.pulse(action.relay, action.ms, source=source)
        elif t == "latch":
            coro = relays.set(action.relay, True, source=source)
        else:
            coro = relays.set(action.relay, active != action.invert, source=source)
        task = self.spawn(coro, name=f"rule-action:{rule.name}")  # drives the relay now; nothing waits for it
        task.add_done_callback(lambda tk: self._action_done(tk, rule, action, trigger))

    def _action_done(self, task: asyncio.Task[Any], rule: Rule, action: RuleAction, trigger: dict[str, Any]) -> None:
        if task.cancelled():
            self._record_firing(rule, action, trigger, ok=False, latency_ms=0.0, error="cancelled")
            return
        exc = task.exception()
        if exc is not None:
            self._record_firing(rule, action, trigger, ok=False, latency_ms=0.0, error=f"{type(exc).__name__}: {exc}")
            return
        res = task.result()
        self._record_firing(rule, action, trigger, ok=bool(getattr(res, "ok", False)),
                            latency_ms=float(getattr(res, "latency_ms", 0.0) or 0.0), error=str(getattr(res, "error", "") or ""))

    def _record_firing(self, rule: Rule, action: RuleAction, trigger: dict[str, Any], *, ok: bool, latency_ms: float,
                       error: str) -> None:
        if not ok:
            self.failures += 1
            log.warning("rule %s: %s %s failed: %s", rule.name, action.type, action.relay, error)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("rule", rule.name, {
                "sensor": rule.sensor.id, "trigger": trigger, "action": action.type, "relay": action.relay,
                "ms": action.ms if action.type == "pulse" else None, "ok": ok, "latency_ms": round(latency_ms, 3),
                "error": error}))

    def _report(self, rule: Rule, action: RuleAction, active: bool, trigger: dict[str, Any]) -> None:
        """Queue a report to an alarm receiver (the receivers put it in the outbox at once)."""
        reporter = self.ctx.registry.get(REPORTS)
        text = self._report_text(rule, active, trigger)
        queued = False
        error = "no alarm receivers running ([receivers] in the config)"
        if reporter is not None:
            queued = reporter.report(action.report or "", active=active, sensor=rule.sensor.id,
                                     kind=action.kind or rule.sensor.kind, text=text, code=action.code, cid=action.cid,
                                     zone=action.zone, source=f"rule:{rule.name}")
            error = "" if queued else "nothing queued (see the receivers' log)"
        if not queued and (active or reporter is None):  # a restore without a restore code is not a failure
            self.failures += 1
            log.warning("rule %s: report to %s failed: %s", rule.name, action.report, error)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("rule", rule.name, {
                "sensor": rule.sensor.id, "trigger": trigger, "action": "report", "receiver": action.report,
                "active": active, "ok": queued, "error": error if not queued else ""}))

    @staticmethod
    def _report_text(rule: Rule, active: bool, trigger: dict[str, Any]) -> str:
        """What happened, in words: the rule's alarm message, else the sensor's state."""
        message = next((a.alarm for a in rule.cfg.actions if a.alarm), None)
        if message and active:
            return message
        value = trigger.get(rule.field)
        k = kinds.get(rule.sensor.kind)
        if isinstance(value, bool):
            words = k.active_words if value else k.inactive_words
        elif isinstance(value, (int, float)):
            words = k.number_format.format(value) if not k.binary else str(value)
        else:
            words = "" if value is None else str(value)
        name = rule.sensor.name
        if message:  # the restore of a named alarm
            return f"{message}: restored ({name}: {words})" if words else f"{message}: restored"
        return f"{name}: {words}" if words else name

    def _alarm(self, alarm_id: str, rule: Rule, active: bool, kind: str, message: str) -> None:
        prev = self.alarms.get(alarm_id)
        if not active and (prev is None or not prev.active):
            return
        now = time.time()
        since = prev.since if (prev is not None and prev.active and active) else now
        msg = message or f"{rule.sensor.name}: {kind}"
        ev = Alarm(alarm_id, rule.sensor.id, active, kind, msg, since=since, ts=now)
        self._publish_alarm(ev)
        (log.warning if active else log.info)("alarm %s %s: %s", alarm_id, "raised" if active else "cleared", msg)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("alarm", rule.sensor.id, {"alarm": alarm_id, "active": active, "kind": kind,
                                                                  "message": msg, "since": since}, ts=now))

    def _door_prop(self, rule: Rule, active: bool) -> None:
        if rule.prop_handle is not None:
            rule.prop_handle.cancel()
            rule.prop_handle = None
        if active:
            delay = rule.cfg.door_prop_s or 0
            rule.prop_handle = asyncio.get_running_loop().call_later(delay, self._prop_expired, rule)
        elif rule.prop_active:
            rule.prop_active = False
            self._alarm(rule.prop_alarm_id, rule, False, "door_prop", rule.cfg.door_prop_message)

    def _prop_expired(self, rule: Rule) -> None:
        rule.prop_handle = None
        if not rule.active:
            return
        rule.prop_active = True
        msg = rule.cfg.door_prop_message or f"{rule.sensor.name} held open over {rule.cfg.door_prop_s:g} s"
        self._alarm(rule.prop_alarm_id, rule, True, "door_prop", msg)

    # ---- component ----------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.avail_sub is not None:
                tg.create_task(self._pump(self.avail_sub, self.on_availability), name="rules-availability")
            if self.sub is not None:  # else attached to the tracker: nothing to pump
                tg.create_task(self._pump(self.sub, self.on_change), name="rules-changes")
            tg.create_task(asyncio.Event().wait())

    async def _pump(self, sub: Any, handle: Any) -> None:
        while True:
            ev = await sub.get()
            try:
                handle(ev)
            except Exception:  # noqa: BLE001 - one bad rule must not stop the others
                log.exception("rules: handling %s failed", ev.sensor)
            self.beat()

    async def stop(self) -> None:
        for r in self.rules:
            if r.prop_handle is not None:
                r.prop_handle.cancel()
        if self.spawned:  # relay commands under way finish (and are recorded)
            await asyncio.wait(self.spawned, timeout=2)
        if self.sub is not None:
            self.sub.close()
        if self.avail_sub is not None:
            self.avail_sub.close()

    def health(self) -> Health:
        active = [a for a in self.alarms.values() if a.active]
        return Health(True, f"{len(self.rules)} rules, {len(active)} active alarms, {self.failures} failed actions")
