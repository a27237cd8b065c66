"""Text for a small character display: a line that fits (or scrolls), an age, a sensor's state.

The words of a sensor's state are the sensor kinds' (``edge.kinds``: ``lcd_word`` for binary
kinds, ``lcd_format`` for numeric ones), in the table's order.
"""

from __future__ import annotations

from typing import Any

from .. import kinds
from ..dashboard import words

SCROLL_STEP_S = 0.4  # a line longer than the display scrolls one character per step
SCROLL_PAUSE_STEPS = 4
LOW_BATTERY_PCT = 20  # below this a sensor's battery is shown


def fit(text: str, cols: int, t: float = 0.0) -> str:
    """``text`` in ``cols`` characters; longer text scrolls with ``t`` (seconds on screen)."""
    if len(text) <= cols:
        return text.ljust(cols)
    span = len(text) - cols
    cycle = span + 2 * SCROLL_PAUSE_STEPS
    step = int(t / SCROLL_STEP_S) % cycle
    off = min(max(0, step - SCROLL_PAUSE_STEPS), span)
    return text[off:off + cols]


def age(seconds: float) -> str:
    """Compact age for a 16-character line: '12s', '2h05m'."""
    return words.age(seconds, sep="")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float))


def sensor_summary(state: dict[str, Any]) -> str:
    """A sensor's state in a few words, e.g. 'dry 21.5C' or 'OPEN batt 12%'."""
    parts = []
    for kind in kinds.BY_FIELD.values():  # every kind but generic, in the table's order
        if kind.field not in state:
            continue
        v = state[kind.field]
        if kind.binary:
            word = kind.lcd_word(bool(v))
        else:
            word = kind.lcd_format.format(v) if _number(v) else ""
        if word:
            parts.append(word)
    battery = state.get("battery")
    if _number(battery) and battery < LOW_BATTERY_PCT:
        parts.append(f"batt {battery:.0f}%")
    if not parts:
        parts = [f"{k}={v}" for k, v in state.items() if k != "linkquality"][:2] or ["no data"]
    return " ".join(parts)
