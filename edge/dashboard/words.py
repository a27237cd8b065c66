"""A sensor's state in words and colour, from the normalised field names on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# colours (RGB) chosen to stay distinct after H.264 and a 1/16 NVR tile
GREEN = (30, 150, 70)
ORANGE = (225, 120, 20)
RED = (200, 25, 25)
BLUE = (40, 100, 180)
GREY = (95, 100, 110)

TELEMETRY = frozenset({"battery", "linkquality", "voltage", "rssi", "last_seen"})


@dataclass(frozen=True)
class StateWords:
    text: str
    colour: tuple[int, int, int]


# field -> (words when True, colour), (words when False, colour)
_BOOLEAN = {
    "contact": (("CLOSED", GREEN), ("OPEN", ORANGE)),  # contact True = closed
    "occupancy": (("MOTION", ORANGE), ("clear", GREEN)),
    "water_leak": (("LEAK", RED), ("dry", GREEN)),
    "smoke": (("SMOKE", RED), ("no smoke", GREEN)),
    "co": (("CO!", RED), ("no CO", GREEN)),
    "carbon_monoxide": (("CO!", RED), ("no CO", GREEN)),
    "gas": (("GAS", RED), ("no gas", GREEN)),
    "vibration": (("VIBRATION", ORANGE), ("still", GREEN)),
    "tamper": (("TAMPER", RED), ("ok", GREEN)),
}

# which field speaks for a sensor of this kind
_PRIMARY = {
    "contact": "contact", "door": "contact", "window": "contact",
    "motion": "occupancy", "occupancy": "occupancy",
    "leak": "water_leak", "water": "water_leak", "water_leak": "water_leak",
    "smoke": "smoke", "co": "co", "gas": "gas",
    "vibration": "vibration", "tamper": "tamper",
    "temperature": "temperature", "humidity": "humidity",
}


def _primary_field(kind: str, state: dict[str, Any]) -> str | None:
    f = _PRIMARY.get(kind)
    if f and f in state:
        return f
    for f in list(_BOOLEAN) + ["temperature", "humidity"]:
        if f in state and f != "tamper":
            return f
    for f in state:
        if f not in TELEMETRY and f != "tamper":
            return f
    return "tamper" if "tamper" in state else None


def describe(kind: str, state: dict[str, Any] | None) -> StateWords:
    """E.g. ("OPEN", orange) for a contact sensor whose contact is False."""
    if not state:
        return StateWords("no data", GREY)
    if state.get("tamper") is True:
        return StateWords("TAMPER", RED)
    f = _primary_field(kind, state)
    if f is None:
        return StateWords("no data", GREY)
    v = state[f]
    if f in _BOOLEAN and isinstance(v, bool):
        words, colour = _BOOLEAN[f][0 if v else 1]
        return StateWords(words, colour)
    if f == "temperature" and isinstance(v, (int, float)):
        return StateWords(f"{v:.1f} °C", BLUE)
    if f == "humidity" and isinstance(v, (int, float)):
        return StateWords(f"{v:.0f} %RH", BLUE)
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
