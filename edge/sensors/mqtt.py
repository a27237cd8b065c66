"""MQTT in (aiomqtt): connect to the local Mosquitto or any broker (TLS, credentials),
subscribe the sensors' topics at QoS 1 in a persistent session (stable client id,
clean_session False) so what was published while we were away arrives after reconnect,
and reconnect forever with exponential backoff and jitter.

Messages are decoded on the loop as they arrive (no per-message task, no disk, no await):
the hot path from a door contact to the relay is in memory. Each message is acknowledged to
the broker only once what it produced is committed (``acks.py``): a crash before the commit
leaves the message with the broker, which delivers it again. QoS 2 publishers' messages
reach us at QoS 1 (the subscription's QoS): acknowledged after commit like the rest, their
duplicates recognised (``acks.SeenKeys``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import aiomqtt

from ..backoff import Backoff
from ..mqtt.client import make_client, raise_if_cancelling, take_messages, tls_context
from ..mqtt.config import MqttConfig
from ..mqtt.reader import read_in_batches
from .acks import AckQueue, Deliveries

log = logging.getLogger("edge.mqtt")

# MQTT packets handled per turn of the loop on one connection (edge.mqtt.reader): ~1.5 ms of
# readings at most before the other lane's socket is read
BATCH_PACKETS = 32


class MqttIngest:
    """Subscribes ``filters`` and hands every message to ``on_message(topic, payload)``;
    acknowledges it once the store committed what that produced (``store()``: the store,
    or None without one)."""

    def __init__(self, cfg: MqttConfig, identifier: str, filters: list[str], on_message: Callable[[str, bytes], object],
                 store: Callable[[], Any] = lambda: None, *, quickack: bool = False):
        self.cfg = cfg
        self.quickack = quickack
        self.identifier = identifier
        self.filters = filters
        self.on_message = on_message
        self._store = store
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self.connected = False
        self.connects = 0
        self.last_error = ""
        self.received = 0
        self.acks = AckQueue(store, cfg.inflight_window)
        self.deliveries = Deliveries(identifier, store, cfg.inflight_window)
        self._ssl = tls_context(cfg)  # reads cert files once, at build time
        self._password = cfg.read_password()
        self.connected_event = asyncio.Event()
        st = store()
        if st is not None:
            st.add_listener(self.acks.release)

    @property
    def duplicates(self) -> int:
        return self.deliveries.duplicates

    def _deliver(self, msg: Any) -> None:
        self.received += 1
        self.deliveries.deliver(msg, self.acks, self._handle)

    def _handle(self, raw_topic: bytes, payload: bytes) -> None:
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("mqtt in: a topic that is not UTF-8 (%r) ignored", raw_topic[:80])
            return
        try:
            self.on_message(topic, payload)
        except Exception:  # noqa: BLE001 - never into paho's read loop
            log.exception("mqtt in: handling a message on %s failed", topic[:120])

    async def run(self) -> None:
        await self.deliveries.load_seen()
        while True:
            began = time.monotonic()
            try:
                client = make_client(self.cfg, self.identifier, clean_session=False, ssl_ctx=self._ssl, password=self._password)
                read_in_batches(client, BATCH_PACKETS)
                # acks owed from the first message: a persistent session's backlog arrives with
                # the CONNACK, before the connect returns
                self.acks.connected(take_messages(client, self._deliver, quickack=self.quickack))
                async with client:
                    raise_if_cancelling()
                    if self.filters:
                        await client.subscribe([(f, 1) for f in self.filters])
                        raise_if_cancelling()
                    self.connected = True
                    self.connects += 1
                    self.connected_event.set()
                    self.backoff.reset()
                    log.info("mqtt in: connected to %s:%d as %s, %d topic filters", self.cfg.host, self.cfg.port,
                             self.identifier, len(self.filters))
                    # messages go to _deliver as they arrive; this only waits for the disconnect
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc) or type(exc).__name__
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self.connected = False
                self.connected_event.clear()
                self.acks.disconnected()
                self.deliveries.said_duplicates()
            if time.monotonic() - began > 60:
                self.backoff.reset()
            delay = self.backoff.next()
            log.warning("mqtt in: %s:%d unavailable (%s); reconnecting in %.1f s", self.cfg.host, self.cfg.port,
                        self.last_error, delay)
            await asyncio.sleep(delay)


class IngestLanes:
    """Two MQTT connections: ``fast`` for the topics of state sensors (contact, motion, leak,
    smoke...) and ``bulk`` for telemetry (temperature, humidity, generic values). The broker
    queues per connection, so a door opening never waits behind a backlog of thermometer
    readings; on the loop both sockets are read in turn. Each lane decodes only its own
    sensors, so a topic on both lanes is not read twice."""

    def __init__(self, cfg: MqttConfig, base_id: str, router: Any, store: Callable[[], Any] = lambda: None):
        self.lanes: list[MqttIngest] = []
        for lane, suffix in (("fast", "in"), ("bulk", "in-bulk")):
            filters = router.filters_for(lane)
            if filters:
                handler = (lambda topic, payload, _lane=lane: router.handle(topic, payload, lane=_lane))
                self.lanes.append(MqttIngest(cfg, f"{base_id}-{suffix}", filters, handler, store, quickack=lane == "fast"))
        self.connected_event = asyncio.Event()

    @property
    def connected(self) -> bool:
        return all(lane.connected for lane in self.lanes)

    @property
    def connects(self) -> int:
        return sum(lane.connects for lane in self.lanes)

    @property
    def received(self) -> int:
        return sum(lane.received for lane in self.lanes)

    @property
    def acked(self) -> int:
        return sum(lane.acks.acked for lane in self.lanes)

    @property
    def duplicates(self) -> int:
        return sum(lane.duplicates for lane in self.lanes)

    @property
    def last_error(self) -> str:
        return "; ".join(f"{lane.identifier}: {lane.last_error or 'connecting'}" for lane in self.lanes if not lane.connected)

    async def _all_connected(self) -> None:
        for lane in self.lanes:
            await lane.connected_event.wait()
        self.connected_event.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for lane in self.lanes:
                tg.create_task(lane.run(), name=f"mqtt:{lane.identifier}")
            tg.create_task(self._all_connected())
