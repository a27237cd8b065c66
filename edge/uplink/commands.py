"""Commands in: parse and validate a command message into (relay, action, ms/on, id).

JSON on <base>/cmd:        {"id": "42", "relay": "siren", "action": "pulse", "ms": 500}
                           {"id": "43", "relay": "siren", "action": "set", "on": true}
Home Assistant topics:     <base>/relay/<name>/set   ON | OFF
                           <base>/relay/<name>/pulse PRESS | <ms>

A pulse without a length (no "ms", PRESS) lasts the relay's own ``pulse_ms``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_PULSE_MS = 600_000
MAX_COMMAND_BYTES = 4096


class BadCommand(Exception):
    def __init__(self, reason: str, cmd_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.cmd_id = cmd_id


@dataclass(frozen=True)
class Command:
    relay: str
    action: str  # pulse | set
    ms: int | None = None  # None: the relay's own pulse_ms
    on: bool = False
    id: str | None = None


def _ms(v: Any, cmd_id: str | None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadCommand(f"ms: expected an integer number of milliseconds, got {str(v)[:30]!r}", cmd_id)
    if not 1 <= v <= MAX_PULSE_MS:
        raise BadCommand(f"ms: {v} outside 1..{MAX_PULSE_MS}", cmd_id)
    return v


def parse_json_command(payload: bytes) -> Command:
    if len(payload) > MAX_COMMAND_BYTES:
        raise BadCommand(f"command over {MAX_COMMAND_BYTES} bytes")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadCommand(f"not JSON: {str(exc)[:60]}") from None
    if not isinstance(obj, dict):
        raise BadCommand("expected a JSON object like {\"relay\": \"siren\", \"action\": \"pulse\", \"ms\": 500}")
    raw_id = obj.get("id")
    cmd_id = str(raw_id)[:64] if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    relay = obj.get("relay")
    if not isinstance(relay, str) or not relay or len(relay) > 64:
        raise BadCommand("relay: expected a relay name", cmd_id)
    action = obj.get("action")
    if action == "pulse":
        ms = obj.get("ms")
        return Command(relay, "pulse", ms=None if ms is None else _ms(ms, cmd_id), id=cmd_id)
    if action == "set":
        on = obj.get("on")
        if not isinstance(on, bool):
            raise BadCommand("on: expected true or false", cmd_id)
        return Command(relay, "set", on=on, id=cmd_id)
    raise BadCommand(f"action: expected 'pulse' or 'set', got {str(action)[:30]!r}", cmd_id)


def parse_ha_command(relay: str, verb: str, payload: bytes) -> Command:
    text = payload.decode("utf-8", "replace").strip()[:32]
    if verb == "set":
        if text.upper() in ("ON", "OFF"):
            return Command(relay, "set", on=text.upper() == "ON")
        raise BadCommand(f"expected ON or OFF, got {text!r}")
    if text.upper() in ("PRESS", ""):
        return Command(relay, "pulse")
    try:
        return Command(relay, "pulse", ms=_ms(int(text), None))
    except ValueError:
        raise BadCommand(f"expected PRESS or a pulse length in ms, got {text!r}") from None
