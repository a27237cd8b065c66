"""The console over plain HTTP (no browser): the failed-login brake, sessions and CSRF as an
API client sees them, a sensor added and applied live, the events CSV, a chart, the backups
and a refused config restore, and the session check's unit behaviour."""

from __future__ import annotations

import re
import sqlite3

import aiohttp
import pytest

from edge.console import session as sess
from edge.console import svg

from .peers import basic_auth, digest_session
from .sensor_helpers import publish, wait_for
from .test_demo_sensors import demo_toml


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(s: aiohttp.ClientSession, base: str, password: str, user: str = "admin") -> aiohttp.ClientResponse:
    async with s.get(base + "/login") as r:
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
    return await s.post(base + "/login", data={"csrf": token, "user": user, "password": password},
                        allow_redirects=False)


async def csrf_of(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url) as r:
        assert r.status == 200, url
        return re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)


async def test_console_over_http(mosquitto, service_factory):
    async with service_factory(demo_toml(mosquitto.port)) as svc:
        base = svc.base_url
        # the brake: three free tries, then 429 with Retry-After, even for the right password
        async with client() as s:
            for _ in range(4):
                r = await login(s, base, "wrong")
            assert r.status in (401, 429)
            r = await login(s, base, svc.password)
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        svc.component("console").brake.succeeded("127.0.0.1")

        async with client() as s:
            r = await login(s, base, svc.password)
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP
            token = await csrf_of(s, base + "/sensors/new")
            # a state change without the token, or from another origin: refused
            async with s.post(base + "/relays/buzzer/pulse", data={"x": "1"}) as r:
                assert r.status == 403
            async with s.post(base + "/relays/buzzer/pulse", data={"csrf": token},
                              headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403
            # an API client with Digest still works without a session (its own rules); Basic
            # only inside TLS
            async with digest_session(svc.user, svc.password) as api, api.get(base + "/api/relays") as r:
                assert r.status == 200
            async with aiohttp.ClientSession() as api:
                async with api.get(base + "/api/relays", headers=basic_auth(svc.user, svc.password)) as r:
                    assert r.status == 401

            # add a generic-adapter sensor: applied live, its messages tracked at once
            form = {"csrf": token, "id": "pump_room", "name": "Pump room", "kind": "generic", "source": "mqtt",
                    "topic": "site/pump", "adapter": "generic",
                    "fields": 'value = { path = "level" }\nrunning = { path = "state", map = { on = true, off = false } }'}
            async with s.post(base + "/sensors/new", data=form, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            assert "[[sensors]]\nid = \"pump_room\"" in svc.ctx.config_path.read_text()
            sensors = svc.component("sensors")
            assert "pump_room" in sensors.by_id
            await publish(mosquitto.port, ("site/pump", '{"level": 4.5, "state": "on"}'))
            await wait_for(lambda: sensors.state("pump_room") == {"value": 4.5, "running": True}, what="the new sensor's state")
            # the sensors kept their states across the rebuild (nothing looked changed)
            async with s.get(base + "/sensors") as r:
                assert 'data-sensor="pump_room"' in await r.text()

            # a dry test says what the rule would do, and drives nothing
            siren = svc.component("relays").channels["siren"]
            async with s.post(base + "/rules/test", data={
                    "csrf": token, "sensor": "front_door", "enabled": "on", "actions.0.type": "pulse",
                    "actions.0.target": "siren", "actions.0.ms": "500", "test_value": "false"}) as r:
                text = await r.text()
                assert "pulse siren for 500 ms" in text and "condition is <strong>true</strong>" in text
            assert not siren.on
            # disable a rule: written, and the engine stops acting on it at once
            n = next(i for i, r in enumerate(svc.ctx.config.rules) if r.name == "front-door")
            async with s.post(base + f"/rules/{n}/toggle", data={"csrf": token}) as r:
                assert r.status == 200 and "disabled" in await r.text()
            assert "enabled = false" in svc.ctx.config_path.read_text()
            assert "front_door" not in svc.component("rules").by_sensor

            # events: filtered page and CSV
            await svc.ctx.store.flush()
            async with s.get(base + "/events", params={"kind": "sensor", "source": "pump_room"}) as r:
                assert r.status == 200 and "4.5" in await r.text()
            async with s.get(base + "/events.csv", params={"source": "pump_room"}) as r:
                lines = (await r.text()).splitlines()
                assert lines[0] == "id,time,kind,source,payload" and any("pump_room" in x for x in lines[1:])
            async with s.get(base + "/charts/pump_room", params={"field": "value", "range": "day"}) as r:
                assert r.status == 200 and "<polyline" in await r.text()

            # backups, and a restore that would not load: refused, the file unchanged
            async with s.get(base + "/system/config.toml") as r:
                assert "pump_room" in await r.text()
            async with s.get(base + "/system/edge.db") as r:
                db = svc.ctx.data_dir / "copy.db"
                db.write_bytes(await r.read())
            assert sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0] > 0
            before = svc.ctx.config_path.read_bytes()
            data = aiohttp.FormData()
            data.add_field("csrf", token)
            data.add_field("config", b"[relays.channels.x]\nboard = \"nowhere\"\n", filename="bad.toml")
            async with s.post(base + "/system/config", data=data) as r:
                assert r.status == 422 and "nowhere" in await r.text()
            assert svc.ctx.config_path.read_bytes() == before

            # logout ends the session
            async with s.post(base + "/logout", data={"csrf": token}, allow_redirects=False) as r:
                assert r.status == 303
            async with s.get(base + "/sensors", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login")


def test_sessions_expire_and_brake_doubles():
    now = [1000.0]
    sessions = sess.Sessions(clock=lambda: now[0])
    s = sessions.open("admin")
    assert sessions.get(s.id) is s
    now[0] += sess.IDLE_S + 1
    assert sessions.get(s.id) is None
    brake = sess.LoginBrake(clock=lambda: now[0])
    waits = [brake.failed("10.0.0.9") for _ in range(sess.FREE_FAILURES + 3)]
    assert waits[:sess.FREE_FAILURES] == [0.0] * sess.FREE_FAILURES
    assert waits[sess.FREE_FAILURES:] == [1.0, 2.0, 4.0]
    assert brake.wait_s("10.0.0.9") == 4.0 and brake.wait_s("10.0.0.10") == 0.0


@pytest.mark.parametrize("lo,hi", [(0, 1), (-3.2, 41.7), (20.0, 20.0)])
def test_chart_svg(lo, hi):
    pic = svg.chart([(0, lo), (3600, hi)], [(0, lo - 1, lo + 1)], t0=0, t1=3600, unit="°C")
    assert pic.startswith("<svg") and "<polyline" in pic and "<polygon" in pic
    assert "style=" not in pic  # the console's CSP allows no inline styles
    assert "no readings" in svg.chart([], t0=0, t1=1)
