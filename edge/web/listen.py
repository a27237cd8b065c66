"""Listening sockets with limits: a site (plain or TLS) that admits at most ``max_connections``
connections, and at most ``per_client`` from one address; more are answered 503 and closed
before any HTTP parsing. TLS handshakes must finish within ``handshake_timeout_s``. (The idle
and header timeout is aiohttp's ``keepalive_timeout``, which also runs from the moment a
connection opens: a client that never completes its request headers is closed.)"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from typing import Any

from aiohttp import web

BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        b"Content-Length: 33\r\n\r\n503: too many open connections.\r\n")


class _Gate(asyncio.Protocol):
    """Admits a connection (then hands every callback to aiohttp's request handler) or
    refuses it."""

    def __init__(self, site: "LimitedSite"):
        self.site = site
        self.inner: Any = None
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        if not self.site.admit(self.peer):
            self.site.refused += 1
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(BUSY)
            transport.close()
            return
        self.inner = self.site.runner_server()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.site.release(self.peer)
            inner, self.inner = self.inner, None
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class LimitedSite(web.BaseSite):
    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = 64, per_client: int = 16, handshake_timeout_s: float = 10.0,
                 backlog: int = 128):
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.per_client = per_client
        self.handshake_timeout_s = handshake_timeout_s
        self.open: Counter[str] = Counter()
        self.refused = 0
        self.bound_port: int | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def runner_server(self) -> Any:
        server = self._runner.server
        assert server is not None
        return server()

    def admit(self, peer: str) -> bool:
        if sum(self.open.values()) >= self.max_connections or self.open[peer] >= self.per_client:
            return False
        self.open[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        kw: dict[str, Any] = {}
        if self._ssl_context is not None:
            kw["ssl_handshake_timeout"] = self.handshake_timeout_s
        self._server = await loop.create_server(lambda: _Gate(self), self.host, self.port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=True, **kw)
        sockets = self._server.sockets
        self.bound_port = sockets[0].getsockname()[1] if sockets else None
