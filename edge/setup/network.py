"""Changing the wired interface's addressing from the front panel, with roll-back.

``change()``: remember the current settings, apply the new ones, wait up to ``rollback_s``
for the new address to be up; if it is not, put the old settings back. ``write_to_config()``:
settings that came up are written back to the config file (comments kept; the shipped file
kept aside for a factory reset). The backends (real and simulated) are the platform's
(``hw.network``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from hw.network import NetSettings, NetStatus, NetworkBackend, NetworkError, SimulatedNetwork, is_up
from hw.system import keep_factory_copy

from .. import config as config_mod
from .. import paths

__all__ = ["ChangeOutcome", "NetSettings", "NetStatus", "NetworkBackend", "NetworkError", "SimulatedNetwork", "change",
           "is_up", "settings_from_config", "write_to_config"]

log = logging.getLogger("edge.setup.network")


@dataclass(frozen=True)
class ChangeOutcome:
    ok: bool
    message: str
    rolled_back: bool = False


async def change(backend: NetworkBackend, target: NetSettings, rollback_s: float, *,
                 poll_s: float = 0.5, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> ChangeOutcome:
    """Apply ``target``; roll back to the previous settings if it is not up within rollback_s."""
    try:
        before = (await backend.status()).settings
    except NetworkError as exc:
        return ChangeOutcome(False, str(exc))
    try:
        await backend.apply(target)
    except NetworkError as exc:
        log.warning("applying %s failed: %s", target.describe(), exc)
        await _restore(backend, before)
        return ChangeOutcome(False, f"not applied: {exc}", rolled_back=True)
    deadline = clock() + rollback_s
    while True:
        try:
            if is_up(await backend.status(), target):
                log.info("network now %s", target.describe())
                return ChangeOutcome(True, f"now {target.describe()}")
        except NetworkError as exc:
            log.info("network status: %s", exc)
        if clock() >= deadline:
            break
        await sleep(poll_s)
    log.warning("%s did not come up within %.0f s; rolling back to %s", target.describe(), rollback_s, before.describe())
    await _restore(backend, before)
    return ChangeOutcome(False, f"back to {before.describe()}", rolled_back=True)


async def _restore(backend: NetworkBackend, before: NetSettings) -> None:
    try:
        await backend.apply(before)
    except NetworkError as exc:
        log.error("roll-back to %s failed: %s", before.describe(), exc)


def settings_from_config(cfg: object) -> NetSettings:
    return NetSettings(getattr(cfg, "mode"), getattr(cfg, "address"), getattr(cfg, "gateway"), tuple(getattr(cfg, "dns")))


def write_to_config(config_path: Path | None, s: NetSettings) -> None:
    """Make ``s`` the configured addressing (blocking: run it in a thread)."""
    if config_path is None:
        return
    if Path(config_path).resolve() == paths.DEMO_CONFIG.resolve():
        log.info("demo: the demo config is part of the source tree, not written (network %s)", s.describe())
        return
    keep_factory_copy(Path(config_path))
    if s.mode == "static":
        config_mod.write_value(config_path, "network.address", s.address)
        config_mod.write_value(config_path, "network.gateway", s.gateway)
        config_mod.write_value(config_path, "network.dns", list(s.dns))
    config_mod.write_value(config_path, "network.mode", s.mode)
