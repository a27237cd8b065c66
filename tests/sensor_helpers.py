"""Helpers for the sensor-path tests: wait for a state, publish from an external client."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Callable

import aiohttp
import aiomqtt

from .peers import digest_session


async def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def publish(port: int, *msgs: tuple[str, bytes | str], qos: int = 1, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        for topic, payload in msgs:
            await c.publish(topic, payload.encode() if isinstance(payload, str) else payload, qos=qos, retain=retain)


async def metric(svc: Any, name: str, **labels: str) -> float:
    async with digest_session(svc.user, svc.password) as s:
        async with s.get(svc.base_url + "/metrics") as r:
            assert r.status == 200
            text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^[^{ ]+(?:\{(.*)\})? ([0-9.e+-]+)$", line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def sensors_toml(port: int, body: str, extra: str = "") -> str:
    return f"""
[mqtt]
host = "127.0.0.1"
port = {port}
backoff_initial_s = 0.1
backoff_max_s = 1.0
{extra}
{body}
"""
