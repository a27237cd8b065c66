"""WS-BaseNotification push subscriptions: ``wsnt:Subscribe`` with a ConsumerReference, then
``wsnt:Notify`` POSTed to the consumer's address for every event (Home Assistant tries this
first, with its webhook; gSOAP-based recorders subscribe this way too).

A push subscription is a subscription like a PullPoint (the same hub, limits, Renew,
Unsubscribe, SetSynchronizationPoint at ``/onvif/subscription?sub=ID``): it gets the
``Initialized`` state at once, then every change. Its messages go out from one sender task
per subscription, so the bus and the relay path never wait for a consumer: a slow or dead
consumer fills only its own bounded queue (oldest dropped), each POST is bounded by
``[onvif] push_timeout_s``, failures are retried with a growing pause (1 s up to 30 s) until
the subscription expires, and nothing is sent after its termination time.

Only an authenticated client can subscribe, and only to an http(s) address.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from lxml import etree

from . import ns as nsmod
from .core import SUBSCRIPTION_PATH, Core
from .events import EventHub, PullPoint, topic_filters
from .ns import E
from .soap import Dispatcher, SoapFault, SoapRequest, sender
from .topics import Notification, message_element

log = logging.getLogger("edge.onvif.push")

WSNT = nsmod.NS["wsnt"]
WSA = nsmod.NS["wsa"]
NOTIFY_ACTION = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"
MAX_PER_NOTIFY = 100
MAX_ADDRESS = 1024
MAX_REFERENCE_PARAMS = 4096  # bytes of ReferenceParameters echoed as headers
RETRY_MAX_S = 30.0


@dataclass
class PushSubscription(PullPoint):
    consumer: str = ""
    manager: str = ""  # our address for it (SubscriptionReference in every message)
    reference_params: list[Any] = field(default_factory=list)
    kind: str = "push"
    path: str = SUBSCRIPTION_PATH
    sent: int = 0
    failures: int = 0


def _consumer_address(req: SoapRequest) -> tuple[str, list[Any]]:
    ref = req.param_el("ConsumerReference")
    address = nsmod.text_anyns(ref, "Address") if ref is not None else None
    if not address:
        raise SoapFault("Sender", ("ter:InvalidArgVal",), "Subscribe needs a ConsumerReference with an Address")
    u = urlsplit(address)
    if len(address) > MAX_ADDRESS or u.scheme not in ("http", "https") or not u.hostname:
        raise SoapFault("Sender", ("ter:InvalidArgVal",),
                        f"the consumer address must be an http(s) URL, got {address[:80]!r}")
    params: list[Any] = []
    rp = nsmod.find_anyns(ref, "ReferenceParameters")
    if rp is not None and len(etree.tostring(rp)) <= MAX_REFERENCE_PARAMS:
        params = [etree.fromstring(etree.tostring(c)) for c in rp if isinstance(c.tag, str)]
    return address, params


def notify_body(sub: PushSubscription, notes: list[Notification]) -> bytes:
    s12 = nsmod.S12
    root = etree.Element(f"{{{s12}}}Envelope", nsmap={"SOAP-ENV": s12})
    header = etree.SubElement(root, f"{{{s12}}}Header")
    header.append(E("wsa:Action", NOTIFY_ACTION))
    header.append(E("wsa:To", sub.consumer))
    for p in sub.reference_params:  # WS-Addressing: reference parameters come back as header blocks
        header.append(etree.fromstring(etree.tostring(p)))
    body = etree.SubElement(root, f"{{{s12}}}Body")
    body.append(E("wsnt:Notify", [message_element(n, sub.manager) for n in notes]))
    return nsmod.to_bytes(root)


class PushService:
    """``wsnt:Subscribe`` on the events service, and the senders."""

    def __init__(self, core: Core, hub: EventHub):
        self.core = core
        self.hub = hub
        self.timeout_s = float(getattr(core.cfg, "push_timeout_s", 5.0))
        self._session: aiohttp.ClientSession | None = None
        self.spawn: Any = None  # the component's spawn(); asyncio.create_task when not set

    def register(self, d: Dispatcher) -> None:
        d.register(WSNT, "Subscribe", self.Subscribe)

    async def Subscribe(self, req: SoapRequest):
        hub = self.hub
        now = time.time()
        address, params = _consumer_address(req)
        expires = hub._termination(req.param("InitialTerminationTime"), now)
        client = req.http.remote or "?"
        if not hub.room_for_one_more(client):
            raise SoapFault("Receiver", ("wsnt:SubscribeCreationFailedFault",),
                            f"all {hub.cfg.max_subscriptions} event subscriptions are in use; unsubscribe one "
                            "or wait for one to expire")
        sub = PushSubscription(secrets.token_urlsafe(12), expires, deque(maxlen=hub.cfg.queue_per_subscription),
                               topic_filters(req.param_el("Filter")), client=client, consumer=address,
                               reference_params=params)
        sub.manager = hub.address(req, sub)
        hub.subs[sub.id] = sub
        for n in hub.snapshot():
            sub.push(n)
        run = self.spawn or asyncio.get_running_loop().create_task
        run(self._send_loop(sub), name=f"onvif-push-{sub.id[:6]}")
        log.info("push subscription %s by %s to %s until %s", sub.id, client, address,
                 nsmod.xs_datetime(hub.wall(expires)))
        return E("wsnt:SubscribeResponse",
                 E("wsnt:SubscriptionReference", E("wsa:Address", sub.manager)),
                 E("wsnt:CurrentTime", nsmod.xs_datetime(now)),
                 E("wsnt:TerminationTime", nsmod.xs_datetime(hub.wall(expires))))

    # ---- sending ----------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                                  headers={"User-Agent": f"edge/{self.core.version} ONVIF"})
        return self._session

    async def _send_loop(self, sub: PushSubscription) -> None:
        pause = 0.0
        while not sub.closed:
            if time.monotonic() >= sub.expires:
                self.hub._close(sub)
                break
            if not sub.queue:
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), max(0.05, sub.expires - time.monotonic()))
                except TimeoutError:
                    pass
                continue
            batch = [sub.queue.popleft() for _ in range(min(len(sub.queue), MAX_PER_NOTIFY))]
            if await self._post(sub, batch):
                sub.sent += len(batch)
                sub.failures = 0
                pause = 0.0
                continue
            # keep what was not delivered (the queue stays bounded: the oldest go first)
            for n in reversed(batch):
                if len(sub.queue) < (sub.queue.maxlen or 0):
                    sub.queue.appendleft(n)
                else:
                    sub.dropped += 1
            sub.failures += 1
            pause = min(RETRY_MAX_S, max(1.0, pause * 2))
            sub.wake.clear()
            try:  # a close (unsubscribe, expiry, stop) ends the pause
                await asyncio.wait_for(self._closed(sub), pause)
            except TimeoutError:
                pass

    @staticmethod
    async def _closed(sub: PushSubscription) -> None:
        while not sub.closed:
            sub.wake.clear()
            await sub.wake.wait()

    async def _post(self, sub: PushSubscription, notes: list[Notification]) -> bool:
        body = notify_body(sub, notes)
        try:
            async with self._client().post(sub.consumer, data=body, allow_redirects=False,
                                           headers={"Content-Type": "application/soap+xml; charset=utf-8"}) as resp:
                await resp.content.read(4096)
                if 200 <= resp.status < 300:
                    return True
                problem = f"HTTP {resp.status}"
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        (log.warning if sub.failures < 3 else log.debug)(
            "push subscription %s: Notify to %s failed (%s); retrying", sub.id, sub.consumer, problem)
        return False

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
