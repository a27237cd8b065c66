"""Events service (http://www.onvif.org/ver10/events/wsdl): real-time PullPoint, and the
state the push subscriptions (edge/onvif/push.py) share with it.

Bus events become ONVIF notifications (edge/onvif/topics.py): ``Alarm`` for a sensor ->
DigitalInput (and the motion mirror, ``[onvif] motion_mirror``); ``RelayChanged`` -> Relay;
``SensorAvailability`` -> edge's own Sensor/Availability topic (ONVIF has none for a silent
sensor; clients that do not know it skip it).

Every subscription, pull or push, gets every notification (Protect keeps its own, Home
Assistant its own). A new subscription and SetSynchronizationPoint queue ``Initialized``
messages with every current state; later transitions are ``Changed``. Subscriptions expire
at their termination time (kept on the monotonic clock: an NTP step at boot neither ends nor
prolongs them), are bounded in number, per client address (a client in a reconnect loop
replaces its own oldest subscription instead of filling every slot) and in queued messages
(oldest dropped first, counted), and PullMessages long-polls up to a cap.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..bus import Alarm, RelayChanged, SensorAvailability
from . import ns as nsmod
from .core import PULLPOINT_PATH, Core
from .ns import E
from .soap import Dispatcher, SoapFault, SoapRequest, sender
from .topics import (Notification, availability_note, input_note, message_element, motion_notes, relay_note,
                     topic_set)

log = logging.getLogger("edge.onvif.events")

TEV = nsmod.NS["tev"]
WSNT = nsmod.NS["wsnt"]
MOTION_KINDS = {"motion", "occupancy"}


@dataclass
class PullPoint:
    id: str
    expires: float  # time.monotonic()
    queue: deque[Notification]
    filters: tuple[str, ...] = ()
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    kind: str = "pull"
    client: str = ""  # the address that created it

    def wants(self, topic: str) -> bool:
        return not self.filters or any(topic == f or topic.startswith(f + "/") for f in self.filters)

    def push(self, n: Notification) -> None:
        if not self.wants(n.topic):
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(n)
        self.wake.set()


def _resource_unknown(reason: str) -> SoapFault:
    return SoapFault("Sender", ("wsrf-rw:ResourceUnknownFault",), reason)


class EventHub:
    def __init__(self, core: Core):
        self.core = core
        self.cfg = core.cfg
        self.subs: dict[str, Any] = {}  # PullPoint | push.PushSubscription, by id
        self.alarms: dict[str, set[str]] = {}  # sensor -> active alarm ids
        self.mirror = getattr(self.cfg, "motion_mirror", "motion")  # "motion" | "alarms" | "off"
        self.motion_sensors: set[str] = {getattr(x, "id", "") for x in core.sensors() if self._mirrored(
            getattr(x, "id", ""), str(getattr(x, "kind", "")))}
        self.motion_on = False
        self.relays: dict[str, bool] = {}
        self.availability: dict[str, tuple[bool, bool]] = {}  # sensor -> (online, battery low)
        self.published = 0

    # ---- state from the bus -------------------------------------------------------------
    def input_state(self, sensor: str) -> bool:
        return bool(self.alarms.get(sensor))

    def motion_state(self) -> bool:
        return any(self.input_state(s) for s in self.motion_sensors)

    def _mirrored(self, sensor: str, kind: str) -> bool:
        """Whether this sensor's alarms show as motion of the video source."""
        if self.mirror == "alarms":
            return True
        if self.mirror == "motion":
            return kind.lower() in MOTION_KINDS or self.core.sensor_kind(sensor) in MOTION_KINDS
        return False

    def handle(self, ev: Any) -> None:
        if isinstance(ev, Alarm):
            before = self.input_state(ev.sensor)
            active = self.alarms.setdefault(ev.sensor, set())
            # an acknowledged alarm stops alerting the NVR (the installer has seen it)
            (active.add if ev.active and not ev.acknowledged else active.discard)(ev.alarm)
            after = self.input_state(ev.sensor)
            out = []
            if after != before:
                out.append(input_note(ev.sensor, after, "Changed", ev.ts))
            if self._mirrored(ev.sensor, ev.kind):
                # one video source: it is in motion while any mirrored sensor is in alarm
                self.motion_sensors.add(ev.sensor)
                state = self.motion_state()
                if state != self.motion_on:
                    self.motion_on = state
                    out.extend(motion_notes(state, "Changed", ev.ts))
            self.broadcast(out)
        elif isinstance(ev, SensorAvailability):
            now = (ev.online, ev.battery_low)
            if self.availability.get(ev.sensor) != now:
                self.availability[ev.sensor] = now
                self.broadcast([availability_note(ev.sensor, now, "Changed", ev.ts)])
        elif isinstance(ev, RelayChanged):
            if self.relays.get(ev.relay) != ev.on:
                self.relays[ev.relay] = ev.on
                self.broadcast([relay_note(ev.relay, ev.on, "Changed", ev.ts)])

    def broadcast(self, notes: list[Notification]) -> None:
        if not notes:
            return
        self.published += len(notes)
        for sub in list(self.subs.values()):
            for n in notes:
                sub.push(n)

    def snapshot(self) -> list[Notification]:
        """Every current state as ``Initialized`` messages."""
        now = time.time()
        out: list[Notification] = []
        sensors = [getattr(s, "id", "") for s in self.core.sensors()]
        for sid in dict.fromkeys([s for s in sensors if s] + sorted(self.alarms)):
            out.append(input_note(sid, self.input_state(sid), "Initialized", now))
        if self.motion_sensors:
            out.extend(motion_notes(self.motion_state(), "Initialized", now))
        for sid, state in sorted(self.availability.items()):
            out.append(availability_note(sid, state, "Initialized", now))
        relays = self.core.relays
        for name in dict.fromkeys(self.core.relay_names() + sorted(self.relays)):
            on = None
            if relays is not None:
                try:
                    on = relays.state(name)
                except Exception:  # noqa: BLE001
                    on = None
            if on is None:
                on = self.relays.get(name, False)
            out.append(relay_note(name, bool(on), "Initialized", now))
        return out

    # ---- subscriptions ----------------------------------------------------------------
    @staticmethod
    def wall(mono: float) -> float:
        """A monotonic deadline as wall-clock time (for TerminationTime)."""
        return time.time() + (mono - time.monotonic())

    def expire(self, now: float | None = None) -> int:
        """End the subscriptions past their deadline (``now``: monotonic)."""
        now = time.monotonic() if now is None else now
        gone = [s for s in self.subs.values() if s.expires <= now]
        for s in gone:
            self._close(s)
        return len(gone)

    def _close(self, sub: Any) -> None:
        sub.closed = True
        self.subs.pop(sub.id, None)
        sub.wake.set()

    def close_all(self) -> None:
        for s in list(self.subs.values()):
            self._close(s)

    def _termination(self, text: str | None, now: float) -> float:
        """The termination time asked for (relative, or absolute against the wall clock ``now``)
        as a monotonic deadline."""
        return time.monotonic() + (self._termination_wall(text, now) - now)

    def _termination_wall(self, text: str | None, now: float) -> float:
        if not text:
            return now + self.cfg.subscription_default_s
        text = text.strip()
        try:
            if text.startswith(("P", "-P")):
                secs = nsmod.parse_duration(text)
                at = now + secs
            else:
                at = nsmod.parse_datetime(text).timestamp()
        except (ValueError, OverflowError):
            raise SoapFault("Sender", ("wsnt:UnacceptableInitialTerminationTimeFault",),
                            f"termination time {text[:40]!r} is neither an xs:duration nor an xs:dateTime") from None
        if at <= now:
            raise SoapFault("Sender", ("wsnt:UnacceptableInitialTerminationTimeFault",),
                            "termination time is in the past")
        return min(at, now + self.cfg.subscription_max_s)

    def subscription(self, req: SoapRequest) -> Any:
        sid = req.http.query.get("sub", "")
        sub = self.subs.get(sid)
        if sub is None or sub.closed or sub.expires <= time.monotonic():
            if sub is not None:
                self._close(sub)
            raise _resource_unknown("no such subscription (it expired or was unsubscribed); create a new one")
        return sub

    def address(self, req: SoapRequest, sub: Any) -> str:
        path = getattr(sub, "path", PULLPOINT_PATH)
        return f"http://{req.host}{path}?sub={sub.id}"

    def room_for_one_more(self, client: str) -> bool:
        """Room for a subscription from ``client``: the expired ones go first; a client holding
        ``max_subscriptions_per_client`` already (a reconnect loop) loses its oldest."""
        self.expire()
        own = [s for s in self.subs.values() if s.client == client]  # oldest first
        if len(own) >= self.cfg.max_subscriptions_per_client:
            log.warning("%s subscription %s of %s ended: that client holds %d already (max_subscriptions_per_client)",
                        own[0].kind, own[0].id, client, len(own))
            self._close(own[0])
        return len(self.subs) < self.cfg.max_subscriptions

    def capabilities_element(self):
        return E("tev:Capabilities", WSSubscriptionPolicySupport=False, WSPullPointSupport=True,
                 WSPausableSubscriptionManagerInterfaceSupport=False,
                 MaxNotificationProducers=self.cfg.max_subscriptions,
                 MaxPullPoints=self.cfg.max_subscriptions, PersistentNotificationStorage=False)


class EventsService:
    def __init__(self, core: Core, hub: EventHub):
        self.core = core
        self.hub = hub

    def register(self, d: Dispatcher) -> None:
        for name in ("GetServiceCapabilities", "GetEventProperties", "CreatePullPointSubscription", "PullMessages",
                     "SetSynchronizationPoint", "Seek"):
            if hasattr(self, name):
                d.register(TEV, name, getattr(self, name))
        d.register(WSNT, "Renew", self.Renew)
        d.register(WSNT, "Unsubscribe", self.Unsubscribe)

    async def GetServiceCapabilities(self, req: SoapRequest):
        return E("tev:GetServiceCapabilitiesResponse", self.hub.capabilities_element())

    async def GetEventProperties(self, req: SoapRequest):
        return E(
            "tev:GetEventPropertiesResponse",
            E("tev:TopicNamespaceLocation", "http://www.onvif.org/onvif/ver10/topics/topicns.xml"),
            E("wsnt:FixedTopicSet", True),
            topic_set(self.hub.mirror != "off"),
            E("wsnt:TopicExpressionDialect", nsmod.TOPIC_DIALECT),
            E("wsnt:TopicExpressionDialect", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"),
            E("tev:MessageContentFilterDialect", "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"),
            E("tev:MessageContentSchemaLocation", "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"),
        )

    async def CreatePullPointSubscription(self, req: SoapRequest):
        hub = self.hub
        now = time.time()
        client = req.http.remote or "?"
        if not hub.room_for_one_more(client):
            raise SoapFault("Receiver", ("ter:Action", "ter:MaxPullPointsReached"),
                            f"all {hub.cfg.max_subscriptions} pull points are in use; unsubscribe one or wait for one to expire")
        expires = hub._termination(req.param("InitialTerminationTime"), now)
        filters = topic_filters(req.param_el("Filter"))
        sub = PullPoint(secrets.token_urlsafe(12), expires, deque(maxlen=hub.cfg.queue_per_subscription), filters,
                        client=client)
        hub.subs[sub.id] = sub
        for n in hub.snapshot():
            sub.push(n)
        log.info("PullPoint %s created by %s until %s", sub.id, client, nsmod.xs_datetime(hub.wall(expires)))
        return E("tev:CreatePullPointSubscriptionResponse",
                 E("tev:SubscriptionReference", E("wsa:Address", hub.address(req, sub))),
                 E("wsnt:CurrentTime", nsmod.xs_datetime(now)),
                 E("wsnt:TerminationTime", nsmod.xs_datetime(hub.wall(expires))))

    async def PullMessages(self, req: SoapRequest):
        hub = self.hub
        sub = hub.subscription(req)
        if sub.kind != "pull":
            raise _resource_unknown("this is a push subscription: its messages are sent to the consumer, not pulled")
        try:
            timeout = nsmod.parse_duration(req.param("Timeout") or "PT0S")
        except ValueError:
            raise sender("PullMessages Timeout is not an xs:duration", "ter:InvalidArgVal") from None
        try:
            limit = int(req.param("MessageLimit") or "100")
        except ValueError:
            raise sender("PullMessages MessageLimit is not an integer", "ter:InvalidArgVal") from None
        limit = max(1, min(limit, 1000))
        timeout = max(0.0, min(timeout, hub.cfg.pull_timeout_max_s, sub.expires - time.monotonic()))
        if not sub.queue and timeout > 0:
            sub.wake.clear()
            try:
                await asyncio.wait_for(sub.wake.wait(), timeout)
            except TimeoutError:
                pass
        if sub.closed:
            raise _resource_unknown("the subscription ended while waiting")
        notes = []
        while sub.queue and len(notes) < limit:
            notes.append(sub.queue.popleft())
        if not sub.queue:
            sub.wake.clear()
        address = hub.address(req, sub)
        return E("tev:PullMessagesResponse",
                 E("tev:CurrentTime", nsmod.xs_datetime()),
                 E("tev:TerminationTime", nsmod.xs_datetime(hub.wall(sub.expires))),
                 [message_element(n, address) for n in notes])

    async def SetSynchronizationPoint(self, req: SoapRequest):
        sub = self.hub.subscription(req)
        for n in self.hub.snapshot():
            sub.push(n)
        return E("tev:SetSynchronizationPointResponse")

    async def Renew(self, req: SoapRequest):
        sub = self.hub.subscription(req)
        now = time.time()
        sub.expires = self.hub._termination(req.param("TerminationTime"), now)
        return E("wsnt:RenewResponse", E("wsnt:TerminationTime", nsmod.xs_datetime(self.hub.wall(sub.expires))),
                 E("wsnt:CurrentTime", nsmod.xs_datetime(now)))

    async def Unsubscribe(self, req: SoapRequest):
        sub = self.hub.subscription(req)
        self.hub._close(sub)
        log.info("%s subscription %s unsubscribed", sub.kind, sub.id)
        return E("wsnt:UnsubscribeResponse")


def topic_filters(flt: Any) -> tuple[str, ...]:
    """The topics a subscription's Filter asks for (empty: every topic)."""
    filters: list[str] = []
    if flt is not None:
        for c in flt:
            if isinstance(c.tag, str) and nsmod.local(c) == "TopicExpression" and c.text:
                for part in c.text.split("|"):
                    part = part.strip().rstrip("/").replace("//.", "")
                    if part:
                        filters.append(part)
    return tuple(filters)
