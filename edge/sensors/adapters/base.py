"""What every adapter shares: the error type, bounded JSON parsing and value coercion.

An adapter turns one decoded MQTT payload into the fields of one sensor. It returns ``None``
when the message is for another device (same topic, other deviceId), raises ``BadPayload``
with a short reason when the payload does not parse or does not match, and never raises
anything else for any input (the router still guards against that).
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from ..config import SensorConfig


class BadPayload(Exception):
    """The payload cannot be used. ``category`` is a small fixed set (a metrics label)."""

    def __init__(self, reason: str, category: str = "mismatch"):
        super().__init__(reason)
        self.reason = reason
        self.category = category


class Adapter(Protocol):
    name: str
    needs_json: bool

    def decode(self, topic: str, data: Any, raw: bytes, sensor: SensorConfig) -> dict[str, Any] | None: ...


# reserved reading field: the time the payload says it was made (unix seconds), from adapters
# whose payloads carry one; the router makes it the reading's time and age
SENT_AT = "_sent_at"


def stamped(out: dict[str, Any] | None, when: Any) -> dict[str, Any] | None:
    """``out`` with the payload's own time ``when`` (see ``payload_time``) under ``SENT_AT``."""
    if out:
        t = payload_time(when)
        if t is not None:
            out[SENT_AT] = t
    return out


MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise BadPayload(f"non-finite number {name} in JSON", "parse")


# one decoder for every payload (json.loads with an option builds a new one per call)
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def parse_json(raw: bytes, max_bytes: int = 65536) -> Any:
    """Bytes -> JSON value, refusing oversized, non-UTF-8, NaN/Infinity, huge and deep input."""
    if len(raw) > max_bytes:
        raise BadPayload(f"payload of {len(raw)} bytes is over the {max_bytes} byte limit", "size")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"not UTF-8 text (byte {exc.start})", "parse") from None
    try:
        data = _decode(text)
    except BadPayload:
        raise
    except RecursionError:
        raise BadPayload("JSON nested too deep", "parse") from None
    except ValueError as exc:  # JSONDecodeError, int too long
        raise BadPayload(f"not JSON: {str(exc)[:80]}", "parse") from None
    # nesting needs an opening bracket per level: with few of them, no need to walk the value
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise BadPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "parse")
    return data


def _depth(v: Any, d: int = 0) -> int:
    if d > MAX_JSON_DEPTH:
        return d
    if isinstance(v, dict):
        return max((_depth(x, d + 1) for x in v.values()), default=d + 1)
    if isinstance(v, list):
        return max((_depth(x, d + 1) for x in v), default=d + 1)
    return d


def require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadPayload(f"expected a JSON object, got {type(data).__name__}", "type")
    return data


def as_bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise BadPayload(f"{name}: expected true/false, got {_show(v)}", "type")


def as_number(name: str, v: Any, lo: float = -1e9, hi: float = 1e9) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                raise BadPayload(f"{name}: expected a number, got {_show(v)}", "type") from None
        else:
            raise BadPayload(f"{name}: expected a number, got {_show(v)}", "type")
    if isinstance(v, float) and not math.isfinite(v):
        raise BadPayload(f"{name}: not a finite number", "range")
    if not (lo <= v <= hi):
        raise BadPayload(f"{name}: {_show(v)} outside {lo:g}..{hi:g}", "range")
    return v


# a payload time outside this range is a device without a clock (or a wrong one): not used
EARLIEST_TIME = 1_000_000_000.0  # 2001-09-09
FUTURE_SLACK_S = 86400.0


def payload_time(v: Any) -> float | None:
    """A time a payload carries, as unix seconds: epoch seconds or milliseconds (a number or
    a numeric string), or ISO 8601 text (a naive one is local time). None when it is none of
    those or not plausible."""
    import time
    from datetime import datetime

    t: float | None = None
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        text = v.strip()
        try:
            v = float(text)
        except ValueError:
            try:
                t = datetime.fromisoformat(text).timestamp()
            except ValueError:
                return None
    if t is None:
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        t = v / 1000 if v > 1e11 else float(v)
    if not EARLIEST_TIME <= t <= time.time() + FUTURE_SLACK_S:
        return None
    return t


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."
