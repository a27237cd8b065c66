"""Local stand-ins for YoLink's servers: its HTTP API (aiohttp) and a real Mosquitto as its broker.

The API fake speaks Open API V2 as YoLink documents it (doc.yosmart.com: Open API V2, Local
Hub API, error codes): ``POST /open/yolink/token`` (client_credentials / refresh_token grants;
a refused secret is answered HTTP 200 ``{"state": "error", "msg": ...}``, the shape YoLink's
token endpoint uses per independent clients such as go-yolink) and ``POST /open/yolink/v2/api``
(JSON-RPC with a Bearer token: ``Home.getGeneralInfo``, ``Home.getDeviceList``; an unknown
token answers code 000103, an expired one 010104).

The broker accepts only the currently valid tokens:
- Local Hub mode (username = client id, password = token): a password file holding the newest
  token, rewritten on every token issue and reloaded with SIGHUP (an old token is refused at
  connect).
- Cloud mode (username = token, no password): Mosquitto cannot authenticate a user name without
  a password (neither its password file nor its dynamic-security plugin: checked with 2.0.11),
  so an ACL file lets only the unexpired tokens' connections read the report topics; it is
  rewritten on issue and on expiry and reloaded with SIGHUP.
The fake's own publisher (``yolink-cloud``) publishes the device reports.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .peers import Broker, free_port

PUBLISHER, PUBLISHER_PW = "yolink-cloud", secrets.token_hex(8)
RELOAD_S = 0.3  # Mosquitto applies a SIGHUP on its next loop turn


def pw_line(user: str, password: str) -> str:
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{user}:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


class YoLinkBroker:
    def __init__(self, workdir: Path, mode: str, uaid: str):
        self.mode = mode
        self.uaid = uaid
        self.dir = workdir
        self.pwfile = workdir / "passwd"
        self.aclfile = workdir / "acl"
        self.broker = Broker("127.0.0.1", free_port(), workdir, extra_conf="")
        self.tokens: list[str] = []

    def _write(self) -> None:
        if self.mode == "local":
            lines = pw_line(PUBLISHER, PUBLISHER_PW) + (pw_line(self.uaid, self.tokens[-1]) if self.tokens else "")
            self.pwfile.write_text(lines)
            self.pwfile.chmod(0o644)
        else:
            acl = f"user {PUBLISHER}\ntopic readwrite #\n" + "".join(f"user {t}\ntopic read yl-home/#\n" for t in self.tokens)
            self.aclfile.write_text(acl)
            self.aclfile.chmod(0o644)

    def start(self) -> None:
        self._write()
        # (no ACL file with the password file: Mosquitto 2.0.11 then drops what it should queue
        # for a session whose connection it closed on reload)
        self.broker.extra_conf = (f"allow_anonymous false\npassword_file {self.pwfile}\n" if self.mode == "local"
                                  else f"allow_anonymous true\nacl_file {self.aclfile}\n")
        self.broker.start()

    async def allow(self, tokens: list[str]) -> None:
        self.tokens = list(tokens)
        self._write()
        if self.broker.proc is not None:
            self.broker.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(RELOAD_S)

    def stop(self) -> None:
        self.broker.stop()

    @property
    def port(self) -> int:
        return self.broker.port


@dataclass
class FakeYoLinkApi:
    uaid: str
    secret: str
    home_id: str
    devices: list[dict[str, Any]]
    token_life_s: float = 7200.0
    broker: YoLinkBroker | None = None
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expires at (wall)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> uaid
    token_requests: int = 0
    refused: int = 0
    api_calls: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _expiry: set[asyncio.TimerHandle] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def valid(self) -> list[str]:
        now = time.time()
        return [t for t, exp in self.tokens.items() if exp > now]

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if form.get("client_id") != self.uaid or form.get("client_secret") != self.secret:
                self.refused += 1
                return web.json_response({"state": "error", "msg": "client_id or client_secret is invalid"})
        elif grant == "refresh_token":
            if self.refresh.pop(str(form.get("refresh_token")), None) != form.get("client_id"):
                return web.json_response({"state": "error", "msg": "refresh_token is invalid"})
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        tok, ref = secrets.token_hex(16), secrets.token_hex(16)
        self.tokens[tok] = time.time() + self.token_life_s
        self.refresh[ref] = self.uaid
        if self.broker is not None:
            await self.broker.allow(self.valid() if self.broker.mode == "cloud" else [tok])
            loop = asyncio.get_running_loop()
            h = loop.call_later(self.token_life_s + 0.05, lambda: loop.create_task(self._expired()))
            self._expiry.add(h)
        return web.json_response({"access_token": tok, "refresh_token": ref, "expires_in": self.token_life_s,
                                  "token_type": "bearer", "scope": ["create"]})

    async def _expired(self) -> None:
        if self.broker is not None and self.broker.mode == "cloud":
            await self.broker.allow(self.valid())

    def revoke_all(self) -> None:
        """Every token expires now (as after YoLink's side restarted or the UAC was rotated)."""
        for t in self.tokens:
            self.tokens[t] = time.time() - 1

    def answer(self, method: str, code: str = "000000", desc: str = "Success", data: Any = None) -> web.Response:
        now = int(time.time() * 1000)
        body: dict[str, Any] = {"code": code, "time": now, "msgid": now, "method": method, "desc": desc}
        if data is not None:
            body["data"] = data
        return web.json_response(body)

    async def _api(self, request: web.Request) -> web.Response:
        body = await request.json()
        method = str(body.get("method"))
        self.api_calls.append(method)
        auth = request.headers.get("Authorization", "")
        tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if tok not in self.tokens:
            return self.answer(method, "000103", "Token is invalid")
        if self.tokens[tok] <= time.time():
            return self.answer(method, "010104", "Invalid request: The token is expired")
        if method == "Home.getGeneralInfo":
            return self.answer(method, data={"id": self.home_id})
        if method == "Home.getDeviceList":
            return self.answer(method, data={"devices": self.devices})
        return self.answer(method, "010203", "Invalid data packet: method is not supported")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/open/yolink/token", self._token)
        app.router.add_post("/open/yolink/v2/api", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        for h in self._expiry:
            h.cancel()
        if self._runner is not None:
            await self._runner.cleanup()


def device(dev_id: str, name: str, typ: str, model: str) -> dict[str, Any]:
    """A device as Home.getDeviceList lists it (shape from YoLink's UAC quick-start example)."""
    return {"deviceId": dev_id, "deviceUDID": secrets.token_hex(16), "name": name, "token": secrets.token_hex(16),
            "type": typ, "parentDeviceId": None, "modelName": model, "serviceZone": None}


def report(dev_id: str, event: str, data: dict[str, Any], msgid: int) -> bytes:
    """A device report as YoLink's broker delivers it on .../<deviceId>/report."""
    import json

    return json.dumps({"event": event, "time": int(time.time() * 1000), "msgid": str(msgid), "data": data,
                       "deviceId": dev_id}).encode()
