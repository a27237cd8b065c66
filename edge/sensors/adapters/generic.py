"""Anything else: each configured field names a dotted path in the JSON payload (``.`` = the
whole payload, which then need not be JSON), with an optional value map and scaling.

    [[sensors]]
    id = "pump"
    topic = "plant/pump/status"
    adapter = "generic"
    kind = "generic"
    fields.running = { path = "state.run", map = { RUN = true, STOP = false } }
    fields.pressure = { path = "p", scale = 0.1 }
"""

from __future__ import annotations

import math
from typing import Any

from ..config import GenericField, SensorConfig
from .base import BadPayload, parse_json

_MISSING = object()


def lookup(data: Any, path: str) -> Any:
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            cur = cur[i] if -len(cur) <= i < len(cur) else _MISSING
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _key(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def convert(name: str, spec: GenericField, v: Any) -> Any:
    if spec.map:
        k = _key(v)
        if k in spec.map:
            return spec.map[k]
        if k.lower() in spec.map:
            return spec.map[k.lower()]
        raise BadPayload(f"{name}: value {k[:30]!r} not in its value map", "mismatch")
    if isinstance(v, (dict, list)):
        raise BadPayload(f"{name}: expected a value at {spec.path!r}, got {type(v).__name__}", "type")
    if spec.type == "string":
        return str(v)[:256]
    if spec.type == "bool":
        if isinstance(v, bool):
            return v
        raise BadPayload(f"{name}: expected true/false, got {_key(v)[:30]!r}", "type")
    if isinstance(v, bool):
        if spec.type == "number":
            raise BadPayload(f"{name}: expected a number, got {v}", "type")
        return v
    if isinstance(v, str) and spec.type in ("number", "auto"):
        try:
            v = float(v)
        except ValueError:
            if spec.type == "number":
                raise BadPayload(f"{name}: expected a number, got {v[:30]!r}", "type") from None
            return v[:256]
    if isinstance(v, (int, float)):
        x = v * spec.scale + spec.offset
        if not math.isfinite(x) or abs(x) > 1e15:
            raise BadPayload(f"{name}: number out of range", "range")
        return x if (spec.scale != 1 or spec.offset != 0 or isinstance(v, float)) else v
    if v is None:
        raise BadPayload(f"{name}: null at {spec.path!r}", "type")
    return v


class Generic:
    name = "generic"
    needs_json = False  # a field with path "." can read a plain payload

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        parsed: Any = _MISSING
        missing = []
        for name, spec in sensor.fields.items():
            if spec.path == ".":
                if data is not _MISSING and data is not None:
                    v = data
                else:
                    try:
                        v = raw.decode("utf-8").strip()
                    except UnicodeDecodeError:
                        raise BadPayload("not UTF-8 text", "parse") from None
                    if len(v) > 256:
                        raise BadPayload("plain payload over 256 characters", "size")
                out[name] = convert(name, spec, v)
                continue
            if parsed is _MISSING:
                parsed = data if data is not None else parse_json(raw)
            v = lookup(parsed, spec.path)
            if v is _MISSING:
                missing.append(spec.path)
                continue
            out[name] = convert(name, spec, v)
        if not out:
            raise BadPayload(f"none of the configured paths found ({', '.join(missing)[:80]})")
        return out
