"""What the dashboard shows, fed from bus events; read by the renderer on the producer thread.

``Dashboard.apply(event)`` runs on the event loop and says what changed; ``view()`` returns
an immutable snapshot for the renderer (taken under a lock, so the two threads never see a
half-applied event).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from .. import kinds
from ..bus import Alarm, ComponentHealth, Event, SensorAvailability, SensorChanged
from .words import TELEMETRY

@dataclass(frozen=True)
class SensorView:
    id: str
    name: str
    kind: str
    state: dict[str, Any] = field(default_factory=dict)
    changed_at: float | None = None
    online: bool = True  # False: silent past its expected interval (or its bridge says so)
    battery_low: bool = False
    last_seen: float | None = None


@dataclass(frozen=True)
class AlarmView:
    alarm: str
    sensor: str
    sensor_name: str
    kind: str
    message: str
    since: float

    @property
    def severity(self) -> int:
        return kinds.alarm_severity(self.kind)  # largest first: hazards to life before intrusion


@dataclass(frozen=True)
class LinkView:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class View:
    site: str
    sensors: tuple[SensorView, ...]
    alarms: tuple[AlarmView, ...]  # largest first
    links: tuple[LinkView, ...]
    version: int


class Dashboard:
    def __init__(self, site: str, sensors: Iterable[Any] = ()):
        self.site = site
        self._lock = threading.Lock()
        self._sensors: dict[str, SensorView] = {}
        self._configured = False
        for s in sensors:
            sid = str(getattr(s, "id"))
            self._sensors[sid] = SensorView(sid, str(getattr(s, "name", sid) or sid), str(getattr(s, "kind", "generic") or "generic"))
            self._configured = True
        self._alarms: dict[str, AlarmView] = {}
        self._links: dict[str, LinkView] = {}
        self.version = 0

    def apply(self, ev: Event) -> str | None:
        """Take one bus event in; return 'sensor', 'alarm', 'link' or None (nothing visible changed)."""
        with self._lock:
            if isinstance(ev, SensorChanged):
                return self._sensor(ev)
            if isinstance(ev, Alarm):
                return self._alarm(ev)
            if isinstance(ev, SensorAvailability):
                return self._availability(ev)
            if isinstance(ev, ComponentHealth):
                old = self._links.get(ev.component)
                new = LinkView(ev.component, ev.ok, ev.detail)
                if old == new:
                    return None
                self._links[ev.component] = new
                self.version += 1
                return "link"
        return None

    def _sensor(self, ev: SensorChanged) -> str | None:
        old = self._sensors.get(ev.sensor)
        if old is None:
            old = SensorView(ev.sensor, ev.sensor, _guess_kind(ev.state))
        real_change = old.changed_at is None or any(f not in TELEMETRY for f in ev.changed)
        changed_at = ev.ts if real_change else old.changed_at
        self._sensors[ev.sensor] = replace(old, state=dict(ev.state), changed_at=changed_at)
        self.version += 1
        return "sensor"

    def _availability(self, ev: SensorAvailability) -> str | None:
        old = self._sensors.get(ev.sensor)
        if old is None:
            if self._configured:
                return None
            old = SensorView(ev.sensor, ev.sensor, "generic")
        if old.online == ev.online and old.battery_low == ev.battery_low:
            return None
        self._sensors[ev.sensor] = replace(old, online=ev.online, battery_low=ev.battery_low, last_seen=ev.last_seen)
        self.version += 1
        return "sensor"

    def _alarm(self, ev: Alarm) -> str | None:
        if ev.active:
            sv = self._sensors.get(ev.sensor)
            view = AlarmView(ev.alarm, ev.sensor, sv.name if sv else ev.sensor, ev.kind, ev.message, ev.since)
            if self._alarms.get(ev.alarm) == view:
                return None
            self._alarms[ev.alarm] = view
        elif self._alarms.pop(ev.alarm, None) is None:
            return None
        self.version += 1
        return "alarm"

    def view(self) -> View:
        with self._lock:
            alarms = sorted(self._alarms.values(), key=lambda a: (a.severity, -a.since))
            return View(self.site, tuple(self._sensors.values()), tuple(alarms),
                        tuple(sorted(self._links.values(), key=lambda x: x.name)), self.version)

    @property
    def alarm_active(self) -> bool:
        with self._lock:
            return bool(self._alarms)


def _guess_kind(state: dict[str, Any]) -> str:
    return kinds.guess(state).name


def now() -> float:
    return time.time()
