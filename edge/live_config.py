"""A new config, applied to the running service: only the components it touches, live where
they can take it, and a clear list of those that take it at the next start.

Provided in the registry as ``interfaces.SERVICE`` (the console's config editor uses it).

- ``[[rules]]``: the rules engine takes the new rules in place (``RulesEngine.reconfigure``):
  nothing fires at the switch, unchanged rules keep their state and timers.
- ``[[sensors]]``, ``[mqtt]``: the sensors component is rebuilt (ingest resubscribes in its
  persistent session, so nothing published meanwhile is lost); the sensors' last known states
  are carried over, so nothing looks changed; then the rules are reconfigured.
- Everything else (relays above all: a running channel is never touched by an edit elsewhere)
  is read at start only: the components that read a changed section are listed in
  ``Applied.on_restart`` and the service keeps running on their old settings until then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from .component import Component
from .interfaces import Applied, ComponentStatus

if TYPE_CHECKING:
    from .app import Supervisor
    from .context import Context

log = logging.getLogger("edge.live_config")

# which config sections each component reads (top-level keys of the file)
READS: dict[str, frozenset[str]] = {
    "store": frozenset({"store"}),
    "relays": frozenset({"relays"}),
    "rules": frozenset({"rules", "sensors"}),
    "sensors": frozenset({"sensors", "mqtt"}),
    "uplink": frozenset({"uplink", "mqtt", "sensors", "relays", "site"}),
    "video": frozenset({"video", "sensors", "site"}),
    "onvif": frozenset({"onvif", "site", "relays", "sensors", "video", "web"}),
    "setup": frozenset({"lcd", "buttons", "network", "sensors", "video"}),
    "web": frozenset({"web"}),
    "receivers": frozenset({"receivers", "rules", "sensors", "site"}),  # zones, kinds, a rule's report replacing a default
    "service": frozenset({"service"}),  # the supervisor's own settings
}
LIVE = ("sensors", "rules")
SUBSCRIBE_WAIT_S = 5.0


def changed_sections(old: Any, new: Any) -> set[str]:
    return {name for name in type(new).model_fields if getattr(old, name) != getattr(new, name)}


class LiveConfig:
    """``interfaces.ServiceControl`` over the supervisor."""

    def __init__(self, ctx: "Context", supervisor: Callable[[], "Supervisor | None"]):
        self.ctx = ctx
        self._sup = supervisor

    @property
    def sup(self) -> "Supervisor":
        s = self._sup()
        if s is None:
            raise RuntimeError("the service is not running")
        return s

    def components(self) -> list[ComponentStatus]:
        out = []
        for slot in self.sup.slots:
            c = slot.component
            h = c.health()
            out.append(ComponentStatus(c.name, slot.running, slot.running and h.ok,
                                       h.detail if slot.running else (slot.last_error or "starting"), slot.restarts))
        return out

    def restart(self, why: str) -> None:
        self.sup.request_restart(why)

    async def apply(self, new_config: Any) -> Applied:
        old = self.ctx.config
        changed = changed_sections(old, new_config)
        if not changed:
            return Applied()
        running = {s.component.name for s in self.sup.slots}
        touched = {name for name, reads in READS.items() if reads & changed and (name in running or name == "service")}
        self.ctx.config = new_config  # what components built from now on read
        live: list[str] = []
        if "sensors" in touched and "sensors" in running:
            sensors = await self.sup.replace("sensors", self._rebuild_sensors)
            # the edit returns once the new topics are subscribed: a message published right
            # after the save reaches the new sensor (a new topic has no queued session yet)
            if not await sensors.listening(SUBSCRIBE_WAIT_S):  # type: ignore[attr-defined]
                log.warning("config applied: the sensors' MQTT ingest is not subscribed yet (broker down?)")
            live.append("sensors")
        if "rules" in touched and "rules" in running:
            self.sup.component("rules").reconfigure(new_config)  # type: ignore[attr-defined]
            live.append("rules")
        pending = sorted(touched - set(live))
        log.info("config applied: sections %s; live: %s; at the next start: %s", ", ".join(sorted(changed)),
                 ", ".join(live) or "none", ", ".join(pending) or "none")
        return Applied(tuple(live), tuple(pending))

    def _rebuild_sensors(self, old: Component) -> Component:
        from .sensors.component import SensorsComponent

        bad = getattr(old, "bad", None)
        if bad is not None:  # its metric is registered again by the new one
            self.ctx.metrics.registry.unregister(bad.counter)
        new = SensorsComponent(self.ctx)
        new.carry_over(old)  # type: ignore[arg-type]
        return new
