"""The npm `onvif` package (the client library UniFi Protect bundles), run with node, against
edge: its connect sequence (GetSystemDateAndTime, GetServices, GetProfiles, GetVideoSources),
device information, both profiles with their full encoder configuration, stream and snapshot
URIs (the stream opened by ffprobe), encoder configurations and options, event properties,
and a PullPoint event from a Zigbee2MQTT door message. The package is installed by
`make setup` from tests/onvif-npm/package-lock.json; nothing is downloaded here."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from .peers import free_port

NODE = shutil.which("node")
FFPROBE = shutil.which("ffprobe")
CLIENT = Path(__file__).parent / "onvif-npm" / "client.js"
INSTALLED = (CLIENT.parent / "node_modules" / "onvif").is_dir()

pytestmark = pytest.mark.skipif(NODE is None or FFPROBE is None, reason="node or ffprobe missing (make setup)")


def config(port: int, broker) -> str:
    return f"""
[web]
host = "127.0.0.1"
port = {port}

[onvif]
discovery = false

[video]
rtsp_host = "127.0.0.1"
rtsp_port = 0
width = 640
height = 360
fps = 2

[mqtt]
host = "{broker.host}"
port = {broker.port}

[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "zigbee2mqtt/front_door"
adapter = "zigbee2mqtt"

[[rules]]
name = "front-door"
sensor = "front_door"
actions = [{{ alarm = "Front door opened" }}]
"""


async def test_npm_onvif_client_connects_streams_and_gets_a_door_event(service_factory, mosquitto):
    assert INSTALLED, "tests/onvif-npm/node_modules is missing: run `make setup`"
    port = free_port()
    async with service_factory(config(port, mosquitto)) as svc:
        proc = await asyncio.create_subprocess_exec(NODE, str(CLIENT), "127.0.0.1", str(port), svc.user, svc.password,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        steps: dict[str, dict] = {}
        uris: dict[str, dict] = {}
        events: list[dict] = []

        async def read_until(pred, timeout: float) -> dict:
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"npm onvif: nothing matching after {timeout} s; steps {list(steps)}, events {events}"
                line = await asyncio.wait_for(proc.stdout.readline(), left)
                if not line:
                    err = (await proc.stderr.read()).decode()[-2000:]
                    raise AssertionError(f"npm onvif client exited: {err}")
                msg = json.loads(line)
                assert "error" not in msg, msg["error"]
                if "step" in msg:
                    if msg["step"] == "uris":
                        uris[msg["token"]] = msg
                    steps[msg["step"]] = msg
                if "event" in msg:
                    events.append(msg["event"])
                if pred(msg):
                    return msg

        try:
            await read_until(lambda m: m.get("ready"), 20)
            assert steps["connect"]["media2"] is False and "media" in steps["connect"]["uri"]
            assert steps["deviceInformation"]["serialNumber"] == svc.ctx.credentials.get().serial
            main, sub = steps["profiles"]["profiles"]
            assert (main["width"], main["height"], sub["width"], sub["height"]) == (640, 360, 320, 180)
            for p in (main, sub):
                assert p["encoding"] == "H264" and p["frameRateLimit"] == 2 and p["bitrateLimit"] > 0
                assert p["govLength"] and p["h264Profile"] and p["sessionTimeout"]
            assert steps["encoders"]["tokens"] == ["dashboard_h264", "dashboard_sub_h264"]
            assert all(rc["frameRateLimit"] == 2 for rc in steps["encoders"]["rateControl"])
            assert steps["encoderOptions"]["h264"]["resolutionsAvailable"]
            assert "device" in steps["eventProperties"]["topics"]

            # the stream URI the library got, opened by ffprobe with the credentials
            u = urlsplit(uris["dashboard_sub"]["stream"])
            creds = svc.ctx.credentials.get()
            out = await asyncio.to_thread(subprocess.run, [
                FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json",
                urlunsplit(u._replace(netloc=f"{creds.user}:{creds.password}@{u.netloc}"))],
                capture_output=True, timeout=30)
            stream = json.loads(out.stdout)["streams"][0]
            assert (stream["width"], stream["height"]) == (320, 180)
            assert urlsplit(uris["dashboard"]["snapshot"]).path == "/snapshot.jpg"

            # a door message becomes the DigitalInput event the library emits
            t0 = time.monotonic()
            pub = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-t", "zigbee2mqtt/front_door",
                "-m", '{"contact": false}')
            assert await pub.wait() == 0
            ev = await read_until(lambda m: m.get("event", {}).get("source", {}).get("InputToken") == "front_door"
                                  and m["event"]["operation"] == "Changed", 30)
            print(f"door message -> npm onvif 'event': {(time.monotonic() - t0) * 1000:.0f} ms")
            assert ev["event"]["topic"] == "tns1:Device/Trigger/DigitalInput"
            assert ev["event"]["data"]["LogicalState"] is True
        finally:
            proc.kill()
            await proc.wait()
