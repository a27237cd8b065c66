"""Events service (http://www.onvif.org/ver10/events/wsdl): real-time PullPoint.

Bus events become ONVIF notifications:
- ``Alarm`` for a sensor -> ``tns1:Device/Trigger/DigitalInput`` (Source InputToken = sensor
  id, Data LogicalState = whether any alarm of that sensor is active); motion sensors also
  ``tns1:VideoSource/MotionAlarm`` (Source VideoSourceToken, Data State).
- ``RelayChanged`` -> ``tns1:Device/Trigger/Relay`` (RelayToken, LogicalState active/inactive).
- ``SensorAvailability`` -> ``tns1:Device/tnsedge:Sensor/Availability`` (InputToken = sensor id,
  Data Online and BatteryLow): ONVIF has no topic for a silent sensor, so it is a vendor topic
  under Device (as camera makers do for supervised inputs); clients that do not know it skip it.

A new subscription and SetSynchronizationPoint queue ``Initialized`` messages with every
current state; later transitions are ``Changed``. Subscriptions expire at their termination
time (kept on the monotonic clock: an NTP step at boot neither ends nor prolongs them), are
bounded in number, per client address (a client in a reconnect loop replaces its own oldest
subscription instead of filling every slot) and in queued messages (oldest dropped first,
counted), and PullMessages long-polls up to a cap.
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
from .media import SOURCE_TOKEN
from .ns import E
from .soap import Dispatcher, SoapFault, SoapRequest, sender

log = logging.getLogger("edge.onvif.events")

TEV = nsmod.NS["tev"]
WSNT = nsmod.NS["wsnt"]
T_INPUT = "tns1:Device/Trigger/DigitalInput"
T_RELAY = "tns1:Device/Trigger/Relay"
T_MOTION = "tns1:VideoSource/MotionAlarm"
T_AVAILABILITY = "tns1:Device/tnsedge:Sensor/Availability"
MOTION_KINDS = {"motion", "occupancy"}


@dataclass(frozen=True)
class Notification:
    topic: str
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    operation: str  # Initialized | Changed
    ts: float


@dataclass
class PullPoint:
    id: str
    expires: float  # time.monotonic()
    queue: deque[Notification]
    filters: tuple[str, ...] = ()
    client: str = ""  # the address that created it
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

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
        self.subs: dict[str, PullPoint] = {}
        self.alarms: dict[str, set[str]] = {}  # sensor -> active alarm ids
        self.motion_sensors: set[str] = {getattr(x, "id", "") for x in core.sensors()
                                         if str(getattr(x, "kind", "")) in MOTION_KINDS}
        self.motion_on = False
        self.relays: dict[str, bool] = {}
        self.availability: dict[str, tuple[bool, bool]] = {}  # sensor -> (online, battery low)
        self.published = 0

    # ---- state from the bus -------------------------------------------------------------
    def input_state(self, sensor: str) -> bool:
        return bool(self.alarms.get(sensor))

    def motion_state(self) -> bool:
        return any(self.input_state(s) for s in self.motion_sensors)

    def _is_motion(self, sensor: str, kind: str) -> bool:
        return kind.lower() in MOTION_KINDS or self.core.sensor_kind(sensor) in MOTION_KINDS

    def handle(self, ev: Any) -> None:
        if isinstance(ev, Alarm):
            before = self.input_state(ev.sensor)
            active = self.alarms.setdefault(ev.sensor, set())
            # an acknowledged alarm stops alerting the NVR (the installer has seen it)
            (active.add if ev.active and not ev.acknowledged else active.discard)(ev.alarm)
            after = self.input_state(ev.sensor)
            out = []
            if after != before:
                out.append(self._input(ev.sensor, after, "Changed", ev.ts))
            if self._is_motion(ev.sensor, ev.kind):
                # one video source: its MotionAlarm is on while any motion sensor is
                self.motion_sensors.add(ev.sensor)
                state = self.motion_state()
                if state != self.motion_on:
                    self.motion_on = state
                    out.append(self._motion(state, "Changed", ev.ts))
            self.broadcast(out)
        elif isinstance(ev, SensorAvailability):
            now = (ev.online, ev.battery_low)
            if self.availability.get(ev.sensor) != now:
                self.availability[ev.sensor] = now
                self.broadcast([self._availability(ev.sensor, now, "Changed", ev.ts)])
        elif isinstance(ev, RelayChanged):
            if self.relays.get(ev.relay) != ev.on:
                self.relays[ev.relay] = ev.on
                self.broadcast([self._relay(ev.relay, ev.on, "Changed", ev.ts)])

    def broadcast(self, notes: list[Notification]) -> None:
        if not notes:
            return
        self.published += len(notes)
        for sub in list(self.subs.values()):
            for n in notes:
                sub.push(n)

    @staticmethod
    def _input(sensor: str, state: bool, op: str, ts: float) -> Notification:
        return Notification(T_INPUT, (("InputToken", sensor),), (("LogicalState", "true" if state else "false"),), op, ts)

    @staticmethod
    def _motion(state: bool, op: str, ts: float) -> Notification:
        return Notification(T_MOTION, (("VideoSourceToken", SOURCE_TOKEN),), (("State", "true" if state else "false"),), op, ts)

    @staticmethod
    def _availability(sensor: str, state: tuple[bool, bool], op: str, ts: float) -> Notification:
        return Notification(T_AVAILABILITY, (("InputToken", sensor),),
                            (("Online", "true" if state[0] else "false"), ("BatteryLow", "true" if state[1] else "false")),
                            op, ts)

    @staticmethod
    def _relay(name: str, on: bool, op: str, ts: float) -> Notification:
        return Notification(T_RELAY, (("RelayToken", name),), (("LogicalState", "active" if on else "inactive"),), op, ts)

    def snapshot(self) -> list[Notification]:
        """Every current state as ``Initialized`` messages."""
        now = time.time()
        out: list[Notification] = []
        sensors = [getattr(s, "id", "") for s in self.core.sensors()]
        for sid in dict.fromkeys([s for s in sensors if s] + sorted(self.alarms)):
            out.append(self._input(sid, self.input_state(sid), "Initialized", now))
        if self.motion_sensors:
            out.append(self._motion(self.motion_state(), "Initialized", now))
        for sid, state in sorted(self.availability.items()):
            out.append(self._availability(sid, state, "Initialized", now))
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
            out.append(self._relay(name, bool(on), "Initialized", now))
        return out

    # ---- subscriptions ----------------------------------------------------------------
    @staticmethod
    def wall(mono: float) -> float:
        """A monotonic deadline as wall-clock time (for TerminationTime)."""
        return time.time() + (mono - time.monotonic())

    def expire(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        gone = [s for s in self.subs.values() if s.expires <= now]
        for s in gone:
            self._close(s)
        return len(gone)

    def _close(self, sub: PullPoint) -> None:
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

    def subscription(self, req: SoapRequest) -> PullPoint:
        sid = req.http.query.get("sub", "")
        sub = self.subs.get(sid)
        if sub is None or sub.closed or sub.expires <= time.monotonic():
            if sub is not None:
                self._close(sub)
            raise _resource_unknown("no such subscription (it expired or was unsubscribed); create a new one")
        return sub

    def address(self, req: SoapRequest, sub: PullPoint) -> str:
        return f"http://{req.host}{PULLPOINT_PATH}?sub={sub.id}"

    def capabilities_element(self):
        return E("tev:Capabilities", WSSubscriptionPolicySupport=False, WSPullPointSupport=True,
                 WSPausableSubscriptionManagerInterfaceSupport=False, MaxNotificationProducers=0,
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
        def desc(source: tuple[str, str], data: tuple[str, str]):
            return E("tt:MessageDescription",
                     E("tt:Source", E("tt:SimpleItemDescription", Name=source[0], Type=source[1])),
                     E("tt:Data", E("tt:SimpleItemDescription", Name=data[0], Type=data[1])),
                     IsProperty=True)

        topic = {f"{{{nsmod.NS['wstop']}}}topic": "true"}
        digital = E("tns1:DigitalInput", desc(("InputToken", "tt:ReferenceToken"), ("LogicalState", "xs:boolean")))
        relay = E("tns1:Relay", desc(("RelayToken", "tt:ReferenceToken"), ("LogicalState", "tt:RelayLogicalState")))
        motion = E("tns1:MotionAlarm", desc(("VideoSourceToken", "tt:ReferenceToken"), ("State", "xs:boolean")))
        avail = E("tnsedge:Availability", E(
            "tt:MessageDescription",
            E("tt:Source", E("tt:SimpleItemDescription", Name="InputToken", Type="tt:ReferenceToken")),
            E("tt:Data", E("tt:SimpleItemDescription", Name="Online", Type="xs:boolean"),
              E("tt:SimpleItemDescription", Name="BatteryLow", Type="xs:boolean")),
            IsProperty=True))
        for el in (digital, relay, motion, avail):
            el.attrib.update(topic)
        return E(
            "tev:GetEventPropertiesResponse",
            E("tev:TopicNamespaceLocation", "http://www.onvif.org/onvif/ver10/topics/topicns.xml"),
            E("wsnt:FixedTopicSet", True),
            E("wstop:TopicSet", E("tns1:Device", E("tns1:Trigger", digital, relay), E("tnsedge:Sensor", avail)),
              E("tns1:VideoSource", motion)),
            E("wsnt:TopicExpressionDialect", nsmod.TOPIC_DIALECT),
            E("wsnt:TopicExpressionDialect", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"),
            E("tev:MessageContentFilterDialect", "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"),
            E("tev:MessageContentSchemaLocation", "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"),
        )

    async def CreatePullPointSubscription(self, req: SoapRequest):
        hub = self.hub
        now = time.time()
        hub.expire()
        client = req.http.remote or "?"
        own = [s for s in hub.subs.values() if s.client == client]  # oldest first
        if len(own) >= hub.cfg.max_subscriptions_per_client:  # a reconnect loop: it replaces its own
            log.warning("PullPoint %s of %s ended: that client holds %d already (max_subscriptions_per_client)",
                        own[0].id, client, len(own))
            hub._close(own[0])
        if len(hub.subs) >= hub.cfg.max_subscriptions:
            raise SoapFault("Receiver", ("ter:Action", "ter:MaxPullPointsReached"),
                            f"all {hub.cfg.max_subscriptions} pull points are in use; unsubscribe one or wait for one to expire")
        expires = hub._termination(req.param("InitialTerminationTime"), now)
        filters: list[str] = []
        flt = req.param_el("Filter")
        if flt is not None:
            for c in flt:
                if isinstance(c.tag, str) and nsmod.local(c) == "TopicExpression" and c.text:
                    for part in c.text.split("|"):
                        part = part.strip().rstrip("/").replace("//.", "")
                        if part:
                            filters.append(part)
        sub = PullPoint(secrets.token_urlsafe(12), expires, deque(maxlen=hub.cfg.queue_per_subscription), tuple(filters),
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
                 [self._message(n, address) for n in notes])

    @staticmethod
    def _message(n: Notification, address: str):
        return E(
            "wsnt:NotificationMessage",
            E("wsnt:SubscriptionReference", E("wsa:Address", address)),
            E("wsnt:Topic", n.topic, Dialect=nsmod.TOPIC_DIALECT),
            E("wsnt:Message", E(
                "tt:Message",
                E("tt:Source", [E("tt:SimpleItem", Name=k, Value=v) for k, v in n.source]),
                E("tt:Data", [E("tt:SimpleItem", Name=k, Value=v) for k, v in n.data]),
                UtcTime=nsmod.xs_datetime(n.ts, millis=True), PropertyOperation=n.operation,
            )),
        )

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
        log.info("PullPoint %s unsubscribed", sub.id)
        return E("wsnt:UnsubscribeResponse")
