"""The HTTP server (aiohttp): /healthz, /metrics, and whatever routes components add.

Every route needs the device credentials (HTTP Digest or Basic) unless it is in
``ctx.open_paths`` because its protocol requires it open (ONVIF's pre-auth calls check their
own WS-Security). Components add their routes to ``ctx.web`` while they
are built; the server starts last so all routes exist.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..auth import PUBLIC, SESSION_USER, HttpAuth
from ..component import Component
from ..context import Context

log = logging.getLogger("edge.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(auth: HttpAuth, open_paths: set[str]) -> web.Application:
    @web.middleware
    async def require_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
        # a browser session (edge.console's middleware, which runs first) or a path the console
        # serves to anyone (its login page, its static files) passes too
        if (request.path in open_paths or request.get(SESSION_USER) or request.get(PUBLIC)
                or auth.check(request.method, request.headers.get("Authorization"))):
            return await handler(request)
        resp = web.Response(status=401, text="401: credentials required (see `edge credentials`)\n")
        for k, v in auth.challenge_headers():
            resp.headers.add(k, v)
        return resp

    return web.Application(middlewares=[require_credentials], client_max_size=1024 * 1024)


class WebComponent(Component):
    name = "web"

    def __init__(self, ctx: Context, supervisor_ref: Callable[[], Any]):
        super().__init__()
        self.ctx = ctx
        self.supervisor_ref = supervisor_ref
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        ctx.web.router.add_get("/healthz", self.healthz)
        ctx.web.router.add_get("/metrics", self.metrics)

    async def healthz(self, request: web.Request) -> web.Response:
        sup = self.supervisor_ref()
        ok, summary = sup.health_summary() if sup else (False, "starting")
        withheld = sup.watchdog_withheld if sup else ""
        body = {
            "ok": ok and not withheld and (sup.ready if sup else False),
            "ready": bool(sup and sup.ready),
            "status": sup.last_status if sup else summary,
            "watchdog": withheld or "fed",
            "components": {
                s.component.name: {"running": s.running, "restarts": s.restarts, "last_error": s.last_error,
                                   "health": s.component.health().detail}
                for s in (sup.slots if sup else [])
            },
            "loop_lag_ms": round((sup.last_lag_s if sup else 0) * 1000, 1),
        }
        return web.json_response(body, status=200 if body["ok"] else 503, dumps=lambda o: json.dumps(o, indent=1))

    async def metrics(self, request: web.Request) -> web.Response:
        body, ctype = self.ctx.metrics.render()
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def start(self) -> None:
        cfg = self.ctx.config.web
        self.runner = web.AppRunner(self.ctx.web, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("http on %s:%s", cfg.host, self.port)

    async def run(self) -> None:
        await super().run()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
