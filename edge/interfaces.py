"""The declared interfaces between components, and the registry keys they are found under.

Component packages do not import each other (an import-linter contract in pyproject.toml
checks it); a component that needs another asks the registry for the interface declared
here, e.g. ``ctx.registry.get(RELAYS)`` -> ``RelayControl``. The shared vocabulary of values
crossing these interfaces (``CommandResult``, ``RelayInfo``) lives here too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from .bus import Alarm, SensorChanged
from .registry import Key


# ---- relays --------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    """What every relay command answers (never an exception)."""

    ok: bool
    relay: str
    command: str
    latency_ms: float
    error: str = ""


@dataclass(frozen=True)
class RelayInfo:
    name: str
    board: str
    channel: int  # relay number on the board (the BCM pin on a gpio board)
    mode: str
    on: bool | None  # None: not known (board not reached yet)
    reachable: bool
    faulted: bool
    safe_state: str
    label: str = ""
    pulse_ms: int = 0
    detail: str = ""  # why it is unreachable / faulted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def relay_board_line(board: str) -> str:
    """The name a Modbus relay board's line is published under on the platform
    (``platform.modbus.named(...)``): Modbus inputs on that board read through it."""
    return f"relay board {board}"


def unknown_relay(name: str, names: list[str]) -> str:
    """The error for a relay name that is not configured (a command's, the HTTP API's 404)."""
    return f"unknown relay {name!r} (relays: {', '.join(names) or 'none configured'})"


@runtime_checkable
class RelayControl(Protocol):
    """Driving relays: the relay service, for rules, the uplink, ONVIF, the front panel and
    the HTTP API. ``ms=None`` pulses for the channel's own ``pulse_ms``."""

    def names(self) -> list[str]: ...

    def state(self, name: str) -> bool | None: ...

    def describe(self) -> list[RelayInfo]: ...

    def info(self, name: str) -> RelayInfo | None:
        """One relay as ``describe`` gives it; None when no relay has that name."""
        ...

    async def pulse(self, name: str, ms: int | None = None, source: str = "") -> CommandResult: ...

    async def set(self, name: str, on: bool, source: str = "") -> CommandResult: ...


# ---- the store -------------------------------------------------------------------------
class EventStore(Protocol):
    """The SQLite store as the other components use it (``edge.store`` implements it). Every
    call returns at once; the future resolves when the row is committed."""

    def record_event(self, kind: str, source: str, payload: dict[str, Any],
                     ts: float | None = None) -> "asyncio.Future[int]": ...

    def set_state(self, sensor: str, state: dict[str, Any], ts: float | None = None) -> "asyncio.Future[Any]": ...

    def audit_relay(self, relay: str, command: str, outcome: str, latency_ms: float, detail: str = "",
                    ts: float | None = None) -> "asyncio.Future[int]": ...

    def outbox_put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, *, queue: str = "",
                   seq: int | None = None, urgent: bool = False) -> "asyncio.Future[int]": ...

    async def outbox_peek(self, limit: int, queue: str = "") -> list[Any]: ...

    async def outbox_ack(self, ids: list[int]) -> None: ...

    def meta_set(self, key: str, value: Any) -> "asyncio.Future[None]": ...

    async def meta_get(self, key: str) -> Any: ...

    async def flush(self) -> None: ...


def _log_failure(fut: "asyncio.Future[Any]") -> None:
    if fut.cancelled():
        return
    exc = fut.exception()  # retrieved here; the store itself logs every failure
    if exc is not None:
        logging.getLogger("edge.store").debug("store refused a record: %s", exc)


def record(fut: "asyncio.Future[Any] | None") -> None:
    """Attach a logger to a store future nobody awaits (so a failure is seen, not swallowed)."""
    if fut is not None and hasattr(fut, "add_done_callback"):
        fut.add_done_callback(_log_failure)


# ---- sensors and rules -----------------------------------------------------------------
class SensorStates(Protocol):
    """The sensors' current merged state, by sensor id."""

    def state(self, sensor: str) -> dict[str, Any]: ...

    def seen(self, sensor: str) -> float | None:
        """Wall time of the sensor's last reading (changed or not); None: never heard from."""


class ChangeHook(Protocol):
    """Takes sensor changes straight from the state tracker (the rules engine: the relay
    command starts in the loop iteration the message was decoded in)."""

    def on_change(self, ev: SensorChanged) -> None: ...

    def attached(self) -> None:
        """The hook now gets every change from the tracker (it may stop reading the bus)."""


# ---- alarms ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AckResult:
    ok: bool
    alarm: str
    error: str = ""


class AlarmControl(Protocol):
    """The alarms the rules raised (the rules engine provides it). Acknowledging one records
    it in the store and publishes the alarm again with ``acknowledged`` on the bus, which the
    front panel, the uplink and ONVIF act on; whoever acknowledges (console, LCD) uses this."""

    def active_alarms(self) -> list[Alarm]: ...

    def acknowledge(self, alarm: str, by: str) -> AckResult: ...


# ---- history (the store's readers) ------------------------------------------------------
class History(Protocol):
    """Read-only queries on the store for status pages (each runs in a thread). Rows are the
    store's reader rows (``id, ts, kind, source, payload`` for events; ``ts, relay, command,
    outcome, latency_ms, detail`` for the audit; ``hour, count, sum, min, max, mean`` hourly)."""

    async def events(self, *, kind: str | None = None, source: str | None = None, since: float | None = None,
                     until: float | None = None, before_id: int | None = None, limit: int = 50) -> list[Any]: ...

    async def audit(self, *, relay: str | None = None, limit: int = 50) -> list[Any]: ...

    async def readings(self, sensor: str, field: str, since: float) -> list[tuple[float, float]]: ...

    async def hourly(self, sensor: str, field: str, since: float) -> list[Any]: ...

    async def backup(self, dest: Any) -> None:
        """A consistent copy of the database at ``dest`` (SQLite's online backup)."""


# ---- the service itself (provided by the wiring, edge.service) ----------------------------
@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    ok: bool
    detail: str
    restarts: int = 0


@dataclass(frozen=True)
class Applied:
    """What applying a new config did: components reconfigured or rebuilt now, and the ones
    that take it at the next start of the service (their change needs a restart)."""

    live: tuple[str, ...] = ()
    on_restart: tuple[str, ...] = ()


class ServiceControl(Protocol):
    """The running service as a status page and a config editor see it."""

    def components(self) -> list[ComponentStatus]: ...

    async def apply(self, new_config: Any) -> Applied:
        """Make ``new_config`` the running config (already validated and written)."""

    def restart(self, why: str) -> None:
        """Stop cleanly and ask systemd for a new start."""


# ---- alarm receivers --------------------------------------------------------------------
class Reporter(Protocol):
    """The alarm receivers (``edge.receivers``), for the rules' ``report`` actions. ``report``
    queues the report durably (outbox) and returns at once: False when it could not be queued
    (unknown receiver, nothing to report for this code)."""

    def report(self, receiver: str, *, active: bool, sensor: str, kind: str, text: str, code: str | None = None,
               cid: int | None = None, zone: int | None = None, source: str = "") -> bool: ...


# ---- video ---------------------------------------------------------------------------------
class VideoSource(Protocol):
    """The dashboard camera, for ONVIF, the front panel and the web: a main stream and a
    substream, one profile (``video.VideoProfile``) each."""

    @property
    def port(self) -> int: ...

    @property
    def profiles(self) -> list[Any]: ...

    snapshot_path: str

    def stream_uri(self, host: str, token: str | None = None) -> str: ...

    async def snapshot_jpeg(self) -> bytes: ...

    def encoder_options(self, token: str) -> Any:
        """What a profile's encoder may be set to (``video.settings.StreamOptions``)."""

    async def configure(self, token: str, *, width: int, height: int, fps: float, bitrate_kbps: int,
                        gov_length: int) -> None:
        """Change a profile's encoder; raises ValueError (``SettingRejected``) outside the options."""

    def request_keyframe(self) -> None: ...


# ---- registry keys ---------------------------------------------------------------------
STORE: Key[EventStore] = Key("store")
RELAYS: Key[RelayControl] = Key("relays")
SENSORS: Key[SensorStates] = Key("sensors")
RULES: Key[ChangeHook] = Key("rules")
VIDEO: Key[VideoSource] = Key("video")
ALARMS: Key[AlarmControl] = Key("alarms")
HISTORY: Key[History] = Key("history")
SERVICE: Key[ServiceControl] = Key("service")
REPORTS: Key[Reporter] = Key("reports")
