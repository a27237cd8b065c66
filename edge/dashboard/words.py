"""A sensor's state in words and colour, from the normalised field names on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import kinds

# colours (RGB) chosen to stay distinct after H.264 and a 1/16 NVR tile
GREEN = (30, 150, 70)
ORANGE = (225, 120, 20)
RED = (200, 25, 25)
BLUE = (40, 100, 180)
GREY = (95, 100, 110)

TELEMETRY = kinds.TELEMETRY

SEVERITY_COLOUR = {kinds.LIFE: RED, kinds.HAZARD: RED, kinds.INTRUSION: ORANGE, kinds.TROUBLE: RED, kinds.INFO: BLUE}


@dataclass(frozen=True)
class StateWords:
    text: str
    colour: tuple[int, int, int]


def _primary_field(kind: kinds.Kind, state: dict[str, Any]) -> tuple[kinds.Kind, str] | None:
    """The field that speaks for the sensor: its kind's, else the first field a kind owns,
    else the first field that is not telemetry."""
    if kind.name != "generic" and kind.field in state:
        return kind, kind.field
    for k in kinds.BY_FIELD.values():
        if k.field in state and k.name != "tamper":
            return k, k.field
    for f in state:
        if f not in TELEMETRY and f != "tamper":
            return kinds.GENERIC, f
    return (kinds.KINDS["tamper"], "tamper") if "tamper" in state else None


def describe(kind: str, state: dict[str, Any] | None) -> StateWords:
    """E.g. ("OPEN", orange) for a contact sensor whose contact is False."""
    if not state:
        return StateWords("no data", GREY)
    if state.get("tamper") is True:
        return StateWords("TAMPER", RED)
    found = _primary_field(kinds.get(kind), state)
    if found is None:
        return StateWords("no data", GREY)
    k, f = found
    v = state[f]
    if k.binary and f == k.field and isinstance(v, bool):
        alarm = v == k.alarm_value
        words = k.active_words if v else k.inactive_words
        return StateWords(words, SEVERITY_COLOUR[k.severity] if alarm else GREEN)
    if not k.binary and f == k.field and k.name != "generic" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return StateWords(k.number_format.format(v), BLUE)
    if isinstance(v, float):
        v = f"{v:.1f}"
    return StateWords(f"{f}: {v}"[:24], BLUE)


def age(seconds: float, sep: str = " ") -> str:
    """Time since a change, short: '12s', '5m', '2h 05m', '3d 4h' (sep="" for an LCD: '2h05m')."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{sep}{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{sep}{s % 86400 // 3600}h"


def battery_level(state: dict[str, Any] | None) -> float | None:
    v = (state or {}).get("battery")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def signal_bars(state: dict[str, Any] | None) -> int | None:
    """0-4 bars from zigbee linkquality (0-255) or rssi (dBm)."""
    st = state or {}
    lq = st.get("linkquality")
    if isinstance(lq, (int, float)) and not isinstance(lq, bool):
        return max(0, min(4, int(lq / 255 * 4 + 0.5)))
    rssi = st.get("rssi")
    if isinstance(rssi, (int, float)) and not isinstance(rssi, bool):
        return max(0, min(4, int((rssi + 100) / 12.5)))
    return None
