"""Wiring: one ``build_service()`` builds the context, the components and the supervisor from
a config. The CLI, the demo, the tests and the benchmarks all use it.

Components are added in start order: relays first (safe state before anything else, and
without waiting for the disk), the store next (built with its component, so anything may
queue records from the start; a database that cannot be opened leaves the service degraded,
never down), producers and consumers, the web server last (all routes registered). At stop
the relays go to their safe state first, then the others stop in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine

from hw.platform import Platform, make_platform

from . import tls
from .app import Supervisor
from .auth import HttpAuth
from .bus import Bus
from .component import Component
from .config import Config
from .context import Context, CredentialsHolder
from .metrics import Metrics
from .notify import Notifier
from .web.guard import Guard, make_app
from .web.server import WebComponent

log = logging.getLogger("edge.service")


def build_context(config: Config, data_dir: Path, *, platform: Platform | None = None, simulated: bool = False,
                  config_path: Path | None = None, demo: bool = False) -> Context:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = CredentialsHolder(data_dir)
    auth = HttpAuth(creds.get)
    open_paths: set[str] = set()
    plain_paths: set[str] = set()
    guard = Guard(auth, open_paths, plain_paths)
    guard.configure(config.web)
    ctx = Context(
        config=config,
        data_dir=data_dir,
        bus=Bus(),
        metrics=Metrics(),
        credentials=creds,
        auth=auth,
        web=make_app(guard, config.web.max_body_bytes),
        platform=platform or make_platform(simulated),
        open_paths=open_paths,
        plain_paths=plain_paths,
        config_path=config_path,
        demo=demo,
    )
    if creds.created:
        log.warning("first start: generated device credentials in %s (show them with `edge credentials`)", data_dir)
    if config.web.tls:  # made here, before the components: the LCD shows its fingerprint
        cert = tls.load_or_create(data_dir)
        if cert.created:
            log.warning("first start: made the device TLS certificate, SHA-256 %s", cert.fingerprint)
    return ctx


def build_components(ctx: Context, supervisor_ref: Callable[[], Supervisor | None]) -> list[Component]:
    from .relays.service import RelayService
    from .setup.watch import CredentialsWatcher
    from .store.component import StoreComponent

    comps: list[Component] = [RelayService(ctx), StoreComponent(ctx)]
    if ctx.config.receivers.enabled:
        from .receivers.component import ReceiversComponent

        # after the store (its outbox), before the rules and sensors (their reports)
        comps.append(ReceiversComponent(ctx))
    comps += sensor_path_components(ctx)
    if ctx.config.video.enabled:
        from .video.component import VideoComponent

        comps.append(VideoComponent(ctx))
    if ctx.config.onvif.enabled:
        from .onvif.component import OnvifComponent

        comps.append(OnvifComponent(ctx, supervisor_ref))
    comps.append(CredentialsWatcher(ctx))
    if ctx.config.lcd.enabled:
        from .setup.component import SetupComponent

        comps.append(SetupComponent(ctx))
    from .console.component import ConsoleComponent
    from .interfaces import SERVICE
    from .live_config import LiveConfig

    ctx.registry.provide(SERVICE, LiveConfig(ctx, supervisor_ref))
    comps.append(ConsoleComponent(ctx))  # its session check goes in front of the web server's
    comps.append(WebComponent(ctx, supervisor_ref))
    return comps


def sensor_path_components(ctx: Context) -> list[Component]:
    """Sensors in (MQTT/GPIO/Modbus + state), rules, uplink: after relays, before web."""
    from .rules.engine import RulesEngine
    from .sensors.component import SensorsComponent
    from .uplink.component import Uplink

    comps: list[Component] = []
    # rules subscribe before the sensors produce anything (no state change is missed)
    rules = RulesEngine(ctx)
    comps.append(rules)
    comps.append(SensorsComponent(ctx))
    cfg = ctx.config
    # the uplink runs once a broker is configured ([mqtt] or [uplink] in the file): a config
    # without either has nowhere to publish and must not report itself degraded for it
    if cfg.mqtt.enabled and cfg.uplink.enabled and {"mqtt", "uplink"} & cfg.model_fields_set:
        comps.append(Uplink(ctx))
    return comps


@dataclass
class Service:
    """A built service: run it with ``await service.supervisor.run()``."""

    ctx: Context
    supervisor: Supervisor

    def component(self, name: str) -> Component:
        return self.supervisor.component(name)


def build_service(config: Config, data_dir: Path, *, platform: Platform | None = None, simulated: bool = False,
                  config_path: Path | None = None, notifier: Notifier | None = None, demo: bool = False) -> Service:
    """The whole service from a config: context (on ``platform``, else the real one, or the
    simulated one when ``simulated``), components in start order, supervisor."""
    ctx = build_context(config, data_dir, platform=platform, simulated=simulated, config_path=config_path, demo=demo)
    holder: list[Supervisor] = []
    comps = build_components(ctx, lambda: holder[0] if holder else None)
    sup = Supervisor(ctx, comps, notifier)
    holder.append(sup)
    return Service(ctx, sup)


async def run_service(config: Config, data_dir: Path, *, platform: Platform | None = None, simulated: bool = False,
                      config_path: Path | None = None, notifier: Notifier | None = None,
                      demo: bool = False) -> Supervisor:
    service = build_service(config, data_dir, platform=platform, simulated=simulated, config_path=config_path,
                            notifier=notifier, demo=demo)
    try:
        await service.supervisor.run()
    finally:
        service.ctx.platform.close()
    return service.supervisor


def configure_logging(level: str) -> None:
    import sys

    fmt = "%(levelname)s %(name)s: %(message)s" if not sys.stderr.isatty() else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level), format=fmt)


LEFTOVER_BUDGET_S = 1.5


def run_to_exit(coro: Coroutine[Any, Any, Supervisor], cleanup: Callable[[], None] | None = None) -> int:
    """Run the service like asyncio.run, but never hang on the way out.

    asyncio.run cancels every task still alive and waits for them without a limit; one task
    stuck in a library that swallows cancellation (or an executor thread stuck in a driver)
    would keep the process alive until systemd's SIGKILL. The supervisor has already put the
    relays in their safe state and flushed the store by now, so after a short grace period
    the process leaves anyway (``cleanup`` runs first, e.g. the demo's broker is stopped).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = 1
    try:
        sup = loop.run_until_complete(coro)
        code = sup.exit_code  # EXIT_RESTART after e.g. ONVIF SystemReboot
    finally:
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in leftovers:
            t.cancel()
        clean = True
        if leftovers:
            _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_BUDGET_S))
            if pending:
                clean = False
                log.error("%d task(s) ignored cancellation (%s); exiting without them", len(pending),
                          ", ".join(sorted(t.get_name() for t in pending)))
        if clean:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), LEFTOVER_BUDGET_S))
            except TimeoutError:
                clean = False
                log.error("a worker thread did not finish within %.1f s; exiting without it", LEFTOVER_BUDGET_S)
        if not clean:
            if cleanup is not None:
                cleanup()
            logging.shutdown()
            os._exit(code)
        asyncio.set_event_loop(None)
        loop.close()
    return code


def main_run(config: Config, data_dir: Path, *, simulated: bool, config_path: Path | None) -> int:
    configure_logging(config.service.log_level)
    return run_to_exit(run_service(config, data_dir, simulated=simulated, config_path=config_path))
