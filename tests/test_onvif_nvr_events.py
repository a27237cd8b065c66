"""Events as NVRs consume them, with onvif-zeep-async (Home Assistant's client) and a real
Zigbee2MQTT door message on Mosquitto: two PullPoint subscribers (Protect keeps its own, Home
Assistant its own) each get every event; Initialized messages carry every input and relay
state after subscribing and after SetSynchronizationPoint; the motion mirror; GetDigitalInputs
tokens are the events' InputTokens; a push subscription (WS-BaseNotification, Home Assistant's
webhook path, parsed by its NotificationManager) gets Notify within 200 ms of the door message
and nothing after it expired."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from aiohttp import web
from onvif import ONVIFCamera

from .peers import free_port


def config(web_port: int, broker, mirror: str = "alarms") -> str:
    return f"""
[web]
host = "127.0.0.1"
port = {web_port}

[onvif]
discovery = false
motion_mirror = "{mirror}"

[mqtt]
host = "{broker.host}"
port = {broker.port}

[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "zigbee2mqtt/front_door"
adapter = "zigbee2mqtt"

[[sensors]]
id = "back_door"
name = "Back door"
kind = "contact"
topic = "zigbee2mqtt/back_door"
adapter = "zigbee2mqtt"

[[rules]]
name = "front-door"
sensor = "front_door"
actions = [{{ alarm = "Front door opened" }}]

[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.siren]
board = "main"
channel = 2
mode = "pulse"
pulse_ms = 500
"""


async def door(broker, contact: bool) -> None:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", "zigbee2mqtt/front_door",
        "-m", '{"contact": %s, "battery": 90}' % ("true" if contact else "false"))
    assert await proc.wait() == 0


def notes(messages) -> list[tuple[str, dict, dict, str]]:
    out = []
    for m in messages or []:
        msg = m.Message._value_1
        src = {i.Name: i.Value for i in msg.Source.SimpleItem}
        data = {i.Name: i.Value for i in msg.Data.SimpleItem}
        out.append((m.Topic._value_1, src, data, msg.PropertyOperation))
    return out


async def pull(pp, timeout_s: float = 1.0):
    r = await pp.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(seconds=timeout_s)})
    return notes(r.NotificationMessage)


async def pull_until(pp, pred, timeout_s: float = 5.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got += await pull(pp, 1.0)
        if pred(got):
            return got
    raise AssertionError(f"not seen in {timeout_s} s: {got}")


async def test_two_pullpoint_subscribers_each_get_every_event(service_factory, mosquitto):
    port = free_port()
    async with service_factory(config(port, mosquitto)) as svc:
        cams = [ONVIFCamera("127.0.0.1", port, svc.user, svc.password) for _ in range(2)]
        try:
            mgrs, pps = [], []
            for cam in cams:  # like Protect and Home Assistant, each with its own subscription
                await cam.update_xaddrs()
                mgr = await cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
                mgrs.append(mgr)
                pps.append(mgr.get_service())
            dio = await cams[0].create_deviceio_service()
            inputs = [i.token for i in await dio.GetDigitalInputs()]
            assert sorted(inputs) == ["back_door", "front_door"]

            # Initialized after subscribing: every input, every relay, the mirrored motion
            for pp in pps:
                first = await pull(pp)
                assert {n[3] for n in first} == {"Initialized"}
                assert {n[1].get("InputToken") for n in first if n[0] == "tns1:Device/Trigger/DigitalInput"} == set(inputs)
                assert ("tns1:Device/Trigger/Relay", {"RelayToken": "siren"}, {"LogicalState": "inactive"},
                        "Initialized") in first
                assert ("tns1:VideoSource/MotionAlarm", {"VideoSourceToken": "dashboard_source"}, {"State": "false"},
                        "Initialized") in first
                assert any(n[0] == "tns1:RuleEngine/CellMotionDetector/Motion" and n[2] == {"IsMotion": "false"}
                           for n in first)

            # the door opens: both subscribers see the input, and the alarm mirrored as motion
            await door(mosquitto, False)
            for pp in pps:
                got = await pull_until(pp, lambda g: any(n[0] == "tns1:RuleEngine/CellMotionDetector/Motion" for n in g))
                assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "true"},
                        "Changed") in got
                assert ("tns1:VideoSource/MotionAlarm", {"VideoSourceToken": "dashboard_source"}, {"State": "true"},
                        "Changed") in got
                assert [n[2] for n in got if n[0] == "tns1:RuleEngine/CellMotionDetector/Motion"] == [{"IsMotion": "true"}]
                # the InputToken of the event is a token GetDigitalInputs lists
                assert {n[1]["InputToken"] for n in got if "InputToken" in n[1]} <= set(inputs)

            # SetSynchronizationPoint on one: the current states again, for that one only
            await mgrs[0].set_synchronization_point()
            sync = await pull(pps[0])
            assert {n[3] for n in sync} == {"Initialized"}
            assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "true"},
                    "Initialized") in sync
            assert await pull(pps[1], 0.3) == []

            # an Unsubscribe ends only its own subscription
            await mgrs[0].shutdown()
            await door(mosquitto, True)
            got = await pull_until(pps[1], lambda g: any(n[2] == {"LogicalState": "false"} for n in g))
            assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "false"},
                    "Changed") in got
            await mgrs[1].shutdown()
        finally:
            for cam in cams:
                await cam.close()


class Webhook:
    """An HTTP consumer on 127.0.0.1: (arrival time, body) of every Notify per path."""

    def __init__(self) -> None:
        self.got: dict[str, list[tuple[float, bytes]]] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.setdefault(request.match_info["path"], []).append((time.monotonic(), body))
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def wait(self, path: str, n: int, timeout: float = 5.0) -> list[tuple[float, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.got.get(path, [])) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.got.get(path, []))} Notify of {n} after {timeout} s")
            await asyncio.sleep(0.005)
        return self.got[path]


async def test_push_notify_reaches_the_consumer_fast_and_stops_after_expiry(service_factory, mosquitto):
    port = free_port()
    hook = Webhook()
    await hook.start()
    try:
        async with service_factory(config(port, mosquitto, mirror="off")) as svc:
            cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
            try:
                await cam.update_xaddrs()
                # Home Assistant's webhook path: Subscribe, then SetSynchronizationPoint on it
                ha = await cam.create_notification_manager(hook.url("ha"), dt.timedelta(seconds=60), lambda: None)
                await ha.set_synchronization_point()
                # a second one that is never renewed: 3 s
                notify = await cam.create_notification_service()
                r = await notify.Subscribe({"ConsumerReference": {"Address": hook.url("short")},
                                            "InitialTerminationTime": "PT3S"})
                assert r.SubscriptionReference.Address._value_1.startswith(f"http://127.0.0.1:{port}/onvif/subscription")
                # Initialized states at once (the snapshot at Subscribe, and again after the sync point)
                for path in ("ha", "short"):
                    first = await hook.wait(path, 1)
                    parsed = notes(ha.process(first[0][1]).NotificationMessage)  # as Home Assistant reads it
                    assert {n[3] for n in parsed} == {"Initialized"}
                    assert ("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"}, {"LogicalState": "false"},
                            "Initialized") in parsed
                await asyncio.sleep(0.3)
                before = {p: len(v) for p, v in hook.got.items()}

                t0 = time.monotonic()
                await door(mosquitto, False)
                for path in ("ha", "short"):
                    got = await hook.wait(path, before[path] + 1)
                    at, body = got[before[path]]
                    parsed = notes(ha.process(body).NotificationMessage)
                    assert parsed == [("tns1:Device/Trigger/DigitalInput", {"InputToken": "front_door"},
                                       {"LogicalState": "true"}, "Changed")]
                    latency = at - t0
                    print(f"door message -> Notify at the {path} consumer: {latency * 1000:.0f} ms")
                    assert latency < 0.2, f"{path}: Notify {latency * 1000:.0f} ms after the door message"

                # the short one expires; the HA one (renewed by its manager) goes on
                await asyncio.sleep(max(0.0, t0 + 3.5 - time.monotonic()))
                short_before, ha_before = len(hook.got["short"]), len(hook.got["ha"])
                await door(mosquitto, True)
                await hook.wait("ha", ha_before + 1)
                await asyncio.sleep(0.5)
                assert len(hook.got["short"]) == short_before, "Notify after the subscription expired"
                assert len(svc.component("onvif").core.events.subs) == 1
                await ha.shutdown()
            finally:
                await cam.close()
    finally:
        await hook.stop()


@pytest.mark.parametrize("mirror", ["motion", "off"])
async def test_motion_mirror_is_configurable(service_factory, mosquitto, mirror):
    """A contact alarm is motion only with motion_mirror = "alarms"; "off" declares no motion topics."""
    port = free_port()
    async with service_factory(config(port, mosquitto, mirror=mirror)) as svc:
        cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
        try:
            await cam.update_xaddrs()
            events = await cam.create_events_service()
            props = await events.GetEventProperties()
            declared = {el.tag.split("}")[1] for el in props.TopicSet._value_1}
            assert ("VideoSource" in declared and "RuleEngine" in declared) is (mirror != "off")
            mgr = await cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
            pp = mgr.get_service()
            await pull(pp)
            await door(mosquitto, False)
            got = await pull_until(pp, lambda g: any(n[1].get("InputToken") == "front_door" for n in g))
            assert not any("Motion" in n[0] for n in got)
            await mgr.shutdown()
        finally:
            await cam.close()
