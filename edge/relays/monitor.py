"""One relay board's health: its poll loop, reachable/unreachable, and putting its channels
where they belong (safe state at first contact, re-assertion after a recovery).

Each board has one poll loop reading its relays every ``poll_ms``. After ``fail_polls`` failed
polls (or failed commands) in a row the board is unreachable: logged once, on the transition,
published as ComponentHealth("relays/<board>"), and commands to it fail at once with the
reason (``unavailable``). The first answer after that is a recovery (logged once), then
follow/latch channels are re-asserted and the others put back to their safe state. Every
ordinary poll does the same for an idle channel found elsewhere than expected (a board that
rebooted between two polls), with a warning; a channel with a pulse running is left to its
pulse's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable

from hw.relays.base import BoardError, RelayBoard

from ..bus import Bus, ComponentHealth
from .audit import Recorder
from .channel import Channel
from .config import BoardConfig

log = logging.getLogger("edge.relays")

HEARTBEAT_S = 30.0  # ComponentHealth per board at least this often, changed or not


class BoardMonitor:
    """The health of board ``name`` (driver ``board``) and of its ``channels``."""

    def __init__(self, name: str, cfg: BoardConfig, board: RelayBoard, channels: list[Channel], bus: Bus,
                 recorder: Recorder):
        self.name = name
        self.cfg = cfg
        self.board = board
        self.channels = channels
        self.bus = bus
        self.recorder = recorder
        self.reachable: bool | None = None  # None until the first answer or the first verdict
        self.failures = 0
        self.last_error = ""
        self.last_ok = 0.0
        self.since = time.time()  # of the current reachable/unreachable period
        self.safe_applied = False
        self.last_health_pub = 0.0

    # ---- what commands ask --------------------------------------------------------------
    def unavailable(self) -> str:
        """Why a command to this board is not sent now ("" when it is)."""
        if self.reachable is False:
            return (f"board {self.name!r} is unreachable (since {time.strftime('%H:%M:%S', time.localtime(self.since))}: "
                    f"{self.last_error}); command not sent")
        if self.reachable is None:
            return f"board {self.name!r} has not answered yet; command not sent"
        return ""

    def command_failed(self, exc: BaseException) -> None:
        """A poll or a command failed: ``fail_polls`` in a row make the board unreachable."""
        self.failures += 1
        self.last_error = str(exc)
        if self.failures >= self.cfg.fail_polls and self.reachable is not False:
            self.mark_unreachable(str(exc))

    # ---- start and stop -------------------------------------------------------------------
    async def first_contact(self, apply_safe: bool) -> str:
        """Read the board at start (``apply_safe``: the service's first start) and put its
        channels in their safe state, or where they belong after a component restart."""
        try:
            states = await self.board.read()
        except BoardError as exc:
            self.mark_unreachable(str(exc), at_start=True)
            return f"{self.name}: UNREACHABLE ({exc}); safe state applied when it answers"
        self.mark_reachable()
        if apply_safe:
            await self.apply_safe_state("safe-state at start")
        else:
            await self.enforce(states, "component restart")
        return f"{self.name}: safe state" if apply_safe else f"{self.name}: ok"

    async def apply_safe_state(self, source: str) -> None:
        res = await asyncio.gather(*(ch.apply_safe(source) for ch in self.channels), return_exceptions=True)
        errors = [r for r in res if isinstance(r, BaseException)]
        if errors:
            self.command_failed(errors[0])
            log.error("relay board %s: safe state not applied to every channel: %s", self.name, errors[0])
        else:
            self.safe_applied = True

    async def safe_at_stop(self) -> None:
        """Every channel to its safe state in as few requests as the board takes (one FC15
        for a coil board that has it), once the commands already under way are done (each
        channel's lock is taken, so none lands after it); later commands are refused."""
        if not self.channels:
            return
        states = {ch.index: ch.safe for ch in self.channels}
        t0 = time.perf_counter()
        timeout = 2 * self.cfg.timeout_ms / 1000 + 0.5
        async with contextlib.AsyncExitStack() as held:
            try:
                async with asyncio.timeout(timeout):
                    for ch in self.channels:
                        await held.enter_async_context(ch.lock)
                    requests = await self.board.write_many(states)
            except (BoardError, TimeoutError) as exc:
                why = str(exc) or f"no answer within {timeout:.1f} s"
                log.error("relay board %s: safe state at stop failed: %s", self.name, why)
                for ch in self.channels:
                    ch.stopped(False, t0, f"safe-state at stop: {why}")
                return
            for ch in self.channels:
                ch.stopped(True, t0, f"safe-state at stop ({requests} request(s) for {len(states)} relays)")
        log.info("relay board %s: %d relays in their safe state (%d request(s), %.0f ms)", self.name, len(states),
                 requests, (time.perf_counter() - t0) * 1000)

    # ---- the poll loop ----------------------------------------------------------------------
    async def poll_loop(self, beat: Callable[[], None]) -> None:
        period = self.cfg.poll_ms / 1000
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            try:
                states = await self.board.read()
            except BoardError as exc:
                self.command_failed(exc)
            else:
                await self._poll_ok(states)
            beat()
            now = time.time()
            if now - self.last_health_pub >= HEARTBEAT_S:
                self.publish_health()
            await asyncio.sleep(max(0.0, period - (loop.time() - t0)))

    async def _poll_ok(self, states: list[bool]) -> None:
        was = self.reachable
        self.mark_reachable()
        if not self.safe_applied:  # not reached at start, or some safe-state writes failed
            await self.apply_safe_state("safe-state at first contact")
        else:
            await self.enforce(states, "after board recovery" if was is False else "poll")

    async def enforce(self, states: list[bool], why: str) -> None:
        """Every idle channel where it belongs, going by a fresh read (``Channel.enforce``);
        the first failed write counts against the board and ends the round."""
        for ch in self.channels:
            try:
                await ch.enforce(states, why)
            except BoardError as exc:
                self.command_failed(exc)
                return

    # ---- reachable / unreachable -----------------------------------------------------------
    def mark_reachable(self) -> None:
        self.failures = 0
        self.last_ok = time.time()
        if self.reachable is not True:
            if self.reachable is False:
                log.warning("relay board %s answers again (unreachable for %.1f s)", self.name, time.time() - self.since)
            self.reachable = True
            self.since = time.time()
            self.last_error = ""
            self.recorder.board_up(self.name, True)
            self.publish_health()

    def mark_unreachable(self, error: str, at_start: bool = False) -> None:
        self.reachable = False
        self.since = time.time()
        self.last_error = error
        self.recorder.board_up(self.name, False)
        if at_start:
            log.error("relay board %s does not answer at start: %s", self.name, error)
        else:
            log.error("relay board %s unreachable after %d failed polls: %s", self.name, self.failures, error)
        self.publish_health()

    def publish_health(self) -> None:
        self.last_health_pub = time.time()
        ok = self.reachable is not False
        detail = "reachable" if ok else f"unreachable: {self.last_error}"
        self.bus.publish(ComponentHealth(f"relays/{self.name}", ok, detail))
