"""Adapters on real-shaped payloads, through a real Mosquitto and the real ingest; garbage is
counted in /metrics and never stops the ingest."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.bus import SensorReading
from edge.sensors.adapters import ADAPTERS, BadPayload, parse_json
from edge.sensors.badpayload import BadPayloadReporter
from edge.sensors.config import SensorConfig
from edge.sensors.router import Router, topic_matches

from .sensor_helpers import metric, publish, sensors_toml, wait_for

SENSORS = """
[[sensors]]
id = "front_door"
kind = "contact"
topic = "zigbee2mqtt/front_door"

[[sensors]]
id = "hall_pir"
kind = "motion"
topic = "zigbee2mqtt/hall_pir"

[[sensors]]
id = "climate"
kind = "temperature"
topic = "zigbee2mqtt/climate"

[[sensors]]
id = "zw_temp"
kind = "temperature"
topic = "gateway/zwave"
adapter = "zwave"
device_id = "c8e8de37-d301-45f4-ba01-0000000000aa"

[[sensors]]
id = "zw_door"
kind = "contact"
topic = "gateway/zwave"
adapter = "zwave"
device_id = "21"

[[sensors]]
id = "cam"
kind = "motion"
topic = "gateway/camera"
adapter = "zwave"

[[sensors]]
id = "yl_door"
kind = "contact"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000001"

[[sensors]]
id = "yl_leak"
kind = "leak"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000002"

[[sensors]]
id = "yl_smoke"
kind = "smoke"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000003"

[[sensors]]
id = "yl_th"
kind = "temperature"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000004"

[[sensors]]
id = "yl_vib"
kind = "vibration"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000005"

[[sensors]]
id = "yl_pir"
kind = "motion"
topic = "yl-home/h1/+/report"
adapter = "yolink"
device_id = "d88b4c0100000006"

[[sensors]]
id = "pump"
kind = "generic"
topic = "plant/pump"
adapter = "generic"
fields.running = { path = "status.run", map = { RUN = true, STOP = false } }
fields.pressure = { path = "p.1", scale = 0.1 }

[[sensors]]
id = "relay_echo"
kind = "generic"
topic = "plain/onoff"
adapter = "generic"
fields.on = { path = ".", map = { ON = true, OFF = false } }
"""

Z2M_DOOR = {"battery": 100, "battery_low": False, "contact": False, "linkquality": 141, "tamper": False,
            "voltage": 3025, "last_seen": "2026-11-23T05:00:00+00:00", "update": {"state": "idle"}}
Z2M_PIR = {"battery": 87, "illuminance": 12, "linkquality": 96, "occupancy": True, "tamper": False, "voltage": 2950}
Z2M_CLIMATE = {"battery": 64, "humidity": 48.27, "linkquality": 120, "temperature": 21.43, "voltage": 2865}
ZW_TEMP = {"vendor": "acme", "version": "3.0.0", "timestampMs": "1571754749561", "clientType": "gateway",
           "deviceId": "c8e8de37-d301-45f4-ba01-0000000000aa", "deviceType": "sensor", "protocol": "zwave",
           "messageType": "sensorData", "homeId": "0xefa0cfa7", "nodeId": "19", "sensorType": "SENSOR MULTILEVEL",
           "label": "Temperature", "sensorData": "79.7", "units": "F", "gatewayId": "6774f85a-0a5b-4059-9b68-000000000000"}
ZW_DOOR = {**ZW_TEMP, "deviceId": "aa-21", "nodeId": "21", "sensorType": "NOTIFICATION", "label": "Access Control",
           "sensorData": "Open", "units": ""}
CAM_STATE = {"vendor": "acme", "version": "3.0.0", "timestampMs": "1571753150317", "clientType": "gateway",
             "deviceId": "1616453d-30cd-44b7-9bf0-000000000000", "deviceType": "camera", "protocol": "onvif",
             "messageType": "deviceState", "deviceState": "streamingOn", "mediaserverIp": "192.0.2.1",
             "applicationName": "rtp-live-iot", "gatewayId": "6774f85a-0a5b-4059-9b68-000000000000"}
CAM_MOTION = {**CAM_STATE, "messageType": "sensorData", "sensorData": "true"}
del CAM_MOTION["deviceState"]


def yl(event: str, dev: str, data: dict) -> dict:
    return {"event": event, "time": 1763875200000, "msgid": "1763875200000", "data": data, "deviceId": dev}


YL_DOOR = yl("DoorSensor.Alert", "d88b4c0100000001", {"state": "open", "alertType": "openRemind", "battery": 4,
                                                          "version": "0605", "loraInfo": {"signal": -61, "gatewayId": "x"}})
YL_LEAK = yl("LeakSensor.Alert", "d88b4c0100000002", {"state": "alert", "battery": 3, "alertType": "normal"})
YL_SMOKE = yl("COSmokeSensor.Alert", "d88b4c0100000003",
              {"state": {"unexpected": False, "smokeAlarm": True, "gasAlarm": False, "highTempAlarm": False,
                         "sLowBattery": False}, "battery": 4})
YL_TH = yl("THSensor.Report", "d88b4c0100000004", {"state": "normal", "temperature": 22.5, "humidity": 41, "battery": 2,
                                                     "mode": "c"})
YL_VIB = yl("VibrationSensor.Alert", "d88b4c0100000005", {"state": "alert", "battery": 4})
YL_PIR = yl("MotionSensor.Alert", "d88b4c0100000006", {"state": "alert", "battery": 1})


async def test_adapters_on_real_shaped_payloads(mosquitto, service_factory):
    async with service_factory(sensors_toml(mosquitto.port, SENSORS)) as svc:
        sensors = svc.component("sensors")
        await wait_for(lambda: sensors.ingest.connected, what="ingest connected")
        j = json.dumps
        await publish(mosquitto.port,
                      ("zigbee2mqtt/front_door", j(Z2M_DOOR)), ("zigbee2mqtt/hall_pir", j(Z2M_PIR)),
                      ("zigbee2mqtt/climate", j(Z2M_CLIMATE)),
                      ("gateway/zwave", j(ZW_TEMP)), ("gateway/zwave", j(ZW_DOOR)),
                      ("gateway/camera", j(CAM_STATE)), ("gateway/camera", j(CAM_MOTION)),
                      ("yl-home/h1/d88b4c0100000001/report", j(YL_DOOR)),
                      ("yl-home/h1/d88b4c0100000002/report", j(YL_LEAK)),
                      ("yl-home/h1/d88b4c0100000003/report", j(YL_SMOKE)),
                      ("yl-home/h1/d88b4c0100000004/report", j(YL_TH)),
                      ("yl-home/h1/d88b4c0100000005/report", j(YL_VIB)),
                      ("yl-home/h1/d88b4c0100000006/report", j(YL_PIR)),
                      ("plant/pump", j({"status": {"run": "RUN"}, "p": [0, 42]})),
                      ("plain/onoff", "ON"))
        st = sensors.state
        ids = ["front_door", "hall_pir", "climate", "zw_temp", "zw_door", "cam", "yl_door", "yl_leak", "yl_smoke", "yl_th",
               "yl_vib", "yl_pir", "pump", "relay_echo"]
        # state sensors and telemetry come over separate connections: wait for every one
        await wait_for(lambda: all(st(i) for i in ids) and len(st("cam")) == 2, what="every sensor's reading")
        assert st("front_door") == {"contact": False, "battery": 100, "battery_low": False, "linkquality": 141, "tamper": False}
        assert st("hall_pir") == {"occupancy": True, "battery": 87, "linkquality": 96, "tamper": False}
        assert st("climate") == {"temperature": 21.43, "humidity": 48.27, "battery": 64, "linkquality": 120}
        assert st("zw_temp") == {"temperature": 26.5}  # 79.7 F
        assert st("zw_door") == {"contact": False}  # "Open"
        assert st("cam") == {"streaming": True, "occupancy": True}
        assert st("yl_door") == {"contact": False, "battery": 100, "alert": "openRemind", "open_remind": True, "signal": -61}
        assert st("yl_leak") == {"water_leak": True, "battery": 75, "alert": "normal"}
        assert st("yl_smoke") == {"smoke": True, "co": False, "heat": False, "battery": 100}
        assert st("yl_th") == {"temperature": 22.5, "humidity": 41, "battery": 50}
        assert st("yl_vib") == {"vibration": True, "battery": 100}
        assert st("yl_pir") == {"occupancy": True, "battery": 25}
        assert st("pump") == {"running": True, "pressure": pytest.approx(4.2)}
        assert st("relay_echo") == {"on": True}
        assert await metric(svc, "edge_sensor_bad_payloads_total") == 0


GARBAGE = [
    os.urandom(64),
    b"\xff\xfe\x00\x01binary",
    b"[" * 100_000 + b"]" * 100_000,                      # deep JSON (and over the size limit)
    b'{"a":' * 40 + b"1" + b"}" * 40,                     # deep JSON under the size limit
    b'{"contact": ' + b"9" * 5000 + b"}",                  # an integer too long to parse
    b'{"temperature": 1e999}',                            # a float that overflows
    b'{"temperature": NaN}',
    b'{"contact": "yes"}',                                # wrong type
    b'{"battery": "full"}',
    b'{"humidity": 400}',                                 # out of range
    b'[1, 2, 3]',
    b'"just a string"',
    b"",
    b"null",
    b'{"unrelated": true}',                               # matches nothing
]


async def test_garbage_is_counted_and_survived(mosquitto, service_factory):
    async with service_factory(sensors_toml(mosquitto.port, SENSORS)) as svc:
        sensors = svc.component("sensors")
        await wait_for(lambda: sensors.ingest.connected, what="ingest connected")
        msgs = [("zigbee2mqtt/front_door", g) for g in GARBAGE]
        msgs += [("gateway/zwave", b'{"messageType": "sensorData", "deviceId": "c8e8de37-d301-45f4-ba01-0000000000aa",'
                                   b' "label": "Temperature", "sensorData": {"x": 1}}'),
                 ("yl-home/h1/d88b4c0100000001/report", b'{"event": "DoorSensor.Alert", "deviceId": "d88b4c0100000001",'
                                                        b' "data": {"state": 7}}'),
                 ("plant/pump", b'{"status": {"run": "MAYBE"}}')]
        await publish(mosquitto.port, *msgs)
        # the ingest is still alive: a good message afterwards is decoded
        await publish(mosquitto.port, ("zigbee2mqtt/front_door", b'{"contact": true}'))
        await wait_for(lambda: sensors.state("front_door").get("contact") is True, what="the good message after garbage")
        # (state sensors and telemetry arrive on separate connections: wait for both lanes)
        await wait_for(lambda: sensors.bad.total == len(msgs), what="every bad payload counted")
        assert await metric(svc, "edge_sensor_bad_payloads_total") == len(msgs)
        assert await metric(svc, "edge_sensor_bad_payloads_total", adapter="zigbee2mqtt", reason="parse") >= 5
        assert await metric(svc, "edge_sensor_bad_payloads_total", adapter="zwave") == 1
        assert await metric(svc, "edge_sensor_bad_payloads_total", adapter="generic", reason="mismatch") == 1
        assert sensors.state("front_door") == {"contact": True}
        assert sensors.ingest.connects == len(sensors.ingest.lanes) == 2  # no lane dropped its connection over it


def test_bad_payload_logged_once_per_topic_per_minute(caplog):
    bad = BadPayloadReporter(None)
    r = Router([SensorConfig(id="d", kind="contact", topic="z/d"), SensorConfig(id="e", kind="contact", topic="z/e")],
               lambda _r: None, bad)
    with caplog.at_level("WARNING", logger="edge.sensors"):
        for _ in range(50):
            r.handle("z/d", b"not json")
            r.handle("z/e", b'{"contact": 3}')
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 2 and bad.total == 100
    assert "not JSON" in lines[0] and "'z/d'" in lines[0]
    assert "contact: expected true/false, got 3" in lines[1]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                              max_leaves=30).map(lambda v: json.dumps(v).encode())))
def test_router_never_raises(payload):
    got: list[SensorReading] = []
    sensors = [SensorConfig(id=f"s{i}", kind="contact", topic="t", adapter=a) for i, a in
               enumerate(["zigbee2mqtt", "zwave", "zwave_js_ui", "yolink"])]
    sensors.append(SensorConfig(id="g", topic="t", adapter="generic", fields={"v": {"path": "a.b"}}))
    r = Router(sensors, got.append, BadPayloadReporter(None))
    r.handle("t", payload)
    for reading in got:
        json.dumps(reading.fields, allow_nan=False)  # whatever got through is clean JSON


def test_parse_json_limits():
    with pytest.raises(BadPayload, match="over the 100 byte limit"):
        parse_json(b"{}" + b" " * 200, 100)
    with pytest.raises(BadPayload, match="nested"):
        parse_json(b"[" * 50 + b"]" * 50)
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


@pytest.mark.parametrize("filt,topic,ok", [
    ("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/#", "a/b/c", True), ("a/#", "a", True),
    ("a/b", "a/b/c", False), ("+/+", "a/b", True), ("+", "a/b", False)])
def test_topic_filters(filt, topic, ok):
    assert topic_matches(filt, topic) is ok


def test_zwave_contact_and_unknown_label():
    s = SensorConfig(id="z", kind="generic", topic="t", adapter="zwave")
    z = ADAPTERS["zwave"]
    assert z.decode("t", {"messageType": "sensorData", "label": "Door/Window", "sensorData": "Closed"}, b"", s) == {"contact": True}
    assert z.decode("t", {"messageType": "sensorData", "label": "Energy", "sensorData": "0.05", "units": "kWh"}, b"", s) == {"energy": 0.05}
    assert z.decode("t", {"messageType": "preview", "deviceType": "camera"}, b"", s) is None


def test_payload_own_time_and_age():
    """The times payloads carry: YoLink ``time`` (ms), the Z-Wave gateway's ``timestampMs``
    (ms as text), Zigbee2MQTT ``last_seen`` (ISO 8601, local ISO, or epoch ms), Z-Wave JS UI's
    Time-Value ``time``; implausible ones (no clock, far future) are not used."""
    import time as _time

    from edge.sensors.adapters.base import SENT_AT, payload_time

    now = _time.time()

    def sent(adapter: str, body: dict, **cfg) -> float | None:
        s = SensorConfig(id="x", kind=cfg.pop("kind", "contact"), topic=cfg.pop("topic", "t/x"), adapter=adapter, **cfg)
        fields = ADAPTERS[adapter].decode(s.topic, body, json.dumps(body).encode(), s)
        return fields.get(SENT_AT)

    assert sent("yolink", yl("DoorSensor.Report", "d1", {"state": "open"})) == 1763875200.0
    assert sent("zwave", {**ZW_DOOR, "timestampMs": "1571754749561"}) == 1571754749.561
    assert sent("zigbee2mqtt", {"contact": True, "last_seen": "2026-11-23T05:00:00+00:00"}) == 1795410000.0
    assert sent("zigbee2mqtt", {"contact": True, "last_seen": "2026-11-23T06:00:00+01:00"}) == 1795410000.0
    assert sent("zigbee2mqtt", {"contact": True, "last_seen": 1795410000123}) == 1795410000.123
    assert sent("zigbee2mqtt", {"contact": True}) is None
    assert sent("zwave_js_ui", {"time": 1795410000123, "value": 22},
                topic="zwave/Hallway/Front_door/notification/endpoint_0/Access_Control/Door_state_simple") == 1795410000.123
    for bad in (0, 12345, "soon", True, None, now + 10 * 86400, float("nan"), {"x": 1}):
        assert payload_time(bad) is None, bad
    seen = []
    router = Router([SensorConfig(id="door", kind="contact", topic="z/door", max_age_s=60)], seen.append,
                    BadPayloadReporter(None))
    router.handle("z/door", json.dumps({"contact": False, "last_seen": int((now - 90) * 1000)}).encode())
    router.handle("z/door", json.dumps({"contact": False, "last_seen": int((now - 5) * 1000)}).encode())
    router.handle("z/door", b'{"contact": false}')
    (old, fresh, unknown) = seen
    assert old.stale and 89 < old.age_s < 95 and abs(old.ts - (now - 90)) < 1 and SENT_AT not in old.fields
    assert not fresh.stale and 4 < fresh.age_s < 10
    assert unknown.age_s is None and not unknown.stale and abs(unknown.ts - now) < 5
