"""The relay service: the component and the ``RelayControl`` everybody drives relays through
(the registry's ``interfaces.RELAYS``; the HTTP API in ``api.py`` too):

    relays.names() -> list[str]
    relays.describe() -> list[RelayInfo]
    relays.info(name) -> RelayInfo | None
    relays.state(name) -> bool | None
    await relays.pulse(name, ms, source="rules") -> CommandResult
    await relays.set(name, on, source="rules") -> CommandResult

Every command answers with a CommandResult (never an exception), goes to the audit table and
publishes ``RelayChanged`` on the bus when the relay changed. A board that is unreachable (or
not reached yet) refuses commands at once with the reason; a stopping service refuses them too.

This module only wires the parts: boards are built by ``boards.py``, each channel's rules are
``channel.py``, each board's health is ``monitor.py``, audit and metrics ``audit.py``.
Start: safe state on every reachable board before READY (``critical``; the relays start
first, before the store: they never wait for the disk); stop: the relays stop before every
other component (``stop_first``): every channel to its safe state, each board concurrently
in one bulk write where the board takes it, then the boards are released. A watcher finds a
relay still on past its pulse's end (the end path died or is stuck): the channel is faulted,
its end started again, and a fault alarm raised (``relay:<name>:fault``) until it clears.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Coroutine

from hw.modbus import ModbusLines
from hw.relays.base import BoardError

from ..bus import Alarm, RelayChanged
from ..component import Component, Health
from ..context import Context
from ..interfaces import RELAYS, CommandResult, RelayInfo, record, unknown_relay
from .api import add_routes
from .audit import Recorder
from .boards import Wiring, build_board
from .channel import CONFIRM_SLACK_S, Channel, onoff
from .config import MAX_PULSE_MS, RelaysConfig
from .monitor import BoardMonitor

if TYPE_CHECKING:
    from hw.relays.sim import SimServer

log = logging.getLogger("edge.relays")


class RelayService(Component):
    name = "relays"
    critical = True  # READY=1 only once every reachable relay is in its safe state
    stop_first = True  # at stop, the safe state before anything else stops
    WATCH_S = 0.25

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.config: RelaysConfig = ctx.config.relays
        self.wirings: dict[str, Wiring] = {}
        self.boards: dict[str, BoardMonitor] = {}  # by board name; ``.board`` is the driver
        self.channels: dict[str, Channel] = {}
        self.sim_servers: dict[str, SimServer] = {}  # the simulated boards' servers (demo, tests)
        self.pool: ModbusLines = ctx.platform.modbus  # the platform's lines, shared with Modbus inputs
        self.recorder = Recorder(ctx.metrics.registry, lambda: ctx.store)
        self.stopping = False
        self._started_once = False
        self.fault_alarms: dict[str, Alarm] = {}  # relay -> its fault alarm (active or cleared)
        ctx.registry.provide(RELAYS, self)
        add_routes(ctx.web, self)

    # ---- lifecycle -----------------------------------------------------------------
    def _build(self) -> None:
        events = _Events(self)
        for bname, bcfg in self.config.boards.items():
            cfgs = {n: c for n, c in self.config.channels.items() if c.board == bname}
            w = self.wirings[bname] = build_board(bname, bcfg, cfgs, self.ctx.platform)
            if w.sim is not None:
                self.sim_servers[bname] = w.sim
            chans = [Channel(n, c, w.driver, w.numbers[n], events, confirm_after_s=CONFIRM_SLACK_S)
                     for n, c in cfgs.items()]
            self.channels.update((ch.name, ch) for ch in chans)
            self.boards[bname] = BoardMonitor(bname, bcfg, w.driver, chans, self.ctx.bus, self.recorder)

    async def start(self) -> None:
        if not self.boards:
            self._build()
        for w in self.wirings.values():
            await w.attach()
        first = not self._started_once
        results = await asyncio.gather(*(b.first_contact(apply_safe=first) for b in self.boards.values()))
        self._started_once = True
        if self.boards:
            log.info("relays: %d boards, %d channels; %s", len(self.boards), len(self.channels), "; ".join(results))

    async def run(self) -> None:
        if self.boards:
            # each poll loop beats once per poll; a hung one withholds the systemd watchdog
            self.stall_timeout_s = max(10.0, 5 * max(b.cfg.poll_ms for b in self.boards.values()) / 1000)
        async with asyncio.TaskGroup() as tg:
            for b in self.boards.values():
                tg.create_task(b.poll_loop(self.beat), name=f"relays-poll:{b.name}")
            tg.create_task(self._watch_pulses(), name="relays-watch")

    async def _watch_pulses(self) -> None:
        """Every pulse ends: a relay still on past its end (its end path died or hangs) is
        faulted, its end started again, and the fault raised as an alarm."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.WATCH_S)
            now = loop.time()
            for ch in self.channels.values():
                late = ch.overdue(now)
                if late:
                    ch.restart_end(f"still on {late + 1:.1f} s past its pulse's end; the end is written again")

    async def stop(self) -> None:
        """Every channel to its safe state (each board concurrently), then release."""
        self.stopping = True
        for ch in self.channels.values():
            ch.stop_pulse_end()
        await self.cancel_spawned(0)
        await asyncio.gather(*(b.safe_at_stop() for b in self.boards.values()))
        for w in self.wirings.values():
            await w.detach()

    def health(self) -> Health:
        down = [f"board {b.name} unreachable ({b.last_error})" for b in self.boards.values() if b.reachable is False]
        faulted = [f"relay {c.name} faulted ({c.faulted})" for c in self.channels.values() if c.faulted]
        if down or faulted:
            return Health(False, "; ".join(down + faulted))
        return Health(True, f"{len(self.channels)} relays on {len(self.boards)} boards")

    # ---- RelayControl ---------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.config.channels)

    def state(self, name: str) -> bool | None:
        ch = self.channels.get(name)
        return None if ch is None else ch.on

    def info(self, name: str) -> RelayInfo | None:
        cfg = self.config.channels.get(name)
        if cfg is None:
            return None
        ch = self.channels.get(name)
        b = self.boards.get(cfg.board) if ch else None
        reachable = bool(b and b.reachable)
        detail = ch.faulted if ch and ch.faulted else ("" if reachable else (b.last_error if b else "") or "not started")
        return RelayInfo(name=name, board=cfg.board, channel=cfg.channel if cfg.channel is not None else (cfg.pin or 0),
                         mode=cfg.mode, on=ch.on if ch else None, reachable=reachable,
                         faulted=bool(ch and ch.faulted), safe_state=cfg.safe_state, label=cfg.label,
                         pulse_ms=cfg.pulse_ms, detail=detail)

    def describe(self) -> list[RelayInfo]:
        return [i for name in self.config.channels if (i := self.info(name)) is not None]

    async def pulse(self, name: str, ms: int | None = None, source: str = "") -> CommandResult:
        """Drive ``name`` away from its safe state for ``ms`` (default: its ``pulse_ms``)."""
        t0 = time.perf_counter()
        ch = self.channels.get(name)
        if ch is None:
            return self._result(name, f"pulse {ms} ms", t0, unknown_relay(name, self.names()), source)
        ms = ch.cfg.pulse_ms if ms is None else ms
        cmd = f"pulse {ms} ms"
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_PULSE_MS:
            return self._result(name, cmd, t0, f"pulse length must be 1..{MAX_PULSE_MS} ms, got {ms!r}", source)
        if err := self._unavailable(ch):
            return self._result(name, cmd, t0, err, source)
        try:
            detail = await ch.pulse(ms, source)
        except BoardError as exc:
            self.boards[ch.cfg.board].command_failed(exc)
            return self._result(name, cmd, t0, str(exc), source)
        return self._result(name, cmd, t0, "", source, detail=detail)

    async def set(self, name: str, on: bool, source: str = "") -> CommandResult:
        """Hold ``name`` on or off (latch/follow); on a pulse channel on = a pulse, off = end it."""
        t0 = time.perf_counter()
        cmd = f"set {onoff(bool(on))}"
        ch = self.channels.get(name)
        if ch is None:
            return self._result(name, cmd, t0, unknown_relay(name, self.names()), source)
        on = bool(on)
        if ch.pulses_for(on):
            return await self.pulse(name, ch.cfg.pulse_ms, source)
        ch.wish(on)
        if err := self._unavailable(ch):
            return self._result(name, cmd, t0, err, source)
        try:
            await ch.hold(on, source)
        except BoardError as exc:
            self.boards[ch.cfg.board].command_failed(exc)
            return self._result(name, cmd, t0, str(exc), source)
        return self._result(name, cmd, t0, "", source)

    # ---- helpers -------------------------------------------------------------------
    def fault_alarm(self, relay: str, faulted: bool) -> None:
        """Raise (or clear) the alarm of a relay whose pulse end failed, on the bus and in the store."""
        prev = self.fault_alarms.get(relay)
        if faulted == bool(prev and prev.active):
            return
        ch = self.channels[relay]
        label = ch.cfg.label or relay
        now = time.time()
        msg = f"relay {label}: {ch.faulted}" if faulted else f"relay {label}: pulse end written, fault cleared"
        ev = Alarm(f"relay:{relay}:fault", relay, faulted, "relay_fault", msg,
                   since=prev.since if (prev and not faulted) else now, ts=now)
        self.fault_alarms[relay] = ev
        self.ctx.bus.publish(ev)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("alarm", relay, {"alarm": ev.alarm, "active": faulted, "kind": ev.kind,
                                                       "message": msg, "since": ev.since}, ts=now))

    def _unavailable(self, ch: Channel) -> str:
        if self.stopping:
            return "the relay service is stopping"
        return self.boards[ch.cfg.board].unavailable()

    def _result(self, name: str, command: str, t0: float, error: str, source: str, *,
                detail: str = "") -> CommandResult:
        return self.recorder.result(name, command, t0, error, source, known=name in self.channels, detail=detail)


class _Events:
    """What the channels report (``channel.ChannelObserver``), delivered to the service's parts."""

    def __init__(self, svc: RelayService):
        self.svc = svc

    def switched(self, relay: str, on: bool, source: str) -> None:
        self.svc.ctx.bus.publish(RelayChanged(relay, on, source))

    def audit(self, relay: str, command: str, ok: bool, t0: float, detail: str = "") -> None:
        self.svc.recorder.audit(relay, command, ok, t0, detail)

    def fault_changed(self, relay: str, faulted: bool) -> None:
        self.svc.recorder.faulted(relay, faulted)
        self.svc.fault_alarm(relay, faulted)

    def end_write_failed(self, relay: str, exc: BaseException) -> None:
        self.svc.boards[self.svc.channels[relay].cfg.board].command_failed(exc)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> "asyncio.Task[None]":
        return self.svc.spawn(coro, name)
