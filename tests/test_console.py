"""The web console in a real browser (Playwright + Debian's chromium) against the demo config
on a real Mosquitto: log in, live sensors, a door alarm live on the overview and its
acknowledgement reaching the LCD and the uplink, the relay test button in the audit log,
cross-site and token-less posts refused, a rule edit applied live with the TOML's comments
kept, invalid input shown next to its field with the file unchanged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import aiomqtt
from aiohttp import web

from edge.store.readers import query_audit

from .browser import browser, log_in
from .peers import free_port
from .sensor_helpers import wait_for
from .test_demo_sensors import demo_toml


def mosquitto_pub(port: int, topic: str, payload: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-m", payload],
                   check=True, timeout=10)


async def test_live_overview_alarm_ack_relay_test_and_csrf(mosquitto, service_factory):
    async with service_factory(demo_toml(mosquitto.port), demo=True) as svc, browser() as bctx:
        base = f"http://127.0.0.1:{svc.ctx.config.web.port}"
        page = await bctx.new_page()
        await log_in(page, base, svc.password)

        # every demo sensor listed with its live state (the simulator moves them)
        await page.goto(base + "/sensors")
        for s in svc.ctx.config.sensors:
            row = page.locator(f"tr[data-sensor='{s.id}']")
            await row.wait_for()
        await page.wait_for_function(
            "() => [...document.querySelectorAll('tr[data-sensor] [data-state]')].every(e => e.textContent !== 'no data')",
            timeout=20_000)
        assert await page.locator("tr[data-sensor]").count() == len(svc.ctx.config.sensors)

        # the uplink's events, from the broker's side
        events: list[dict] = []
        async def collect() -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                await c.subscribe(svc.component("uplink").topics.event, qos=1)
                async for m in c.messages:
                    events.append(json.loads(m.payload))
        collector = asyncio.create_task(collect())

        # door opens -> the overview shows the alarm without a reload
        await page.goto(base + "/")
        await page.wait_for_selector("body[data-live-ready]")
        await page.evaluate("window.__noReload = 1")
        await asyncio.sleep(0.3)  # the collector is subscribed
        t0 = time.monotonic()
        await asyncio.to_thread(mosquitto_pub, mosquitto.port, "zigbee2mqtt/front_door", '{"contact":false}')
        alarm = page.locator("[data-alarm='front_door:front-door']")
        await alarm.wait_for(timeout=5000)
        shown_s = time.monotonic() - t0
        assert shown_s <= 1.0, f"alarm on the overview {shown_s:.2f} s after the door message"
        assert await page.evaluate("window.__noReload") == 1
        lcd = svc.component("setup")
        await wait_for(lambda: "ALARM" in " ".join(lcd.lcd.text()), what="the alarm on the LCD")

        # acknowledge it on the console: gone from the LCD, published by the uplink, on record
        await alarm.locator("button").click()
        await page.wait_for_selector("[data-alarm='front_door:front-door'].acked")
        await wait_for(lambda: "ALARM" not in " ".join(lcd.lcd.text()), what="the LCD's alarm screen gone")
        await wait_for(lambda: any(e.get("alarm") == "front_door:front-door" and e.get("acknowledged")
                                   and e.get("acked_by") == "console:admin" for e in events), what="the ack in the uplink")
        collector.cancel()

        # relay test button -> the pulse is in the audit log with the console as its source
        await page.goto(base + "/relays")
        await page.click("button[data-relay-test='buzzer']")
        await page.wait_for_selector("#relay-result.ok")
        await svc.ctx.store.flush()
        audit = [a for a in query_audit(svc.ctx.store.path, relay="buzzer") if "console:admin" in a.detail]
        assert audit and audit[-1].command.startswith("pulse") and audit[-1].outcome == "ok"
        await page.reload()
        assert "source=console:admin" in await page.locator("table.audit").inner_text()

        # a request from the console's own page without the CSRF token: refused
        status = await page.evaluate("""async () => (await fetch('/relays/door_strike/pulse',
            {method: 'POST', body: new URLSearchParams({x: '1'})})).status""")
        assert status == 403
        # a cross-site form post (another origin, the browser still logged in): refused
        evil_port = free_port()
        evil = web.Application()
        form = (f"<form method=post action='{base}/relays/door_strike/pulse'><input name=csrf value=guess></form>"
                "<script>document.forms[0].submit()</script>")

        async def evil_page(request: web.Request) -> web.Response:
            return web.Response(text=form, content_type="text/html")

        evil.router.add_get("/", evil_page)
        runner = web.AppRunner(evil)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", evil_port).start()
        try:
            async with page.expect_response(lambda r: "/relays/door_strike/pulse" in r.url) as info:
                await page.goto(f"http://127.0.0.1:{evil_port}/")
            assert (await info.value).status == 403
        finally:
            await runner.cleanup()
        await svc.ctx.store.flush()
        assert not [a for a in query_audit(svc.ctx.store.path, relay="door_strike") if "console" in a.detail]


async def test_rule_edit_applies_live_and_bad_input_is_refused(mosquitto, service_factory):
    async with service_factory(demo_toml(mosquitto.port), demo=True) as svc, browser() as bctx:
        base = f"http://127.0.0.1:{svc.ctx.config.web.port}"
        path = svc.ctx.config_path
        page = await bctx.new_page()
        await log_in(page, base, svc.password)
        n = next(i for i, r in enumerate(svc.ctx.config.rules) if r.name == "front-door")

        # invalid input: an error next to the field, the file unchanged
        before = path.read_bytes()
        await page.goto(f"{base}/rules/{n}/edit")
        await page.fill("input[name='actions.0.ms']", "-5")
        await page.click("#rule-form > button")
        err = page.locator(".field-error[data-field='actions.0.ms']")
        assert "greater than or equal to 1" in await err.inner_text()
        assert "rules[" in await err.inner_text()  # the key path
        await page.fill("input[name='actions.0.ms']", "700")
        await page.fill("input[name='actions.0.target']", "nope")
        await page.click("#rule-form > button")
        assert "unknown relay 'nope'" in await page.locator(".field-error[data-field='actions.0.target']").inner_text()
        await page.goto(base + "/sensors/new")
        await page.fill("input[name=id]", "front_door")
        await page.fill("input[name=topic]", "zigbee2mqtt/another")
        await page.click("form.card > button")
        assert "duplicate sensor id" in await page.locator(".field-error[data-field='id']").inner_text()
        assert path.read_bytes() == before

        # a new pulse length, saved and applied live: the next door message pulses that long
        await page.goto(f"{base}/rules/{n}/edit")
        assert await page.input_value("input[name='actions.0.ms']") == "2000"
        await page.fill("input[name='actions.0.ms']", "700")
        await page.click("#rule-form > button")
        await page.wait_for_url(base + "/rules")
        assert "Applied now: rules" in await page.locator(".flash").inner_text()
        text = path.read_text()
        assert "# Zigbee2MQTT door contact: the one to play with." in text  # comments kept
        assert "{ pulse = \"siren\", ms = 700 }" in text
        assert path.with_name(path.name + ".bak").read_bytes() == before  # the previous file kept

        board = svc.component("relays").sim_servers["main"].board
        ch = svc.ctx.config.relays.channels["siren"].channel
        h0 = len(board.history)
        mosquitto_pub(mosquitto.port, "zigbee2mqtt/front_door", '{"contact":false}')
        edges = await wait_for(lambda: (lambda h: h if len(h) >= 2 else None)(
            [e for e in board.history[h0:] if e[1] == ch]), what="the siren pulse on the board")
        (t_on, _, on), (t_off, _, off) = edges[:2]
        assert on and not off
        assert 0.6 <= t_off - t_on <= 0.9, f"pulse of {(t_off - t_on) * 1000:.0f} ms, expected 700"
