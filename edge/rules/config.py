"""The ``[[rules]]`` config: a sensor's condition and the actions it drives.

    [[rules]]
    name = "front-door"
    sensor = "front_door"          # field defaults to the sensor kind's (contact for a door)
    equals = false                 # the condition; default: the kind's alarm value (door open,
                                   # motion, leak, smoke... true); or above/below for numbers
    door_prop_s = 30               # open longer than this -> its own alarm, cleared on close
    actions = [
      { pulse = "siren", ms = 2000 },     # pulse a relay when the condition becomes true
      { pulse = "strike" },               # ... for the relay's own pulse_ms
      { follow = "porch_light" },         # relay on while true, off when false (invert = true flips)
      { latch = "buzzer" },               # relay on when true; stays on until commanded off
      { alarm = "Front door opened" },    # Alarm on the bus while true, cleared when false
      { report = "arc", code = "BA", zone = 1 },   # report to [receivers.*.arc] when true, its
                                                   # restore (BH) when false; code, zone optional
    ]

A rule can also watch the sensor itself rather than its state: ``when = "offline"`` (silent past
its expected interval, or its bridge says so) or ``when = "battery_low"``; e.g. a supervision
alarm: ``{ sensor = "front_door", when = "offline", actions = [{ alarm = "Front door sensor silent" }] }``.

Kept apart from the engine so that checking a config does not load it. Checks that need other
sections (the sensor exists, the relay exists) are in ``edge.config_checks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .. import kinds
from ..section import Section

if TYPE_CHECKING:
    from ..sensors.config import SensorConfig


ACTION_TYPES = ("pulse", "follow", "latch", "alarm", "report")


class RuleAction(Section):
    pulse: str | None = Field(None, description="relay to pulse when the condition becomes true")
    ms: int | None = Field(None, ge=1, le=3_600_000, description="pulse length (default: the relay's pulse_ms)")
    follow: str | None = Field(None, description="relay that follows the condition")
    invert: bool = False
    latch: str | None = Field(None, description="relay switched on (and left on) when the condition becomes true")
    alarm: str | None = Field(None, description="alarm message raised while the condition is true")
    kind: str = Field("", description="alarm kind (default: the sensor kind)")
    report: str | None = Field(None, description="alarm receiver to report to (a [receivers] name)")
    code: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="report: SIA event code (default: the kind's)")
    cid: int | None = Field(None, ge=100, le=999, description="report: Contact ID event code (default: the code's)")
    zone: int | None = Field(None, ge=0, le=9999, description="report: zone (default: the sensor's in [receivers])")

    @model_validator(mode="after")
    def _one(self) -> "RuleAction":
        set_ = [k for k in ACTION_TYPES if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError("an action is exactly one of pulse, follow, latch, alarm, report "
                             "(e.g. { pulse = \"siren\", ms = 2000 })")
        if self.ms is not None and set_[0] != "pulse":
            raise ValueError(f"ms is the length of a pulse; a {set_[0]} action has none")
        return self

    @property
    def type(self) -> str:
        return next(k for k in ACTION_TYPES if getattr(self, k) is not None)

    @property
    def relay(self) -> str | None:
        return self.pulse or self.follow or self.latch


class RuleConfig(Section):
    name: str = ""
    enabled: bool = Field(True, description="false: the rule is kept but does nothing")
    sensor: str
    when: Literal["state", "offline", "battery_low"] = Field("state", description=(
        "state: the sensor's field (equals/above/below); offline: the sensor went silent; battery_low"))
    field: str | None = None
    equals: bool | int | float | str | None = None
    above: float | None = None
    below: float | None = None
    door_prop_s: float | None = Field(None, gt=0, le=86400)
    door_prop_message: str = ""
    actions: list[RuleAction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "RuleConfig":
        if self.equals is not None and (self.above is not None or self.below is not None):
            raise ValueError("use either equals or above/below")
        if not self.actions and self.door_prop_s is None:
            raise ValueError("a rule needs actions or door_prop_s")
        if self.when != "state":
            extra = [k for k in ("field", "equals", "above", "below", "door_prop_s") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"when = {self.when!r} watches the sensor itself: drop {', '.join(extra)}")
        return self


def rule_field(rule: RuleConfig, sensor: "SensorConfig") -> str:
    """The state field the rule watches (its own ``field``, else the sensor kind's)."""
    return rule.field or sensor.primary_field


def condition_holds(rule: RuleConfig, sensor: "SensorConfig", state: dict[str, Any]) -> bool:
    """Whether ``state`` meets the rule's condition (a missing field: no). The meaning of a
    rule, used by the engine and by a dry test that must say exactly what the engine would do."""
    f = rule_field(rule, sensor)
    if f not in state:
        return False
    v = state[f]
    if rule.above is not None or rule.below is not None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return (rule.above is None or v > rule.above) and (rule.below is None or v < rule.below)
    want = rule.equals if rule.equals is not None else kinds.get(sensor.kind).alarm_value
    if isinstance(want, bool) or isinstance(v, bool):
        return isinstance(v, bool) and isinstance(want, bool) and v == want
    return v == want
