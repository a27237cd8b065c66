"""Wiring: build the context and the components from a config, run the supervisor.

Components are added in start order: the store first (everything records into it), relays
next (safe state before anything can command them), producers and consumers, the web
server last (all routes registered). They stop in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .app import Context, CredentialsHolder, Supervisor
from .auth import HttpAuth
from .bus import Bus
from .component import Component
from .config import Config
from .metrics import Metrics
from .notify import Notifier
from .web import OPEN_PATHS_KEY, WebComponent, make_app

log = logging.getLogger("edge.service")


def build_context(config: Config, data_dir: Path, *, simulated: bool = False, config_path: Path | None = None) -> Context:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = CredentialsHolder(data_dir)
    auth = HttpAuth(creds.get)
    open_paths: set[str] = set()
    ctx = Context(
        config=config,
        data_dir=data_dir,
        bus=Bus(),
        metrics=Metrics(),
        credentials=creds,
        auth=auth,
        web=make_app(auth, open_paths),
        simulated=simulated,
        config_path=config_path,
    )
    ctx.extras[OPEN_PATHS_KEY] = open_paths
    if creds.created:
        log.warning("first start: generated device credentials in %s (show them with `edge credentials`)", data_dir)
    return ctx


def build_components(ctx: Context, supervisor_ref) -> list[Component]:
    from .relays import RelayService
    from .store.component import StoreComponent

    comps: list[Component] = [StoreComponent(ctx), RelayService(ctx)]
    comps += sensor_path_components(ctx)
    if ctx.config.video.enabled:
        from .video.component import VideoComponent

        comps.append(VideoComponent(ctx))
    comps.append(WebComponent(ctx, supervisor_ref))
    return comps


def sensor_path_components(ctx: Context) -> list[Component]:
    """Sensors in (MQTT/GPIO/Modbus + state), rules, uplink: after relays, before web."""
    from .rules import RulesEngine
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


async def run_service(config: Config, data_dir: Path, *, simulated: bool = False, config_path: Path | None = None,
                      notifier: Notifier | None = None, demo: bool = False) -> Supervisor:
    ctx = build_context(config, data_dir, simulated=simulated, config_path=config_path)
    ctx.extras["demo"] = demo  # `edge demo`: the sensor simulator runs
    holder: list[Supervisor] = []
    comps = build_components(ctx, lambda: holder[0] if holder else None)
    sup = Supervisor(ctx, comps, notifier)
    holder.append(sup)
    await sup.run()
    return sup


def configure_logging(level: str) -> None:
    import sys

    fmt = "%(levelname)s %(name)s: %(message)s" if not sys.stderr.isatty() else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level), format=fmt)


def main_run(config: Config, data_dir: Path, *, simulated: bool, config_path: Path | None) -> int:
    configure_logging(config.service.log_level)
    asyncio.run(run_service(config, data_dir, simulated=simulated, config_path=config_path))
    return 0
