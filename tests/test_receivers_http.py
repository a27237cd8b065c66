"""CHEKT bridge and signed webhook against aiohttp servers in the shape of their APIs: auth,
body, retries on 5xx and on a refused connection, a restart with reports waiting."""

from __future__ import annotations

from pathlib import Path

from edge.receivers.keys import write_secret
from edge.receivers.queue import QUEUE_PREFIX
from edge.store.readers import outbox_count

from .peers import free_port
from .receiver_helpers import door
from .receiver_peers import HttpPeer
from .sensor_helpers import wait_for

TOKEN = "chekt-api-token-1234"
SECRET = b"webhook hmac secret"
FAST = "timeout_s = 1\nbackoff_initial_s = 0.1\nbackoff_max_s = 0.3\n"


def http_toml(chekt_port: int, hook_port: int) -> str:
    return f"""
[site]
name = "Shop 12"

[mqtt]
enabled = false

[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "z/front_door"

[receivers]
zones = {{ front_door = 3 }}

[receivers.chekt.bridge]
url = "http://127.0.0.1:{chekt_port}/api/v1/events"
token_file = "receivers/chekt.token"
{FAST}
[receivers.webhook.noc]
url = "http://127.0.0.1:{hook_port}/hooks/edge"
secret_file = "receivers/noc.secret"
{FAST}"""


def secrets(data: Path) -> None:
    write_secret(data / "receivers" / "chekt.token", TOKEN)
    write_secret(data / "receivers" / "noc.secret", SECRET.decode())


async def test_chekt_and_webhook_auth_body_and_retry_on_5xx(service_factory, tmp_path):
    chekt = await HttpPeer(token=TOKEN, fail=2).start()
    hook = await HttpPeer(path="/hooks/edge", secret=SECRET, fail=1).start()
    data = tmp_path / "data"
    secrets(data)
    try:
        async with service_factory(http_toml(chekt.port, hook.port), data) as svc:
            for name in ("bridge", "noc"):
                assert door(svc, True, receiver=name) and door(svc, False, receiver=name)
            await wait_for(lambda: len(chekt.received) == 2 and len(hook.received) == 2, 10, "both delivered")
            comp = svc.component("receivers")
            assert comp.receivers["bridge"].failures == 2 and comp.receivers["noc"].failures == 1  # the 503s
    finally:
        await chekt.stop()
        await hook.stop()
    assert chekt.refused == [] and hook.refused == []
    assert chekt.received == [{"target_channel": "3", "event_description": "Front door: OPEN"},
                              {"target_channel": "3", "event_description": "Front door: CLOSED"}]
    opened, closed = hook.received
    assert (opened["event"], opened["code"], opened["zone"], opened["text"], opened["site"]) == \
        ("alarm", "BA", 3, "Front door: OPEN", "Shop 12")
    assert (closed["event"], closed["code"]) == ("restore", "BH")
    assert opened["id"] != closed["id"] and opened["receiver"] == "noc"


async def test_wrong_token_is_retried_not_dropped(service_factory, tmp_path):
    chekt = await HttpPeer(token="the-real-token").start()
    data = tmp_path / "data"
    secrets(data)
    try:
        async with service_factory(http_toml(chekt.port, free_port()), data) as svc:
            assert door(svc, True, receiver="bridge")
            rx = svc.component("receivers").receivers["bridge"]
            await wait_for(lambda: rx.failures >= 2, 5, "401s")
            assert chekt.refused and not chekt.received and len(rx.queue) == 1
            assert "HTTP 401" in rx.links[0].last_error
    finally:
        await chekt.stop()


async def test_refused_connection_and_restart_with_reports_waiting(service_factory, tmp_path):
    chekt_port, hook_port = free_port(), free_port()
    data = tmp_path / "data"
    secrets(data)
    toml = http_toml(chekt_port, hook_port)
    async with service_factory(toml, data) as svc:  # nothing listens: connection refused
        for name in ("bridge", "noc"):
            assert door(svc, True, receiver=name) and door(svc, False, receiver=name)
        comp = svc.component("receivers")
        await wait_for(lambda: all(rx.failures >= 2 for rx in comp.receivers.values()), 5, "refused attempts")
        assert "Connect" in comp.receivers["bridge"].links[0].last_error
    db = data / "edge.db"
    assert outbox_count(db, QUEUE_PREFIX + "bridge") == 2 and outbox_count(db, QUEUE_PREFIX + "noc") == 2
    chekt = await HttpPeer(token=TOKEN, port=chekt_port).start()
    hook = await HttpPeer(path="/hooks/edge", secret=SECRET, port=hook_port).start()
    try:
        async with service_factory(toml, data):
            await wait_for(lambda: len(chekt.received) == 2 and len(hook.received) == 2, 10, "delivered after restart")
            await wait_for(lambda: outbox_count(db, QUEUE_PREFIX + "noc") == 0, 5, "outbox drained")
    finally:
        await chekt.stop()
        await hook.stop()
    assert [b["event_description"] for b in chekt.received] == ["Front door: OPEN", "Front door: CLOSED"]
    assert [b["code"] for b in hook.received] == ["BA", "BH"]
