"""The HTTP server (aiohttp): /healthz, /metrics and the routes components add
(``server.WebComponent``), the request rules every request passes (``guard.Guard``), listeners
with connection caps (``listen.LimitedSite``); its config section is ``config.WebConfig``."""
