"""The demo's alarm receiver as README walks through it: `edge demo` starts pysiaalarm where
the demo config reports (AES-128, the demo key written 0600 into the data dir) and it prints
the front door's BA (zone 1) when the door opens, BH when it closes."""

from __future__ import annotations

import os
import stat

from edge import config as config_mod
from edge.demo_runner import DEMO_KEY, start_demo_receiver

from .peers import free_port
from .sensor_helpers import publish, wait_for
from .test_demo_sensors import demo_toml


async def test_demo_receiver_prints_the_front_door(mosquitto, service_factory, tmp_path, capsys):
    port = free_port()
    text = demo_toml(mosquitto.port)
    text = text.replace(text[text.index('primary = "127.0.0.1:', text.index("[receivers.sia.arc]")):].split("\n")[0],
                        f'primary = "127.0.0.1:{port}"')
    data = tmp_path / "data"
    cfg = config_mod.loads(text)
    stop = start_demo_receiver(cfg, data)
    assert stop is not None
    try:
        key = data / "receivers" / "demo-arc.key"
        assert key.read_text().strip() == DEMO_KEY and stat.S_IMODE(os.stat(key).st_mode) == 0o600
        async with service_factory(text, data, demo=True):
            out = ""

            def printed(what: str) -> bool:
                nonlocal out
                out += capsys.readouterr().out  # (the receiver prints from its own thread)
                return what in out

            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":false}'))
            await wait_for(lambda: printed("BA (Burglary Alarm) zone 001: Front door open"), 10, "BA printed")
            await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":true}'))
            await wait_for(lambda: printed("BH (Burglary Alarm Restore) zone 001"), 10, "BH printed")
    finally:
        stop()
    assert f"[alarm receiver 127.0.0.1:{port}] account 1234 seq " in out
