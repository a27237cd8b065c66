"""`edge relay ...` against the running service (in this test's loop), as an installer uses it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .peers import free_port, venv_bin
from .relay_peers import pulses, wait_for

TOML = """
[relays.boards.main]
type = "simulated"
profile = "waveshare-8"

[relays.boards.pi]
type = "gpio"

[relays.channels.door_strike]
board = "main"
channel = 1
pulse_ms = 300
label = "Front door"

[relays.channels.siren]
board = "main"
channel = 2
mode = "latch"

[relays.channels.buzzer]
board = "pi"
pin = 17
active_high = false
"""


async def edge_relay(svc_or_cfg, *args: str) -> tuple[int, str, str]:
    if isinstance(svc_or_cfg, tuple):
        cfg, data = svc_or_cfg
    else:
        data = Path(svc_or_cfg.ctx.data_dir)
        cfg = svc_or_cfg.ctx.config_path
    proc = await asyncio.create_subprocess_exec(venv_bin("edge"), "relay", *args, "--config", str(cfg),
                                                "--data-dir", str(data), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_list_pulse_set_test(service_factory):
    async with service_factory(TOML) as svc:
        relays = svc.component("relays")
        board = relays.sim_servers["main"].board

        rc, out, _ = await edge_relay(svc, "list")
        assert rc == 0
        lines = out.splitlines()
        assert lines[0].split()[:5] == ["RELAY", "BOARD", "CH", "MODE", "STATE"]
        row = next(line for line in lines if line.startswith("door_strike"))
        assert "pulse 300ms" in row and "off" in row and "ok" in row and "Front door" in row

        rc, out, _ = await edge_relay(svc, "pulse", "door_strike", "--ms", "200")
        assert rc == 0 and "door_strike: pulse 200 ms ok" in out
        await wait_for(lambda: pulses(board, 1), 2, what="pulse on the board")
        assert abs(pulses(board, 1)[0][1] - 200) <= 20

        rc, out, _ = await edge_relay(svc, "set", "siren", "on")
        assert rc == 0 and "siren: set on ok" in out
        assert board.coils[1] is True
        rc, out, _ = await edge_relay(svc, "list")
        assert "ON" in next(line for line in out.splitlines() if line.startswith("siren"))

        rc, out, err = await edge_relay(svc, "pulse", "nope")
        assert rc == 1 and "unknown relay 'nope'" in err

        rc, out, _ = await edge_relay(svc, "test", "--ms", "100", "--gap-ms", "50")
        assert rc == 0 and "3 of 3 relays pulsed" in out
        assert len(pulses(board, 1)) == 2
        buzzer = relays.boards["pi"].board.pin(1)
        # pulsed (active low); the CLI returns once the pulse started, so wait for its end
        await wait_for(lambda: [s for _, s in buzzer.history][-2:] == [False, True], 2, what="buzzer pulse end")

        await relays.sim_servers["main"].stop()  # the board goes away
        await wait_for(lambda: not relays.describe()[0].reachable, 5, what="board unreachable")
        rc, out, err = await edge_relay(svc, "pulse", "door_strike")
        assert rc == 1 and "FAILED" in err and "unreachable" in err
        rc, out, _ = await edge_relay(svc, "list")
        assert "UNREACHABLE" in next(line for line in out.splitlines() if line.startswith("door_strike"))


async def test_cli_when_the_service_is_not_running(tmp_path):
    from edge import credentials

    credentials.load_or_create(tmp_path)
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[web]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    rc, out, err = await edge_relay((cfg, tmp_path), "list")
    assert rc == 1 and "edge is not running" in err
    rc, out, err = await edge_relay((cfg, tmp_path / "empty"), "list")
    assert rc == 1 and "no credentials in" in err


async def test_http_api_refuses_without_credentials_and_bad_input(service_factory):
    import aiohttp

    from .peers import digest_session

    async with service_factory(TOML) as svc:
        async with aiohttp.ClientSession() as anon:
            async with anon.post(svc.base_url + "/api/relays/door_strike/pulse", json={"ms": 100}) as r:
                assert r.status == 401
        async with digest_session(svc.user, svc.password) as http:
            async with http.post(svc.base_url + "/api/relays/door_strike/pulse", json={"ms": "x"}) as r:
                assert r.status == 400 and "ms must be" in (await r.json())["error"]
            async with http.post(svc.base_url + "/api/relays/siren/set", data=b"{",
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
            async with http.post(svc.base_url + "/api/relays/ghost/set", json={"on": True}) as r:
                assert r.status == 404
            async with http.post(svc.base_url + "/api/relays/siren/set", json={"on": True}) as r:
                body = await r.json()
                assert r.status == 200 and body["ok"] is True and body["command"] == "set on"
