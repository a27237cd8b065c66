"""Configs and small helpers for the receiver tests (the peers are in receiver_peers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.bus import Alarm, ComponentHealth
from edge.interfaces import REPORTS

FAST = "timeout_s = 0.5\nbackoff_initial_s = 0.1\nbackoff_max_s = 0.5\n"


def sia_toml(port: int, *, key: str | None = None, protocol: str = "tcp", fmt: str = "SIA-DCS", kinds: str = '["contact"]',
             null_interval_s: float = 0, backup: int | None = None, extra: str = "", mqtt_port: int | None = None,
             site: str = "Test site", rules: str = "", fast: bool = True) -> str:
    """A service with a front door (zone 1) reporting to [receivers.sia.arc] on 127.0.0.1:port."""
    mqtt = f"[mqtt]\nport = {mqtt_port}\n" if mqtt_port else "[mqtt]\nenabled = false\n"
    return f"""
[site]
name = "{site}"

{mqtt}
[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "z/front_door"

[[sensors]]
id = "server_room"
name = "Server room"
kind = "temperature"
topic = "z/server_room"
{rules}
[receivers]
zones = {{ front_door = 1 }}

[receivers.sia.arc]
primary = "127.0.0.1:{port}"
{f'backup = "127.0.0.1:{backup}"' if backup else ""}
protocol = "{protocol}"
account = "1234"
format = "{fmt}"
{f'key_file = "{key}"' if key else ""}
kinds = {kinds}
null_interval_s = {null_interval_s}
backup_null_interval_s = {null_interval_s}
{FAST if fast else ""}{extra}
"""


def door(svc: Any, opened: bool, receiver: str = "arc", **kw: Any) -> bool:
    """What the rules engine does for a rule's report action: queue a door report."""
    reporter = svc.ctx.registry.get(REPORTS)
    return reporter.report(receiver, active=opened, sensor="front_door", kind="contact",
                           text=f"Front door: {'OPEN' if opened else 'CLOSED'}", **kw)


class BusLog:
    """Collects Alarm and ComponentHealth events from the service's bus."""

    def __init__(self, svc: Any):
        self.events: list[Any] = []
        self.sub = svc.ctx.bus.subscribe(Alarm, ComponentHealth, name="test")  # (the last of each replayed)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.sub:
            self.events.append(ev)

    def alarms(self, alarm_id: str) -> list[bool]:
        return [ev.active for ev in self.events if isinstance(ev, Alarm) and ev.alarm == alarm_id]

    def health(self, component: str) -> list[bool]:
        return [ev.ok for ev in self.events if isinstance(ev, ComponentHealth) and ev.component == component]

    def close(self) -> None:
        self.task.cancel()
        self.sub.close()
