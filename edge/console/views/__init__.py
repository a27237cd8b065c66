"""One module per page; each adds its routes with ``add_routes(router, console)``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

PAGES = ("/sensors", "/rules", "/relays", "/events", "/charts", "/camera", "/system", "/alarms", "/live", "/logout")


def add_all_routes(router: web.UrlDispatcher, console: Any) -> None:
    from . import auth, camera, charts, events, live, overview, relays, rules, sensors, system

    for mod in (auth, overview, live, sensors, rules, relays, events, charts, camera, system):
        mod.add_routes(router, console)
