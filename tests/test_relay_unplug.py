"""A relay board unplugged for 30 s: the service stays up, says so once, fails commands at
once with a clear reason, and recovers by itself when the board is back."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from edge.bus import ComponentHealth

from .peers import digest_session
from .relay_peers import sim_board, wait_for

POLL_MS = 500

TOML = """
[relays.boards.main]
type = "modbus_tcp"
profile = "waveshare-8"
host = "127.0.0.1"
port = {port}
poll_ms = {poll}

[relays.channels.strike]
board = "main"
channel = 1

[relays.channels.siren]
board = "main"
channel = 2
mode = "latch"

[relays.channels.zone1]
board = "main"
channel = 3
mode = "follow"
"""


async def test_board_unplugged_for_30_s(service_factory, caplog):
    caplog.set_level(logging.INFO, logger="edge.relays")
    async with sim_board("waveshare-8") as srv:
        async with service_factory(TOML.format(port=srv.port, poll=POLL_MS)) as svc:
            relays = svc.component("relays")
            sub = svc.ctx.bus.subscribe(ComponentHealth, replay=False)
            assert (await relays.set("siren", True)).ok
            assert (await relays.set("zone1", False)).ok

            unplugged = time.monotonic()
            await srv.stop()
            await wait_for(lambda: not relays.describe()[0].reachable, 3 * POLL_MS / 1000 + 1.0,
                           what="reported unreachable within 3 polls")
            detected = time.monotonic() - unplugged
            assert detected <= 3 * POLL_MS / 1000 + 0.6, detected

            # commands fail at once, with the reason
            t0 = time.monotonic()
            res = await relays.pulse("strike", 300, source="test")
            assert not res.ok
            assert "board 'main' is unreachable" in res.error and "command not sent" in res.error
            assert time.monotonic() - t0 < 0.05
            # the rules keep mirroring their sensor while it is away: the latest wins later
            assert not (await relays.set("zone1", True, source="rules")).ok

            # 30 s away: the service stays up and keeps answering
            async with digest_session(svc.user, svc.password) as http:
                while time.monotonic() - unplugged < 30:
                    async with http.get(svc.base_url + "/healthz") as r:
                        body = await r.json()
                    assert body["components"]["relays"]["running"] is True
                    assert "unreachable" in body["components"]["relays"]["health"]
                    await asyncio.sleep(2)
            assert [s.restarts for s in svc.supervisor.slots if s.component.name == "relays"] == [0]
            transitions = [r for r in caplog.records if "unreachable after" in r.getMessage()]
            assert len(transitions) == 1, [r.getMessage() for r in transitions]
            health = [e for e in iter(sub.get_nowait, None) if e.component == "relays/main"]
            assert [e.ok for e in health][:1] == [False]

            # the board comes back after a power cut: all its relays off
            for ch in range(1, 9):
                srv.board.switch(ch, False)
            await srv.start()
            back = time.monotonic()
            await wait_for(lambda: relays.describe()[0].reachable, 2.0, what="recovered within 2 s")
            # latched siren and the follow channel's latest state are re-asserted
            await wait_for(lambda: srv.board.coils[1] and srv.board.coils[2], 1.0, what="re-asserted")
            assert time.monotonic() - back < 2.0
            res = await relays.pulse("strike", 200)
            assert res.ok, res
            assert sum("answers again" in r.getMessage() for r in caplog.records) == 1


async def test_board_missing_at_start_does_not_block_ready(service_factory):
    """READY is not held hostage by a board that is not plugged in: it is reported, and gets
    its safe state the moment it answers."""
    async with sim_board("waveshare-8") as srv:
        await srv.stop()
        async with service_factory(TOML.format(port=srv.port, poll=200)) as svc:
            relays = svc.component("relays")
            assert [i.reachable for i in relays.describe()] == [False, False, False]
            assert "cannot connect" in relays.describe()[0].detail
            res = await relays.set("siren", True)
            assert not res.ok and "unreachable" in res.error
            srv.board.switch(1, True)  # powered up with a relay on
            await srv.start()
            await wait_for(lambda: relays.describe()[0].reachable, 2, what="board reached")
            await wait_for(lambda: not srv.board.coils[0], 1, what="safe state at first contact")
            assert relays.state("strike") is False
            assert (await relays.set("siren", True)).ok


async def test_boards_sharing_one_rs485_line(service_factory):
    """Two boards (device ids 1 and 2) on one serial line: one transaction at a time."""
    from hw.relays.profiles import get_profile
    from hw.relays.sim import SimBoard, SimServer

    from .relay_peers import pty_pair, pulses

    with pty_pair() as (board_end, service_end):
        srv = SimServer({1: SimBoard(get_profile("waveshare-8")), 2: SimBoard(get_profile("eletechsup-r4d3b16"))},
                        serial=board_end, baudrate=115200)
        await srv.start()
        try:
            toml = f"""
[relays.boards.a]
type = "modbus_rtu"
profile = "waveshare-8"
device = "{service_end}"
baudrate = 115200
device_id = 1
poll_ms = 50

[relays.boards.b]
type = "modbus_rtu"
profile = "eletechsup-r4d3b16"
device = "{service_end}"
baudrate = 115200
device_id = 2
poll_ms = 50
""" + "".join(f'\n[relays.channels.a{i}]\nboard = "a"\nchannel = {i}\n\n[relays.channels.b{i}]\nboard = "b"\nchannel = {i}\n'
              for i in range(1, 5))
            async with service_factory(toml) as svc:
                relays = svc.component("relays")
                assert len(relays.pool.lines) == 1
                results = await asyncio.gather(*(relays.pulse(f"{x}{i}", 200) for i in range(1, 5) for x in "ab"))
                assert all(r.ok for r in results), [r.error for r in results if not r.ok]
                a, b = srv.boards[1], srv.boards[2]
                await wait_for(lambda: all(pulses(a, i) and pulses(b, i) for i in range(1, 5)), 3, what="all pulses ended")
                for board in (a, b):
                    for i in range(1, 5):
                        assert abs(pulses(board, i)[0][1] - 200) <= 30
                assert all(i.reachable and not i.faulted for i in relays.describe())
        finally:
            await srv.stop()
