"""The fleet uplink through a real broker bridge: the appliance's Mosquitto (bridge config
written by edge from [uplink.bridge]) and a central Mosquitto with TLS and client
certificates. State and events arrive under site/<id>/, commands come back, the bridge's
state is a sensor; a 60 s central outage, with the appliance broker restarted in the middle
of it, loses nothing and keeps the order."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from edge import config as config_mod
from edge.bus import SensorReading
from edge.uplink.bridge import render

from .peers import Broker, free_port
from .sensor_helpers import wait_for

OUTAGE_S = float(os.environ.get("EDGE_TEST_OUTAGE_S", "60"))


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def world_dir(prefix: str) -> Path:
    """Mosquitto started as root drops to its own user: its files must be reachable by it
    (pytest's tmp_path sits under a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="module")
def pki():
    """A fleet CA; the central broker's certificate (127.0.0.1); a device certificate."""
    d = world_dir("edge-pki-")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=fleet test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    for name, subj, ext in (("central", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                            ("device", "/CN=SITE-0042", "extendedKeyUsage=clientAuth")):
        openssl("req", *ec, "-subj", subj, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.crt")
    for f in d.iterdir():
        os.chmod(f, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


TOML = """
[mqtt]
host = "127.0.0.1"
port = {appliance}
backoff_initial_s = 0.1
backoff_max_s = 1.0

[uplink]
device_id = "dev1"
telemetry_interval_s = 0

[uplink.bridge]
# the first address has nothing listening: the bridge fails over to the second
addresses = ["127.0.0.1:{dead}", "127.0.0.1:{central}"]
site_id = "SITE-0042"
restart_min_s = 1
restart_max_s = 2
keepalive_s = 5
autosave_s = 1
tls = {{ ca_file = "{pki}/ca.crt", cert_file = "{pki}/device.crt", key_file = "{pki}/device.key" }}

[[sensors]]
id = "counter"
kind = "generic"
topic = "plant/counter"
adapter = "generic"
fields.value = {{ path = "." }}

[[sensors]]
id = "fleet_link"
kind = "connectivity"
topic = "site/+/bridge"
adapter = "generic"
fields.connected = {{ path = ".", map = {{ "1" = true, "0" = false }} }}

[relays.boards.pi]
type = "gpio"

[relays.channels.gate]
board = "pi"
pin = 17
mode = "pulse"
pulse_ms = 100
"""


class Peers:
    def __init__(self, pki: Path):
        self.pki = pki
        self.dir = tmp = world_dir("edge-bridge-")
        self.central = Broker("127.0.0.1", free_port(), tmp / "central", extra_conf=(
            f"cafile {pki}/ca.crt\ncertfile {pki}/central.crt\nkeyfile {pki}/central.key\n"
            "require_certificate true\nuse_identity_as_username true\n"))
        self.appliance = Broker("127.0.0.1", free_port(), tmp / "appliance")
        self.toml = TOML.format(appliance=self.appliance.port, central=self.central.port, dead=free_port(), pki=pki)
        cfg = config_mod.loads(self.toml)
        self.appliance.extra_conf = render(cfg.uplink, serial="UNUSED-SITE-ID-IS-SET")
        for b in (self.central, self.appliance):
            b.workdir.mkdir()

    def stop(self) -> None:
        self.appliance.stop()
        self.central.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CentralCollector:
    """A client of the central broker (TLS, device-like certificate) with a persistent
    session: it gets what arrives while it is away."""

    def __init__(self, peers: Peers, identifier: str = "central-collector"):
        self.peers, self.identifier = peers, identifier
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.connected = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    async def run(self) -> None:
        p = self.peers
        tls = aiomqtt.TLSParameters(ca_certs=f"{p.pki}/ca.crt", certfile=f"{p.pki}/device.crt", keyfile=f"{p.pki}/device.key")
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", p.central.port, identifier=self.identifier, clean_session=False,
                                          tls_params=tls) as c:
                    self.client = c
                    await c.subscribe("site/#", qos=1)
                    self.connected.set()
                    async for m in c.messages:
                        self.msgs.append((m.topic.value, bytes(m.payload), bool(m.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                self.client = None
                await asyncio.sleep(0.2)

    def counter(self) -> list[float]:
        return [json.loads(p)["value"] for t, p, r in self.msgs if t == "site/SITE-0042/sensor/counter" and not r]


@pytest.fixture
def peers(pki):
    p = Peers(pki)
    p.central.start()
    p.appliance.start()
    try:
        yield p
    finally:
        p.stop()


async def feed(svc, values) -> None:
    sensors = svc.component("sensors")
    for v in values:
        sensors.feed(SensorReading("counter", {"value": float(v)}, source="modbus"))
        await asyncio.sleep(0.01)


def test_generated_config_is_accepted_by_mosquitto(peers):
    # mosquitto refuses to start on a config it cannot parse; connection errors (the dead first
    # address) are not config errors
    assert peers.appliance.proc is not None and peers.appliance.proc.poll() is None
    log = (peers.appliance.workdir / "mosquitto.log").read_text()
    assert not re.search(r"Unknown configuration|Error found at|Invalid|Unable to open", log), log
    assert re.search(r"Connecting bridge .*edge-uplink", log), log


async def test_state_events_commands_and_link_sensor_through_the_bridge(peers, service_factory):
    col = CentralCollector(peers)
    task = asyncio.create_task(col.run())
    try:
        await asyncio.wait_for(col.connected.wait(), 10)
        async with service_factory(peers.toml) as svc:
            state = svc.component("sensors")
            # the bridge's own state, as a sensor of the appliance
            await wait_for(lambda: state.state("fleet_link").get("connected") is True,
                           timeout=30, what="bridge connected (after failing over from the dead address)")
            await feed(svc, [1, 2, 3])
            await wait_for(lambda: col.counter() == [1.0, 2.0, 3.0], timeout=15, what="states under site/SITE-0042/")
            assert (b"site/SITE-0042/availability", b"online") in {(t.encode(), p) for t, p, _ in col.msgs}
            # a command from the central side reaches the relay; the reply goes back
            assert col.client is not None
            await col.client.publish("site/SITE-0042/cmd", json.dumps({"id": "c1", "relay": "gate", "action": "pulse",
                                                                       "ms": 50}), qos=1)
            await wait_for(lambda: any(t == "site/SITE-0042/cmd/reply" for t, _, _ in col.msgs), timeout=10,
                           what="command reply from the site")
            reply = next(json.loads(p) for t, p, _ in col.msgs if t == "site/SITE-0042/cmd/reply")
            assert reply["id"] == "c1" and reply["ok"] is True, reply
            events = [json.loads(p) for t, p, _ in col.msgs if t == "site/SITE-0042/event"]
            assert any(e.get("type") == "relay" and e.get("relay") == "gate" for e in events)
            # nothing of the site leaks outside its prefix on the central broker
            assert all(t.startswith("site/SITE-0042/") for t, _, _ in col.msgs)
            # central gone: the link sensor says so (the bridge's keepalive notices)
            peers.central.stop()
            await wait_for(lambda: state.state("fleet_link").get("connected") is False,
                           timeout=30, what="bridge disconnected")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_central_outage_and_appliance_restart_lose_nothing_in_order(peers, service_factory):
    col = CentralCollector(peers)
    task = asyncio.create_task(col.run())
    try:
        await asyncio.wait_for(col.connected.wait(), 10)
        async with service_factory(peers.toml) as svc:
            # (before its first connection the bridge has no session on the appliance broker
            # yet: see image-build/README.md, "Fleet uplink")
            await wait_for(lambda: svc.component("sensors").state("fleet_link").get("connected") is True,
                           timeout=30, what="bridge connected")
            await feed(svc, range(0, 10))
            await wait_for(lambda: len(col.counter()) == 10, timeout=20, what="first 10 at the centre")
            peers.central.stop()
            t0 = asyncio.get_running_loop().time()
            await feed(svc, range(10, 60))
            await asyncio.sleep(OUTAGE_S / 2)
            # the appliance broker restarts while the bridge's queue waits for the centre
            peers.appliance.restart()
            await wait_for(lambda: svc.component("uplink").connected, timeout=15, what="edge back on the appliance broker")
            await feed(svc, range(60, 110))
            await asyncio.sleep(max(0.0, OUTAGE_S - (asyncio.get_running_loop().time() - t0)))
            assert len(col.counter()) == 10, "messages reached a stopped central broker?"
            peers.central.start()
            await wait_for(lambda: len(set(col.counter())) >= 110, timeout=60, what="all 110 after the outage")
            got = col.counter()
            # QoS 1 is at least once: a message in flight when a broker stopped comes again (the
            # payload's ts tells a consumer it is the same state); every value arrives, and the
            # first copies come in the order they were produced
            assert list(dict.fromkeys(got)) == [float(i) for i in range(110)], got
            print(f"110 states across a {OUTAGE_S:.0f} s central outage and an appliance broker restart: "
                  f"all arrived in order, {len(got) - 110} repeated (QoS 1)")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_render_remaps_under_the_site_and_fails_over_in_order():
    cfg = config_mod.loads('[uplink]\nprefix = "edge"\n[uplink.bridge]\naddresses = ["c1.example:8883", "c2.example"]\n'
                           'username = "fleet"\n')
    text = render(cfg.uplink, serial="AB12CD34")
    lines = text.splitlines()
    assert "address c1.example:8883 c2.example" in lines and "round_robin false" in lines
    assert "topic sensor/# out 1 edge/edge-ab12cd34/ site/AB12CD34/" in lines
    assert "topic cmd in 1 edge/edge-ab12cd34/ site/AB12CD34/" in lines
    assert "notification_topic site/AB12CD34/bridge" in lines and "cleansession false" in lines
    assert "bridge_cafile /var/lib/mosquitto/uplink/ca.crt" in lines and "bridge_insecure false" in lines
    assert "remote_username fleet" in lines and not any(l.startswith("remote_password") for l in lines)
    assert not any("homeassistant" in l for l in lines)  # discovery stays local
    assert text.index("max_queued_messages") < text.index("connection edge-uplink")  # globals first
    off = config_mod.loads('[uplink.bridge]\naddresses = ["c1"]\nenabled = false\n')
    assert "connection" not in render(off.uplink, serial="X")
    with pytest.raises(config_mod.ConfigError, match=r"uplink\.bridge\.addresses"):
        config_mod.loads('[uplink.bridge]\naddresses = ["c1:0"]\n')
    with pytest.raises(config_mod.ConfigError, match=r"uplink\.bridge\.addresses"):
        config_mod.loads('[uplink.bridge]\naddresses = []\n')
