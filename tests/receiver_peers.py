"""Real peers for the alarm-receiver tests: pysiaalarm as the SIA DC-09 receiver (TCP/UDP,
plain or AES), a TCP proxy in front of it that spoils answers on demand, and aiohttp servers
in the shape of the CHEKT bridge API and of a webhook consumer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pysiaalarm import SIAAccount, SIAEvent
from pysiaalarm.aio import CommunicationsProtocol, SIAClient
from pysiaalarm.aio.server import SIAServerUDP

from edge.receivers import dc09
from edge.receivers.keys import write_secret

from .peers import free_port

KEY128 = "DemoKey-16bytes!"
KEY256 = "0123456789abcdef-256-bit-key-32!"


def write_key(data_dir: Path, name: str, text: str) -> str:
    """A 0600 key file under the data dir; returns its path relative to the data dir."""
    rel = f"receivers/{name}.key"
    write_secret(Path(data_dir) / rel, text)
    return rel


@dataclass
class SiaPeer:
    """pysiaalarm listening on 127.0.0.1:port. ``events``: every event it accepted (a resend
    too); ``accepted``: what an ARC acts on, one per sequence number (duplicates dropped)."""

    account: str = "1234"
    key: str | None = None
    protocol: str = "tcp"
    port: int = 0
    events: list[SIAEvent] = field(default_factory=list)
    client: Any = None
    _writers: set[Any] = field(default_factory=set)

    async def _on_event(self, ev: SIAEvent) -> None:
        self.events.append(ev)

    async def start(self) -> "SiaPeer":
        if not self.port:
            self.port = free_port(2 if self.protocol == "udp" else 1)
        acc = SIAAccount(self.account, self.key)
        proto = CommunicationsProtocol.UDP if self.protocol == "udp" else CommunicationsProtocol.TCP
        self.client = SIAClient("127.0.0.1", self.port, [acc], self._on_event, protocol=proto)
        if self.protocol == "udp":
            self.client.sia_server.__class__ = _UdpServer
        else:  # a stopped receiver drops its connections too (pysiaalarm would answer one more message)
            handle = self.client.sia_server.handle_line

            async def handle_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self._writers.add(writer)
                try:
                    await handle(reader, writer)
                finally:
                    self._writers.discard(writer)

            self.client.sia_server.handle_line = handle_line
        await self.client.async_start(**({"reuse_address": True} if self.protocol == "tcp" else {}))
        return self

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.async_stop()
            self.client = None
        for w in list(self._writers):
            w.close()

    @property
    def reports(self) -> list[SIAEvent]:
        """Accepted events that are not NULL link tests, duplicates (same sequence) dropped."""
        seen: set[str] = set()
        out = []
        for ev in self.events:
            if str(getattr(ev.message_type, "value", ev.message_type)) == "NULL" or ev.sequence in seen:
                continue
            seen.add(ev.sequence)
            out.append(ev)
        return out

    @property
    def nulls(self) -> list[SIAEvent]:
        return [ev for ev in self.events if str(getattr(ev.message_type, "value", ev.message_type)) == "NULL"]

    def codes(self) -> list[str]:
        return [ev.code for ev in self.reports]


class _UdpServer(SIAServerUDP):
    """pysiaalarm 3.2.2's UDP server asserts its transport is an asyncio.DatagramTransport,
    which Python 3.11's selector datagram transport is not: it would never answer."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport


class SpoilingProxy:
    """A TCP proxy to a receiver that replaces its answers, one per message, from a script:
    ``badcrc``, ``wrongseq``, ``random``, ``half``, ``close``, ``drop`` (the receiver got the
    message, its ACK is lost), ``pass_close`` (the answer, then the connection closes, as
    receivers with one connection per message do) or ``pass``. After the script every answer
    passes."""

    def __init__(self, upstream_port: int, script: list[str]):
        self.upstream_port = upstream_port
        self.script = list(script)
        self.port = free_port()
        self.server: asyncio.base_events.Server | None = None
        self.frames: list[bytes] = []  # every frame the transmitter sent

    async def start(self) -> "SpoilingProxy":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            while True:
                frame = await reader.readuntil(b"\r")
                self.frames.append(frame)
                up_w.write(frame)
                await up_w.drain()
                answer = await up_r.readuntil(b"\r")
                what = self.script.pop(0) if self.script else "pass"
                if what == "close":
                    return
                writer.write(spoil(answer, what))
                await writer.drain()
                if what in ("half", "pass_close"):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_w.close()
            writer.close()


def spoil(answer: bytes, what: str) -> bytes:
    text = answer.decode().strip("\n\r")
    body = text[8:]
    if what == "badcrc":
        return f"\n{(int(text[:4], 16) ^ 0x1111):04X}{text[4:]}\r".encode()
    if what == "wrongseq":
        body = re.sub(r'^("\*?ACK")(\d{4})', lambda m: m.group(1) + f"{(int(m.group(2)) % 9999) + 1:04d}", body)
        return b"\n" + f"{dc09.crc16_arc(body.encode()):04X}{len(body):04X}".encode() + body.encode() + b"\r"
    if what == "random":
        # (no LF, CR or hex digit inside: the same reason every run)
        return bytes(random.choice(b"GHIJKLMNOPQRSTUVWXYZ!?#\x00\xff\x80") for _ in range(40)) + b"\r"
    if what == "half":
        return answer[: len(answer) // 2]
    if what == "drop":
        return b""
    return answer


# ---- HTTP peers ------------------------------------------------------------------------------------
@dataclass
class HttpPeer:
    """An aiohttp server in the shape of the CHEKT bridge API (Basic ``apikey:<token>``) or of
    a webhook consumer (HMAC signature). ``fail`` answers that many requests with 503 first."""

    path: str = "/api/v1/events"
    token: str = ""
    secret: bytes = b""
    fail: int = 0
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.token:
            import base64

            want = "Basic " + base64.b64encode(f"apikey:{self.token}".encode()).decode()
            if request.headers.get("Authorization") != want:
                self.refused.append("auth")
                return web.json_response({"error": "unauthorized"}, status=401)
        if self.secret:
            ts = request.headers.get("X-Edge-Timestamp", "")
            sig = request.headers.get("X-Edge-Signature", "")
            good = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, good) or abs(time.time() - float(ts or 0)) > 300:
                self.refused.append("signature")
                return web.json_response({"error": "bad signature"}, status=403)
        if self.fail > 0:
            self.fail -= 1
            return web.json_response({"error": "busy"}, status=503)
        body = json.loads(raw)
        self.received.append(body)
        return web.json_response({"ok": True})

    async def start(self) -> "HttpPeer":
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        if not self.port:
            self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"
