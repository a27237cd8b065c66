"""The overview: site, health of every component and link, active alarms (acknowledge),
relays with their state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...interfaces import ALARMS, RELAYS
from .. import session as sess


def alarms(console: Any) -> list[Any]:
    ctl = console.ctx.registry.get(ALARMS)
    return ctl.active_alarms() if ctl is not None else []


def sensor_names(console: Any) -> dict[str, str]:
    return {s.id: s.name for s in console.ctx.config.sensors}


def health(console: Any) -> list[Any]:
    svc = console.service
    rows = svc.components() if svc is not None else []
    return [r for r in rows if r.name != "console"]


def relays(console: Any) -> list[Any]:
    r = console.ctx.registry.get(RELAYS)
    return r.describe() if r is not None else []


def values(console: Any) -> dict[str, Any]:
    return {"alarms": alarms(console), "names": sensor_names(console), "health": health(console),
            "relays": relays(console)}


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    async def overview(request: web.Request) -> web.Response:
        return console.page(request, "overview.html", values(console))

    async def ack(request: web.Request) -> web.Response:
        alarm = request.match_info["alarm"]
        ctl = console.ctx.registry.get(ALARMS)
        if ctl is None:
            raise web.HTTPServiceUnavailable(text="no alarm service (no rules configured)\n")
        res = ctl.acknowledge(alarm, console.who(request))
        if request.headers.get("HX-Request"):
            return web.Response(text=console.fragment("_alarms.html", values(console), request[sess.SESSION].csrf),
                                content_type="text/html")
        console.flash(request, f"Alarm {alarm} acknowledged." if res.ok else f"Not acknowledged: {res.error}")
        raise web.HTTPSeeOther("/")

    router.add_get("/", overview)
    router.add_post("/alarms/{alarm}/ack", ack)
