"""The receivers in the service: rules' report actions (their own code and zone, replacing the
kind's default), door-prop alarms, /healthz and /metrics, `edge report test|list`, a key file
others can read, and config errors that name the key and its line."""

from __future__ import annotations

import asyncio
import os
import sys
import subprocess

import pytest

from edge import config as config_mod

from .peers import digest_session, free_port, venv_bin
from .receiver_helpers import sia_toml
from .receiver_peers import KEY128, SiaPeer, write_key
from .sensor_helpers import metric, publish, wait_for

RULES = """
[[rules]]
name = "hot"
sensor = "server_room"
above = 28.0
actions = [{ alarm = "Server room over 28 C", kind = "temperature" }, { report = "arc", code = "KA", zone = 9 }]

[[rules]]
name = "door"
sensor = "front_door"
door_prop_s = 0.3
actions = [{ report = "arc", zone = 5 }]
"""


async def test_rule_report_actions_and_door_prop(mosquitto, service_factory):
    peer = await SiaPeer().start()
    toml = sia_toml(peer.port, mqtt_port=mosquitto.port, rules=RULES, kinds='["contact", "door_prop"]')
    try:
        async with service_factory(toml):
            await publish(mosquitto.port, ("z/server_room", '{"temperature":22.0}'), ("z/front_door", '{"contact":true}'))
            await publish(mosquitto.port, ("z/server_room", '{"temperature":29.5}'))
            await wait_for(lambda: "KA" in peer.codes(), 5, "KA from the rule")
            await publish(mosquitto.port, ("z/server_room", '{"temperature":25.0}'))
            await publish(mosquitto.port, ("z/front_door", '{"contact":false}'))
            await wait_for(lambda: "DL" in peer.codes(), 5, "door held open (door_prop)")
            await publish(mosquitto.port, ("z/front_door", '{"contact":true}'))
            await wait_for(lambda: "DH" in peer.codes() and "BH" in peer.codes(), 5, "door closed")
    finally:
        await peer.stop()
    got = [(ev.code, ev.message) for ev in peer.reports]
    assert got == [("KA", "009"), ("KH", "009"), ("BA", "005"), ("DL", "001"), ("BH", "005"), ("DH", "001")] or \
        got == [("KA", "009"), ("KH", "009"), ("BA", "005"), ("DL", "001"), ("DH", "001"), ("BH", "005")], got
    text = {ev.code: ev.extended_data[0].value for ev in peer.reports}
    assert text["KA"] == "Server room over 28 C" and text["KH"].startswith("Server room over 28 C: restored")
    # the rule's report replaced the kind's default: one BA (zone 5), not a second one for zone 1


async def test_health_metrics_and_the_cli(service_factory, tmp_path):
    peer = await SiaPeer(key=KEY128).start()
    data = tmp_path / "data"
    rel = write_key(data, "arc", KEY128)
    try:
        async with service_factory(sia_toml(peer.port, key=rel, null_interval_s=30), data) as svc:
            await wait_for(lambda: peer.nulls, 5, "the first link test")
            cmd = [venv_bin("edge"), "report", "test", "arc", "--config", str(svc.ctx.config_path), "--data-dir", str(data)]
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            seq = peer.reports[-1].sequence
            assert out.decode().startswith(f"arc: *ACK {seq} from primary 127.0.0.1:{peer.port} in ")
            assert peer.reports[-1].code == "RX"

            proc = await asyncio.create_subprocess_exec(venv_bin("edge"), "report", "list", *cmd[4:],
                                                        stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert out.decode().startswith("arc (sia): ok; primary 127.0.0.1:") and f"last answer *ACK {seq}" in out.decode()

            proc = await asyncio.create_subprocess_exec(venv_bin("edge"), "report", "test", "nope", *cmd[4:],
                                                        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 1 and "unknown receiver 'nope'" in err.decode()

            assert await metric(svc, "edge_receiver_connected", receiver="arc", path="primary") == 1
            assert await metric(svc, "edge_receiver_queue_length", receiver="arc") == 0
            assert await metric(svc, "edge_receiver_delivered_total", receiver="arc") >= 1
            assert await metric(svc, "edge_receiver_last_ack_timestamp_seconds", receiver="arc") > 0
            async with digest_session(svc.user, svc.password) as s:
                async with s.get(svc.base_url + "/healthz") as r:
                    health = (await r.json())["components"]["receivers"]["health"]
                async with s.post(svc.base_url + "/api/receivers/test", data=b"") as r:  # a form from another origin
                    assert r.status == 415
                async with s.post(svc.base_url + "/api/receivers/test", json={"timeout_s": "soon"}) as r:
                    assert r.status == 400 and "timeout_s" in (await r.json())["error"]
            assert health.startswith("arc: ok, answered ") and "0 queued" in health
            assert peer.codes().count("RX") == 1

            await peer.stop()  # the receiver goes away: the test says so, the report stays queued
            proc = await asyncio.create_subprocess_exec(venv_bin("edge"), "report", "test", *cmd[4:], "--timeout", "1",
                                                        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 1 and "arc: FAILED: no answer within 1 s" in err.decode()
            assert "stays queued" in err.decode()
    finally:
        await peer.stop()


async def test_a_key_file_others_can_read_is_refused_until_fixed(service_factory, tmp_path):
    peer = await SiaPeer(key=KEY128).start()
    data = tmp_path / "data"
    rel = write_key(data, "arc", KEY128)
    os.chmod(data / rel, 0o644)
    try:
        async with service_factory(sia_toml(peer.port, key=rel), data) as svc:
            comp = svc.component("receivers")
            rx = comp.receivers["arc"]
            await wait_for(lambda: rx.broken, 5, "the key refused")
            assert "open to other users" in rx.broken and "chmod 600" in rx.broken and not comp.health().ok
            from .receiver_helpers import door

            assert door(svc, True)  # queued meanwhile
            os.chmod(data / rel, 0o600)
            await wait_for(lambda: peer.reports, 5, "delivered once the key file is fixed")
    finally:
        await peer.stop()


def _problems(text: str) -> list[str]:
    with pytest.raises(config_mod.ConfigError) as ei:
        config_mod.loads(text, source="edge.toml")
    return ei.value.problems


def test_config_errors_name_key_and_line(tmp_path):
    base = sia_toml(free_port())
    config_mod.loads(base)
    (p,) = _problems(base.replace('account = "1234"', 'account = "12"'))
    assert "receivers.sia.arc.account" in p and "3-16 hex digits" in p
    (p,) = _problems(base.replace("[receivers.sia.arc]", '[receivers.sia.arc]\nkey = "DemoKey-16bytes!"'))
    assert "receivers.sia.arc.key:" in p and "unknown key" in p  # no secrets in the config
    (p,) = _problems(base.replace("front_door = 1 }", "front_door = 1, back_door = 2 }"))
    assert p.startswith("edge.toml:") and "receivers.zones.back_door" in p and "not in [[sensors]]" in p
    (p,) = _problems(base + '\n[[rules]]\nsensor = "front_door"\nactions = [{ report = "arx" }]\n')
    assert "rules[0].actions[0].report" in p and "unknown receiver 'arx' (receivers: arc)" in p
    (p,) = _problems(base + '\n[[rules]]\nsensor = "server_room"\nabove = 30\nactions = [{ report = "arc" }]\n')
    assert "kind 'temperature' has no report codes" in p
    (p,) = _problems(base.replace('primary = "127.0.0.1:', 'primary = "127.0.0.1;'))
    assert "receivers.sia.arc.primary" in p and "host:port" in p
    chekt = '\n[receivers.chekt.arc]\nurl = "http://10.0.0.2:30003/api/v1/events"\ntoken_file = "t"\n'
    (p,) = _problems(base + chekt)
    assert "names are unique across types" in p
    bad_body = chekt.replace("[receivers.chekt.arc]", "[receivers.chekt.bridge]") + 'body = { x = "{zone} {when}" }\n'
    (p,) = _problems(base + bad_body)
    assert "receivers.chekt.bridge.body" in p and "'when'" in p


def test_check_config_cli_on_the_demo_config():
    from edge.paths import DEMO_CONFIG

    r = subprocess.run([sys.executable, "-m", "edge", "check-config", str(DEMO_CONFIG)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = config_mod.load(DEMO_CONFIG)
    arc = cfg.receivers.sia["arc"]
    assert (arc.primary, arc.protocol, arc.account, arc.key_format) == ("127.0.0.1:7777", "tcp", "1234", "ascii")
    assert cfg.receivers.zones["front_door"] == 1


async def test_an_acknowledged_alarm_is_not_reported_again(mosquitto, service_factory):
    from edge.interfaces import ALARMS

    peer = await SiaPeer().start()
    rules = '\n[[rules]]\nname = "door"\nsensor = "front_door"\ndoor_prop_s = 0.2\nactions = []\n'
    try:
        async with service_factory(sia_toml(peer.port, mqtt_port=mosquitto.port, rules=rules, kinds='["door_prop"]')) as svc:
            await publish(mosquitto.port, ("z/front_door", '{"contact":true}'), ("z/front_door", '{"contact":false}'))
            await wait_for(lambda: peer.codes() == ["DL"], 5, "DL")
            assert svc.ctx.registry.get(ALARMS).acknowledge("front_door:door_prop", "test").ok
            await asyncio.sleep(0.3)
            await publish(mosquitto.port, ("z/front_door", '{"contact":true}'))
            await wait_for(lambda: peer.codes() == ["DL", "DH"], 5, "DH, and no second DL")
    finally:
        await peer.stop()


def test_the_console_edits_a_report_action():
    from multidict import MultiDict

    from edge.console.views.rules import actions_of, describe_actions, form_values
    from edge.rules.config import RuleConfig

    rule = RuleConfig.model_validate({"sensor": "front_door", "actions": [{"report": "arc", "code": "BA", "zone": 5}]})
    (row, blank) = form_values(rule)["actions"]
    assert (row["type"], row["target"], row["code"], row["zone"]) == ("report", "arc", "BA", 5) and blank["type"] == ""
    form = MultiDict({"actions.0.type": "report", "actions.0.target": "arc", "actions.0.code": "ka", "actions.0.zone": "7",
                      "actions.0.kind": "", "actions.0.ms": "", "actions.1.type": "", "actions.1.target": ""})
    assert actions_of(form) == [{"report": "arc", "code": "KA", "zone": 7}]
    assert describe_actions(type("C", (), {"ctx": type("X", (), {"registry": {}})()})(), rule, True) == \
        ["report BA zone 5 to receiver arc (through its queue)"]
