"""What the front panel's actions do: one handler per action type (``HANDLERS``), so a new
action is a new row.

A handler gets the panel (``Panel``: what the actions act on; the component is one) and the
action, and answers what the screen shows afterwards: ``(title, message)``, or ``("", "")``
for nothing (back to where the person was). ``perform()`` turns a failure into a "Failed"
result, so the menu always gets an answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Protocol

from hw.network import NetworkBackend
from hw.system import SystemControl

from .. import credentials as credentials_mod
from ..interfaces import ALARMS, RELAYS
from .actions import (AckAlarm, AcknowledgeCredentials, Action, ApplyNetwork, FactoryReset, Pulse, Reboot,
                      RotateCredentials)
from .network import change, write_to_config
from .views import MenuData

log = logging.getLogger("edge.setup")

Outcome = tuple[str, str]  # (title, message) of the result screen; ("", "") for none


class Panel(Protocol):
    """What the actions act on."""

    ctx: Any  # edge.context.Context
    cfg: Any  # the [lcd] section (relay_test_pulse_ms)
    data: MenuData
    network: NetworkBackend
    system: SystemControl


async def acknowledge_credentials(p: Panel, a: AcknowledgeCredentials) -> Outcome:
    await asyncio.to_thread(credentials_mod.acknowledge, p.ctx.data_dir)
    p.ctx.credentials.reload()
    log.info("installer confirmed the credentials were noted")
    return "", ""


async def rotate_credentials(p: Panel, a: RotateCredentials) -> Outcome:
    await asyncio.to_thread(credentials_mod.rotate, p.ctx.data_dir)
    p.ctx.credentials.reload()
    log.warning("credentials rotated from the front panel")
    return "", ""  # the new password is shown until confirmed


async def pulse(p: Panel, a: Pulse) -> Outcome:
    relays = p.ctx.registry.get(RELAYS)
    if relays is None:
        return a.relay, "no relay service"
    res = await relays.pulse(a.relay, p.cfg.relay_test_pulse_ms, source="front-panel")
    if res.ok:
        return a.relay, f"pulsed OK {res.latency_ms:.0f}ms"
    return a.relay, f"FAILED {res.error}"


async def ack_alarm(p: Panel, a: AckAlarm) -> Outcome:
    view = p.data.alarms.get(a.alarm)
    if view is not None:
        view.acked = True
    alarms = p.ctx.registry.get(ALARMS)  # the rules record it and tell everyone on the bus
    if alarms is not None:
        alarms.acknowledge(a.alarm, "front-panel")
    return "", ""


async def apply_network(p: Panel, a: ApplyNetwork) -> Outcome:
    outcome = await change(p.network, a.settings, p.ctx.config.network.rollback_s)
    if not outcome.ok:
        return "Rolled back" if outcome.rolled_back else "Network failed", outcome.message
    await asyncio.to_thread(write_to_config, p.ctx.config_path, a.settings)
    p.data.network = a.settings
    if a.settings.mode == "static":
        p.data.ip = a.settings.address.split("/")[0]
    return "Network OK", outcome.message


async def reboot(p: Panel, a: Reboot) -> Outcome:
    await p.system.reboot()
    return "", ""


async def factory_reset(p: Panel, a: FactoryReset) -> Outcome:
    log.warning("factory reset from the front panel")
    await p.system.factory_reset()
    return "", ""


Handler = Callable[[Panel, Any], Awaitable[Outcome]]

HANDLERS: dict[type[Action], Handler] = {
    AcknowledgeCredentials: acknowledge_credentials,
    RotateCredentials: rotate_credentials,
    Pulse: pulse,
    AckAlarm: ack_alarm,
    ApplyNetwork: apply_network,
    Reboot: reboot,
    FactoryReset: factory_reset,
}


async def perform(p: Panel, action: Action) -> Outcome:
    """Run ``action``'s handler; a failure (or an action without one) is shown, not raised."""
    try:
        handler = HANDLERS.get(type(action))
        if handler is None:
            raise ValueError(f"unknown action {action!r}")
        return await handler(p, action)
    except Exception as exc:  # noqa: BLE001 - show it, keep the menu alive
        log.exception("front panel action %s failed", action)
        return "Failed", f"{type(exc).__name__}: {exc}"
