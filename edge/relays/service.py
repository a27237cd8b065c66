"""The relay service: named relay channels on boards, commands that are never lost silently,
pulses that always end, safe state at start and stop, one health loop per board.

Used by everything that drives a relay, through the registry (``interfaces.RELAYS``):

    relays.names() -> list[str]
    relays.describe() -> list[RelayInfo]
    relays.state(name) -> bool | None
    await relays.pulse(name, ms, source="rules") -> CommandResult
    await relays.set(name, on, source="rules") -> CommandResult

Every command answers with a CommandResult (never an exception), goes to the audit table and
publishes ``RelayChanged`` on the bus when the relay changed.

Channel rules:

- Commands on one channel run one at a time (a lock per channel). A pulse's end is such a
  command too, so it can never interleave with a re-trigger.
- A pulse drives the channel away from its safe state for ``ms``. A re-trigger while it runs
  moves the end to the later of the two ends; it is never cut short by the earlier pulse.
- When the board can time the pulse itself (profile ``[pulse]``, e.g. Waveshare flash on/off),
  the pulse is ONE command to the board, so a crash or a lost link mid-pulse still ends it; the
  service checks the relay after the end and switches it back itself if the board did not.
  Otherwise the service times it; a failed end write is retried until it succeeds, and the
  channel is reported faulted meanwhile.
- ``set`` on a ``pulse`` channel: on = a pulse of the channel's ``pulse_ms``, off = end it now.
  On ``latch`` and ``follow`` channels it holds the state, and that state is re-asserted when
  the board comes back after being unreachable (``follow`` keeps the latest state asked even
  when the board was unreachable, so it mirrors its sensor after recovery).

Boards: each has one poll loop reading its relays every ``poll_ms``. After ``fail_polls``
failed polls (or failed commands) in a row the board is unreachable: logged once, on the
transition, published as ComponentHealth("relays/<board>"), and commands to it fail at once
with the reason. The first answer after that is a recovery (logged once), then follow/latch
channels are re-asserted and the others put back to their safe state. Every ordinary poll does
the same for an idle channel found elsewhere than expected (a board that rebooted between two
polls), with a warning; a channel with a pulse running is left to its pulse's end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from hw.modbus import LineSpec
from hw.relays.base import BoardError, RelayBoard
from hw.relays.gpio import GpioBoard, GpioChannel
from hw.relays.modbus import ModbusBoard
from hw.relays.profiles import get_profile
from hw.relays.sim import SimBoard, SimServer

from ..bus import ComponentHealth, RelayChanged
from ..component import Component, Health
from ..context import Context
from ..interfaces import RELAYS, CommandResult, RelayInfo, relay_board_line
from .config import MAX_PULSE_MS, BoardConfig, ChannelConfig, RelaysConfig

log = logging.getLogger("edge.relays")

HEARTBEAT_S = 30.0  # ComponentHealth per board at least this often, changed or not
OFF_RETRY_INITIAL_S = 0.1
OFF_RETRY_MAX_S = 0.5


@dataclass
class _Board:
    name: str
    cfg: BoardConfig
    board: RelayBoard
    reachable: bool | None = None  # None until the first answer or the first verdict
    failures: int = 0
    last_error: str = ""
    last_ok: float = 0.0
    since: float = field(default_factory=time.time)  # of the current reachable/unreachable period
    safe_applied: bool = False
    last_health_pub: float = 0.0


@dataclass
class _Channel:
    name: str
    cfg: ChannelConfig
    board: _Board
    index: int  # channel number on the board
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    on: bool | None = None
    pulse_until: float | None = None  # loop time the running pulse ends
    pulse_hw: bool = False
    end_task: asyncio.Task[None] | None = None
    faulted: str = ""
    desired: bool | None = None  # held state of follow/latch channels (re-asserted on recovery)
    mismatch: bool = False  # the last poll found it elsewhere than expected (logged once)

    @property
    def safe(self) -> bool:
        return self.cfg.safe_state == "on"


class RelayService(Component):
    name = "relays"
    critical = True  # READY=1 only once every reachable relay is in its safe state

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.config: RelaysConfig = ctx.config.relays
        self.boards: dict[str, _Board] = {}
        self.channels: dict[str, _Channel] = {}
        self.sim_servers: dict[str, SimServer] = {}
        self.pool = ctx.platform.modbus  # the platform's lines, shared with Modbus inputs
        self.stopping = False
        self._started_once = False
        r = ctx.metrics.registry
        self.m_latency = Histogram("edge_relay_command_seconds", "Relay command latency (call to board acknowledged)",
                                   ["result"], registry=r,
                                   buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.m_commands = Counter("edge_relay_commands", "Relay commands", ["relay", "result"], registry=r)
        self.m_board_up = Gauge("edge_relay_board_up", "1 while the relay board answers its polls", ["board"], registry=r)
        self.m_faulted = Gauge("edge_relay_faulted", "1 while a relay's pulse end could not be written", ["relay"], registry=r)
        ctx.registry.provide(RELAYS, self)
        from .api import add_routes

        add_routes(ctx.web, self)

    # ---- building boards -----------------------------------------------------------
    def _build(self) -> None:
        for bname, bcfg in self.config.boards.items():
            board: RelayBoard
            if bcfg.type == "gpio":
                chans = [c for c in self.config.channels.values() if c.board == bname]
                spec = [GpioChannel(c.pin or 0, c.active_high, c.safe_state == "on") for c in chans]
                board = GpioBoard(bname, spec, self.ctx.platform.pin_factory)
                rt = _Board(bname, bcfg, board)
                for i, (cname, c) in enumerate((n, c) for n, c in self.config.channels.items() if c.board == bname):
                    self.channels[cname] = _Channel(cname, c, rt, i + 1)
            else:
                assert bcfg.profile is not None
                profile = get_profile(bcfg.profile)
                timeout = bcfg.timeout_ms / 1000
                line = None  # a simulated board's line is made once its server listens
                if bcfg.type == "simulated":
                    self.sim_servers[bname] = SimServer({bcfg.device_id: SimBoard(profile, bcfg.channel_count)},
                                                        host=bcfg.host or "127.0.0.1", port=bcfg.port or 0,
                                                        framing=bcfg.framing)
                elif bcfg.type == "modbus_tcp":
                    spec = LineSpec("tcp", bcfg.host or "", bcfg.port or (4196 if bcfg.framing == "rtu" else 502),
                                    framing=bcfg.framing, timeout_s=timeout)
                else:
                    spec = LineSpec("serial", bcfg.device or "", framing="rtu", baudrate=bcfg.baudrate,
                                    parity=bcfg.parity, stopbits=bcfg.stopbits, timeout_s=timeout)
                if bcfg.type != "simulated":
                    line = self.pool.get(spec)
                    self.pool.publish(relay_board_line(bname), line, bcfg.device_id)
                board = ModbusBoard(bname, profile, line, bcfg.device_id, bcfg.channel_count)  # type: ignore[arg-type]
                rt = _Board(bname, bcfg, board)
                for cname, c in self.config.channels.items():
                    if c.board == bname:
                        self.channels[cname] = _Channel(cname, c, rt, c.channel or 0)
            self.boards[bname] = rt

    async def _start_sims(self) -> None:
        for bname, sim in self.sim_servers.items():
            if sim.server is not None:
                continue
            await sim.start()
            rt = self.boards[bname]
            board = rt.board
            assert isinstance(board, ModbusBoard)
            if board.line is None:
                board.line = self.pool.get(LineSpec("tcp", sim.host, sim.port, framing=rt.cfg.framing,
                                                    timeout_s=rt.cfg.timeout_ms / 1000))
                self.pool.publish(relay_board_line(bname), board.line, rt.cfg.device_id)
            log.info("simulated relay board %s (%s) listens on %s:%d", bname, rt.cfg.profile, sim.host, sim.port)

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if not self.boards:
            self._build()
        await self._start_sims()
        first = not self._started_once
        # gpio pins that cannot be claimed are a setup error: start() fails (READY withheld)
        for b in self.boards.values():
            if b.cfg.type == "gpio":
                await b.board.open()
        results = await asyncio.gather(*(self._first_contact(b, apply_safe=first) for b in self.boards.values()))
        self._started_once = True
        n_ch = len(self.channels)
        if self.boards:
            log.info("relays: %d boards, %d channels; %s", len(self.boards), n_ch, "; ".join(results))

    async def _first_contact(self, b: _Board, apply_safe: bool) -> str:
        try:
            states = await b.board.read()
        except BoardError as exc:
            self._mark_unreachable(b, str(exc), at_start=True)
            return f"{b.name}: UNREACHABLE ({exc}); safe state applied when it answers"
        self._mark_reachable(b)
        if apply_safe:
            await self._apply_safe_state(b, "safe-state at start")
        else:
            await self._enforce(b, states, "component restart")
        return f"{b.name}: safe state" if apply_safe else f"{b.name}: ok"

    async def _apply_safe_state(self, b: _Board, source: str) -> None:
        async def one(ch: _Channel) -> None:
            async with ch.lock:
                # a follow channel asked to mirror its sensor while its board was not reached
                # yet gets that state instead (the rules re-send only on the next change)
                held = ch.cfg.mode == "follow" and ch.desired is not None
                if not held:
                    ch.desired = None
                target = ch.desired if held else ch.safe
                cmd = f"{'follow' if held else 'safe'} {_onoff(target)}"
                t0 = time.perf_counter()
                try:
                    await b.board.write(ch.index, bool(target))
                except BoardError as exc:
                    self._audit(ch.name, cmd, False, t0, f"{source}: {exc}")
                    raise
                self._audit(ch.name, cmd, True, t0, source)
                self._cancel_pulse(ch)
                self._set_on(ch, bool(target), source)

        chans = [c for c in self.channels.values() if c.board is b]
        res = await asyncio.gather(*(one(c) for c in chans), return_exceptions=True)
        errors = [r for r in res if isinstance(r, BaseException)]
        if errors:
            self._command_failed(b, errors[0])
            log.error("relay board %s: safe state not applied to every channel: %s", b.name, errors[0])
        else:
            b.safe_applied = True

    async def run(self) -> None:
        if self.boards:
            # each poll loop beats once per poll; a hung one withholds the systemd watchdog
            self.stall_timeout_s = max(10.0, 5 * max(b.cfg.poll_ms for b in self.boards.values()) / 1000)
        async with asyncio.TaskGroup() as tg:
            for b in self.boards.values():
                tg.create_task(self._poll_loop(b), name=f"relays-poll:{b.name}")
            if not self.boards:
                tg.create_task(asyncio.Event().wait())

    async def stop(self) -> None:
        """Every channel to its safe state (each board concurrently), then release."""
        self.stopping = True
        for ch in self.channels.values():
            if ch.end_task is not None:
                ch.end_task.cancel()
        await self.cancel_spawned(0)

        async def board_safe(b: _Board) -> None:
            for ch in [c for c in self.channels.values() if c.board is b]:
                t0 = time.perf_counter()
                try:
                    await asyncio.wait_for(b.board.write(ch.index, ch.safe), b.cfg.timeout_ms / 1000 + 0.5)
                    self._audit(ch.name, f"safe {ch.cfg.safe_state}", True, t0, "safe-state at stop")
                    ch.pulse_until = None
                    self._set_on(ch, ch.safe, "safe-state at stop")
                except (BoardError, asyncio.TimeoutError) as exc:
                    self._audit(ch.name, f"safe {ch.cfg.safe_state}", False, t0, f"safe-state at stop: {exc}")
                    log.error("relay %s: safe state at stop failed: %s", ch.name, exc)
                    if b.reachable is False:
                        log.error("relay board %s is unreachable: its other relays are not put to their safe "
                                  "state at stop", b.name)
                        return  # do not spend the stop budget on timeouts

        await asyncio.gather(*(board_safe(b) for b in self.boards.values()))
        for b in self.boards.values():
            await b.board.close()
            if isinstance(b.board, ModbusBoard) and b.board.line is not None:
                self.pool.withdraw(relay_board_line(b.name))
                self.pool.release(b.board.line)
                b.board.line = None
        for sim in self.sim_servers.values():
            await sim.stop()

    def health(self) -> Health:
        down = [f"board {b.name} unreachable ({b.last_error})" for b in self.boards.values() if b.reachable is False]
        faulted = [f"relay {c.name} faulted ({c.faulted})" for c in self.channels.values() if c.faulted]
        if down or faulted:
            return Health(False, "; ".join(down + faulted))
        return Health(True, f"{len(self.channels)} relays on {len(self.boards)} boards")

    # ---- board health --------------------------------------------------------------
    async def _poll_loop(self, b: _Board) -> None:
        period = b.cfg.poll_ms / 1000
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            try:
                states = await b.board.read()
            except BoardError as exc:
                self._command_failed(b, exc)
            else:
                await self._poll_ok(b, states)
            self.beat()
            now = time.time()
            if now - b.last_health_pub >= HEARTBEAT_S:
                self._publish_health(b)
            await asyncio.sleep(max(0.0, period - (loop.time() - t0)))

    async def _poll_ok(self, b: _Board, states: list[bool]) -> None:
        was = b.reachable
        self._mark_reachable(b)
        if not b.safe_applied:  # not reached at start, or some safe-state writes failed
            await self._apply_safe_state(b, "safe-state at first contact")
        else:
            await self._enforce(b, states, "after board recovery" if was is False else "poll")

    async def _enforce(self, b: _Board, states: list[bool], why: str) -> None:
        """Put every idle channel of ``b`` where it should be, going by a fresh read: held
        (follow/latch) channels to their held state, the others to their safe state. Channels
        with a pulse running are left to their pulse's end task. After a recovery this is the
        re-assertion; on an ordinary poll it catches a relay that changed behind our back (a
        board that rebooted between two polls)."""
        for ch in [c for c in self.channels.values() if c.board is b]:
            if ch.pulse_until is not None or ch.lock.locked():
                continue  # a pulse or a command owns it right now
            async with ch.lock:
                if ch.pulse_until is not None:
                    continue
                target = ch.desired if ch.desired is not None else ch.safe
                actual = states[ch.index - 1] if 1 <= ch.index <= len(states) else None
                if actual == target:
                    ch.mismatch = False
                    self._set_on(ch, target, "board")
                    continue
                cmd = f"reassert {_onoff(target)}"
                t0 = time.perf_counter()
                try:
                    await b.board.write(ch.index, target)
                except BoardError as exc:
                    self._audit(ch.name, cmd, False, t0, f"{why}: {exc}")
                    self._command_failed(b, exc)
                    return
                self._audit(ch.name, cmd, True, t0, why)
                if why == "poll" and not ch.mismatch:
                    log.warning("relay %s was %s on board %s, expected %s: switched back", ch.name, _onoff(actual),
                                b.name, _onoff(target))
                elif why != "poll":
                    log.info("relay %s re-asserted %s (%s)", ch.name, _onoff(target), why)
                ch.mismatch = why == "poll"
                self._set_on(ch, target, "reassert")

    def _mark_reachable(self, b: _Board) -> None:
        b.failures = 0
        b.last_ok = time.time()
        if b.reachable is not True:
            if b.reachable is False:
                log.warning("relay board %s answers again (unreachable for %.1f s)", b.name, time.time() - b.since)
            b.reachable = True
            b.since = time.time()
            b.last_error = ""
            self.m_board_up.labels(b.name).set(1)
            self._publish_health(b)

    def _command_failed(self, b: _Board, exc: BaseException) -> None:
        b.failures += 1
        b.last_error = str(exc)
        if b.failures >= b.cfg.fail_polls and b.reachable is not False:
            self._mark_unreachable(b, str(exc))

    def _mark_unreachable(self, b: _Board, error: str, at_start: bool = False) -> None:
        b.reachable = False
        b.since = time.time()
        b.last_error = error
        self.m_board_up.labels(b.name).set(0)
        if at_start:
            log.error("relay board %s does not answer at start: %s", b.name, error)
        else:
            log.error("relay board %s unreachable after %d failed polls: %s", b.name, b.failures, error)
        self._publish_health(b)

    def _publish_health(self, b: _Board) -> None:
        b.last_health_pub = time.time()
        ok = b.reachable is not False
        detail = "reachable" if ok else f"unreachable: {b.last_error}"
        self.ctx.bus.publish(ComponentHealth(f"relays/{b.name}", ok, detail))

    # ---- the public API ------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.config.channels)

    def state(self, name: str) -> bool | None:
        ch = self.channels.get(name)
        return None if ch is None else ch.on

    def describe(self) -> list[RelayInfo]:
        out = []
        for name, cfg in self.config.channels.items():
            ch = self.channels.get(name)
            b = ch.board if ch else None
            reachable = bool(b and b.reachable)
            detail = ch.faulted if ch and ch.faulted else ("" if reachable else (b.last_error if b else "") or "not started")
            out.append(RelayInfo(name=name, board=cfg.board, channel=cfg.channel if cfg.channel is not None else (cfg.pin or 0),
                                 mode=cfg.mode, on=ch.on if ch else None, reachable=reachable,
                                 faulted=bool(ch and ch.faulted), safe_state=cfg.safe_state, label=cfg.label,
                                 pulse_ms=cfg.pulse_ms, detail=detail))
        return out

    def describe_dicts(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in self.describe()]

    async def pulse(self, name: str, ms: int | None = None, source: str = "") -> CommandResult:
        """Drive ``name`` away from its safe state for ``ms`` (default: its ``pulse_ms``)."""
        t0 = time.perf_counter()
        ch = self.channels.get(name)
        if ch is None:
            return self._result(name, f"pulse {ms} ms", t0, self._unknown(name), source)
        ms = ch.cfg.pulse_ms if ms is None else ms
        cmd = f"pulse {ms} ms"
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_PULSE_MS:
            return self._result(name, cmd, t0, f"pulse length must be 1..{MAX_PULSE_MS} ms, got {ms!r}", source)
        if err := self._unavailable(ch):
            return self._result(name, cmd, t0, err, source)
        async with ch.lock:
            try:
                detail = await self._do_pulse(ch, ms, source)
            except BoardError as exc:
                self._command_failed(ch.board, exc)
                return self._result(name, cmd, t0, str(exc), source)
        return self._result(name, cmd, t0, "", source, detail=detail)

    async def set(self, name: str, on: bool, source: str = "") -> CommandResult:
        """Hold ``name`` on or off (latch/follow); on a pulse channel on = a pulse, off = end it."""
        t0 = time.perf_counter()
        cmd = f"set {_onoff(bool(on))}"
        ch = self.channels.get(name)
        if ch is None:
            return self._result(name, cmd, t0, self._unknown(name), source)
        on = bool(on)
        if ch.cfg.mode == "pulse" and on != ch.safe:
            return await self.pulse(name, ch.cfg.pulse_ms, source)
        if ch.cfg.mode == "follow":
            ch.desired = on  # mirrors its sensor: the latest wish is re-asserted after a recovery
        if err := self._unavailable(ch):
            return self._result(name, cmd, t0, err, source)
        async with ch.lock:
            try:
                await ch.board.board.write(ch.index, on)
            except BoardError as exc:
                # a running pulse keeps its end task (and its retries): nothing was changed
                self._command_failed(ch.board, exc)
                return self._result(name, cmd, t0, str(exc), source)
            self._cancel_pulse(ch)
            if ch.cfg.mode != "pulse":
                ch.desired = on
            ch.faulted = ""
            self.m_faulted.labels(name).set(0)
            self._set_on(ch, on, source)
        return self._result(name, cmd, t0, "", source)

    # ---- pulses --------------------------------------------------------------------
    async def _do_pulse(self, ch: _Channel, ms: int, source: str) -> str:
        loop = asyncio.get_running_loop()
        level = not ch.safe
        end = loop.time() + ms / 1000
        if ch.pulse_until is not None and ch.pulse_until >= end and ch.on == level and not ch.faulted:
            return "within a running pulse that ends later"
        board = ch.board.board
        extended = ch.pulse_until is not None
        if board.can_time(ms, level):
            await board.timed_pulse(ch.index, ms, level)
            ch.pulse_hw = True
        else:
            await board.write(ch.index, level)
            ch.pulse_hw = False
        ch.pulse_until = end
        ch.desired = None
        if ch.end_task is not None:
            ch.end_task.cancel()
        ch.end_task = self.spawn(self._end_pulse(ch, end), f"relay-pulse-end:{ch.name}")
        self._set_on(ch, level, source)
        how = "board-timed" if ch.pulse_hw else "service-timed"
        return f"{how}{', extends the running pulse' if extended else ''}"

    def _cancel_pulse(self, ch: _Channel) -> None:
        """Forget the running pulse (caller holds the lock and writes the new state)."""
        if ch.end_task is not None and ch.end_task is not asyncio.current_task():
            ch.end_task.cancel()
        ch.end_task = None
        ch.pulse_until = None

    async def _end_pulse(self, ch: _Channel, end: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, end - loop.time()))
        board = ch.board.board
        if ch.pulse_until != end:
            return
        # a board-timed pulse whose end cannot be checked (link lost) is most likely over: the
        # safe state is still written once the board answers, but the channel is not faulted
        unconfirmed = False
        if ch.pulse_hw:
            # the board switched it back by itself; check that it did
            self._set_on(ch, ch.safe, "pulse end (board-timed)")
            await asyncio.sleep(0.1 + ch.board.cfg.timeout_ms / 1000)
            async with ch.lock:
                if ch.pulse_until != end:
                    return
                try:
                    states = await board.read()
                    if states[ch.index - 1] == ch.safe:
                        ch.pulse_until = None
                        ch.end_task = None
                        return
                    log.error("relay %s: board did not end its timed pulse; the service switches it back", ch.name)
                except BoardError as exc:
                    unconfirmed = True
                    self._command_failed(ch.board, exc)
                    log.warning("relay %s: cannot confirm the board-timed pulse ended (%s); the safe state is "
                                "written again once the board answers", ch.name, exc)
        delay = OFF_RETRY_INITIAL_S
        attempts = 0
        t0 = time.perf_counter()
        while True:
            async with ch.lock:
                if ch.pulse_until != end:
                    return
                try:
                    await board.write(ch.index, ch.safe)
                except BoardError as exc:
                    attempts += 1
                    self._command_failed(ch.board, exc)
                    if not ch.faulted and not unconfirmed:
                        ch.faulted = f"pulse end not written, retrying: {exc}"
                        self.m_faulted.labels(ch.name).set(1)
                        log.error("relay %s: FAULT: pulse end write failed, retrying until it succeeds: %s", ch.name, exc)
                        self._audit(ch.name, "pulse end", False, t0, str(exc))
                else:
                    ch.pulse_until = None
                    ch.end_task = None
                    if ch.faulted:
                        log.warning("relay %s: pulse end written after %d failed attempts", ch.name, attempts)
                        self._audit(ch.name, "pulse end", True, t0, f"after {attempts} failed attempts")
                        ch.faulted = ""
                        self.m_faulted.labels(ch.name).set(0)
                    self._set_on(ch, ch.safe, "pulse end")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, OFF_RETRY_MAX_S)

    # ---- helpers -------------------------------------------------------------------
    def _unknown(self, name: str) -> str:
        return f"unknown relay {name!r} (relays: {', '.join(self.names()) or 'none configured'})"

    def _unavailable(self, ch: _Channel) -> str:
        if self.stopping:
            return "the relay service is stopping"
        b = ch.board
        if b.reachable is False:
            return (f"board {b.name!r} is unreachable (since {time.strftime('%H:%M:%S', time.localtime(b.since))}: "
                    f"{b.last_error}); command not sent")
        if b.reachable is None:
            return f"board {b.name!r} has not answered yet; command not sent"
        return ""

    def _set_on(self, ch: _Channel, on: bool, source: str) -> None:
        if ch.on != on:
            ch.on = on
            self.ctx.bus.publish(RelayChanged(ch.name, on, source))

    def _result(self, name: str, command: str, t0: float, error: str, source: str, *, detail: str = "",
                audit: bool = True) -> CommandResult:
        ok = not error
        latency_ms = (time.perf_counter() - t0) * 1000
        self.m_latency.labels("ok" if ok else "failed").observe(latency_ms / 1000)
        if name in self.channels:
            self.m_commands.labels(name, "ok" if ok else "failed").inc()
        note = "; ".join(x for x in (f"source={source}" if source else "", detail, error) if x)
        if audit:
            self._audit(name, command, ok, t0, note, latency_ms)
        if ok:
            log.info("relay %s: %s ok in %.1f ms (%s)", name, command, latency_ms, note)
        else:
            log.warning("relay %s: %s FAILED in %.1f ms: %s", name, command, latency_ms, note)
        return CommandResult(ok, name, command, round(latency_ms, 3), error)

    def _audit(self, relay: str, command: str, ok: bool, t0: float, detail: str = "", latency_ms: float | None = None) -> None:
        store = self.ctx.store
        if store is None:
            return  # no store (tests of the relays alone)
        if latency_ms is None:
            latency_ms = (time.perf_counter() - t0) * 1000
        try:
            fut = store.audit_relay(relay, command, "ok" if ok else "failed", round(latency_ms, 3), detail)
        except Exception as exc:  # noqa: BLE001 - the relay path never fails because of the disk
            log.error("relay audit not recorded (%s %s): %s", relay, command, exc)
            return
        if isinstance(fut, asyncio.Future):
            fut.add_done_callback(_log_audit_failure)


def _log_audit_failure(fut: "asyncio.Future[Any]") -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("relay audit not recorded: %s", fut.exception())


def _onoff(on: bool | None) -> str:
    return "unknown" if on is None else ("on" if on else "off")
