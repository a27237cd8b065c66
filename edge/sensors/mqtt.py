"""MQTT in (aiomqtt): connect to the local Mosquitto or any broker (TLS, credentials),
subscribe the sensors' topics at QoS 1 in a persistent session (stable client id,
clean_session False) so what was published while we were away arrives after reconnect,
and reconnect forever with exponential backoff and jitter.

Messages are decoded on the loop as they arrive (no per-message task, no disk, no await):
the hot path from a door contact to the relay is in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import aiomqtt

from ..backoff import Backoff
from ..mqtt.client import dispatching_queue, make_client, raise_if_cancelling, tls_context
from ..mqtt.config import MqttConfig

log = logging.getLogger("edge.mqtt")


class MqttIngest:
    """Subscribes ``filters`` and hands every message to ``on_message(topic, payload)``."""

    def __init__(self, cfg: MqttConfig, identifier: str, filters: list[str], on_message: Callable[[str, bytes], object]):
        self.cfg = cfg
        self.identifier = identifier
        self.filters = filters
        self.on_message = on_message
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self.connected = False
        self.connects = 0
        self.last_error = ""
        self.received = 0
        self._ssl = tls_context(cfg)  # reads cert files once, at build time
        self._password = cfg.read_password()
        self.connected_event = asyncio.Event()

    def _deliver(self, msg: aiomqtt.Message) -> None:
        self.received += 1
        payload = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else str(msg.payload or "").encode()
        try:
            self.on_message(msg.topic.value, bytes(payload))
        except Exception:  # noqa: BLE001 - never into paho's read loop
            log.exception("mqtt in: handling a message on %s failed", msg.topic.value[:120])

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                client = make_client(self.cfg, self.identifier, clean_session=False, ssl_ctx=self._ssl, password=self._password,
                                     queue_type=dispatching_queue(self._deliver))
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

    def __init__(self, cfg: MqttConfig, base_id: str, router: Any):
        self.lanes: list[MqttIngest] = []
        for lane, suffix in (("fast", "in"), ("bulk", "in-bulk")):
            filters = router.filters_for(lane)
            if filters:
                handler = (lambda topic, payload, _lane=lane: router.handle(topic, payload, lane=_lane))
                self.lanes.append(MqttIngest(cfg, f"{base_id}-{suffix}", filters, handler))
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
