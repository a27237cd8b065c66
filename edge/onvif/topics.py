"""What edge's ONVIF events say: the topics, the notification values, and their XML (shared
by PullMessages answers and push Notify messages).

- a sensor -> ``tns1:Device/Trigger/DigitalInput`` (Source ``InputToken`` = the sensor id, the
  token GetDigitalInputs lists; Data ``LogicalState`` = whether any alarm of it is active);
- a relay -> ``tns1:Device/Trigger/Relay`` (``RelayToken``, ``LogicalState`` active/inactive);
- a sensor's availability -> ``tns1:Device/tnsedge:Sensor/Availability`` (``InputToken``, Data
  ``Online`` and ``BatteryLow``): ONVIF has no topic for a silent sensor, so it is a vendor
  topic under Device, as camera makers do for supervised inputs;
- the motion mirror (``[onvif] motion_mirror``) -> ``tns1:VideoSource/MotionAlarm`` (Source
  ``VideoSourceToken``, Data ``State``) and ``tns1:RuleEngine/CellMotionDetector/Motion``
  (Data ``IsMotion``): record-on-motion NVRs (Synology, Hikvision, Protect) act on these only.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ns as nsmod
from .media import SOURCE_CONFIG_TOKEN, SOURCE_TOKEN
from .ns import E

T_INPUT = "tns1:Device/Trigger/DigitalInput"
T_RELAY = "tns1:Device/Trigger/Relay"
T_MOTION = "tns1:VideoSource/MotionAlarm"
T_CELL = "tns1:RuleEngine/CellMotionDetector/Motion"
T_AVAILABILITY = "tns1:Device/tnsedge:Sensor/Availability"
ANALYTICS_TOKEN = "dashboard_analytics"
MOTION_RULE = "SensorMotion"


@dataclass(frozen=True)
class Notification:
    topic: str
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    operation: str  # Initialized | Changed
    ts: float


def _b(v: bool) -> str:
    return "true" if v else "false"


def input_note(sensor: str, state: bool, op: str, ts: float) -> Notification:
    return Notification(T_INPUT, (("InputToken", sensor),), (("LogicalState", _b(state)),), op, ts)


def availability_note(sensor: str, state: tuple[bool, bool], op: str, ts: float) -> Notification:
    """``state``: (online, battery low)."""
    return Notification(T_AVAILABILITY, (("InputToken", sensor),),
                        (("Online", _b(state[0])), ("BatteryLow", _b(state[1]))), op, ts)


def relay_note(name: str, on: bool, op: str, ts: float) -> Notification:
    return Notification(T_RELAY, (("RelayToken", name),), (("LogicalState", "active" if on else "inactive"),), op, ts)


def motion_notes(state: bool, op: str, ts: float) -> list[Notification]:
    return [
        Notification(T_MOTION, (("VideoSourceToken", SOURCE_TOKEN),), (("State", _b(state)),), op, ts),
        Notification(T_CELL, (("VideoSourceConfigurationToken", SOURCE_CONFIG_TOKEN),
                              ("VideoAnalyticsConfigurationToken", ANALYTICS_TOKEN), ("Rule", MOTION_RULE)),
                     (("IsMotion", _b(state)),), op, ts),
    ]


def message_element(n: Notification, address: str | None):
    """One ``wsnt:NotificationMessage`` (the SubscriptionReference when ``address`` is given)."""
    return E(
        "wsnt:NotificationMessage",
        E("wsnt:SubscriptionReference", E("wsa:Address", address)) if address else None,
        E("wsnt:Topic", n.topic, Dialect=nsmod.TOPIC_DIALECT),
        E("wsnt:Message", E(
            "tt:Message",
            E("tt:Source", [E("tt:SimpleItem", Name=k, Value=v) for k, v in n.source]),
            E("tt:Data", [E("tt:SimpleItem", Name=k, Value=v) for k, v in n.data]),
            UtcTime=nsmod.xs_datetime(n.ts, millis=True), PropertyOperation=n.operation,
        )),
    )


def topic_set(motion: bool):
    """The ``wstop:TopicSet`` of GetEventPropertiesResponse."""

    def desc(sources: list[tuple[str, str]], *data: tuple[str, str]):
        return E("tt:MessageDescription",
                 E("tt:Source", [E("tt:SimpleItemDescription", Name=n, Type=t) for n, t in sources]),
                 E("tt:Data", [E("tt:SimpleItemDescription", Name=n, Type=t) for n, t in data]),
                 IsProperty=True)

    topic = {f"{{{nsmod.NS['wstop']}}}topic": "true"}
    digital = E("tns1:DigitalInput", desc([("InputToken", "tt:ReferenceToken")], ("LogicalState", "xs:boolean")))
    relay = E("tns1:Relay", desc([("RelayToken", "tt:ReferenceToken")], ("LogicalState", "tt:RelayLogicalState")))
    avail = E("tnsedge:Availability", desc([("InputToken", "tt:ReferenceToken")], ("Online", "xs:boolean"),
                                           ("BatteryLow", "xs:boolean")))
    leaves = [digital, relay, avail]
    top = [E("tns1:Device", E("tns1:Trigger", digital, relay), E("tnsedge:Sensor", avail))]
    if motion:
        alarm = E("tns1:MotionAlarm", desc([("VideoSourceToken", "tt:ReferenceToken")], ("State", "xs:boolean")))
        cell = E("tns1:Motion", desc([("VideoSourceConfigurationToken", "tt:ReferenceToken"),
                                      ("VideoAnalyticsConfigurationToken", "tt:ReferenceToken"),
                                      ("Rule", "xs:string")], ("IsMotion", "xs:boolean")))
        leaves += [alarm, cell]
        top += [E("tns1:VideoSource", alarm), E("tns1:RuleEngine", E("tns1:CellMotionDetector", cell))]
    for el in leaves:
        el.attrib.update(topic)
    return E("wstop:TopicSet", top)
