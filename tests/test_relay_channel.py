"""The channel rules alone (edge/relays/channel.py), against an in-memory board
(hw/relays/memory.py): no bus, no store, no metrics, no Modbus. Pulse lengths are measured on
the board's relay history."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.relays.channel import Channel
from edge.relays.config import ChannelConfig
from hw.relays.base import BoardError, RelayBoard
from hw.relays.memory import MemoryBoard

from .relay_peers import pulses, wait_for

TOL_MS = 20
SERVICE_TIMED = "generic-coils"  # no [pulse] in the profile: the channel times the pulse
BOARD_TIMED = "waveshare-8"  # flash on/off in units of 100 ms: the board times it


class Events:
    """A ChannelObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.switches: list[tuple[bool, str]] = []
        self.audits: list[tuple[str, bool, str]] = []
        self.faults: list[bool] = []
        self.end_failures: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def switched(self, relay: str, on: bool, source: str) -> None:
        self.switches.append((on, source))

    def audit(self, relay: str, command: str, ok: bool, t0: float, detail: str = "") -> None:
        self.audits.append((command, ok, detail))

    def fault_changed(self, relay: str, faulted: bool) -> None:
        self.faults.append(faulted)

    def end_write_failed(self, relay: str, exc: BoardError) -> None:
        self.end_failures.append(str(exc))

    def spawn(self, coro, name):
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        return task


@pytest.fixture
async def events():
    ev = Events()
    yield ev
    for t in ev.tasks:
        t.cancel()
    await asyncio.gather(*ev.tasks, return_exceptions=True)


def channel(events: Events, profile: str, **cfg) -> tuple[MemoryBoard, Channel]:
    board = MemoryBoard("b", profile)
    assert isinstance(board, RelayBoard)
    ch = Channel("door", ChannelConfig(board="b", channel=1, **cfg), board, 1, events, confirm_after_s=0.1)
    return board, ch


def lengths(board: MemoryBoard) -> list[float]:
    return [length for _, length in pulses(board.sim, 1)]


async def test_service_timed_pulse_ends_on_time(events):
    board, ch = channel(events, SERVICE_TIMED)
    assert await ch.pulse(300, "test") == "service-timed"
    assert board.sim.coils[0] is True and ch.on is True
    await wait_for(lambda: lengths(board), 1, what="pulse end")
    assert abs(lengths(board)[0] - 300) <= TOL_MS
    assert events.switches == [(True, "test"), (False, "pulse end")]
    assert ch.pulse_until is None and not ch.faulted and events.audits == []


async def test_board_timed_pulse_is_one_command_and_is_checked(events):
    board, ch = channel(events, BOARD_TIMED)
    assert await ch.pulse(300, "test") == "board-timed"
    await wait_for(lambda: lengths(board), 1, what="the board ended the pulse")
    assert abs(lengths(board)[0] - 300) <= TOL_MS
    await wait_for(lambda: ch.pulse_until is None, 1, what="end confirmed by a read")
    assert board.writes == 1  # the board switched it back; the channel only read it
    assert events.switches == [(True, "test"), (False, "pulse end (board-timed)")]


@pytest.mark.parametrize("profile", [SERVICE_TIMED, BOARD_TIMED])
async def test_retrigger_extends_and_is_never_cut_short(events, profile):
    board, ch = channel(events, profile)
    assert await ch.pulse(200, "test") in ("service-timed", "board-timed")
    await asyncio.sleep(0.1)
    assert (await ch.pulse(200, "test")).endswith("extends the running pulse")
    await wait_for(lambda: lengths(board), 1, what="first pulse end")
    assert abs(lengths(board)[0] - 300) <= TOL_MS, "a re-trigger 100 ms in moves the end to 300 ms"
    await wait_for(lambda: ch.pulse_until is None, 1, what="first pulse over")
    assert await ch.pulse(300, "test")
    await asyncio.sleep(0.1)
    assert await ch.pulse(100, "test") == "within a running pulse that ends later"
    await wait_for(lambda: len(lengths(board)) == 2, 1, what="second pulse end")
    assert abs(lengths(board)[1] - 300) <= TOL_MS, "a shorter re-trigger cut the pulse short"


async def test_concurrent_pulses_make_one_pulse(events):
    board, ch = channel(events, SERVICE_TIMED)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(*(ch.pulse(ms, "test") for ms in (200, 300, 100, 250)))
    await wait_for(lambda: lengths(board), 1, what="pulse end")
    await asyncio.sleep(0.1)
    assert len(lengths(board)) == 1, "the relay went off and on again"
    assert abs((loop.time() - t0) * 1000 - 400) <= 4 * TOL_MS
    assert 300 - TOL_MS <= lengths(board)[0] <= 300 + 2 * TOL_MS


async def test_failed_pulse_end_is_retried_and_faulted_until_written(events):
    board, ch = channel(events, SERVICE_TIMED)
    assert await ch.pulse(200, "test")
    board.fail_writes = True  # the board refuses the end
    await wait_for(lambda: ch.faulted, 1, what="faulted")
    assert "pulse end not written" in ch.faulted and events.faults == [True]
    assert events.audits[0][:2] == ("pulse end", False)
    await asyncio.sleep(0.4)
    assert board.sim.coils[0] is True  # still on: nobody could switch it off
    assert len(events.end_failures) >= 3, "the end write is retried"
    board.fail_writes = False
    await wait_for(lambda: not board.sim.coils[0], 1, what="released once the board takes writes")
    assert not ch.faulted and events.faults == [True, False] and ch.on is False
    command, ok, detail = events.audits[-1]
    assert (command, ok) == ("pulse end", True) and "failed attempts" in detail


async def test_board_that_does_not_end_its_timed_pulse_is_switched_back(events, caplog):
    board, ch = channel(events, BOARD_TIMED)
    board.broken_timer = True
    said_off_while_on: list[float] = []
    real_switched = events.switched

    def switched(relay: str, on: bool, source: str) -> None:
        if not on and board.sim.coils[0]:
            said_off_while_on.append(1)
        real_switched(relay, on, source)

    events.switched = switched  # type: ignore[method-assign]
    assert await ch.pulse(200, "test") == "board-timed"
    await wait_for(lambda: lengths(board), 1, what="switched back by the channel")
    # the end, the read-back delay (confirm_after_s), then the channel's own write
    assert abs(lengths(board)[0] - 300) <= TOL_MS
    assert any("board did not end its timed pulse" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR)
    await wait_for(lambda: ch.pulse_until is None, 1, what="pulse over")
    assert not ch.faulted
    assert not said_off_while_on, "the channel said off while the relay was still on"
    assert events.switches == [(True, "test"), (False, "pulse end")]


async def test_unexpected_error_in_the_pulse_end_faults_and_still_ends_it(events):
    """Not a BoardError: a driver bug. The off is retried, the channel faulted meanwhile."""
    board, ch = channel(events, SERVICE_TIMED)
    real_write = board.write
    failures = []

    async def buggy_write(channel: int, on: bool) -> None:
        if not on and len(failures) < 2:
            failures.append(on)
            raise KeyError("driver bug")
        await real_write(channel, on)

    board.write = buggy_write  # type: ignore[method-assign]
    t0 = asyncio.get_running_loop().time()
    assert await ch.pulse(300, "test")
    await wait_for(lambda: ch.faulted, 1, what="faulted")
    assert "KeyError" in ch.faulted and events.faults == [True]
    assert events.audits[0][:2] == ("pulse end", False)
    await wait_for(lambda: not board.sim.coils[0], 1.5, what="off after all")
    assert asyncio.get_running_loop().time() - t0 < 0.3 + 1.0, "off within the pulse + 1 s"
    await wait_for(lambda: not ch.faulted, 1, what="fault cleared once written")
    assert events.faults == [True, False] and ch.on is False and ch.pulse_until is None


async def test_a_pulse_whose_end_path_died_is_found_overdue_and_ended(events):
    board, ch = channel(events, SERVICE_TIMED)
    assert await ch.pulse(200, "test")
    assert ch.end_task is not None
    ch.end_task.cancel()  # the end path is gone (a bug, a lost task)
    loop = asyncio.get_running_loop()
    assert ch.overdue(loop.time()) == 0.0
    await asyncio.sleep(0.2 + 1.05)
    assert ch.overdue(loop.time()) > 0 and board.sim.coils[0] is True
    ch.restart_end("still on past its end")
    assert ch.faulted and events.faults == [True]
    await wait_for(lambda: not board.sim.coils[0], 1, what="ended after all")
    assert not ch.faulted and events.faults == [True, False] and ch.overdue(loop.time()) == 0.0


async def test_link_lost_mid_board_timed_pulse_is_not_a_fault(events):
    board, ch = channel(events, BOARD_TIMED)
    assert await ch.pulse(300, "test")
    await asyncio.sleep(0.1)
    board.unplugged = True
    await wait_for(lambda: lengths(board), 1, what="the board ended it by itself")
    assert abs(lengths(board)[0] - 300) <= TOL_MS
    await asyncio.sleep(0.5)  # the check and the end writes cannot reach the board
    assert events.end_failures and not ch.faulted and events.faults == []
    assert ch.pulse_until is not None, "the safe state is still to be written"
    writes = board.writes
    board.unplugged = False
    await wait_for(lambda: ch.pulse_until is None, 1, what="safe state written once the board answers")
    assert board.writes == writes + 1 and ch.on is False and board.sim.coils[0] is False


async def test_failed_pulse_command_changes_nothing(events):
    board, ch = channel(events, SERVICE_TIMED)
    board.fail_writes = True
    with pytest.raises(BoardError):
        await ch.pulse(200, "test")
    assert ch.on is None and ch.pulse_until is None and not events.tasks and events.switches == []


async def test_inverted_pulse_on_a_fail_secure_channel(events):
    board, ch = channel(events, BOARD_TIMED, safe_state="on")
    await ch.apply_safe("safe-state at start")
    assert board.sim.coils[0] is True and events.audits == [("safe on", True, "safe-state at start")]
    assert await ch.pulse(200, "test") == "board-timed"
    assert board.sim.coils[0] is False
    await wait_for(lambda: board.sim.coils[0], 1, what="back on")
    offs = [t for t, c, on in board.sim.history if c == 1]
    assert abs((offs[-1] - offs[-2]) * 1000 - 200) <= TOL_MS


async def test_set_on_a_pulse_channel(events):
    """set(on) on a pulse channel is a pulse (the caller's choice); set(off) ends it now."""
    board, ch = channel(events, SERVICE_TIMED, mode="pulse", pulse_ms=300)
    assert ch.pulses_for(True) and not ch.pulses_for(False)
    assert await ch.pulse(300, "test")
    await asyncio.sleep(0.1)
    await ch.hold(False, "test")
    assert board.sim.coils[0] is False and ch.pulse_until is None
    assert abs(lengths(board)[0] - 100) <= TOL_MS
    await asyncio.sleep(0.3)
    assert board.writes == 2, "the cancelled pulse end wrote again"


async def test_held_states_follow_wish_and_reassertion(events):
    board, ch = channel(events, SERVICE_TIMED, mode="follow")
    board.unplugged = True
    ch.wish(True)  # its sensor said "on" while the board was away
    with pytest.raises(BoardError):
        await ch.apply_safe("safe-state at first contact")
    assert events.audits[-1][:2] == ("follow on", False)
    board.unplugged = False
    await ch.apply_safe("safe-state at first contact")  # the wish, not the safe state
    assert board.sim.coils[0] is True and events.audits[-1] == ("follow on", True, "safe-state at first contact")
    board.sim.switch(1, False)  # the board rebooted between two polls
    await ch.enforce(await board.read(), "poll")
    assert board.sim.coils[0] is True and events.audits[-1] == ("reassert on", True, "poll") and ch.mismatch
    await ch.hold(False, "rules")
    await ch.enforce(await board.read(), "poll")
    assert board.sim.coils[0] is False and ch.desired is False and not ch.mismatch


async def test_enforce_leaves_a_running_pulse_alone(events):
    board, ch = channel(events, SERVICE_TIMED)
    assert await ch.pulse(300, "test")
    await ch.enforce([False] * 8, "poll")  # a poll that read the relay off mid-pulse
    assert board.sim.coils[0] is True and board.writes == 1
    await wait_for(lambda: lengths(board), 1, what="pulse end")
    assert abs(lengths(board)[0] - 300) <= TOL_MS
