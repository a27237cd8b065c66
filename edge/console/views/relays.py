"""Relays: boards and channels with their state, a test pulse, on/off for latch channels, and
the audit log (every command with its source and outcome) from the store."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...interfaces import HISTORY, RELAYS
from . import overview

AUDIT_ROWS = 50


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    def relays() -> Any:
        r = console.ctx.registry.get(RELAYS)
        if r is None:
            raise web.HTTPServiceUnavailable(text="no relay service\n")
        return r

    async def index(request: web.Request) -> web.Response:
        history = console.ctx.registry.get(HISTORY)
        audit = await history.audit(limit=AUDIT_ROWS) if history is not None else []
        boards = console.ctx.config.relays.boards
        return console.page(request, "relays.html", {"relays": overview.relays(console), "audit": audit,
                                                     "boards": boards})

    async def command(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        r = relays()
        if name not in r.names():
            raise web.HTTPNotFound(text=f"no relay {name!r}\n")
        form = await request.post()
        action = request.match_info["action"]
        if action == "pulse":
            res = await r.pulse(name, None, source=console.who(request))
        else:
            on = form.get("on") == "on"
            res = await r.set(name, on, source=console.who(request))
        msg = (f"{name}: {res.command} done in {res.latency_ms:.0f} ms" if res.ok
               else f"{name}: {res.command} FAILED: {res.error}")
        if request.headers.get("HX-Request"):
            html = console.fragment("_relay_result.html", {"result": msg, "result_ok": res.ok})
            return web.Response(text=html, content_type="text/html")
        console.flash(request, msg)
        raise web.HTTPSeeOther("/relays")

    router.add_get("/relays", index)
    router.add_post("/relays/{name}/{action:pulse|set}", command)
