"""Log in and out."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from aiohttp import web

from .. import session as sess

log = logging.getLogger("edge.console")


def _next(request: web.Request, given: str | None = None) -> str:
    target = given if given is not None else request.query.get("next", "/")
    # only a path on this site (no //host, no scheme): an open redirect would help phishing
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def add_routes(router: web.UrlDispatcher, console: Any) -> None:
    def form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
        token = secrets.token_urlsafe(24)
        resp = console.page(request, "login.html", {"login_token": token, "error": error, "next": _next(request)},
                            status=status)
        sess.set_cookie(resp, request, sess.LOGIN_COOKIE, token, max_age=3600)
        return resp

    async def login_page(request: web.Request) -> web.Response:
        if console.sessions.get(request.cookies.get(sess.COOKIE)) is not None:
            raise web.HTTPSeeOther(_next(request))
        return form(request)

    async def login(request: web.Request) -> web.Response:
        addr = request.remote or "?"
        wait = console.brake.wait_s(addr)
        if wait > 0:
            resp = form(request, f"Too many failed logins: try again in {wait:.0f} s.", status=429)
            resp.headers["Retry-After"] = str(int(wait + 0.999))
            return resp
        if not sess.same_origin(request):
            raise web.HTTPForbidden(text="403: cross-origin login refused\n")
        data = await request.post()
        cookie_token = request.cookies.get(sess.LOGIN_COOKIE, "")
        if not cookie_token or not sess.token_ok(cookie_token, data.get("csrf")):  # type: ignore[arg-type]
            raise web.HTTPForbidden(text="403: missing or wrong login form token (reload the login page)\n")
        creds = console.ctx.credentials.get()
        user, password = str(data.get("user", "")), str(data.get("password", ""))
        ok = hmac.compare_digest(user.encode(), creds.user.encode()) & hmac.compare_digest(password.encode(),
                                                                                          creds.password.encode())
        if not ok:
            wait = console.brake.failed(addr)
            log.warning("console: failed login for %r from %s", user[:40], addr)
            msg = "Wrong user or password."
            if wait > 0:
                msg += f" Too many failures: wait {wait:.0f} s."
            return form(request, msg, status=401)
        console.brake.succeeded(addr)
        s = console.sessions.open(creds.user)
        log.info("console: %s logged in from %s", creds.user, addr)
        resp = web.HTTPSeeOther(_next(request, str(data.get("next", "/"))))
        sess.set_cookie(resp, request, sess.COOKIE, s.id, max_age=sess.MAX_AGE_S)
        resp.del_cookie(sess.LOGIN_COOKIE, path="/")
        raise resp

    async def logout(request: web.Request) -> web.Response:
        console.sessions.close(request.cookies.get(sess.COOKIE))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(sess.COOKIE, path="/")
        raise resp

    router.add_get("/login", login_page)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
