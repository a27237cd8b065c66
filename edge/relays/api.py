"""HTTP routes of the relay service on ctx.web (credentials required like every route):

    GET  /api/relays                    -> {"relays": [RelayInfo...]}
    GET  /api/relays/{name}             -> RelayInfo
    POST /api/relays/{name}/pulse       {"ms": 500} (optional: the channel's pulse_ms)
    POST /api/relays/{name}/set         {"on": true}

A command answers with its CommandResult: 200 when done, 404 unknown relay, 400 bad input,
503 when it could not be done (board unreachable, write failed, service stopping). Commands
read their parameters from the JSON body only (the web guard refuses a POST without one, with
query parameters, or from another origin: a web page cannot trigger a relay).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ..interfaces import CommandResult, RelayControl, RelayInfo, unknown_relay


def add_routes(app: web.Application, relays: RelayControl) -> None:
    async def list_relays(request: web.Request) -> web.Response:
        return web.json_response({"relays": [i.as_dict() for i in relays.describe()]})

    def _known(name: str) -> RelayInfo:
        info = relays.info(name)
        if info is None:
            raise web.HTTPNotFound(text=json.dumps({"ok": False, "relay": name, "error": unknown_relay(name, relays.names())}),
                                   content_type="application/json")
        return info

    async def one(request: web.Request) -> web.Response:
        return web.json_response(_known(request.match_info["name"]).as_dict())

    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad("the body is not JSON") from None
        if not isinstance(data, dict):
            raise _bad("the body must be a JSON object")
        return data

    def _answer(res: CommandResult) -> web.Response:
        return web.json_response(asdict(res), status=200 if res.ok else 503)

    async def pulse(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        _known(name)
        data = await _body(request)
        ms = data.get("ms")
        if ms is not None:
            try:
                ms = int(ms)
            except (TypeError, ValueError):
                raise _bad(f"ms must be a whole number of milliseconds, got {ms!r}") from None
        if ms is not None and isinstance(data.get("ms"), bool):
            raise _bad("ms must be a number")
        return _answer(await relays.pulse(name, ms, source=_source(request, data)))

    async def set_state(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        _known(name)
        data = await _body(request)
        raw = data.get("on")
        if isinstance(raw, bool):
            on = raw
        elif isinstance(raw, str) and raw.lower() in ("on", "true", "1", "off", "false", "0"):
            on = raw.lower() in ("on", "true", "1")
        else:
            raise _bad(f"on must be true/false (or \"on\"/\"off\"), got {raw!r}")
        return _answer(await relays.set(name, on, source=_source(request, data)))

    app.router.add_get("/api/relays", list_relays)
    app.router.add_get("/api/relays/{name}", one)
    app.router.add_post("/api/relays/{name}/pulse", pulse)
    app.router.add_post("/api/relays/{name}/set", set_state)


def _bad(msg: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"ok": False, "error": msg}), content_type="application/json")


def _source(request: web.Request, data: dict[str, Any]) -> str:
    who = str(data.get("source") or "http")[:40]
    return f"{who} from {request.remote}"
