"""Browser login for the console: a session cookie, CSRF tokens, a failed-login brake.

- ``POST /login`` with the device credentials (the same user and password as every other
  surface) opens a session: a random id in the cookie ``edge_session`` (HttpOnly,
  SameSite=Strict, Secure when the request came over HTTPS). Sessions live in memory (a
  restart logs everyone out), end after ``IDLE_S`` without a request or ``MAX_AGE_S`` in
  all, and all end when the credentials are rotated.
- Every state change from a session (any method but GET/HEAD/OPTIONS) must carry the
  session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser
  sends one, an ``Origin`` equal to the page's own; otherwise 403. The login form has its own
  token (a cookie and a hidden field that must match), so a login cannot be forged either.
- Failed logins are braked per client address: after ``FREE_FAILURES`` failures each further
  attempt waits twice as long as the last (1 s up to ``MAX_LOCK_S``), answered 429 meanwhile.

The middleware (``session_middleware``) runs before the web server's credentials check and
marks the request: ``edge.auth.SESSION_USER`` for a valid session (that check then lets it
pass) and ``edge.auth.PUBLIC`` for the login page and static files. A page of the console
asked for without a session redirects to the login page; anything else falls through to the
server's own check (Digest for API clients).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from ..auth import PUBLIC, SESSION_USER

COOKIE = "edge_session"
LOGIN_COOKIE = "edge_login"
IDLE_S = 8 * 3600
MAX_AGE_S = 24 * 3600
FREE_FAILURES = 3
MAX_LOCK_S = 300.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    created: float
    seen: float
    flash: list[str] = field(default_factory=list)


SESSION: web.RequestKey["Session"] = web.RequestKey("console_session", object)  # type: ignore[arg-type]


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, user: str) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        self._expire(now)
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = self.clock()
        if now - s.seen > IDLE_S or now - s.created > MAX_AGE_S:
            del self._by_id[sid]
            return None
        s.seen = now
        return s

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def close_all(self) -> None:
        self._by_id.clear()

    def _expire(self, now: float) -> None:
        for sid in [k for k, s in self._by_id.items() if now - s.seen > IDLE_S or now - s.created > MAX_AGE_S]:
            del self._by_id[sid]

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginBrake:
    """Per-address failed-login counter: FREE_FAILURES free tries, then a doubling wait."""

    FORGET_S = 3600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096):
        self.clock = clock
        self.max_entries = max_entries
        self._by_addr: dict[str, _Failures] = {}

    def wait_s(self, addr: str) -> float:
        """Seconds this address must wait before its next try (0: go ahead)."""
        f = self._by_addr.get(addr)
        if f is None:
            return 0.0
        return max(0.0, f.locked_until - self.clock())

    def failed(self, addr: str) -> float:
        now = self.clock()
        f = self._by_addr.get(addr)
        if f is None or now - f.last > self.FORGET_S:
            if len(self._by_addr) >= self.max_entries:  # a flood of addresses must not grow memory
                self._by_addr.clear()
            f = self._by_addr[addr] = _Failures()
        f.count += 1
        f.last = now
        over = f.count - FREE_FAILURES
        if over > 0:
            f.locked_until = now + min(MAX_LOCK_S, 2.0 ** (over - 1))
        return max(0.0, f.locked_until - now)

    def succeeded(self, addr: str) -> None:
        self._by_addr.pop(addr, None)


def same_origin(request: web.Request) -> bool:
    """True when the request carries no Origin (same-origin navigations by older browsers)
    or an Origin whose host is the one the request was sent to."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if referer is None:
            return True
        origin = referer
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc == request.host


def token_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


async def given_token(request: web.Request) -> str | None:
    token = request.headers.get("X-CSRF-Token")
    if token:
        return token
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # cached by aiohttp: the handler reads it again for free
        value = form.get("csrf")
        return value if isinstance(value, str) else None
    return None


def set_cookie(resp: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int | None) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=request.secure)


def make_middleware(sessions: Sessions, is_page: Callable[[str], bool],
                    is_public: Callable[[str], bool]) -> Any:
    @web.middleware
    async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if is_public(path):
            request[PUBLIC] = True
            return await handler(request)
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:
            if is_page(path) and request.method in SAFE_METHODS and "Authorization" not in request.headers:
                target = request.path_qs if path != "/" else ""
                raise web.HTTPSeeOther("/login" + (f"?next={quote(target)}" if target else ""))
            if is_page(path) and request.method not in SAFE_METHODS and "Authorization" not in request.headers:
                raise web.HTTPForbidden(text="403: no session (log in again)\n")
            return await handler(request)  # the server's own check (Digest for API clients)
        if request.method not in SAFE_METHODS:
            if not same_origin(request):
                raise web.HTTPForbidden(text="403: cross-origin request refused\n")
            if not token_ok(s.csrf, await given_token(request)):
                raise web.HTTPForbidden(text="403: missing or wrong CSRF token (reload the page)\n")
        request[SESSION_USER] = s.user
        request[SESSION] = s
        return await handler(request)

    return session_middleware
