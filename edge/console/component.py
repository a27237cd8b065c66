"""The console as a component: sets up templates, the session middleware and every page's
routes on the shared web app (so it is built before the web server starts), and keeps what
the pages share (sessions, the login brake, the log ring, the config edit lock)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from importlib import resources
from typing import Any

from aiohttp import web

from .. import __version__
from ..auth import SESSION_USER
from ..component import Component, Health
from ..context import Context
from ..interfaces import SERVICE
from . import session as sess
from .logring import LogRing
from .views import PAGES, add_all_routes

log = logging.getLogger("edge.console")

STATIC = ("htmx.min.js", "console.css", "console.js")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
NAV = (("/", "Overview"), ("/sensors", "Sensors"), ("/rules", "Rules"), ("/relays", "Relays"), ("/events", "Events"),
       ("/charts", "Charts"), ("/camera", "Camera"), ("/system", "System"))


def is_page(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") or path.startswith(p + ".") for p in PAGES)


def is_public(path: str) -> bool:
    return path == "/login" or path.startswith("/static/")


class ConsoleComponent(Component):
    name = "console"

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.sessions = sess.Sessions()
        self.brake = sess.LoginBrake()
        self.edit_lock = asyncio.Lock()
        self.streams: set[Any] = set()  # live subscriptions (closed at shutdown)
        self.logs = LogRing()
        self.started = time.time()
        self.render_ms: list[float] = []  # server time per page (bench)
        self._static: dict[str, tuple[bytes, bytes, str]] = {}
        for name in STATIC:
            raw = resources.files("edge.console").joinpath("static", name).read_bytes()
            ctype = STATIC_TYPES[name[name.rindex("."):]]
            self._static[name] = (raw, gzip.compress(raw, 9), ctype)
        app = ctx.web
        self._env: Any = None
        app.middlewares.insert(0, sess.make_middleware(self.sessions, is_page, is_public))
        app.on_shutdown.append(self._close_streams)
        app.router.add_get("/static/{name}", self._serve_static)
        add_all_routes(app.router, self)
        ctx.credentials.listeners.append(self._on_credentials)

    # ---- what the pages share ---------------------------------------------------------
    @property
    def env(self) -> Any:
        """The Jinja2 templates, loaded at the first page: a service nobody browses does not
        carry Jinja2 and the compiled templates (~2-3 MB)."""
        if self._env is None:
            import jinja2

            env = jinja2.Environment(loader=jinja2.PackageLoader("edge.console", "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
            env.filters["age"] = age_words
            env.filters["clock"] = clock
            self._env = env
        return self._env

    def page(self, request: web.Request, template: str, values: dict[str, Any], status: int = 200) -> web.Response:
        t0 = time.perf_counter()
        s: sess.Session | None = request.get(sess.SESSION)
        flash = list(s.flash) if s else []
        if s:
            s.flash.clear()
        base = {"site": self.ctx.config.site, "nav": NAV, "path": request.path, "csrf": s.csrf if s else "",
                "user": s.user if s else "", "flash": flash, "version": __version__}
        resp = web.Response(text=self.env.get_template(template).render({**base, **values}), status=status,
                            content_type="text/html")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                                   "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
        if len(resp.body or b"") > 1024:
            resp.enable_compression()
        self.render_ms.append((time.perf_counter() - t0) * 1000)
        del self.render_ms[:-2000]
        return resp

    def fragment(self, template: str, values: dict[str, Any], csrf: str = "") -> str:
        return self.env.get_template(template).render(csrf=csrf, **values)

    def flash(self, request: web.Request, message: str) -> None:
        s: sess.Session | None = request.get(sess.SESSION)
        if s is not None:
            s.flash.append(message)

    def who(self, request: web.Request) -> str:
        return f"console:{request.get(SESSION_USER) or 'api'}"

    @property
    def service(self) -> Any:
        return self.ctx.registry.get(SERVICE)

    async def _serve_static(self, request: web.Request) -> web.StreamResponse:
        item = self._static.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        raw, gz, ctype = item
        headers = {"Content-Type": ctype, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=gz, headers=headers)
        return web.Response(body=raw, headers=headers)

    def _on_credentials(self, _creds: Any) -> None:
        self.sessions.close_all()  # a rotated password logs every browser out

    async def _close_streams(self, _app: web.Application) -> None:
        for sub in list(self.streams):
            sub.close()

    # ---- component ---------------------------------------------------------------------
    async def start(self) -> None:
        self.logs.attach()

    async def stop(self) -> None:
        await self._close_streams(self.ctx.web)
        self.logs.detach()
        try:
            self.ctx.credentials.listeners.remove(self._on_credentials)
        except ValueError:
            pass

    def health(self) -> Health:
        return Health(True, f"{len(self.sessions)} sessions, {len(self.streams)} live pages")


def age_words(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "never"
    s = max(0.0, (now or time.time()) - ts)
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    if s < 86400:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.1f} days ago"


def clock(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
