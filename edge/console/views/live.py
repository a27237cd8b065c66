"""``GET /live?page=NAME``: Server-Sent Events carrying re-rendered fragments of the page the
browser shows, as the bus reports changes (``static/console.js`` swaps them in).

Each message is ``{"id": <element id>, "html": <its new outer HTML>}``. Changes that arrive
while a batch is rendered are coalesced into the next batch (a burst of readings costs one
render per fragment); a comment line every ``PING_S`` keeps proxies and the browser's
connection check happy, and re-renders the time-dependent parts (health, ages).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from aiohttp import web

from ...bus import Alarm, ComponentHealth, Event, RelayChanged, SensorChanged, SensorReading
from . import overview, sensors
from .. import session as sess

log = logging.getLogger("edge.console")

PING_S = 10.0


def fragments_for(page: str, ev: Event) -> set[str]:
    if page == "overview":
        if isinstance(ev, Alarm):
            return {"alarms"}
        if isinstance(ev, RelayChanged):
            return {"relays"}
        if isinstance(ev, ComponentHealth):
            return {"health"}
    elif page == "sensors" and isinstance(ev, (SensorChanged, SensorReading)):
        return {f"sensor-{ev.sensor}"}
    elif page == "relays" and isinstance(ev, RelayChanged):
        return {"relays"}
    return set()


def periodic(page: str) -> set[str]:
    return {"health"} if page == "overview" else set()


def render(console: Any, fid: str, csrf: str) -> str | None:
    if fid == "alarms":
        return console.fragment("_alarms.html", overview.values(console), csrf)
    if fid == "relays":
        return console.fragment("_relays.html", {"relays": overview.relays(console)}, csrf)
    if fid == "health":
        return console.fragment("_health.html", {"health": overview.health(console)}, csrf)
    if fid.startswith("sensor-"):
        row = sensors.row(console, fid[len("sensor-"):])
        return console.fragment("_sensor_row.html", {"s": row}, csrf) if row is not None else None
    return None


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    async def live(request: web.Request) -> web.StreamResponse:
        page = request.query.get("page", "overview")
        csrf = request[sess.SESSION].csrf
        sub = console.ctx.bus.subscribe(Alarm, SensorChanged, SensorReading, RelayChanged, ComponentHealth,
                                        maxsize=2000, replay=False, name="console-live")
        console.streams.add(sub)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        try:
            await resp.prepare(request)
            await resp.write(b": live\n\nretry: 2000\n\n")
            await _pump(sub, resp, lambda ev: fragments_for(page, ev), lambda: periodic(page),
                        lambda fid: render(console, fid, csrf))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            sub.close()
            console.streams.discard(sub)
        return resp

    router.add_get("/live", live)


async def _pump(sub: Any, resp: web.StreamResponse, wanted: Callable[[Event], set[str]],
                ticks: Callable[[], set[str]], render_one: Callable[[str], str | None]) -> None:
    while not sub.closed:
        dirty: set[str] = set()
        try:
            async with asyncio.timeout(PING_S):
                ev = await sub.get()
            dirty |= wanted(ev)
        except TimeoutError:
            dirty |= ticks()
            await resp.write(b": ping\n\n")
        except StopAsyncIteration:
            return
        while (more := sub.get_nowait()) is not None:
            dirty |= wanted(more)
        for fid in sorted(dirty):
            try:
                html = render_one(fid)
            except Exception:  # noqa: BLE001 - one broken fragment must not end the stream
                log.exception("console: rendering %s failed", fid)
                continue
            if html is not None:
                await resp.write(b"data: " + json.dumps({"id": fid, "html": html}).encode() + b"\n\n")
