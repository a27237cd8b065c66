"""The "listen" helper: subscribe to a topic filter for a few seconds and keep the last
messages (retained ones included), so an installer sees what a device really sends."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from ..mqtt.client import make_client, tls_context
from ..mqtt.config import MqttConfig

MAX_MESSAGES = 20
MAX_SHOWN_BYTES = 2000


@dataclass
class Heard:
    topic: str
    ts: float
    text: str
    fields: list[str]  # dotted paths of the JSON payload's leaves (for the generic adapter)


@dataclass
class Listened:
    messages: list[Heard] = field(default_factory=list)
    error: str = ""


def leaves(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value[:10]):
            out += leaves(v, f"{prefix}.{i}" if prefix else str(i))
        return out
    return [f"{prefix} = {json.dumps(value)}"] if prefix else []


def _check(topic: str) -> str | None:
    if not topic or len(topic) > 512:
        return "a topic (filter) of 1..512 characters, e.g. zigbee2mqtt/front_door or zigbee2mqtt/#"
    for i, p in enumerate(topic.split("/")):
        if ("#" in p and (p != "#" or i != len(topic.split("/")) - 1)) or ("+" in p and p != "+"):
            return f"{topic!r} is not a valid MQTT topic filter"
    return None


async def listen(cfg: MqttConfig, topic: str, seconds: float) -> Listened:
    out = Listened()
    problem = _check(topic)
    if problem:
        out.error = problem
        return out
    if not cfg.enabled:
        out.error = "MQTT is off in this config ([mqtt] enabled = false)"
        return out
    heard: list[Heard] = []
    try:
        client = make_client(cfg, f"edge-console-listen-{secrets.token_hex(3)}", clean_session=True,
                             ssl_ctx=tls_context(cfg))
        async with client:
            await client.subscribe(topic, qos=0)
            try:
                async with asyncio.timeout(seconds):
                    async for msg in client.messages:
                        raw = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else str(msg.payload).encode()
                        text = bytes(raw[:MAX_SHOWN_BYTES]).decode("utf-8", "replace")
                        try:
                            paths = leaves(json.loads(raw))
                        except ValueError:
                            paths = []
                        heard.append(Heard(msg.topic.value, time.time(), text, paths))
                        del heard[:-MAX_MESSAGES]
            except TimeoutError:
                pass
    except aiomqtt.MqttError as exc:
        out.error = f"broker {cfg.host}:{cfg.port}: {exc}"
    except OSError as exc:
        out.error = f"broker {cfg.host}:{cfg.port}: {exc.strerror or exc}"
    out.messages = list(reversed(heard))
    return out
