"""YoLink as a source: token, home, device list, the report topic on a real Mosquitto that only
accepts the current token, renewal before expiry without losing a report, a bad secret."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from edge.bus import SensorReading

from .sensor_helpers import metric, wait_for
from .yolink_peers import PUBLISHER, PUBLISHER_PW, FakeYoLinkApi, YoLinkBroker, device, report

UAID, SECRET, HOME, NET = "ua_93BF2C0EA1", "sk-test-0123456789abcdef", "home-7f3a", "net-5521"
DOOR, TH = "d88b4c0100000a01", "d88b4c0100000b02"
DEVICES = [device(DOOR, "Front Door", "DoorSensor", "YS7704-UC"), device(TH, "Kitchen TH", "THSensor", "YS8003-UC"),
           device("d88b4c0100000c03", "Garage Motion", "MotionSensor", "YS7804-UC")]


def toml(mode: str, api: FakeYoLinkApi, broker_port: int, extra_sensor: str = "") -> str:
    where = f'net_id = "{NET}"' if mode == "local" else ""
    return f"""
[mqtt]
enabled = false

[yolink.home]
mode = "{mode}"
uaid = "{UAID}"
{where}
api_url = "{api.url}"
broker = "127.0.0.1:{broker_port}"
backoff_initial_s = 0.2
backoff_max_s = 0.5

[[sensors]]
id = "front_door"
kind = "contact"
source = "yolink"
device = "front door"          # by name, as in the YoLink app (case does not matter)

[[sensors]]
id = "kitchen"
kind = "temperature"
source = "yolink"
device = "{TH}"                 # or by deviceId
{extra_sensor}
"""


def write_secret(data_dir: Path, secret: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    p = data_dir / "yolink-home.secret"
    p.write_text(secret + "\n")
    os.chmod(p, 0o600)


def topic(mode: str, dev: str) -> str:
    return f"ylsubnet/{NET}/{dev}/report" if mode == "local" else f"yl-home/{HOME}/{dev}/report"


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="edge-yl-") as d:
        yield Path(d)


async def started(mode: str, workdir: Path, token_life_s: float) -> tuple[FakeYoLinkApi, YoLinkBroker]:
    broker = YoLinkBroker(workdir, mode, UAID)
    broker.start()
    api = FakeYoLinkApi(UAID, SECRET, HOME, DEVICES, token_life_s=token_life_s, broker=broker)
    await api.start()
    return api, broker


@pytest.mark.parametrize("mode", ["cloud", "local"])
async def test_reports_arrive_and_the_token_is_renewed_without_losing_one(mode, workdir, service_factory, tmp_path):
    api, broker = await started(mode, workdir, token_life_s=2.0)
    try:
        data = tmp_path / "data"
        write_secret(data, SECRET)
        async with service_factory(toml(mode, api, broker.port), data_dir=data) as svc:
            sensors = svc.component("sensors")
            src = sensors.yolink["home"]
            await wait_for(lambda: src.connected, what="the YoLink source connected")
            assert api.api_calls[:2] == (["Home.getGeneralInfo", "Home.getDeviceList"] if mode == "cloud"
                                         else ["Home.getDeviceList"])
            readings: list[SensorReading] = []
            sub = svc.ctx.bus.subscribe(SensorReading, replay=False, name="test")
            collect = asyncio.create_task(_collect(sub, readings))
            # a door opens, then a thermometer reports every 40 ms for 5 s: 2-3 token renewals
            sent = 120
            async with aiomqtt.Client("127.0.0.1", broker.port, username=PUBLISHER, password=PUBLISHER_PW) as pub:
                await pub.publish(topic(mode, DOOR), report(DOOR, "DoorSensor.Alert", {"state": "open", "battery": 4,
                                                                                       "alertType": "normal"}, 1), qos=1)
                for i in range(sent):
                    await pub.publish(topic(mode, TH), report(TH, "THSensor.Report", {"temperature": 20 + i / 100,
                                                                                      "humidity": 40, "battery": 4}, 100 + i), qos=1)
                    await asyncio.sleep(0.04)
                await wait_for(lambda: len([r for r in readings if r.sensor == "kitchen"]) >= sent, timeout=10,
                               what="every thermometer report")
            temps = [r.fields["temperature"] for r in readings if r.sensor == "kitchen"]
            assert temps == [20 + i / 100 for i in range(sent)]  # each once, in order: none lost, none doubled
            assert sensors.state("front_door")["contact"] is False and sensors.state("front_door")["battery"] == 100
            assert src.renewals >= 2, "the token was renewed before expiry and the connection moved to it"
            # the live connection uses the newest token, which the broker accepts; the first one expired
            # (tokens live 2 s here: a renewal may be under way at this instant, so wait for its move)
            await wait_for(lambda: src.conn is not None and api.tokens[src.conn.token.access] > max(
                exp for t, exp in api.tokens.items() if t != src.conn.token.access), timeout=5,
                what="the connection on the newest token")
            assert api.refused == 0
            # a connection with an expired token gets nothing (cloud) or is refused (local)
            first = next(iter(api.tokens))
            assert first not in api.valid()
            if mode == "local":
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", broker.port, username=UAID, password=first):
                        pass
            sub.close()
            collect.cancel()
    finally:
        await api.stop()
        broker.stop()


async def test_bad_secret_is_one_clear_error_retried_with_backoff(workdir, service_factory, tmp_path, caplog):
    api, broker = await started("cloud", workdir, token_life_s=60)
    caplog.set_level(logging.DEBUG, logger="edge.sensors.yolink")
    try:
        data = tmp_path / "data"
        write_secret(data, "not-the-secret")
        async with service_factory(toml("cloud", api, broker.port), data_dir=data) as svc:
            src = svc.component("sensors").yolink["home"]
            await wait_for(lambda: api.refused >= 3, timeout=10, what="retries")  # backoff 0.2 .. 0.5 s
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "edge.sensors.yolink"]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            msg = errors[0].getMessage()
            assert "yolink.home.uaid" in msg and "yolink-home.secret" in msg and "retrying" in msg
            assert "not-the-secret" not in caplog.text and SECRET not in caplog.text  # never logged
            assert not src.connected and "refused the credentials" in src.last_error
            assert svc.supervisor.component("sensors").health().ok is False  # says why, keeps running
            # the installer fixes the secret: the next retry connects, no restart
            write_secret(data, SECRET)
            await wait_for(lambda: src.connected, timeout=10, what="connected with the right secret")
    finally:
        await api.stop()
        broker.stop()


async def test_expired_token_is_renewed_and_the_call_retried(workdir, service_factory, tmp_path):
    api, broker = await started("cloud", workdir, token_life_s=600)
    try:
        data = tmp_path / "data"
        write_secret(data, SECRET)
        extra = '\n[[sensors]]\nid = "shed"\nkind = "motion"\nsource = "yolink"\ndevice = "Shed Motion"\n'
        async with service_factory(toml("cloud", api, broker.port, extra), data_dir=data) as svc:
            src = svc.component("sensors").yolink["home"]
            await wait_for(lambda: src.connected, what="connected")
            issued = src.api.tokens_issued
            api.revoke_all()  # YoLink answers 010104 from now on
            renewals = src.renewals
            devices = await src.api.call("Home.getDeviceList")
            assert len(devices["devices"]) == 3 and src.api.tokens_issued == issued + 1
            # the MQTT connection follows the new token (the broker no longer lets the revoked
            # one read: what it would deliver to the old connection meanwhile is not ours to test)
            await wait_for(lambda: src.renewals > renewals and src.connected, what="the connection on the new token")
            # a sensor whose device is not in the list is named with what there is
            assert any("'Shed Motion' is not a device of yolink.home" in p and "Garage Motion (MotionSensor)" in p
                       for p in src.problems)
            # reports of devices no sensor uses are counted, not decoded; bad reports counted and survived
            async with aiomqtt.Client("127.0.0.1", broker.port, username=PUBLISHER, password=PUBLISHER_PW) as pub:
                for payload in (b"not json", b"[1,2]", report(DOOR, "DoorSensor.Alert", {"state": "ajar"}, 5),
                                report(DOOR, "DoorSensor.Alert", {"state": "closed"}, 6)):
                    await pub.publish(topic("cloud", DOOR), payload, qos=1)
                await pub.publish(topic("cloud", "d88b4c0100000c03"), report("d88b4c0100000c03", "MotionSensor.Alert",
                                                                             {"state": "alert"}, 7), qos=1)
            sensors = svc.component("sensors")
            await wait_for(lambda: sensors.state("front_door").get("contact") is True, what="the good report")
            await wait_for(lambda: src.unconfigured.get("d88b4c0100000c03") == 1, what="unconfigured device counted")
            assert await metric(svc, "edge_sensor_bad_payloads_total", adapter="yolink") == 3
    finally:
        await api.stop()
        broker.stop()


async def _collect(sub, out):
    async for ev in sub:
        out.append(ev)
