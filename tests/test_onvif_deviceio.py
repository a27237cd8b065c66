"""ONVIF relay outputs (Device and DeviceIO services) with the real client, driving the real
relay service on a simulated board (a pymodbus server), every command audited in the store."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import zeep.exceptions
from onvif import ONVIFCamera

from edge.bus import RelayChanged

from .peers import free_port

CONFIG = """
[onvif]
discovery = false

[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.strike]
board = "main"
channel = 1
mode = "pulse"
pulse_ms = 2000

[relays.channels.siren]
board = "main"
channel = 2
mode = "latch"
"""


async def edges(board, channel: int, since: int, n: int, timeout: float = 5.0) -> list[tuple[float, bool]]:
    deadline = time.monotonic() + timeout
    while True:
        got = [(t, on) for t, ch, on in board.history[since:] if ch == channel]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)


async def test_relay_outputs_drive_the_relay_service(service_factory):
    from edge.store.component import db_path
    from edge.store.readers import query_audit

    port = free_port()
    async with service_factory(CONFIG + f'[web]\nhost = "127.0.0.1"\nport = {port}\n') as svc:
        board = svc.component("relays").sim_servers["main"].board
        cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
        relay_events = svc.ctx.bus.subscribe(RelayChanged, replay=False)
        try:
            await cam.update_xaddrs()
            dm = await cam.create_devicemgmt_service()
            dio = await cam.create_deviceio_service()
            # both services list the relays with modes from the relay config
            for outputs in (await dm.GetRelayOutputs(),):
                props = {o.token: o.Properties for o in outputs}
                assert set(props) == {"strike", "siren"}
                assert (props["strike"].Mode, props["strike"].DelayTime) == ("Monostable", dt.timedelta(seconds=2))
                assert props["siren"].Mode == "Bistable" and props["strike"].IdleState == "open"
            caps = await dio.GetServiceCapabilities()
            assert caps.RelayOutputs == 2
            options = await dio.GetRelayOutputOptions({"RelayOutputToken": "strike"})
            assert set(options[0].Mode) == {"Monostable", "Bistable"}

            # Bistable: active -> on, inactive -> off (DeviceIO's SetRelayOutputState is tds:)
            mark = len(board.history)
            await dio.SetRelayOutputState({"RelayOutputToken": "siren", "LogicalState": "active"})
            assert board.coils[1] is True
            await dm.SetRelayOutputState({"RelayOutputToken": "siren", "LogicalState": "inactive"})
            assert [on for _, on in await edges(board, 2, mark, 2)] == [True, False]

            # Monostable with a DelayTime set over ONVIF: a pulse of that length on the board
            await dio.SetRelayOutputSettings({"RelayOutput": {"token": "strike", "Properties": {
                "Mode": "Monostable", "DelayTime": dt.timedelta(milliseconds=300), "IdleState": "open"}}})
            mark = len(board.history)
            await dm.SetRelayOutputState({"RelayOutputToken": "strike", "LogicalState": "active"})
            got = await edges(board, 1, mark, 2)
            assert [on for _, on in got] == [True, False]
            assert 200 <= (got[1][0] - got[0][0]) * 1000 <= 600
            # ... and the bus saw it (ONVIF subscribers get tns1:Device/Trigger/Relay from this); the
            # board timed it: "off" once the service read the relay back after the board's end
            seen = []
            deadline = asyncio.get_running_loop().time() + 2
            while ("strike", False) not in seen and asyncio.get_running_loop().time() < deadline:
                while len(relay_events):
                    ev = relay_events.get_nowait()
                    seen.append((ev.relay, ev.on))
                await asyncio.sleep(0.02)
            assert ("strike", True) in seen and ("strike", False) in seen

            # Device's SetRelayOutputSettings: Bistable now, so active latches
            await dm.SetRelayOutputSettings({"RelayOutputToken": "strike", "Properties": {
                "Mode": "Bistable", "DelayTime": dt.timedelta(0), "IdleState": "open"}})
            await dm.SetRelayOutputState({"RelayOutputToken": "strike", "LogicalState": "active"})
            await asyncio.sleep(0.5)
            assert board.coils[0] is True
            await dm.SetRelayOutputState({"RelayOutputToken": "strike", "LogicalState": "inactive"})
            assert board.coils[0] is False

            # wrong input: clear faults, nothing switched
            mark = len(board.history)
            bad_calls = [
                (dm.SetRelayOutputState, {"RelayOutputToken": "nope", "LogicalState": "active"}, "no relay output"),
                (dm.SetRelayOutputSettings, {"RelayOutputToken": "strike", "Properties": {
                    "Mode": "Monostable", "DelayTime": dt.timedelta(hours=5), "IdleState": "open"}}, "DelayTime"),
                (dm.SetRelayOutputSettings, {"RelayOutputToken": "strike", "Properties": {
                    "Mode": "Bistable", "DelayTime": dt.timedelta(0), "IdleState": "closed"}}, "idle open"),
            ]
            for call, arg, text in bad_calls:
                with pytest.raises(zeep.exceptions.Fault) as exc:
                    await call(arg)
                assert text in exc.value.message
            assert board.history[mark:] == []

            # audited like every relay command, with ONVIF and the caller as the source
            await svc.ctx.store.flush()
            rows = [r for r in query_audit(db_path(svc.ctx.config, svc.ctx.data_dir)) if "onvif:127.0.0.1" in r.detail]
            cmds = [(r.relay, r.command, r.outcome) for r in rows]
            assert ("siren", "set on", "ok") in cmds and ("siren", "set off", "ok") in cmds
            assert ("strike", "pulse 300 ms", "ok") in cmds
        finally:
            relay_events.close()
            await cam.close()
