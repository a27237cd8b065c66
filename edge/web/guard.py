"""The request-level rules every HTTP request passes before its handler (two aiohttp
middlewares: ``front`` runs before any other, ``credentials`` after the web console's session
middleware, which marks a request ``edge.auth.SESSION_USER`` or ``PUBLIC``).

In this order:

1. **HTTPS**: with ``[web] tls`` on, a request on plain HTTP is redirected (308) to HTTPS,
   except the paths NVRs fetch over plain HTTP (``ctx.open_paths``: ONVIF, and
   ``ctx.plain_paths``: the snapshot). The CLI on the box speaks HTTPS too.
2. **Same origin**: a request that is not GET/HEAD/OPTIONS must not come from another origin:
   an ``Origin`` (else ``Referer``) header naming another scheme/host/port, or ``null``, is
   refused (403). Clients that send neither (the CLI, NVRs, curl) are not browsers.
3. **Credentials** (every path but ``ctx.open_paths``, whose protocol checks its own, and
   what the console marks PUBLIC: its login page and static files): a browser session
   (``SESSION_USER``, set by the console), the pluggable ``authenticators``, then HTTP Digest,
   or Basic over TLS (``edge.auth``). Refusals are 401 with the Digest challenge; repeated
   failures from one address are answered more and more slowly.
4. **State changes**: only POST, with a body and no query-string parameters (400/405); an API
   client's body is a JSON object (Content-Type application/json: a cross-site HTML form
   cannot send one, 415 otherwise); a browser session's (and the login form's) may be a form,
   whose CSRF token the console checks: rule 2 stops foreign origins, the token stops what
   rule 2 cannot see.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from aiohttp import web
from yarl import URL

from ..auth import PUBLIC, SESSION_USER, FailureBrake, HttpAuth

log = logging.getLogger("edge.web.guard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# an authenticator returns the user name the request authenticated as, or None (not its scheme)
Authenticator = Callable[[web.Request], Awaitable[str | None]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
USER_KEY = web.RequestKey("edge.user", str)  # request[USER_KEY]: who the request authenticated as


def _origin_of(url_text: str) -> tuple[str, str, int | None] | None:
    try:
        u = URL(url_text)
    except (ValueError, TypeError):
        return None
    if not u.is_absolute() or not u.host:
        return None
    return (u.scheme.lower(), u.host.lower(), u.port)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


class Guard:
    def __init__(self, auth: HttpAuth, open_paths: set[str], plain_paths: set[str], *,
                 brake: FailureBrake | None = None, body_timeout_s: float = 15.0):
        self.auth = auth
        self.open_paths = open_paths
        self.plain_paths = plain_paths
        self.authenticators: list[Authenticator] = []
        self.brake = brake or FailureBrake()
        self.body_timeout_s = body_timeout_s
        self.https_port: int | None = None  # set by the server once HTTPS listens

    def configure(self, cfg: object) -> None:
        """Take the limits of a ``[web]`` section."""
        self.body_timeout_s = float(getattr(cfg, "body_timeout_s"))
        self.brake = FailureBrake(free=int(getattr(cfg, "auth_free_failures")),
                                  max_delay_s=float(getattr(cfg, "auth_delay_max_s")))

    @web.middleware
    async def front(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Rules 1 and 2: before every other middleware."""
        path = request.path
        if self.https_port is not None and not request.secure and path not in self.open_paths \
                and path not in self.plain_paths:
            return self._to_https(request)
        if request.method not in SAFE_METHODS and not self._same_origin(request):
            log.warning("refused %s %s from %s: Origin/Referer %r is not this device", request.method, path,
                        request.remote, request.headers.get("Origin") or request.headers.get("Referer"))
            return _error(403, "cross-origin request refused")
        return await handler(request)

    @web.middleware
    async def credentials(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Rules 3 and 4."""
        if request.path in self.open_paths:
            return await handler(request)
        browser = bool(request.get(SESSION_USER) or request.get(PUBLIC))
        if not request.get(PUBLIC):
            user = request.get(SESSION_USER) or await self._authenticate(request)
            if isinstance(user, web.StreamResponse):
                return user
            request[USER_KEY] = user
        if request.method not in SAFE_METHODS:
            problem = await self._state_change_problem(request, forms=browser)
            if problem is not None:
                return problem
        return await handler(request)

    # ---- 1. HTTPS ----------------------------------------------------------------------------
    def _to_https(self, request: web.Request) -> web.StreamResponse:
        host = request.url.host or ""
        if not host:
            sock = request.transport.get_extra_info("sockname") if request.transport else None
            host = sock[0] if sock else "localhost"
        url = URL.build(scheme="https", host=host, port=self.https_port if self.https_port != 443 else None,
                        path=request.path, query_string=request.query_string, encoded=False)
        return web.Response(status=308, headers={"Location": str(url)}, text=f"use HTTPS: {url}\n")

    # ---- 2. same origin --------------------------------------------------------------------
    def _same_origin(self, request: web.Request) -> bool:
        claimed = request.headers.get("Origin")
        if claimed is None:
            referer = request.headers.get("Referer")
            if referer is None:
                return True  # not a browser
            claimed = referer
        theirs = _origin_of(claimed)
        if theirs is None:  # "null" (sandboxed frame, file:) or garbage
            return False
        ours = (request.scheme.lower(), (request.url.host or "").lower(), request.url.port)
        return theirs == ours

    # ---- 3. credentials ----------------------------------------------------------------------
    async def _authenticate(self, request: web.Request) -> str | web.StreamResponse:
        for authenticate in self.authenticators:
            user = await authenticate(request)
            if user:
                return user
        header = request.headers.get("Authorization")
        result = self.auth.check(request.method, header, request.raw_path, secure=request.secure)
        addr = request.remote or "?"
        if result:
            self.brake.succeeded(addr)
            return result.user
        if header and not result.stale:
            delay = self.brake.failed(addr)
            n = self.brake.failures(addr)
            (log.warning if n <= self.brake.free + 3 or n % 100 == 0 else log.debug)(
                "HTTP %s %s from %s refused (%d failures): %s", request.method, request.path, addr, n, result.problem)
            if not await self.brake.hold(addr, delay):
                return _error(429, "too many failed logins from this address; slow down")
        resp = web.Response(status=401, text="401: credentials required (see `edge credentials`)\n")
        for k, v in self.auth.challenge_headers(stale=result.stale, basic=request.secure):
            resp.headers.add(k, v)
        return resp

    # ---- 4. state changes --------------------------------------------------------------------
    async def _state_change_problem(self, request: web.Request, forms: bool = False) -> web.StreamResponse | None:
        if request.method != "POST":
            return _error(405, f"{request.method} is not used here: state changes are POST with a JSON body")
        if request.query_string:
            return _error(400, "parameters go in the JSON body, not in the query string")
        if forms and request.content_type in FORM_TYPES:
            return None if request.body_exists else _error(400, "a state change needs a body")
        if request.content_type != "application/json":
            return _error(415, "a state change needs a JSON body (Content-Type: application/json)")
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await request.read()
        except TimeoutError:
            return _error(408, f"the body did not arrive within {self.body_timeout_s:g} s")
        except web.HTTPRequestEntityTooLarge as exc:
            return _error(413, exc.text or "body too large")
        if not body.strip():
            return _error(400, "a state change needs a JSON object body ({} when there is nothing to say)")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object")
        return None


GUARD = web.AppKey("edge.guard", Guard)


def make_app(guard: Guard, max_body_bytes: int = 1024 * 1024) -> web.Application:
    app = web.Application(middlewares=[guard.front, guard.credentials], client_max_size=max_body_bytes)
    app[GUARD] = guard
    return app


def front_first(app: web.Application) -> None:
    """Put the guard's front rules (HTTPS, same origin) before every other middleware (the
    console inserts its own at the start); called once all components added theirs."""
    guard = app[GUARD]
    mws = app.middlewares
    for i, mw in enumerate(list(mws)):
        if mw == guard.front and i != 0:
            mws.pop(i)
            mws.insert(0, mw)
