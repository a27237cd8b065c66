"""The relay service against a simulated board (a real pymodbus server) over Modbus TCP, RTU
framing over TCP and a socat pty pair, and against gpiozero's MockFactory. Pulse lengths are
measured where the relay is: on the board (its coil history) or on the pin."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from edge.bus import RelayChanged

from .relay_peers import pty_pair, pulses, sim_board, wait_for

TOL_MS = 20

CHANNELS = """
[relays.channels.strike]
board = "main"
channel = 1
mode = "pulse"
pulse_ms = 300

[relays.channels.siren]
board = "main"
channel = 2
mode = "latch"

[relays.channels.zone1]
board = "main"
channel = 3
mode = "follow"

[relays.channels.maglock]
board = "main"
channel = 4
mode = "pulse"
safe_state = "on"
"""


def board_toml(transport: str, profile: str, where: str | int, poll_ms: int = 200) -> str:
    if transport == "pty":
        b = f'type = "modbus_rtu"\ndevice = "{where}"\nbaudrate = 115200'
    else:
        framing = "rtu" if transport == "rtu-over-tcp" else "tcp"
        b = f'type = "modbus_tcp"\nhost = "127.0.0.1"\nport = {where}\nframing = "{framing}"'
    return f'[relays.boards.main]\n{b}\nprofile = "{profile}"\npoll_ms = {poll_ms}\n' + CHANNELS


@contextlib.asynccontextmanager
async def board_and_service(service_factory, transport: str, profile: str, before_start=None):
    """A simulated board on ``transport`` and the service driving it."""
    with contextlib.ExitStack() as stack:
        if transport == "pty":
            board_end, service_end = stack.enter_context(pty_pair())
            sim_cm = sim_board(profile, serial=board_end)
        else:
            sim_cm = sim_board(profile, framing="rtu" if transport == "rtu-over-tcp" else "tcp")
        async with sim_cm as srv:
            if before_start:
                before_start(srv.board)
            toml = board_toml(transport, profile, service_end if transport == "pty" else srv.port)
            async with service_factory(toml) as svc:
                yield srv, svc, svc.component("relays")


TRANSPORTS = ["tcp", "rtu-over-tcp", "pty"]
# waveshare-8 times the pulse itself (flash on); generic-coils leaves it to the service
PROFILES = ["waveshare-8", "generic-coils"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pulse_length_on_the_board(service_factory, transport, profile):
    async with board_and_service(service_factory, transport, profile) as (srv, svc, relays):
        res = await relays.pulse("strike", 300, source="test")
        assert res.ok, res
        assert res.command == "pulse 300 ms"
        assert relays.state("strike") is True
        await wait_for(lambda: pulses(srv.board, 1), 2, what="pulse end on the board")
        [(_, length)] = pulses(srv.board, 1)
        assert abs(length - 300) <= TOL_MS, f"pulse lasted {length:.1f} ms on the board"
        await wait_for(lambda: relays.state("strike") is False, 1, what="service sees the pulse ended")
        assert not relays.describe()[0].faulted


@pytest.mark.parametrize("profile", PROFILES)
async def test_retrigger_extends_and_is_never_cut_short(service_factory, profile):
    async with board_and_service(service_factory, "tcp", profile) as (srv, svc, relays):
        # a later end wins: 400 ms, re-triggered 200 ms in for 400 ms -> one 600 ms pulse
        assert (await relays.pulse("strike", 400)).ok
        await asyncio.sleep(0.2)
        assert (await relays.pulse("strike", 400)).ok
        await wait_for(lambda: pulses(srv.board, 1), 2, what="first pulse end")
        [(t_on, length)] = pulses(srv.board, 1)
        assert abs(length - 600) <= TOL_MS, f"re-triggered pulse lasted {length:.1f} ms, want 600"
        # an earlier end never cuts it short: 600 ms, then 200 ms 100 ms in -> still 600 ms
        await asyncio.sleep(0.1)
        assert (await relays.pulse("strike", 600)).ok
        await asyncio.sleep(0.1)
        res = await relays.pulse("strike", 200)
        assert res.ok
        await wait_for(lambda: len(pulses(srv.board, 1)) == 2, 2, what="second pulse end")
        length2 = pulses(srv.board, 1)[1][1]
        assert abs(length2 - 600) <= TOL_MS, f"pulse was cut to {length2:.1f} ms by a shorter re-trigger"


async def test_concurrent_commands_on_one_channel_are_serialised(service_factory):
    async with board_and_service(service_factory, "tcp", "generic-coils") as (srv, svc, relays):
        t0 = time.monotonic()
        results = await asyncio.gather(*(relays.pulse("strike", ms) for ms in (300, 500, 200, 400, 100) * 4))
        assert all(r.ok for r in results)
        await wait_for(lambda: pulses(srv.board, 1), 2, what="pulse end")
        await asyncio.sleep(0.2)
        ps = pulses(srv.board, 1)
        assert len(ps) == 1, f"the relay went off and on again: {ps}"
        (t_on, length) = ps[0]
        end_from_first_call = (t_on + length / 1000 - t0) * 1000
        assert 500 - TOL_MS <= end_from_first_call <= 500 + 3 * TOL_MS, end_from_first_call


async def test_latch_and_follow_hold_their_state(service_factory):
    async with board_and_service(service_factory, "tcp", "waveshare-8") as (srv, svc, relays):
        sub = svc.ctx.bus.subscribe(RelayChanged, replay=False)
        assert (await relays.set("siren", True, source="test")).ok
        assert (await relays.set("zone1", True, source="rules")).ok
        await asyncio.sleep(1.0)  # five polls: nothing switches them back
        assert srv.board.coils[1] is True and srv.board.coils[2] is True
        assert relays.state("siren") is True and relays.state("zone1") is True
        # the board reboots between two polls (all relays off): the held states come back
        srv.board.switch(2, False)
        srv.board.switch(3, False)
        srv.board.switch(1, True)  # and an idle pulse channel found on goes back to safe
        await wait_for(lambda: srv.board.coils[:3] == [False, True, True], 1.0, what="held states re-asserted")
        assert (await relays.set("zone1", False, source="rules")).ok
        assert srv.board.coils[2] is False and srv.board.coils[1] is True
        assert (await relays.set("siren", False)).ok
        assert srv.board.coils[1] is False
        events = [(e.relay, e.on) for e in iter(sub.get_nowait, None) if e.source != "board"]
        assert events == [("siren", True), ("zone1", True), ("zone1", False), ("siren", False)]
        # set on a pulse channel is one pulse of its pulse_ms, not a stuck relay
        before = len(pulses(srv.board, 1))
        res = await relays.set("strike", True)
        assert res.ok and res.command == "pulse 300 ms"
        await wait_for(lambda: len(pulses(srv.board, 1)) > before, 2, what="pulse end")
        assert abs(pulses(srv.board, 1)[-1][1] - 300) <= TOL_MS


async def test_inverted_pulse_on_a_fail_secure_channel(service_factory):
    """safe_state = "on" (a maglock): the pulse releases it for ms (the board's flash off)."""
    async with board_and_service(service_factory, "tcp", "waveshare-8") as (srv, svc, relays):
        assert srv.board.coils[3] is True
        assert (await relays.pulse("maglock", 300)).ok
        assert srv.board.coils[3] is False
        await wait_for(lambda: srv.board.coils[3], 2, what="maglock back on")
        offs = [t for t, ch, on in srv.board.history if ch == 4]
        assert abs((offs[-1] - offs[-2]) * 1000 - 300) <= TOL_MS


@pytest.mark.parametrize("transport", ["tcp", "pty"])
async def test_safe_state_at_start_and_at_stop(service_factory, transport):
    def all_on_but_maglock(board):
        for ch in (1, 2, 3):
            board.switch(ch, True)  # left on by whatever ran before
        board.switch(4, False)

    with contextlib.ExitStack() as stack:
        if transport == "pty":
            board_end, service_end = stack.enter_context(pty_pair())
        async with sim_board("waveshare-8", serial=board_end if transport == "pty" else None) as srv:
            all_on_but_maglock(srv.board)
            toml = board_toml(transport, "waveshare-8", service_end if transport == "pty" else srv.port)
            async with service_factory(toml) as svc:
                # READY was sent: every relay already is in its safe state
                assert srv.board.coils[:4] == [False, False, False, True]
                relays = svc.component("relays")
                assert [i.on for i in relays.describe()] == [False, False, False, True]
                assert (await relays.set("siren", True)).ok
                assert (await relays.pulse("strike", 5000)).ok
                assert (await relays.pulse("maglock", 5000)).ok
                assert srv.board.coils[:4] == [True, True, False, False]
                await svc.stop()
                assert srv.board.coils[:4] == [False, False, False, True]
                await asyncio.sleep(0.3)
            assert srv.board.coils[:4] == [False, False, False, True]


async def test_failed_pulse_end_is_retried_and_reported_faulted(service_factory):
    async with board_and_service(service_factory, "tcp", "generic-coils") as (srv, svc, relays):
        assert (await relays.pulse("strike", 400)).ok
        await asyncio.sleep(0.1)
        await srv.stop()  # the link goes away mid-pulse; the service times this pulse
        await wait_for(lambda: relays.describe()[0].faulted, 2, what="channel reported faulted")
        info = relays.describe()[0]
        assert "pulse end" in info.detail
        ok, summary = svc.supervisor.health_summary()
        assert not ok and "strike faulted" in summary
        assert srv.board.coils[0] is True  # still on: nobody could switch it off
        await asyncio.sleep(0.5)
        await srv.start()  # link back: the retried end write gets through
        await wait_for(lambda: not srv.board.coils[0], 3, what="relay released after the link came back")
        await wait_for(lambda: not relays.describe()[0].faulted, 2, what="fault cleared")
        assert relays.state("strike") is False


async def test_bad_commands_get_clear_errors(service_factory):
    async with board_and_service(service_factory, "tcp", "waveshare-8") as (srv, svc, relays):
        res = await relays.pulse("nope", 100)
        assert not res.ok and "unknown relay 'nope'" in res.error and "strike" in res.error
        res = await relays.set("nope", True)
        assert not res.ok and "unknown relay" in res.error
        for bad in (0, -5, 10**9, "100", None.__class__):
            res = await relays.pulse("strike", bad)  # type: ignore[arg-type]
            assert not res.ok and "pulse length" in res.error
        assert srv.board.coils[0] is False


async def test_every_command_is_audited_with_outcome_and_latency(service_factory):
    from edge.store.component import db_path
    from edge.store.readers import query_audit

    async with board_and_service(service_factory, "tcp", "waveshare-8") as (srv, svc, relays):
        db = db_path(svc.ctx.config, svc.ctx.data_dir)
        await relays.pulse("strike", 200, source="test")
        await relays.set("siren", True, source="test")
        await relays.pulse("nope", 200)
        await srv.stop()
        await wait_for(lambda: not relays.describe()[0].reachable, 3, what="board unreachable")
        await relays.set("siren", False, source="test")
        await svc.ctx.store.flush()
        rows = query_audit(db)
        by_cmd = [(r.relay, r.command, r.outcome) for r in rows]
        assert set(by_cmd[:4]) == {(n, "safe off", "ok") for n in ("strike", "siren", "zone1")} | {("maglock", "safe on", "ok")}
        assert ("strike", "pulse 200 ms", "ok") in by_cmd
        assert ("siren", "set on", "ok") in by_cmd
        assert ("nope", "pulse 200 ms", "failed") in by_cmd
        failed = [r for r in rows if (r.relay, r.command, r.outcome) == ("siren", "set off", "failed")]
        assert len(failed) == 1 and "unreachable" in failed[0].detail and "source=test" in failed[0].detail
        assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in rows)
        await srv.start()
        await wait_for(lambda: relays.describe()[0].reachable, 3, what="board back")
        await svc.stop()
    # the stop's safe state is in the audit too (the store closes after the relays)
    stop_rows = [r for r in query_audit(db) if "safe-state at stop" in r.detail]
    assert {r.relay for r in stop_rows} == {"strike", "siren", "zone1", "maglock"}
    assert all(r.outcome == "ok" for r in stop_rows)


GPIO_TOML = """
[relays.boards.pi]
type = "gpio"

[relays.channels.buzzer]
board = "pi"
pin = 17
active_high = false
pulse_ms = 300

[relays.channels.lamp]
board = "pi"
pin = 27
mode = "latch"

[relays.channels.lock]
board = "pi"
pin = 22
safe_state = "on"
"""


def pin_pulses(pin, active_level: bool) -> list[float]:
    out, t_on = [], None
    for t, state in pin.history:
        if state == active_level:
            t_on = t
        elif t_on is not None:
            out.append((t - t_on) * 1000)
            t_on = None
    return out


async def test_gpio_relays_on_mock_pins(service_factory):
    async with service_factory(GPIO_TOML) as svc:
        relays = svc.component("relays")
        board = relays.boards["pi"].board
        buzzer, lamp, lock = board.pin(1), board.pin(2), board.pin(3)
        # safe state from the moment the pins were claimed: active-low buzzer high, lock on
        assert buzzer.state is True and lamp.state is False and lock.state is True
        assert [s for _, s in buzzer.history] in ([], [True])  # never low: no glitch at start
        res = await relays.pulse("buzzer", 300)
        assert res.ok and buzzer.state is False  # active low: on = pin low
        await wait_for(lambda: pin_pulses(buzzer, False), 2, what="buzzer pulse end")
        assert abs(pin_pulses(buzzer, False)[0] - 300) <= TOL_MS
        # re-trigger on the service-timed path
        assert (await relays.pulse("buzzer", 300)).ok
        await asyncio.sleep(0.15)
        assert (await relays.pulse("buzzer", 300)).ok
        await wait_for(lambda: len(pin_pulses(buzzer, False)) == 2, 2, what="second pulse end")
        assert abs(pin_pulses(buzzer, False)[1] - 450) <= TOL_MS
        assert (await relays.set("lamp", True)).ok and lamp.state is True
        assert (await relays.pulse("lock", 200)).ok and lock.state is False
        await svc.stop()
        assert buzzer.state is True and lamp.state is False and lock.state is True


async def test_demo_style_simulated_board(service_factory):
    toml = """
[relays.boards.main]
type = "simulated"
profile = "eletechsup-r4d3b16"

[relays.channels.siren]
board = "main"
channel = 16
mode = "latch"

[relays.channels.door]
board = "main"
channel = 1
pulse_ms = 1000
"""
    async with service_factory(toml) as svc:
        relays = svc.component("relays")
        sim = relays.sim_servers["main"]
        assert (await relays.set("siren", True)).ok
        assert sim.board.coils[15] is True
        # whole seconds: one FC06 "delay" command, timed by the board
        requests_before = sim.board.requests
        assert (await relays.pulse("door", 1000)).ok
        assert sim.board.requests - requests_before <= 2  # the command (and maybe a poll)
        await wait_for(lambda: pulses(sim.board, 1), 3, what="door pulse end")
        assert abs(pulses(sim.board, 1)[0][1] - 1000) <= TOL_MS
        # not whole seconds: the service times it
        assert (await relays.pulse("door", 250)).ok
        await wait_for(lambda: len(pulses(sim.board, 1)) == 2, 3, what="second pulse end")
        assert abs(pulses(sim.board, 1)[1][1] - 250) <= TOL_MS


async def test_link_lost_mid_board_timed_pulse(service_factory):
    """The board times it: it ends on time without the link, and the channel is not faulted."""
    async with board_and_service(service_factory, "tcp", "waveshare-8") as (srv, svc, relays):
        assert (await relays.pulse("strike", 500)).ok
        await asyncio.sleep(0.1)
        await srv.stop()
        await wait_for(lambda: pulses(srv.board, 1), 2, what="board ended the pulse by itself")
        assert abs(pulses(srv.board, 1)[0][1] - 500) <= TOL_MS
        await asyncio.sleep(1.0)  # past the service's check of the end, which cannot reach the board
        info = relays.describe()[0]
        assert not info.faulted and not info.reachable
        assert relays.state("strike") is False
        await srv.start()
        await wait_for(lambda: relays.describe()[0].reachable, 2, what="board back")
        assert srv.board.coils[0] is False and not relays.describe()[0].faulted


async def test_simulated_board_port_taken_at_start_recovers_once_free(service_factory):
    """A demo board whose port is taken: start fails with a clear reason, READY waits, and the
    relays come up by themselves once the port is free (no half-made board left behind)."""
    import socket

    from .peers import free_port

    port = free_port()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    toml = f"""
[service]
restart_backoff_initial_s = 0.1
restart_backoff_max_s = 0.3

[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = {port}

[relays.channels.siren]
board = "main"
channel = 1
mode = "latch"
"""
    loop = asyncio.get_running_loop()
    loop.call_later(1.5, squatter.close)
    async with service_factory(toml, ready_timeout=20) as svc:
        slot = next(s for s in svc.supervisor.slots if s.component.name == "relays")
        assert slot.restarts >= 1
        assert "cannot listen" in slot.last_error and str(port) in slot.last_error
        relays = svc.component("relays")
        assert (await relays.set("siren", True)).ok
        assert relays.sim_servers["main"].board.coils[0] is True
