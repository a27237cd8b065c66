"""The ONVIF component: registers the SOAP endpoints on ``ctx.web`` (open at the HTTP layer:
they check WS-Security/Digest themselves), feeds bus events to the event subscriptions (pull
and push), expires them, keeps what clients set (relay settings; the video component keeps
its encoder settings), and runs WS-Discovery."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from prometheus_client import Counter, Gauge

from ..bus import Alarm, RelayChanged, SensorAvailability
from ..component import Component, Health
from .core import PATHS, Core
from .device import DeviceService
from .deviceio import DeviceIOService
from .discovery import Discovery
from .events import EventHub, EventsService
from .imaging import ImagingService
from .media import MediaService
from .probes import Probes
from .push import PushService
from .security import FailureBrake
from .soap import Dispatcher

log = logging.getLogger("edge.onvif")

INTERFACE_RESCAN_S = 30.0


class _Metrics:
    def __init__(self, registry: Any):
        self.requests = Counter("edge_onvif_requests", "ONVIF SOAP requests handled", registry=registry)
        self.faults = Counter("edge_onvif_faults", "ONVIF SOAP faults returned", registry=registry)
        self.auth_failures = Counter("edge_onvif_auth_failures", "ONVIF requests with wrong credentials", registry=registry)
        self.subscriptions = Gauge("edge_onvif_subscriptions", "ONVIF event subscriptions alive (PullPoint and push)", registry=registry)
        self.probes = Counter("edge_onvif_discovery_probes", "WS-Discovery probes received", registry=registry)


def build_dispatcher(core: Core) -> Dispatcher:
    cfg = core.cfg
    ctx = core.ctx
    d = Dispatcher(ctx.credentials.get, ctx.auth, clock_skew_s=cfg.clock_skew_s, max_body_bytes=cfg.max_body_bytes,
                   brake=FailureBrake(free=cfg.auth_free_failures, max_delay_s=cfg.auth_delay_max_s))
    core.media = MediaService(core)  # type: ignore[attr-defined]
    core.deviceio = DeviceIOService(core)  # type: ignore[attr-defined]
    core.events = EventHub(core)
    core.imaging = ImagingService(core)  # type: ignore[attr-defined]
    DeviceService(core).register(d)
    core.media.register(d)  # type: ignore[attr-defined]
    core.imaging.register(d)  # type: ignore[attr-defined]
    Probes(core).register(d)
    EventsService(core, core.events).register(d)
    core.push = PushService(core, core.events)  # type: ignore[attr-defined]
    core.push.register(d)  # type: ignore[attr-defined]
    core.deviceio.register(d)  # type: ignore[attr-defined]
    return d


class OnvifComponent(Component):
    name = "onvif"

    def __init__(self, ctx: Any, supervisor_ref: Callable[[], Any] | None = None):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.config.onvif
        self.core = Core(ctx, supervisor_ref)
        self.dispatcher = build_dispatcher(self.core)
        self.core.push.spawn = self.spawn  # type: ignore[attr-defined]
        self.discovery: Discovery | None = None
        self.m = _Metrics(ctx.metrics.registry)
        self._counted = {"requests": 0, "faults": 0, "auth_failures": 0}
        self._sub = None
        for path in PATHS:
            ctx.web.router.add_post(path, self.dispatcher.aiohttp_handler)
            ctx.open_paths.add(path)  # ONVIF checks its own credentials (WS-Security) per operation

    async def start(self) -> None:
        # subscribe first: the replayed last values give every sensor's and relay's state
        if self._sub is not None:  # restarted after a failure
            self._sub.close()
        self._sub = self.ctx.bus.subscribe(Alarm, RelayChanged, SensorAvailability, maxsize=2000, name="onvif")
        if self.cfg.discovery and self.discovery is None:
            creds = self.ctx.credentials.get()
            d = Discovery(port=self.cfg.discovery_port, device_uuid=creds.device_uuid, scopes=self.core.scopes,
                          xaddr_for=self.core.device_xaddr_on)
            web_host = self.ctx.config.web.host
            if web_host not in ("0.0.0.0", "::", ""):
                log.warning("WS-Discovery answers with the address each probe arrives on, but the web server "
                            "listens on %s only: NVRs on other interfaces will not reach it", web_host)
            try:
                await d.start()
                self.discovery = d
            except OSError as exc:
                log.error("WS-Discovery cannot listen on udp/%d: %s (ONVIF still answers on %s)",
                          self.cfg.discovery_port, exc, PATHS[0])

    async def run(self) -> None:
        hub = self.core.events
        assert self._sub is not None
        housekeeping = asyncio.create_task(self._housekeeping(), name="onvif-housekeeping")
        try:
            async for ev in self._sub:
                hub.handle(ev)
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time() + INTERFACE_RESCAN_S
        while True:
            await asyncio.sleep(1.0)
            self.core.events.expire()
            self._export_metrics()
            if self.discovery is not None and loop.time() >= next_scan:
                next_scan = loop.time() + INTERFACE_RESCAN_S
                try:  # a few ioctls: cheap enough for the loop
                    self.discovery.refresh_interfaces()
                    if any(not i.loopback for i in self.discovery.new_interfaces):
                        log.info("WS-Discovery: new interface(s) %s: Hello",
                                 ", ".join(i.name for i in self.discovery.new_interfaces))
                        self.discovery.send_hello()
                except Exception as exc:  # noqa: BLE001
                    log.debug("interface rescan failed: %s", exc)

    def _export_metrics(self) -> None:
        st = self.dispatcher.stats
        for key, counter in (("requests", self.m.requests), ("faults", self.m.faults), ("auth_failures", self.m.auth_failures)):
            delta = st[key] - self._counted[key]
            if delta > 0:
                counter.inc(delta)
                self._counted[key] = st[key]
        self.m.subscriptions.set(len(self.core.events.subs))

    async def stop(self) -> None:
        self.core.events.close_all()
        await self.core.push.close()  # type: ignore[attr-defined]
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self.discovery is not None:
            await self.discovery.stop()
            self.discovery = None

    def health(self) -> Health:
        d = "discovery off" if self.discovery is None else f"discovery udp/{self.discovery.port}"
        return Health(True, f"{len(self.core.events.subs)} subscriptions, {d}")
