"""HTTP route of the sensors component on ctx.web (credentials required like every route):

    GET /api/sources   -> {"sources": [each MQTT lane, YoLink account/hub, failing input line],
                           "sensors": [each sensor: last message, age, online, battery low],
                           "bad_payloads": N}

``edge sources check`` prints it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from aiohttp import web

if TYPE_CHECKING:
    from .component import SensorsComponent


def add_routes(app: web.Application, sensors: "Callable[[], SensorsComponent]") -> None:
    """``sensors`` gives the current component (it is rebuilt when the sensors are edited live)."""

    async def sources(request: web.Request) -> web.Response:
        return web.json_response(sensors().sources())

    app.router.add_get("/api/sources", sources)
