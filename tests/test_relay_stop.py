"""Relays at stop and on the way: the safe state first, in one bulk write per board where the
board takes it, whatever else is slow; a relay found on past its pulse's end is ended, with
an alarm; a pulse asked without a length lasts the relay's pulse_ms."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


from edge import config as config_mod
from edge.app import Supervisor
from edge.bus import Alarm
from edge.component import Component
from edge.notify import Notifier
from edge.service import build_components, build_context

from .peers import digest_session, free_port
from .relay_peers import pulses, sim_board, wait_for

CHANNELS = """
[relays.channels.strike]
board = "main"
channel = 1
pulse_ms = 700

[relays.channels.maglock]
board = "main"
channel = 2
safe_state = "on"

[relays.channels.siren]
board = "main"
channel = 3
mode = "latch"

[relays.channels.light]
board = "main"
channel = 5
mode = "follow"
"""


def board_toml(port: int, profile: str) -> str:
    return (f'[relays.boards.main]\ntype = "modbus_tcp"\nprofile = "{profile}"\nhost = "127.0.0.1"\nport = {port}\n'
            f'poll_ms = 200\n' + CHANNELS)


class SlowStop(Component):
    """A component whose stop takes the whole stop budget (a wedged library)."""

    name = "slow"

    async def stop(self) -> None:
        await asyncio.sleep(30)


async def test_safe_state_first_in_one_bulk_write_whatever_else_is_slow(tmp_path: Path):
    async with sim_board("waveshare-8") as srv:
        cfg = config_mod.loads(board_toml(srv.port, "waveshare-8") + "\n[video]\nenabled = false\n"
                               f'[web]\nhost = "127.0.0.1"\nport = {free_port()}\n')
        ctx = build_context(cfg, tmp_path, simulated=True)
        holder: list[Supervisor] = []
        comps: list[Component] = build_components(ctx, lambda: holder[0] if holder else None)
        comps.append(SlowStop())
        sup = Supervisor(ctx, comps, Notifier(""))
        holder.append(sup)
        task = asyncio.create_task(sup.run())
        try:
            await wait_for(lambda: sup.ready, 15, what="READY")
            relays = sup.component("relays")
            assert (await relays.set("siren", True)).ok and (await relays.set("light", True)).ok
            assert (await relays.pulse("strike", 5000)).ok
            board = srv.board
            assert board.coils[:5] == [True, True, True, False, True]
            writes_before = board.bulk_writes
            t_stop = time.monotonic()
            sup.request_stop()
            await wait_for(lambda: board.coils[:5] == [False, True, False, False, False], 2,
                           what="every relay in its safe state")
            assert time.monotonic() - t_stop < 0.6, "the safe state waited for another component"
            # channels 1-3 and 5: two runs of consecutive coils, two FC15 requests
            assert board.bulk_writes - writes_before == 2
            await asyncio.wait_for(task, 15)
            assert board.coils[:5] == [False, True, False, False, False], "something switched a relay after stop"
        finally:
            if not task.done():
                sup.request_stop()
                await asyncio.wait_for(task, 15)
            ctx.platform.close()


async def test_board_without_multiple_writes_gets_one_write_per_relay(service_factory):
    async with sim_board("generic-coils") as srv:
        async with service_factory(board_toml(srv.port, "generic-coils")) as svc:
            relays = svc.component("relays")
            assert (await relays.set("siren", True)).ok
        assert srv.board.bulk_writes == 0
        assert srv.board.coils[:5] == [False, True, False, False, False]


async def test_relay_on_past_its_end_is_found_ended_and_alarmed(service_factory):
    async with sim_board("generic-coils") as srv:  # service-timed pulses
        async with service_factory(board_toml(srv.port, "generic-coils")) as svc:
            relays = svc.component("relays")
            alarms = svc.ctx.bus.subscribe(Alarm, name="test")
            # no length: the relay's own pulse_ms, also over HTTP
            async with digest_session(svc.user, svc.password) as http:
                async with http.post(svc.base_url + "/api/relays/strike/pulse", json={}) as r:
                    assert r.status == 200 and (await r.json())["command"] == "pulse 700 ms"
            ch = relays.channels["strike"]
            ch.end_task.cancel()  # the end path is gone
            await wait_for(lambda: pulses(srv.board, 1), 3, what="ended after all")
            [(_, length)] = pulses(srv.board, 1)
            assert 700 + 900 <= length <= 700 + 1600, f"found {length - 700:.0f} ms past its end"
            raised = await asyncio.wait_for(alarms.get(), 2)
            assert raised.alarm == "relay:strike:fault" and raised.active and raised.kind == "relay_fault"
            assert "past its pulse's end" in raised.message
            cleared = await asyncio.wait_for(alarms.get(), 2)
            assert cleared.alarm == raised.alarm and not cleared.active
            assert not relays.describe()[0].faulted
            await svc.ctx.store.flush()
            from edge.store.readers import query_events

            rows = [e.payload for e in query_events(svc.ctx.store.path) if e.kind == "alarm"]
            assert [r["active"] for r in rows] == [True, False] and rows[0]["alarm"] == "relay:strike:fault"
