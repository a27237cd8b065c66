"""The demo config as `edge demo` runs it (simulator on): the dashboard's sensors move, and
the documented mosquitto_pub raises the front-door alarm and pulses the siren; closing clears."""

from __future__ import annotations

import asyncio
import re

from edge.bus import Alarm
from edge.paths import DEMO_CONFIG

from .peers import free_port
from .sensor_helpers import publish, wait_for


def demo_toml(mqtt_port: int) -> str:
    text = DEMO_CONFIG.read_text()
    text = re.sub(r"(\[mqtt\]\nhost = \"127.0.0.1\"\nport = )1883", rf"\g<1>{mqtt_port}", text)
    text = text.replace("port = 8080", f"port = {free_port()}").replace("port = 5020", "port = 0")
    text = text.replace("[video]\n", "[video]\nenabled = false  # not under test here (fixed RTSP port)\n")
    text = text.replace('primary = "127.0.0.1:7777"', f'primary = "127.0.0.1:{free_port()}"')  # the demo alarm receiver
    assert f"port = {mqtt_port}" in text
    return text


async def test_demo_front_door_alarm_and_siren(mosquitto, service_factory):
    async with service_factory(demo_toml(mosquitto.port), demo=True) as svc:
        ctx = svc.ctx
        sensors = svc.component("sensors")
        assert len(ctx.config.sensors) >= 8
        # the simulator gives every sensor a state (MQTT ones through their adapters, GPIO, Modbus)
        await wait_for(lambda: all(sensors.state(s.id) for s in ctx.config.sensors), timeout=15,
                       what="a state for every demo sensor")
        alarms: list[Alarm] = []
        sub = ctx.bus.subscribe(Alarm, name="test", replay=False)

        async def collect() -> None:
            async for ev in sub:
                alarms.append(ev)

        task = asyncio.create_task(collect())
        board = svc.component("relays").sim_servers["main"].board
        siren_ch = ctx.config.relays.channels["siren"].channel
        h0 = len(board.history)
        await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":false}'))
        await wait_for(lambda: any(a.alarm == "front_door:front-door" and a.active for a in alarms), what="front-door alarm")
        await wait_for(lambda: [h for h in board.history[h0:] if h[1] == siren_ch and h[2]], what="siren on")
        await publish(mosquitto.port, ("zigbee2mqtt/front_door", '{"contact":true}'))
        await wait_for(lambda: any(a.alarm == "front_door:front-door" and not a.active for a in alarms), what="cleared")
        # the simulator leaves the front door to the user: nothing else opened it
        assert sensors.state("front_door")["contact"] is True
        task.cancel()
        sub.close()
