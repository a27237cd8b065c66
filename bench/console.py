"""The web console: page weight and speed.

- overview_first_load_bytes: everything a browser transfers on its first visit of the
  overview after logging in (HTML, CSS, htmx, console.js; compressed as sent, headers
  included; the live event stream excluded), measured by Debian's chromium via Playwright.
- page_ms_p95: per page, the p95 of the time from request to full response on loopback
  (aiohttp client, logged-in session; the demo config with its simulator running), and the
  worst page's p95.
- live_update_ms_p95: a Zigbee2MQTT door-open message published -> the alarm element in the
  browser's overview (a MutationObserver stamps it with the browser's wall clock), p95.

Prints one JSON line. CONSOLE_PAGE_N (default 40) requests per page, CONSOLE_LIVE_N (default 20)
door openings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import aiomqtt  # noqa: E402

from tests.browser import browser, log_in  # noqa: E402
from tests.peers import mosquitto_broker, run_service_from_toml  # noqa: E402
from tests.test_demo_sensors import demo_toml  # noqa: E402

PAGE_N = int(os.environ.get("CONSOLE_PAGE_N", "40"))
LIVE_N = int(os.environ.get("CONSOLE_LIVE_N", "20"))
PAGES = ["/", "/sensors", "/rules", "/relays", "/events", "/charts", "/charts/office_temperature?range=week",
         "/camera", "/system"]
OBSERVER = """() => { window.__seen = null; new MutationObserver(() => {
  if (!window.__seen && document.querySelector("[data-alarm='front_door:front-door']:not(.acked)"))
    window.__seen = performance.timeOrigin + performance.now(); }).observe(document.body, {subtree: true, childList: true}); }"""


def p95(xs: list[float]) -> float:
    return round(statistics.quantiles(xs, n=20)[-1], 1) if len(xs) >= 2 else round(xs[0], 1)


async def first_load(bctx, base: str) -> int:
    page = await bctx.new_page()
    cdp = await bctx.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.clearBrowserCache")  # an empty cache: everything is transferred
    sizes = []

    async def on_finished(req) -> None:
        if "/live" not in req.url:
            s = await req.sizes()
            sizes.append(s["responseBodySize"] + s["responseHeadersSize"])

    page.on("requestfinished", lambda req: asyncio.ensure_future(on_finished(req)))
    await page.goto(base + "/", wait_until="load")
    await asyncio.sleep(0.5)
    await page.close()
    return sum(sizes)


async def page_times(base: str, password: str) -> dict[str, float]:
    out = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(base + "/login") as r:
            import re

            token = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
        async with s.post(base + "/login", data={"csrf": token, "user": "admin", "password": password}) as r:
            assert r.status == 200, r.status
        for p in PAGES:
            times = []
            for _ in range(PAGE_N):
                t0 = time.perf_counter()
                async with s.get(base + p, headers={"Accept-Encoding": "gzip"}) as r:
                    await r.read()
                    assert r.status == 200, (p, r.status)
                times.append((time.perf_counter() - t0) * 1000)
            out[p] = p95(times)
    return out


async def live_updates(page, base: str, port: int) -> list[float]:
    await page.goto(base + "/")
    await page.wait_for_selector("body[data-live-ready]")
    out = []
    async with aiomqtt.Client("127.0.0.1", port) as c:
        for _ in range(LIVE_N):
            await page.evaluate(OBSERVER)
            t0 = time.time()
            await c.publish("zigbee2mqtt/front_door", b'{"contact":false}', qos=1)
            await page.wait_for_function("() => window.__seen", timeout=5000)
            out.append((await page.evaluate("window.__seen") / 1000 - t0) * 1000)
            await c.publish("zigbee2mqtt/front_door", b'{"contact":true}', qos=1)
            await page.wait_for_selector("[data-alarm='front_door:front-door']", state="detached", timeout=5000)
            await asyncio.sleep(0.2)
    return out


async def main() -> dict[str, object]:
    logging.basicConfig(level=logging.ERROR)
    with mosquitto_broker() as broker, tempfile.TemporaryDirectory(prefix="edge-bench-console-") as d:
        async with run_service_from_toml(demo_toml(broker.port), Path(d), demo=True) as svc, browser() as bctx:
            base = svc.base_url
            await asyncio.sleep(2)  # the simulator has given the sensors their states
            page = await bctx.new_page()
            await log_in(page, base, svc.password)
            weight = await first_load(bctx, base)
            times = await page_times(base, svc.password)
            live = await live_updates(page, base, broker.port)
    return {"bench": "console", "overview_first_load_bytes": weight, "page_ms_p95_worst": max(times.values()),
            "page_ms_p95": times, "live_update_ms_p95": p95(live), "live_update_ms_median": round(statistics.median(live), 1),
            "page_n": PAGE_N, "live_n": LIVE_N}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())), flush=True)
