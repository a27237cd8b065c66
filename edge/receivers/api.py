"""HTTP routes of the receivers on ctx.web (credentials required like every route):

    GET  /api/receivers          -> {"receivers": [{name, type, ok, queued, links: [...], ...}]}
    POST /api/receivers/test     {"receiver": "arc", "timeout_s": 30} (receiver optional: all)
                                 -> {"ok": ..., "results": [{receiver, ok, answer, path, where, ms, error}]}

A test report goes through the receiver's queue like any report (after what already waits);
the answer is what the receiver said (``ACK 0042``, ``HTTP 200 ...``). 200 when every receiver
answered, 503 when one did not (the test report then stays queued), 404 unknown receiver,
400 bad input, 415 when the body is not declared JSON (a page of another origin cannot send a
JSON POST without a CORS preflight, which this server never allows: no test reports by CSRF).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .component import ReceiversComponent

DEFAULT_TIMEOUT_S = 30.0


def _error(cls: type[web.HTTPException], msg: str) -> web.HTTPException:
    return cls(text=json.dumps({"ok": False, "error": msg}), content_type="application/json")


def add_routes(app: web.Application, receivers: "ReceiversComponent") -> None:
    async def list_receivers(request: web.Request) -> web.Response:
        return web.json_response({"receivers": receivers.describe()})

    async def test(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise _error(web.HTTPUnsupportedMediaType, "send a JSON object with Content-Type: application/json")
        try:
            data = await request.json() if request.body_exists else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _error(web.HTTPBadRequest, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _error(web.HTTPBadRequest, "the body must be a JSON object")
        name = data.get("receiver")
        timeout = data.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
            raise _error(web.HTTPBadRequest, f"timeout_s must be a number of seconds (0-600], got {timeout!r}")
        names = list(receivers.receivers)
        if name is not None:
            if name not in receivers.receivers:
                raise _error(web.HTTPNotFound, f"unknown receiver {name!r} (receivers: {', '.join(names) or 'none configured'})")
            names = [name]
        if not names:
            raise _error(web.HTTPNotFound, "no receivers configured ([receivers.sia.*], [receivers.chekt.*], [receivers.webhook.*])")
        results = await asyncio.gather(*(receivers.test(n, float(timeout)) for n in names))
        ok = all(r["ok"] for r in results)
        return web.json_response({"ok": ok, "results": results}, status=200 if ok else 503)

    app.router.add_get("/api/receivers", list_receivers)
    app.router.add_post("/api/receivers/test", test)
