"""Typed in-process pub/sub: the only way components meet.

Every subscriber has its own bounded queue. A slow subscriber loses the oldest events
(counted in ``Subscription.dropped`` and the bus's ``dropped`` total) and never stalls the
publisher. Events carry a ``key``; the last event per (type, key) is replayed to a new
subscriber, so a dashboard that starts late still sees every sensor's current state.

``publish`` must be called on the loop's thread; threads use ``publish_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Generic, Iterable, TypeVar


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event. ``key`` selects the last-value slot for replay."""

    @property
    def key(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class SensorReading(Event):
    """A reading from an adapter/input: the sensor's fields as reported (not yet de-duplicated).

    ``fields`` holds normalised names: ``contact`` (True = closed), ``occupancy``, ``water_leak``,
    ``smoke``, ``tamper``, ``vibration``, ``battery`` (%), ``linkquality``, ``temperature``,
    ``humidity``, or any configured generic field.
    """

    sensor: str
    fields: dict[str, Any]
    source: str = ""
    ts: float = field(default_factory=_now)  # the payload's own time where it carries one
    age_s: float | None = None  # how old the payload said it was on arrival (None: it did not say)
    stale: bool = False  # older than the sensor's max_age_s: shown and stored, acts on nothing

    @property
    def key(self) -> str:
        return self.sensor


@dataclass(frozen=True, slots=True)
class SensorChanged(Event):
    """The sensor's merged state after a reading changed at least one field. A ``stale``
    change (old news: queued at a broker, replayed) fires no pulse and raises no new alarm."""

    sensor: str
    state: dict[str, Any]
    changed: tuple[str, ...]
    previous: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=_now)
    age_s: float | None = None
    stale: bool = False

    @property
    def key(self) -> str:
        return self.sensor


@dataclass(frozen=True, slots=True)
class SensorAvailability(Event):
    """A sensor's availability changed: ``online`` False once it was silent past its expected
    interval or its bridge (Zigbee2MQTT availability, Z-Wave JS UI node status) said so;
    ``battery_low`` from its ``battery_low`` field or its battery at/below the kind's threshold.
    Published at start (every sensor online, nothing seen yet) and on every change of either."""

    sensor: str
    online: bool
    battery_low: bool = False
    last_seen: float | None = None  # wall time of its last message (None: none since start)
    reason: str = ""  # why offline: "silent for 1h 05m (expected every 1h)", "zigbee2mqtt: offline"
    ts: float = field(default_factory=_now)

    @property
    def key(self) -> str:
        return self.sensor


@dataclass(frozen=True, slots=True)
class RelayChanged(Event):
    relay: str
    on: bool
    source: str = ""
    ts: float = field(default_factory=_now)

    @property
    def key(self) -> str:
        return self.relay


@dataclass(frozen=True, slots=True)
class Alarm(Event):
    """An alarm raised (``active``) or cleared. ``alarm`` is a stable id, e.g. ``front_door:open``.

    An active alarm is published again with ``acknowledged`` (and who did it in ``acked_by``)
    when someone acknowledges it (console, front panel): consumers stop alerting for it
    (the LCD drops its alarm screen, ONVIF clears the input) while it stays active."""

    alarm: str
    sensor: str
    active: bool
    kind: str
    message: str
    since: float = field(default_factory=_now)
    ts: float = field(default_factory=_now)
    acknowledged: bool = False
    acked_by: str = ""

    @property
    def key(self) -> str:
        return self.alarm


@dataclass(frozen=True, slots=True)
class ComponentHealth(Event):
    component: str
    ok: bool
    detail: str = ""
    ts: float = field(default_factory=_now)

    @property
    def key(self) -> str:
        return self.component


E = TypeVar("E", bound=Event)


class Subscription(Generic[E]):
    """A bounded queue of events. Iterate it with ``async for``; close it when done."""

    def __init__(self, bus: "Bus", types: tuple[type[Event], ...], maxsize: int, name: str):
        self._bus = bus
        self.types = types
        self.name = name
        self.maxsize = maxsize
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
            self._bus.dropped += 1
            self._bus._on_drop(self)
        self._items.append(event)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> E | None:
        return self._items.popleft() if self._items else None  # type: ignore[return-value]

    async def get(self) -> E:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._bus._subs.discard(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __enter__(self) -> "Subscription[E]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    def __init__(self) -> None:
        self._subs: set[Subscription[Any]] = set()
        self._last: dict[tuple[type[Event], str], Event] = {}
        self.published = 0
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.drop_listeners: list[Callable[[Subscription[Any]], None]] = []

    def subscribe(
        self,
        *types: type[E],
        maxsize: int = 1000,
        replay: bool = True,
        name: str = "",
    ) -> Subscription[E]:
        """Subscribe to events of ``types`` (all events if none given)."""
        sub: Subscription[E] = Subscription(self, tuple(types) or (Event,), maxsize, name)
        if replay:
            for (etype, _), ev in list(self._last.items()):
                if issubclass(etype, sub.types):
                    sub._offer(ev)
        self._subs.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        key = event.key
        if key is not None:
            self._last[(type(event), key)] = event
        for sub in list(self._subs):
            if isinstance(event, sub.types):
                sub._offer(event)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_threadsafe(self, event: Event) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("bus has no loop bound; call bind_loop() first")
        loop.call_soon_threadsafe(self.publish, event)

    def last(self, etype: type[E], key: str) -> E | None:
        return self._last.get((etype, key))  # type: ignore[return-value]

    def last_of(self, etype: type[E]) -> list[E]:
        return [ev for (t, _), ev in self._last.items() if t is etype]  # type: ignore[misc]

    def _on_drop(self, sub: Subscription[Any]) -> None:
        for cb in self.drop_listeners:
            cb(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def forget(self, etypes: Iterable[type[Event]] | None = None) -> None:
        """Drop replay slots (tests)."""
        if etypes is None:
            self._last.clear()
        else:
            ts = tuple(etypes)
            for k in [k for k in self._last if k[0] in ts]:
                del self._last[k]
