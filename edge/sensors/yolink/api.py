"""YoLink's HTTP API (Open API V2, and the Local Hub's local API which has the same shape):
the access token from the token endpoint and JSON-RPC calls (``Home.getGeneralInfo``,
``Home.getDeviceList``) with it.

Tokens: ``POST <base>/open/yolink/token`` with ``grant_type=client_credentials`` (UAID + Secret
Key; on a Local Hub its client id + secret), answered with ``access_token``, ``refresh_token``
and ``expires_in``. A token is renewed once 80 % of its life has passed (the refresh token
first, as YoLink recommends, the credentials if that fails) and at once when the API rejects it
(codes 000103 / 010103 / 010104). A refused secret is a ``CredentialsRefused`` naming the
settings to check; the secret and the tokens are never logged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp

TOKEN_PATH = "/open/yolink/token"
API_PATH = "/open/yolink/v2/api"
OK = "000000"
TOKEN_CODES = {"000103", "010103", "010104"}  # token invalid / authorization invalid / token expired
RENEW_AT = 0.8  # of a token's lifetime
TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)


class YoLinkError(Exception):
    """The API answered with an error (``code`` is YoLink's, e.g. 010000) or nonsense."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class CredentialsRefused(YoLinkError):
    """The token endpoint refused the UAID / secret (or the secret file is missing)."""


@dataclass(frozen=True)
class Token:
    access: str
    refresh: str | None
    issued_at: float  # wall clock
    expires_at: float

    @property
    def renew_at(self) -> float:
        life = max(0.0, self.expires_at - self.issued_at)
        return self.issued_at + life * RENEW_AT

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


class YoLinkApi:
    def __init__(self, base_url: str, uaid: str, read_secret: Callable[[], str], settings: str,
                 clock: Callable[[], float] = time.time):
        self.base_url = base_url.rstrip("/")
        self.uaid = uaid
        self.read_secret = read_secret
        self.settings = settings  # e.g. "yolink.home.uaid and the Secret Key in /var/lib/edge/yolink-home.secret"
        self.clock = clock
        self.current: Token | None = None
        self.tokens_issued = 0
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self.renewed = asyncio.Event()  # set on every new token (the MQTT connection moves to it)

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- tokens ---------------------------------------------------------------------------
    async def token(self) -> Token:
        """A token that is not due for renewal (fetched when needed)."""
        async with self._lock:
            cur = self.current
            if cur is not None and cur.fresh(self.clock()):
                return cur
            return await self._fetch(cur)

    async def renew(self) -> Token:
        """A new token now (before expiry, or after the API or the broker rejected the old one)."""
        async with self._lock:
            return await self._fetch(self.current)

    def invalidate(self) -> None:
        self.current = None

    async def _fetch(self, old: Token | None) -> Token:
        if old is not None and old.refresh:
            try:
                return await self._grant({"grant_type": "refresh_token", "client_id": self.uaid,
                                          "refresh_token": old.refresh})
            except YoLinkError:
                pass  # refresh token expired or refused: the credentials again
        return await self._grant({"grant_type": "client_credentials", "client_id": self.uaid,
                                  "client_secret": self.read_secret()})

    async def _grant(self, form: dict[str, str]) -> Token:
        now = self.clock()
        async with self.http.post(self.base_url + TOKEN_PATH, data=form) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = None
            status = r.status
        if not isinstance(body, dict):
            raise YoLinkError(f"token endpoint answered HTTP {status} without JSON")
        # errors come as HTTP 4xx with OAuth's {"error", "error_description"}, or as 200 with
        # {"state": "error", "msg": ...}
        err = body.get("error") or (body.get("msg") if body.get("state") == "error" else None)
        if err or status >= 400 or not isinstance(body.get("access_token"), str):
            why = str(body.get("error_description") or body.get("msg") or err or f"HTTP {status}")[:160]
            if form["grant_type"] == "refresh_token":
                raise YoLinkError(f"refresh token refused: {why}")
            if status >= 500:
                raise YoLinkError(f"token endpoint failed (HTTP {status}): {why}")
            raise CredentialsRefused(f"YoLink refused the credentials ({why}): check {self.settings}")
        try:
            life = float(body.get("expires_in", 7200))
        except (TypeError, ValueError):
            life = 7200.0
        refresh = body.get("refresh_token")
        tok = Token(body["access_token"], refresh if isinstance(refresh, str) else None, now, now + max(1.0, life))
        self.current = tok
        self.tokens_issued += 1
        self.renewed.set()
        return tok

    # ---- calls ------------------------------------------------------------------------------
    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One API call; its ``data`` object. A rejected token is renewed and the call retried once."""
        for attempt in (1, 2):
            tok = await (self.token() if attempt == 1 else self.renew())
            body = {"method": method, "time": int(self.clock() * 1000), **params}
            async with self.http.post(self.base_url + API_PATH, json=body,
                                      headers={"Authorization": f"Bearer {tok.access}"}) as r:
                try:
                    answer = await r.json(content_type=None)
                except ValueError:
                    answer = None
                status = r.status
            if status in (401, 403) and attempt == 1:
                continue
            if not isinstance(answer, dict):
                raise YoLinkError(f"{method}: HTTP {status} without a JSON answer")
            code = str(answer.get("code", ""))
            if code in TOKEN_CODES and attempt == 1:
                continue
            if code != OK:
                raise YoLinkError(f"{method}: YoLink error {code or '?'}: {str(answer.get('desc', ''))[:120]}", code)
            data = answer.get("data")
            if not isinstance(data, dict):
                raise YoLinkError(f"{method}: answer without a data object")
            return data
        raise YoLinkError(f"{method}: the token was rejected twice")
