"""One relay channel's rules: the state machine behind every command, on any ``RelayBoard``.

It knows nothing of the bus, the store, metrics or board health: it tells a
``ChannelObserver`` what happened (the relay switched, a command to audit, the pulse end's
fault, a pulse-end write that failed) and raises ``BoardError`` to its caller for a command
that failed. ``tests/test_relay_channel.py`` drives it against ``hw.relays.memory.MemoryBoard``.

Rules:

- Commands on one channel run one at a time (``lock``). A pulse's end is such a command too,
  so it can never interleave with a re-trigger.
- A pulse drives the channel away from its safe state for ``ms``. A re-trigger while it runs
  moves the end to the later of the two ends; it is never cut short by the earlier pulse.
- Every pulse ends, in one place (``_end_pulse``). When the board can time the pulse itself
  (profile ``[pulse]``), the pulse is ONE command to the board, so a crash or a lost link
  mid-pulse still ends it; the channel reads the relay back just after the board's end and
  switches it back itself if the board did not; "off" is published only once the relay is
  known off. Otherwise the channel times it. Whatever fails in the end path (a board error or
  anything unexpected), the off is retried until it is written and the channel is faulted
  meanwhile (the service raises an alarm). ``overdue`` lets a watcher find a relay still on
  past its end whose end path is gone.
- ``set`` on a ``pulse`` channel: on = a pulse of the channel's ``pulse_ms`` (the caller's
  job: ``pulses_for(on)``), off = end it now. On ``latch`` and ``follow`` channels it holds the
  state (``desired``), which the board's monitor re-asserts (``enforce``); a ``follow``
  channel keeps the latest state asked even when the command could not be sent (``wish``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Coroutine, Protocol

from hw.relays.base import BoardError, RelayBoard

from .config import ChannelConfig

log = logging.getLogger("edge.relays")

OFF_RETRY_INITIAL_S = 0.1
OFF_RETRY_MAX_S = 0.5
# a board-timed pulse is read back this long after the board's own end (its timer's slack)
CONFIRM_SLACK_S = 0.1
# a pulse still not ended this long after its end (and its read-back) is overdue
OVERDUE_S = 1.0


class ChannelObserver(Protocol):
    """What a channel reports to its owner (the relay service)."""

    def switched(self, relay: str, on: bool, source: str) -> None:
        """The relay's known state changed (published as ``RelayChanged``)."""

    def audit(self, relay: str, command: str, ok: bool, t0: float, detail: str = "") -> None:
        """A command the channel made on its own (safe state, re-assertion, pulse end)."""

    def fault_changed(self, relay: str, faulted: bool) -> None:
        """The channel became faulted (its pulse end cannot be written) or is clear again."""

    def end_write_failed(self, relay: str, exc: BaseException) -> None:
        """A pulse end (or its check) failed on the board: counts against the board's health."""

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> "asyncio.Task[None]":
        """Run the pulse's end as a background task (cancelled when the service stops)."""
        ...


def onoff(on: bool | None) -> str:
    return "unknown" if on is None else ("on" if on else "off")


class Channel:
    """A named relay: channel ``index`` (from 1) of ``board``, configured by ``cfg``.

    ``confirm_after_s``: how long after a board-timed pulse's end (as the board times it:
    from when it acknowledged the command) the relay is read back."""

    def __init__(self, name: str, cfg: ChannelConfig, board: RelayBoard, index: int, observer: ChannelObserver,
                 *, confirm_after_s: float = CONFIRM_SLACK_S):
        self.name = name
        self.cfg = cfg
        self.board = board
        self.index = index
        self.observer = observer
        self.confirm_after_s = confirm_after_s
        self.lock = asyncio.Lock()
        self.on: bool | None = None
        self.pulse_until: float | None = None  # loop time the running pulse ends
        self.pulse_hw = False  # the running pulse is timed by the board
        self.hw_end = 0.0  # loop time the board ends it (from its acknowledgement of the command)
        self.end_task: asyncio.Task[None] | None = None
        self.faulted = ""
        self.desired: bool | None = None  # held state of follow/latch channels (re-asserted on recovery)
        self.mismatch = False  # the last poll found it elsewhere than expected (logged once)
        self.closed = False  # the service stopped: nothing more is written (set under the lock)

    @property
    def safe(self) -> bool:
        return self.cfg.safe_state == "on"

    @property
    def busy(self) -> bool:
        """A pulse or a command owns the channel right now."""
        return self.pulse_until is not None or self.lock.locked()

    # ---- commands (the caller audits them and counts their failures) ---------------------
    def pulses_for(self, on: bool) -> bool:
        """Whether ``set(on)`` means a pulse of ``pulse_ms`` (a pulse channel asked away from safe)."""
        return self.cfg.mode == "pulse" and on != self.safe

    def wish(self, on: bool) -> None:
        """Remember what a follow channel was asked, sent or not: it mirrors its sensor, and
        the latest wish is what is re-asserted after a recovery."""
        if self.cfg.mode == "follow":
            self.desired = on

    def _check_open(self) -> None:
        if self.closed:  # a command that waited for the lock while the service stopped
            raise BoardError("the relay service is stopping; command not sent")

    async def pulse(self, ms: int, source: str) -> str:
        """Away from the safe state for ``ms`` (or extend the running pulse); a detail for the audit."""
        async with self.lock:
            self._check_open()
            loop = asyncio.get_running_loop()
            level = not self.safe
            end = loop.time() + ms / 1000
            if self.pulse_until is not None and self.pulse_until >= end and self.on == level and not self.faulted:
                return "within a running pulse that ends later"
            extended = self.pulse_until is not None
            if self.board.can_time(ms, level):
                await self.board.timed_pulse(self.index, ms, level)
                self.pulse_hw = True
                # the board started its timer before it answered: it ends by then at the latest
                self.hw_end = loop.time() + ms / 1000
            else:
                await self.board.write(self.index, level)
                self.pulse_hw = False
            self.pulse_until = end
            self.desired = None
            if self.end_task is not None:
                self.end_task.cancel()
            self.end_task = self.observer.spawn(self._end_pulse(end), f"relay-pulse-end:{self.name}")
            self._switched(level, source)
            how = "board-timed" if self.pulse_hw else "service-timed"
            return f"{how}{', extends the running pulse' if extended else ''}"

    async def hold(self, on: bool, source: str) -> None:
        """Switch to ``on`` and hold it (a pulse channel: end its pulse now)."""
        async with self.lock:
            self._check_open()
            # on failure a running pulse keeps its end task (and its retries): nothing changed
            await self.board.write(self.index, on)
            self._forget_pulse()
            if self.cfg.mode != "pulse":
                self.desired = on
            self.faulted = ""
            self.observer.fault_changed(self.name, False)
            self._switched(on, source)

    # ---- what the board's monitor asks ---------------------------------------------------
    async def apply_safe(self, source: str) -> None:
        """The safe state (at start, at first contact). A follow channel asked to mirror its
        sensor while its board was not reached yet gets that state instead (the rules re-send
        only on the next change). Audited; a failure raises."""
        async with self.lock:
            self._check_open()
            held = self.cfg.mode == "follow" and self.desired is not None
            if not held:
                self.desired = None
            target = bool(self.desired if held else self.safe)
            cmd = f"{'follow' if held else 'safe'} {onoff(target)}"
            t0 = time.perf_counter()
            try:
                await self.board.write(self.index, target)
            except BoardError as exc:
                self.observer.audit(self.name, cmd, False, t0, f"{source}: {exc}")
                raise
            self.observer.audit(self.name, cmd, True, t0, source)
            self._forget_pulse()
            self._switched(target, source)

    async def enforce(self, states: list[bool], why: str) -> None:
        """Put the idle channel where it should be, going by a fresh read of the board: a held
        state (follow/latch) or the safe state. A channel with a pulse running is left to its
        pulse's end. After a recovery this is the re-assertion; on an ordinary poll it catches
        a relay that changed behind our back (a board that rebooted between two polls).
        Audited; a failed write raises."""
        if self.busy:
            return
        async with self.lock:
            if self.pulse_until is not None or self.closed:
                return
            target = self.desired if self.desired is not None else self.safe
            actual = states[self.index - 1] if 1 <= self.index <= len(states) else None
            if actual == target:
                self.mismatch = False
                self._switched(target, "board")
                return
            cmd = f"reassert {onoff(target)}"
            t0 = time.perf_counter()
            try:
                await self.board.write(self.index, target)
            except BoardError as exc:
                self.observer.audit(self.name, cmd, False, t0, f"{why}: {exc}")
                raise
            self.observer.audit(self.name, cmd, True, t0, why)
            if why == "poll" and not self.mismatch:
                log.warning("relay %s was %s on board %s, expected %s: switched back", self.name, onoff(actual),
                            self.board.name, onoff(target))
            elif why != "poll":
                log.info("relay %s re-asserted %s (%s)", self.name, onoff(target), why)
            self.mismatch = why == "poll"
            self._switched(target, "reassert")

    def overdue(self, now: float) -> float:
        """Seconds this channel's running pulse is past its end (with the read-back and some
        slack), 0 when none is; the watcher acts on it."""
        if self.pulse_until is None:
            return 0.0
        end = max(self.pulse_until, self.hw_end + self.confirm_after_s if self.pulse_hw else 0.0)
        late = now - end - OVERDUE_S
        return late if late > 0 else 0.0

    def restart_end(self, why: str) -> None:
        """The watcher found the pulse overdue: fault the channel (alarm), and start its end
        again if the end path is gone."""
        if self.pulse_until is None:
            return
        self._fault(why)
        if self.end_task is None or self.end_task.done():
            self.end_task = self.observer.spawn(self._write_end(self.pulse_until, False),
                                                f"relay-pulse-end:{self.name}")

    def stop_pulse_end(self) -> None:
        """The service stops: the pulse's end is the stop's safe state now."""
        if self.end_task is not None:
            self.end_task.cancel()

    def stopped(self, ok: bool, t0: float, detail: str) -> None:
        """The safe state at stop was written (``ok``) or not, by the board's monitor (one
        request for the whole board where it can), holding this channel's lock."""
        self.closed = True
        self.observer.audit(self.name, f"safe {self.cfg.safe_state}", ok, t0, detail)
        if ok:
            self.pulse_until = None
            self._switched(self.safe, "safe-state at stop")

    # ---- the end of a pulse -----------------------------------------------------------------
    def _forget_pulse(self) -> None:
        """Forget the running pulse (the caller holds the lock and writes the new state)."""
        if self.end_task is not None and self.end_task is not asyncio.current_task():
            self.end_task.cancel()
        self.end_task = None
        self.pulse_until = None

    async def _end_pulse(self, end: float) -> None:
        """Every pulse ends here: at loop time ``end``, unless a re-trigger moved the end
        (``pulse_until`` changed) or a command took the channel over."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, end - loop.time()))
        if self.pulse_until != end:
            return
        # a board-timed pulse whose end cannot be checked (link lost) is most likely over: the
        # safe state is still written once the board answers, but the channel is not faulted
        unconfirmed = False
        if self.pulse_hw:
            # the board switches it back by itself: check that it did before saying "off"
            await asyncio.sleep(max(0.0, self.hw_end + self.confirm_after_s - loop.time()))
            try:
                async with self.lock:
                    if self.pulse_until != end:
                        return
                    states = await self.board.read()
                    if states[self.index - 1] == self.safe:
                        self.pulse_until = None
                        self.end_task = None
                        self._switched(self.safe, "pulse end (board-timed)")
                        return
                log.error("relay %s: board did not end its timed pulse; the service switches it back", self.name)
            except asyncio.CancelledError:
                raise
            except BoardError as exc:
                # the link is lost, not the board's timer: it ended the pulse by itself (what a
                # board-timed pulse is for), so it counts as off; the write below makes sure
                unconfirmed = True
                self._observe(self.observer.end_write_failed, self.name, exc)
                log.warning("relay %s: cannot confirm the board-timed pulse ended (%s); the safe state is "
                            "written again once the board answers", self.name, exc)
                self._switched(self.safe, "pulse end (board-timed, not confirmed: link lost)")
            except Exception as exc:  # noqa: BLE001 - a bug in the check must not leave the relay on
                log.exception("relay %s: checking the board-timed pulse end failed", self.name)
                self._fault(f"pulse end check failed: {type(exc).__name__}: {exc}")
        await self._write_end(end, unconfirmed)

    async def _write_end(self, end: float, unconfirmed: bool) -> None:
        """Write the safe state until it is written (or the pulse is superseded). Any failure
        faults the channel (a board error after an unconfirmed board-timed end does not)."""
        delay = OFF_RETRY_INITIAL_S
        attempts = 0
        t0 = time.perf_counter()
        while True:
            try:
                async with self.lock:
                    if self.pulse_until != end:
                        return
                    await self.board.write(self.index, self.safe)
                    self.pulse_until = None
                    if self.end_task is asyncio.current_task():
                        self.end_task = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever fails, the off is tried again
                attempts += 1
                if isinstance(exc, BoardError):
                    self._observe(self.observer.end_write_failed, self.name, exc)
                    why = f"pulse end not written, retrying: {exc}"
                else:
                    if attempts == 1:
                        log.exception("relay %s: the pulse end failed unexpectedly", self.name)
                    why = f"pulse end failed, retrying: {type(exc).__name__}: {exc}"
                if not unconfirmed or not isinstance(exc, BoardError):
                    if self._fault(why):
                        self._observe(self.observer.audit, self.name, "pulse end", False, t0, str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, OFF_RETRY_MAX_S)
                continue
            if self.faulted:
                log.warning("relay %s: pulse end written after %d failed attempts", self.name, attempts)
                self._observe(self.observer.audit, self.name, "pulse end", True, t0,
                              f"after {attempts} failed attempts")
                self.faulted = ""
                self._observe(self.observer.fault_changed, self.name, False)
            self._switched(self.safe, "pulse end")
            return

    def _fault(self, why: str) -> bool:
        """Mark the channel faulted (True when it was not already)."""
        if self.faulted:
            return False
        self.faulted = why
        log.error("relay %s: FAULT: %s", self.name, why)
        self._observe(self.observer.fault_changed, self.name, True)
        return True

    def _observe(self, fn: Any, *args: Any) -> None:
        """Tell the observer; its failure is logged, never stops a pulse's end."""
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            log.exception("relay %s: reporting to the relay service failed", self.name)

    def _switched(self, on: bool, source: str) -> None:
        if self.on != on:
            self.on = on
            self._observe(self.observer.switched, self.name, on, source)
