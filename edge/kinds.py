"""Sensor kinds as one table: the vocabulary every part of edge reads.

A kind says which field carries its state, which value of that field is an alarm, what a
person reads for each state (dashboard; the 16-character LCD where it says it shorter), how
urgent its alarm is, what Home Assistant calls it, and how its alarm is reported to an alarm
receiving centre (SIA and Contact ID codes). The config accepts exactly these kinds; rules,
the dashboard, the uplink, the receivers and the front panel all look them up here, so adding
a kind is adding a row.

This module imports nothing from ``edge`` (it is data, shared by every component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# how urgent, lowest first: hazards to life before intrusion before the rest
LIFE, HAZARD, INTRUSION, TROUBLE, INFO = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ReportCodes:
    """How an alarm is reported to an alarm receiver: the SIA DC-03 event code of the alarm and
    of its restore (None: nothing to restore, e.g. a test), and the Contact ID event code (sent
    with qualifier 1 for the alarm, 3 for the restore)."""

    sia: str
    sia_restore: str | None
    cid: int


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
    report: ReportCodes | None = None  # alarm receivers (SIA DC-09, Contact ID); None: not reported by default
    # availability: a sensor of this kind silent longer than this is offline (0: not supervised).
    # Battery devices check in rarely: Zigbee2MQTT's own default for them is 25 h, YoLink class A
    # sensors 9 h (yolink-api's keepalive table); climate sensors report at least hourly.
    offline_after_s: float = 25 * 3600.0
    battery_low_pct: float = 20.0  # battery (%) at or below this is "battery low"
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
         severity=INTRUSION, ha_device_class="door", lcd_words=("closed", "OPEN"), report=ReportCodes("BA", "BH", 131)),
    Kind("motion", "occupancy", active_words="MOTION", inactive_words="clear", severity=INTRUSION,
         ha_device_class="motion", lcd_words=("MOTION", "still"), report=ReportCodes("BA", "BH", 132)),
    Kind("leak", "water_leak", active_words="LEAK", inactive_words="dry", severity=HAZARD, ha_device_class="moisture",
         report=ReportCodes("WA", "WH", 154)),
    Kind("smoke", "smoke", active_words="SMOKE", inactive_words="no smoke", severity=LIFE, ha_device_class="smoke",
         report=ReportCodes("FA", "FH", 111)),
    Kind("co", "co", active_words="CO!", inactive_words="no CO", severity=LIFE, ha_device_class="carbon_monoxide",
         report=ReportCodes("GA", "GH", 162)),
    Kind("gas", "gas", active_words="GAS", inactive_words="no gas", severity=LIFE, ha_device_class="gas",
         report=ReportCodes("GA", "GH", 151)),
    Kind("panic", "panic", active_words="PANIC", inactive_words="ok", severity=HAZARD, ha_device_class="safety",
         report=ReportCodes("PA", "PH", 120)),
    # tamper before vibration: the LCD lists a state's words in the table's order
    Kind("tamper", "tamper", active_words="TAMPER", inactive_words="ok", severity=TROUBLE, ha_device_class="tamper",
         lcd_words=("TAMPER", ""), report=ReportCodes("TA", "TR", 144)),
    Kind("vibration", "vibration", active_words="VIBRATION", inactive_words="still", severity=INTRUSION,
         ha_device_class="vibration", lcd_words=("VIBRATION", ""), report=ReportCodes("BA", "BH", 130)),
    Kind("temperature", "temperature", binary=False, alarm_value=None, ha_device_class="temperature", unit="°C",
         number_format="{:.1f} °C", lcd_format="{:.1f}C", offline_after_s=3 * 3600.0),
    Kind("humidity", "humidity", binary=False, alarm_value=None, ha_device_class="humidity", unit="%",
         number_format="{:.0f} %RH", lcd_format="{:.0f}%", offline_after_s=3 * 3600.0),
    # a link, e.g. the fleet uplink's broker bridge (True = connected); its own state is the
    # news, so no offline timer
    Kind("connectivity", "connected", alarm_value=False, active_words="online", inactive_words="OFFLINE",
         active_is_alarm=False, severity=TROUBLE, ha_device_class="connectivity", offline_after_s=0.0),
    Kind("generic", "value", binary=False, alarm_value=True, offline_after_s=0.0),
)}

KIND_NAMES: tuple[str, ...] = tuple(KINDS)
GENERIC = KINDS["generic"]

# the kind whose primary field a state field is (for a state whose sensor kind is not known)
BY_FIELD: dict[str, Kind] = {k.field: k for k in KINDS.values() if k.name != "generic"}

# fields that describe the device, not what it senses
TELEMETRY = frozenset({"battery", "battery_low", "linkquality", "voltage", "rssi", "last_seen", "signal"})


def get(name: str) -> Kind:
    """The kind called ``name`` (generic for a name not in the table)."""
    return KINDS.get(name, GENERIC)


@dataclass(frozen=True)
class AlarmKind:
    """An alarm kind that is not a sensor kind (a rule's ``kind = "intrusion"``, the door-prop
    timer, a sensor's own trouble, the receivers' link trouble)."""

    name: str
    severity: int
    report: ReportCodes | None = None


ALARM_KINDS: dict[str, AlarmKind] = {a.name: a for a in (
    AlarmKind("door_prop", INTRUSION, ReportCodes("DL", "DH", 426)),
    AlarmKind("door", INTRUSION, ReportCodes("BA", "BH", 131)),
    AlarmKind("open", INTRUSION, ReportCodes("BA", "BH", 131)),
    AlarmKind("forced", INTRUSION, ReportCodes("DF", "DR", 423)),
    AlarmKind("glass", INTRUSION, ReportCodes("BA", "BH", 140)),
    AlarmKind("intrusion", INTRUSION, ReportCodes("BA", "BH", 130)),
    AlarmKind("fire", LIFE, ReportCodes("FA", "FH", 110)),
    AlarmKind("carbon_monoxide", LIFE, ReportCodes("GA", "GH", 162)),
    # a sensor's own trouble (rules on ``when = "offline"`` / ``"battery_low"``): missing (RF
    # supervision), low battery
    AlarmKind("supervision", TROUBLE, ReportCodes("UY", "UJ", 381)),
    AlarmKind("offline", TROUBLE, ReportCodes("UY", "UJ", 381)),
    AlarmKind("battery_low", TROUBLE, ReportCodes("XT", "XR", 384)),
    AlarmKind("communication", TROUBLE, ReportCodes("YS", "YK", 350)),
    AlarmKind("test", INFO, ReportCodes("RP", None, 602)),
    AlarmKind("manual_test", INFO, ReportCodes("RX", None, 601)),
    # a relay whose pulse end could not be written (edge's own trouble: not reported)
    AlarmKind("relay_fault", TROUBLE),
)}


def alarm_severity(kind: str) -> int:
    """Rank of an alarm of ``kind``: a sensor kind, a kind's field name, or an alarm kind."""
    kind = kind.lower()
    k = KINDS.get(kind) or BY_FIELD.get(kind)
    if k is not None:
        return k.severity if k.name != "generic" else INFO
    a = ALARM_KINDS.get(kind)
    return a.severity if a is not None else INFO


def report_codes(kind: str) -> ReportCodes | None:
    """How an alarm of ``kind`` (a sensor kind or an alarm kind) is reported, if it is."""
    k = KINDS.get(kind) or ALARM_KINDS.get(kind)
    return k.report if k is not None else None


def restore_code(sia: str) -> str | None:
    """The SIA restore code that goes with the alarm code ``sia`` (BA -> BH), from the tables,
    else by the DC-03 convention that an ``xA`` alarm is restored by ``xH``."""
    for k in (*KINDS.values(), *ALARM_KINDS.values()):
        if k.report is not None and k.report.sia == sia:
            return k.report.sia_restore
    return sia[0] + "H" if len(sia) == 2 and sia[1] == "A" else None


def cid_code(sia: str) -> int | None:
    """The Contact ID event code the tables give the SIA alarm code ``sia``, if any."""
    for k in (*KINDS.values(), *ALARM_KINDS.values()):
        if k.report is not None and k.report.sia == sia:
            return k.report.cid
    return None


def guess(state: dict[str, Any]) -> Kind:
    """The kind a state most likely comes from (a sensor edge was not configured with)."""
    for f, kind in BY_FIELD.items():
        if f in state and kind.name != "tamper":
            return kind
    return GENERIC
