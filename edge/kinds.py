"""Sensor kinds as one table: the vocabulary every part of edge reads.

A kind says which field carries its state, which value of that field is an alarm, what a
person reads for each state (dashboard; the 16-character LCD where it says it shorter), how urgent its alarm is, and what Home Assistant
calls it. The config accepts exactly these kinds; rules, the dashboard, the uplink and the
front panel all look them up here, so adding a kind is adding a row.

This module imports nothing from ``edge`` (it is data, shared by every component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# how urgent, lowest first: hazards to life before intrusion before the rest
LIFE, HAZARD, INTRUSION, TROUBLE, INFO = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Kind:
    name: str
    field: str  # the field that carries the kind's main state
    binary: bool = True
    alarm_value: Any = True  # the primary field's value that means "alarm" (binary kinds)
    active_words: str = ""  # the primary field is True
    inactive_words: str = ""  # the primary field is False
    active_is_alarm: bool = True  # True: active words shown as an alarm (red/orange), else as normal
    severity: int = INFO  # rank of its alarms on the dashboard
    ha_device_class: str | None = None  # Home Assistant binary_sensor / sensor device class
    unit: str = ""  # numeric kinds
    number_format: str = "{:g}"  # numeric kinds: how the value reads
    lcd_format: str = "{:g}"  # numeric kinds, compact for a 16x2 LCD
    # binary kinds on the LCD, (active, inactive), where they differ from the dashboard's words
    # ("" = not shown: a state worth no room on a 16-character line); None = the words above
    lcd_words: tuple[str, str] | None = None

    @property
    def severe(self) -> bool:
        """Its alarm endangers life or property (red), not only warns (orange)."""
        return self.severity <= HAZARD

    def lcd_word(self, active: bool) -> str:
        """What the front-panel LCD shows for a binary kind's state ("" = nothing)."""
        if self.lcd_words is not None:
            return self.lcd_words[0] if active else self.lcd_words[1]
        return self.active_words if active else self.inactive_words


KINDS: dict[str, Kind] = {k.name: k for k in (
    # contact: True = closed (as Zigbee2MQTT reports it); the alarm is the door opening
    Kind("contact", "contact", alarm_value=False, active_words="CLOSED", inactive_words="OPEN", active_is_alarm=False,
         severity=INTRUSION, ha_device_class="door", lcd_words=("closed", "OPEN")),
    Kind("motion", "occupancy", active_words="MOTION", inactive_words="clear", severity=INTRUSION,
         ha_device_class="motion", lcd_words=("MOTION", "still")),
    Kind("leak", "water_leak", active_words="LEAK", inactive_words="dry", severity=HAZARD, ha_device_class="moisture"),
    Kind("smoke", "smoke", active_words="SMOKE", inactive_words="no smoke", severity=LIFE, ha_device_class="smoke"),
    Kind("co", "co", active_words="CO!", inactive_words="no CO", severity=LIFE, ha_device_class="carbon_monoxide"),
    Kind("gas", "gas", active_words="GAS", inactive_words="no gas", severity=LIFE, ha_device_class="gas"),
    Kind("panic", "panic", active_words="PANIC", inactive_words="ok", severity=HAZARD, ha_device_class="safety"),
    # tamper before vibration: the LCD lists a state's words in the table's order
    Kind("tamper", "tamper", active_words="TAMPER", inactive_words="ok", severity=TROUBLE, ha_device_class="tamper",
         lcd_words=("TAMPER", "")),
    Kind("vibration", "vibration", active_words="VIBRATION", inactive_words="still", severity=INTRUSION,
         ha_device_class="vibration", lcd_words=("VIBRATION", "")),
    Kind("temperature", "temperature", binary=False, alarm_value=None, ha_device_class="temperature", unit="°C",
         number_format="{:.1f} °C", lcd_format="{:.1f}C"),
    Kind("humidity", "humidity", binary=False, alarm_value=None, ha_device_class="humidity", unit="%",
         number_format="{:.0f} %RH", lcd_format="{:.0f}%"),
    # a link, e.g. the fleet uplink's broker bridge (True = connected)
    Kind("connectivity", "connected", alarm_value=False, active_words="online", inactive_words="OFFLINE",
         active_is_alarm=False, severity=TROUBLE, ha_device_class="connectivity"),
    Kind("generic", "value", binary=False, alarm_value=True),
)}

KIND_NAMES: tuple[str, ...] = tuple(KINDS)
GENERIC = KINDS["generic"]

# the kind whose primary field a state field is (for a state whose sensor kind is not known)
BY_FIELD: dict[str, Kind] = {k.field: k for k in KINDS.values() if k.name != "generic"}

# fields that describe the device, not what it senses
TELEMETRY = frozenset({"battery", "battery_low", "linkquality", "voltage", "rssi", "last_seen"})


def get(name: str) -> Kind:
    """The kind called ``name`` (generic for a name not in the table)."""
    return KINDS.get(name, GENERIC)


# alarm kinds that are not sensor kinds (a rule's ``kind = "intrusion"``, the door-prop timer)
ALARM_KINDS = {"door_prop": INTRUSION, "door": INTRUSION, "open": INTRUSION, "glass": INTRUSION,
               "intrusion": INTRUSION, "fire": LIFE, "carbon_monoxide": LIFE}


def alarm_severity(kind: str) -> int:
    """Rank of an alarm of ``kind``: a sensor kind, a kind's field name, or an alarm kind."""
    kind = kind.lower()
    k = KINDS.get(kind) or BY_FIELD.get(kind)
    if k is not None:
        return k.severity if k.name != "generic" else INFO
    return ALARM_KINDS.get(kind, INFO)


def guess(state: dict[str, Any]) -> Kind:
    """The kind a state most likely comes from (a sensor edge was not configured with)."""
    for f, kind in BY_FIELD.items():
        if f in state and kind.name != "tamper":
            return kind
    return GENERIC
