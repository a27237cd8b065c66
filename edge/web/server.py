"""The HTTP server (aiohttp): /healthz, /metrics, and whatever routes components add.

Every request passes the guard first (``guard.py``: HTTPS redirect, same origin, credentials,
POST-with-JSON for state changes). Components add their routes to ``ctx.web`` while they are
built; the server starts last so all routes exist. Listeners (``listen.py``) cap connections
in total and per address; aiohttp closes a connection idle (or stuck in its headers) for
``idle_timeout_s``. With ``[web] tls`` the device certificate (``edge.tls``) serves HTTPS on
``https_port`` and plain HTTP on ``port`` answers ONVIF and redirects the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from aiohttp import web

from .. import tls
from ..component import Component
from ..context import Context
from .guard import GUARD, Guard, front_first, make_app  # noqa: F401 - make_app: the wiring builds ctx.web with it
from .listen import LimitedSite

log = logging.getLogger("edge.web")

HTTP_LIMITS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 64}


class WebComponent(Component):
    name = "web"

    def __init__(self, ctx: Context, supervisor_ref: Callable[[], Any]):
        super().__init__()
        self.ctx = ctx
        self.supervisor_ref = supervisor_ref
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.https_port: int | None = None
        self.sites: list[LimitedSite] = []
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
        guard = self.ctx.web[GUARD]
        front_first(self.ctx.web)
        self.runner = web.AppRunner(self.ctx.web, access_log=None, handle_signals=False,
                                    keepalive_timeout=cfg.idle_timeout_s, **HTTP_LIMITS)
        await self.runner.setup()
        limits = {"max_connections": cfg.max_connections, "per_client": cfg.max_connections_per_client}
        try:
            if cfg.tls:
                cert = await asyncio.to_thread(tls.load_or_create, self.ctx.data_dir)
                https = LimitedSite(self.runner, cfg.host, cfg.https_port, ssl_context=tls.server_context(cert), **limits)
                await https.start()
                self.https_port = https.bound_port
                guard.https_port = cfg.https_port
                self.sites.append(https)
                log.info("https on %s:%s (certificate SHA-256 %s)", cfg.host, self.https_port, cert.fingerprint)
            site = LimitedSite(self.runner, cfg.host, cfg.port, **limits)
            await site.start()
            self.sites.append(site)
        except BaseException:
            await self.stop()
            raise
        self.port = site.bound_port
        log.info("http on %s:%s%s", cfg.host, self.port, " (ONVIF and snapshot; the rest redirects to HTTPS)" if cfg.tls else "")

    async def run(self) -> None:
        await super().run()

    async def stop(self) -> None:
        self.sites.clear()
        self.ctx.web[GUARD].https_port = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
