"""Keeps what the menu shows current (``views.MenuData``): alarms, sensor states, relay
states and component health from the bus; the credentials; and every ``REFRESH_S`` the
address, the RTSP URL, the relay list and the links' health from the network backend and
the typed registry (``RELAYS``, ``VIDEO``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from hw.lcd import Lcd
from hw.network import NetworkBackend

from .. import credentials as credentials_mod
from .. import tls
from ..bus import Alarm, ComponentHealth, RelayChanged, SensorAvailability, SensorChanged, SensorReading
from ..interfaces import RELAYS, VIDEO
from .menu import Menu
from .views import AlarmView, SensorView

log = logging.getLogger("edge.setup")

REFRESH_S = 10.0  # ip address, relay list, link health
EVENTS = (Alarm, SensorChanged, SensorReading, RelayChanged, ComponentHealth, SensorAvailability)  # what on_bus reads


def primary_ip() -> str:
    """The address this host would use to reach the outside (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    return ""


class MenuFeed:
    def __init__(self, ctx: Any, menu: Menu, network: NetworkBackend, lcd: Lcd):
        self.ctx = ctx
        self.menu = menu
        self.data = menu.data
        self.network = network
        self.lcd = lcd  # woken by a new alarm; its error is a link problem
        self._health_problems: dict[str, str] = {}
        self._sensor_names = {s.id: s.name for s in ctx.config.sensors}
        for sid, name in self._sensor_names.items():
            self.data.sensors[sid] = SensorView(name or sid, {}, 0.0)

    def credentials(self, c: credentials_mod.Credentials) -> None:
        d = self.data
        d.user, d.password, d.serial = c.user, c.password, c.serial
        d.acknowledged = c.acknowledged
        d.gateway_user, d.gateway_password = c.gateway_user, c.gateway_password
        cert = tls.load(self.ctx.data_dir)
        d.tls_fingerprint = cert.fingerprint if cert is not None else ""

    def on_bus(self, ev: Any) -> None:
        d = self.data
        if isinstance(ev, Alarm):
            name = self._sensor_names.get(ev.sensor) or ev.sensor
            if ev.active:
                prev = d.alarms.get(ev.alarm)
                view = AlarmView(ev.alarm, name, ev.kind, ev.message or ev.kind, ev.since,
                                 acked=ev.acknowledged or (prev.acked if prev else False))
                d.alarms[ev.alarm] = view
                if ev.acknowledged:  # acknowledged anywhere (console, this panel): off the screen
                    self.menu.alarm(view, False)
                elif prev is None:
                    self.menu.alarm(view, True)
                    self.lcd.wake()
            else:
                gone = d.alarms.pop(ev.alarm, None)
                if gone is not None:
                    self.menu.alarm(gone, False)
        elif isinstance(ev, SensorChanged):
            name = self._sensor_names.get(ev.sensor) or ev.sensor
            old = d.sensors.get(ev.sensor)
            d.sensors[ev.sensor] = SensorView(name, dict(ev.state), ev.ts, old.offline if old else False,
                                              old.battery_low if old else False)
        elif isinstance(ev, SensorAvailability):
            view = d.sensors.get(ev.sensor)
            if view is not None:
                view.offline, view.battery_low = not ev.online, ev.battery_low
        elif isinstance(ev, SensorReading):  # "last seen" counts readings that changed nothing too
            seen = d.sensors.get(ev.sensor)
            if seen is not None:
                seen.last_seen = max(seen.last_seen, ev.ts)
        elif isinstance(ev, RelayChanged):
            d.relay_on[ev.relay] = ev.on
        elif isinstance(ev, ComponentHealth):
            if ev.ok:
                self._health_problems.pop(ev.component, None)
            else:
                self._health_problems[ev.component] = f"{ev.component} {ev.detail or 'down'}"
            self.refresh_links()

    def refresh_links(self) -> None:
        problems = list(self._health_problems.values())
        relays = self.ctx.registry.get(RELAYS)
        if relays is not None:
            try:
                for info in relays.describe():
                    if info.reachable is False:
                        problems.append(f"relay {info.name} offline")
                    elif info.faulted:
                        problems.append(f"relay {info.name} fault")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"relays: {exc}")
        if self.lcd.error:
            problems.append("lcd error")
        self.data.link_problems = problems

    async def refresh(self) -> None:
        """Address, RTSP URL, relays, link health: once."""
        d = self.data
        try:
            status = await self.network.status()
            d.network = status.settings
            ip = status.ip
        except Exception as exc:  # noqa: BLE001 - no NetworkManager: still show an address
            log.debug("network status: %s", exc)
            ip = ""
        d.ip = ip or await asyncio.to_thread(primary_ip)
        video = self.ctx.registry.get(VIDEO)
        if video is not None:
            try:
                bound = self.ctx.config.video.rtsp_host or ""
                host = bound if bound not in ("", "0.0.0.0", "::") else (d.ip or "127.0.0.1")
                d.rtsp_url = video.stream_uri(host)  # the address it listens on, e.g. 127.0.0.1 in the demo
            except Exception as exc:  # noqa: BLE001
                d.rtsp_url = f"error: {exc}"
        relays = self.ctx.registry.get(RELAYS)
        if relays is not None:
            try:
                d.relays = list(relays.names())
                for name in d.relays:
                    d.relay_on[name] = relays.state(name)
            except Exception as exc:  # noqa: BLE001
                log.warning("relay list: %s", exc)
        self.refresh_links()

    async def refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_S)
