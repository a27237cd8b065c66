"""What the menu asks the component to do: plain values, queued by ``Menu.emit`` and
performed by the component (``handlers.HANDLERS``: one handler per action type)."""

from __future__ import annotations

from dataclasses import dataclass

from .network import NetSettings


@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class AcknowledgeCredentials(Action):
    pass


@dataclass(frozen=True)
class RotateCredentials(Action):
    pass


@dataclass(frozen=True)
class Pulse(Action):
    relay: str


@dataclass(frozen=True)
class AckAlarm(Action):
    alarm: str


@dataclass(frozen=True)
class ApplyNetwork(Action):
    settings: NetSettings


@dataclass(frozen=True)
class Reboot(Action):
    pass


@dataclass(frozen=True)
class FactoryReset(Action):
    pass
