"""The HTTP server (aiohttp): /healthz, /metrics and the routes components add
(``server.WebComponent``); its config section is ``config.WebConfig``."""
