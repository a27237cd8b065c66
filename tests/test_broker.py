"""The appliance's Mosquitto broker in its shipped config (image-build/overlay/etc/mosquitto),
with the accounts `edge broker-setup` makes: a real Mosquitto, real clients."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from edge import broker_setup, credentials, tls

from .peers import MOSQUITTO, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "image-build" / "overlay" / "etc" / "mosquitto"

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto not installed")


class ApplianceBroker:
    """The shipped conf.d/edge-*.conf and acl, with the paths moved into a temp dir and the two
    listeners on free loopback ports."""

    def __init__(self, work: Path):
        self.work = work
        self.data = work / "data"
        self.etc = work / "mosquitto-edge"
        self.plain_port, self.tls_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        os.chmod(self.work, 0o755)
        broker_setup.setup(self.data, self.etc, group=None)
        shutil.copy(OVERLAY / "edge" / "acl", self.etc / "acl")
        for f in self.etc.iterdir():  # mosquitto drops to its own user when started as root
            os.chmod(f, 0o644)
        os.chmod(self.etc, 0o755)
        conf = (OVERLAY / "conf.d" / "edge-durability.conf").read_text()
        conf += f"persistence_location {self.work}/\n"  # Debian's mosquitto.conf sets it on the appliance
        conf += (OVERLAY / "conf.d" / "edge-latency.conf").read_text()
        conf += (OVERLAY / "conf.d" / "edge-listeners.conf").read_text()
        conf = conf.replace("/etc/mosquitto/edge", str(self.etc))
        conf = conf.replace("listener 1883 127.0.0.1", f"listener {self.plain_port} 127.0.0.1")
        conf = re.sub(r"^listener 8883$", f"listener {self.tls_port} 127.0.0.1", conf, flags=re.M)
        assert str(self.plain_port) in conf and str(self.tls_port) in conf
        (self.work / "mosquitto.conf").write_text(conf + f"log_dest file {self.work}/mosquitto.log\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.work / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.plain_port)
        wait_port("127.0.0.1", self.tls_port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)

    @property
    def creds(self) -> credentials.Credentials:
        c = credentials.load(self.data)
        assert c is not None
        return c

    def tls_context(self) -> ssl.SSLContext:
        cert = tls.load(self.data)
        assert cert is not None
        return tls.client_context(cert)

    def client(self, user: str | None, password: str | None, *, secure: bool = False, **kw) -> aiomqtt.Client:
        port = self.tls_port if secure else self.plain_port
        return aiomqtt.Client("127.0.0.1", port, username=user, password=password, timeout=5,
                              tls_context=self.tls_context() if secure else None, **kw)


@pytest.fixture
def broker():
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as d:
        b = ApplianceBroker(Path(d))
        b.start()
        try:
            yield b
        finally:
            b.stop()


async def test_anonymous_and_wrong_passwords_are_refused(broker):
    for user, pw in ((None, None), ("gateway", "guess"), ("edge", broker.creds.gateway_password), ("admin", broker.creds.password)):
        with pytest.raises(aiomqtt.MqttError):
            async with broker.client(user, pw):
                pass
    # TLS listener too
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client(None, None, secure=True):
            pass


async def test_gateway_publishes_sensor_topics_but_never_command_topics(broker):
    c = broker.creds
    edge_pw = broker_setup.service_password(broker.data)
    async with broker.client("edge", edge_pw) as edge:
        await edge.subscribe("#", qos=1)
        async with broker.client(c.gateway_user, c.gateway_password, secure=True) as gw:
            await gw.publish("zigbee2mqtt/front_door", b'{"contact":false}', qos=1)
            await gw.publish("zwave/hall/motion", b'{"value":true}', qos=1)
            # edge's command topics (uplink relay set/pulse, cmd) and anything else: dropped
            for topic in ("edge/edge-1234/relay/siren/set", "edge/edge-1234/relay/siren/pulse", "edge/edge-1234/cmd",
                          "homeassistant/switch/x/config"):
                await gw.publish(topic, b"ON", qos=1)
            await gw.publish("zigbee2mqtt/end", b"{}", qos=1)
        got = []
        async with asyncio.timeout(5):
            async for msg in edge.messages:
                got.append(str(msg.topic))
                if str(msg.topic) == "zigbee2mqtt/end":
                    break
        assert got == ["zigbee2mqtt/front_door", "zwave/hall/motion", "zigbee2mqtt/end"], got


async def test_broker_refuses_oversized_payloads_and_gateway_cannot_read_edge_topics(broker):
    c = broker.creds
    edge_pw = broker_setup.service_password(broker.data)
    async with broker.client(c.gateway_user, c.gateway_password, secure=True) as gw:
        await gw.subscribe("edge/#", qos=1)
        async with broker.client("edge", edge_pw) as edge:
            await edge.subscribe("zigbee2mqtt/#", qos=1)
            await edge.publish("edge/edge-1234/relay/siren", b"ON", qos=1)
            await gw.publish("zigbee2mqtt/big", b"x" * 70_000, qos=1)  # over message_size_limit
            await gw.publish("zigbee2mqtt/small", b"{}", qos=1)
            async with asyncio.timeout(5):
                msg = await anext(aiter(edge.messages))
            assert str(msg.topic) == "zigbee2mqtt/small"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await anext(aiter(gw.messages))


def test_setup_keeps_passwords_and_hashes_verify_with_mosquitto_format(tmp_path):
    data = tmp_path / "data"
    broker_setup.setup(data, tmp_path / "etc", group=None)
    first = broker_setup.service_password(data)
    broker_setup.setup(data, tmp_path / "etc", group=None)  # every boot: same passwords
    assert broker_setup.service_password(data) == first
    lines = dict(line.split(":", 1) for line in (tmp_path / "etc" / "passwd").read_text().splitlines())
    assert set(lines) == {"edge", "gateway"}
    assert all(h.startswith("$7$101$") for h in lines.values())
    assert first not in (tmp_path / "etc" / "passwd").read_text()
    assert ((data / "mqtt" / "edge.password").stat().st_mode & 0o777) == 0o600
