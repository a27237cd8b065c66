"""HTTP transports: a CHEKT bridge's local event API, and a signed JSON webhook.

Both POST one report at a time; a 2xx answer means delivered, anything else (another status,
a refused connection, a timeout) is retried from the outbox later.

CHEKT (no public docs for the local API; the seed's current form is the default, and path,
auth and body are configurable because the path changed four times in the seed's history):
``POST http://<bridge>:30003/api/v1/events``, Basic ``apikey:<token>``, body
``{"target_channel": "<zone>", "event_description": "<what happened>"}``.

Webhook: ``POST <url>`` with a JSON body (``id`` is unique per report: a consumer drops a
repeat), headers ``X-Edge-Timestamp: <unix seconds>`` and ``X-Edge-Signature:
sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``; a consumer checks the signature
and refuses an old timestamp, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp

from .config import ChektReceiver, WebhookReceiver
from .report import Report
from .transport import Delivery, DeliveryFailed, Link

FAILOVER_AFTER = 2


def report_fields(report: Report, site: str) -> dict[str, Any]:
    return {"zone": report.zone, "text": report.text, "code": report.code, "cid": report.cid or "",
            "event": report.event, "sensor": report.sensor, "kind": report.kind, "site": report.site or site,
            "ts": datetime.fromtimestamp(report.ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}


def fill(template: Any, fields: dict[str, Any]) -> Any:
    """The body template with every string formatted with the report's fields."""
    if isinstance(template, str):
        return template.format(**fields)
    if isinstance(template, dict):
        return {k: fill(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, fields) for v in template]
    return template


class _HttpTransport:
    def __init__(self, name: str, url: str, timeout_s: float, on_change: Callable[[Link], None] | None):
        self.name = name
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        self.links = [Link(name, "http", url, FAILOVER_AFTER, on_change=on_change)]
        self.session: aiohttp.ClientSession | None = None

    async def _post(self, data: bytes, headers: dict[str, str]) -> Delivery:
        link = self.links[0]
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=self.timeout)
        t0 = time.monotonic()
        try:
            async with self.session.post(self.url, data=data, headers={"Content-Type": "application/json", **headers},
                                         allow_redirects=False) as r:
                text = " ".join((await r.text(errors="replace"))[:200].split())
                status = r.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = "no answer (timeout)" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            link.failed(reason)
            raise DeliveryFailed(reason) from None
        ms = (time.monotonic() - t0) * 1000
        answer = f"HTTP {status}" + (f" {text}" if text else "")
        if 200 <= status < 300:
            link.ok()
            return Delivery(answer, "http", self.url, ms)
        link.failed(answer)
        raise DeliveryFailed(answer)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class ChektTransport(_HttpTransport):
    def __init__(self, name: str, cfg: ChektReceiver, token: str | None, *, site: str = "",
                 on_change: Callable[[Link], None] | None = None):
        super().__init__(name, cfg.url, cfg.timeout_s, on_change)
        self.cfg = cfg
        self.token = token
        self.site = site

    async def deliver(self, report: Report) -> Delivery:
        body = json.dumps(fill(self.cfg.body, report_fields(report, self.site)), ensure_ascii=False).encode()
        headers: dict[str, str] = {}
        if self.cfg.auth == "basic":
            headers["Authorization"] = aiohttp.encode_basic_auth(self.cfg.user, self.token or "")
        elif self.cfg.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.token}"
        return await self._post(body, headers)


class WebhookTransport(_HttpTransport):
    def __init__(self, name: str, cfg: WebhookReceiver, secret: bytes, *, site: str = "", device: str = "",
                 on_change: Callable[[Link], None] | None = None):
        super().__init__(name, cfg.url, cfg.timeout_s, on_change)
        self.cfg = cfg
        self.secret = secret
        self.site = site
        self.device = device

    def body(self, report: Report) -> bytes:
        return json.dumps({"id": f"{self.device}/{self.name}/{report.n}", "device": self.device, "receiver": self.name,
                           **report_fields(report, self.site), "ts": report.ts, "sent": time.time()},
                          separators=(",", ":"), ensure_ascii=False).encode()

    async def deliver(self, report: Report) -> Delivery:
        body = self.body(report)
        ts = str(int(time.time()))
        return await self._post(body, {"X-Edge-Timestamp": ts, self.cfg.header: "sha256=" + sign(self.secret, ts, body)})


def sign(secret: bytes, ts: str, body: bytes) -> str:
    return hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
