"""The uplink: sensor states and events out through the SQLite outbox, Home Assistant
discovery, relay commands in.

Every outgoing state/event message is first put in the store's outbox (committed to SQLite),
then published at QoS 1 in outbox order; it is removed only once the broker acknowledged it.
A broker outage or a restart loses nothing: the outbox is published from its oldest message
when the connection is back. Availability is ``online`` (retained) while connected and
``offline`` by the last will. Commands are not queued across outages (clean session): a
pulse asked for during an outage must not fire minutes later; a retained command (delivered
again on every subscribe) never drives a relay: it is logged and recorded, not executed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiomqtt

from ..bus import Alarm, RelayChanged, SensorAvailability, SensorChanged
from ..component import Component, Health
from ..backoff import Backoff
from ..context import Context
from ..interfaces import RELAYS, record
from ..mqtt.client import make_client, raise_if_cancelling, tls_context
from .commands import BadCommand, Command, parse_ha_command, parse_json_command
from .discovery import discovery_messages
from .topics import Topics

log = logging.getLogger("edge.uplink")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


class Uplink(Component):
    name = "uplink"

    def __init__(self, ctx: Any):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.config.uplink
        self.mqtt = ctx.config.mqtt
        creds = ctx.credentials.get()
        self.device = self.cfg.device_id or f"edge-{creds.serial.lower()}"
        self.topics = Topics(self.cfg.prefix, self.device)
        base = self.mqtt.client_id or f"edge-{creds.serial.lower()}"
        self.identifier = f"{base}-out"
        # subscribed now, before any producer starts: every change reaches the outbox
        self.sub: Any = ctx.bus.subscribe(SensorChanged, Alarm, RelayChanged, SensorAvailability, maxsize=200_000,
                                         name="uplink")
        self.wake: asyncio.Event | None = None
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self.connects = 0
        self.last_error = ""
        self.sent = 0
        self.queued = 0
        self.commands = 0
        self.retained_ignored = 0
        self._held: dict[str, SensorChanged] = {}  # telemetry states waiting for their interval
        self._last_state: dict[str, float] = {}
        self._ssl = tls_context(self.mqtt)
        self._password = self.mqtt.read_password()
        r = ctx.metrics.registry
        from prometheus_client import Counter, Gauge

        self.m_sent = Counter("edge_uplink_sent", "Outbox messages acknowledged by the broker", registry=r)
        self.m_connected = Gauge("edge_uplink_connected", "1 while the uplink is connected to the broker", registry=r)

    # ---- bus -> outbox ------------------------------------------------------------------
    def messages_for(self, ev: Any) -> list[tuple[str, bytes, bool]]:
        t = self.topics
        if isinstance(ev, SensorChanged):
            # every change is one retained state message, in outbox order (a subscriber with a
            # session gets each one; a late one gets the latest)
            return [(t.sensor(ev.sensor), _json({**ev.state, "ts": ev.ts}), True)]
        if isinstance(ev, Alarm):
            return [(t.event, _json({"type": "alarm", "alarm": ev.alarm, "sensor": ev.sensor, "active": ev.active,
                                     "kind": ev.kind, "message": ev.message, "since": ev.since, "ts": ev.ts,
                                     "acknowledged": ev.acknowledged, "acked_by": ev.acked_by}), False)]
        if isinstance(ev, SensorAvailability):
            return [(t.sensor_availability(ev.sensor), b"online" if ev.online else b"offline", True),
                    (t.event, _json({"type": "availability", "sensor": ev.sensor, "online": ev.online,
                                     "battery_low": ev.battery_low, "reason": ev.reason, "last_seen": ev.last_seen,
                                     "ts": ev.ts}), False)]
        if isinstance(ev, RelayChanged):
            return [(t.relay(ev.relay), b"ON" if ev.on else b"OFF", True),
                    (t.event, _json({"type": "relay", "relay": ev.relay, "on": ev.on, "source": ev.source, "ts": ev.ts}), False)]
        return []

    def _queue(self, ev: Any) -> None:
        if isinstance(ev, SensorChanged) and not self._state_now(ev):
            return
        self._put(ev)

    def _state_now(self, ev: SensorChanged) -> bool:
        """False when a telemetry-only change is held back (the latest goes out after the interval)."""
        interval = self.cfg.telemetry_interval_s
        now = time.monotonic()
        telemetry = not any(isinstance(ev.state.get(k), (bool, str)) for k in ev.changed)
        if not telemetry or interval <= 0:
            self._held.pop(ev.sensor, None)  # superseded: this state includes what was held
            self._last_state[ev.sensor] = now
            return True
        last = self._last_state.get(ev.sensor)
        if last is not None and now - last < interval:
            if ev.sensor not in self._held:
                asyncio.get_running_loop().call_later(interval - (now - last), self._release, ev.sensor)
            self._held[ev.sensor] = ev
            return False
        self._last_state[ev.sensor] = now
        return True

    def _release(self, sensor: str) -> None:
        ev = self._held.pop(sensor, None)
        if ev is not None:
            self._last_state[sensor] = time.monotonic()
            self._put(ev)

    def _put(self, ev: Any) -> None:
        store = self.ctx.store
        if store is None:
            self.last_error = "no store: states are not published"
            return
        for topic, payload, retain in self.messages_for(ev):
            fut = store.outbox_put(topic, payload, qos=1, retain=retain)
            fut.add_done_callback(self._committed)
            self.queued += 1

    def _committed(self, fut: Any) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved (the store logs a failure itself)
        if self.wake is not None:
            self.wake.set()

    async def _enqueue_loop(self) -> None:
        sub = self.sub
        while True:
            ev = await sub.get()
            self._queue(ev)

    # ---- outbox -> broker -----------------------------------------------------------------
    async def _sender(self, client: aiomqtt.Client) -> None:
        store = self.ctx.store
        assert self.wake is not None
        client.pending_calls_threshold = self.cfg.batch + 50
        while True:
            self.wake.clear()
            msgs = await store.outbox_peek(self.cfg.batch)
            if not msgs:
                try:
                    async with asyncio.timeout(1.0):  # (wait_for can swallow a cancel on 3.11)
                        await self.wake.wait()
                except TimeoutError:
                    pass
                continue
            # paho sends them in this order; the acks may come back in any order
            results = await asyncio.gather(*(client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in msgs),
                                           return_exceptions=True)
            raise_if_cancelling()
            ok = [m.id for m, r in zip(msgs, results) if r is None]
            if ok:
                await store.outbox_ack(ok)
                self.sent += len(ok)
                self.m_sent.inc(len(ok))
            failed = [r for r in results if r is not None]
            if failed:
                exc = failed[0]
                raise exc if isinstance(exc, aiomqtt.MqttError) else aiomqtt.MqttError(f"publish failed: {exc}")

    # ---- commands in -------------------------------------------------------------------------
    async def _commands(self, client: aiomqtt.Client) -> None:
        t = self.topics
        relay_prefix = f"{t.base}/relay/"
        async for msg in client.messages:
            topic = msg.topic.value
            payload = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else str(msg.payload or "").encode()
            self.commands += 1
            if msg.retain:
                # a retained command is delivered again on every subscribe: old news, never a relay
                self._retained_command(topic, bytes(payload))
                continue
            try:
                if topic == t.cmd:
                    cmd = parse_json_command(bytes(payload))
                elif topic.startswith(relay_prefix) and topic.count("/") == relay_prefix.count("/") + 1:
                    relay, verb = topic[len(relay_prefix):].split("/", 1)
                    if verb not in ("set", "pulse"):
                        continue
                    cmd = parse_ha_command(relay, verb, bytes(payload))
                else:
                    continue
            except BadCommand as exc:
                log.warning("command on %s rejected: %s", topic, exc.reason)
                self.spawn(self._reply(client, {"id": exc.cmd_id, "ok": False, "error": exc.reason, "topic": topic}),
                           "uplink-reply")
                continue
            self.spawn(self._execute(client, cmd, topic), "uplink-command")

    def _retained_command(self, topic: str, payload: bytes) -> None:
        self.retained_ignored += 1
        log.warning("command on %s ignored: it is a retained message (sent again on every reconnect); "
                    "publish commands without retain (clear it: mosquitto_pub -r -n -t %s)", topic, topic)
        store = self.ctx.store
        if store is not None:
            record(store.record_event("command", "mqtt", {"topic": topic, "ok": False, "payload": payload[:200].decode(
                "utf-8", "replace"), "error": "retained message: not executed"}))

    async def _execute(self, client: aiomqtt.Client, cmd: Command, topic: str) -> None:
        relays = self.ctx.registry.get(RELAYS)
        source = "mqtt"
        if relays is None:
            reply = {"id": cmd.id, "ok": False, "relay": cmd.relay, "command": cmd.action, "error": "no relay service"}
        else:
            try:
                if cmd.action == "pulse":
                    res = await relays.pulse(cmd.relay, cmd.ms, source=source)
                else:
                    res = await relays.set(cmd.relay, cmd.on, source=source)
                reply = {"id": cmd.id, "ok": bool(res.ok), "relay": cmd.relay, "command": getattr(res, "command", cmd.action),
                         "latency_ms": getattr(res, "latency_ms", None), "error": getattr(res, "error", "") or ""}
            except Exception as exc:  # noqa: BLE001 - a command must always get a reply
                reply = {"id": cmd.id, "ok": False, "relay": cmd.relay, "command": cmd.action,
                         "error": f"{type(exc).__name__}: {exc}"}
        if cmd.action == "pulse":
            reply["ms"] = cmd.ms
        else:
            reply["on"] = cmd.on
        store = self.ctx.store
        if store is not None:
            record(store.record_event("command", "mqtt", {**reply, "topic": topic}))
        await self._reply(client, reply)

    async def _reply(self, client: aiomqtt.Client, body: dict[str, Any]) -> None:
        body["ts"] = time.time()
        try:
            await client.publish(self.topics.reply, _json(body), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("command reply not sent: %s", exc)

    # ---- the connection ------------------------------------------------------------------------
    async def _session(self, client: aiomqtt.Client) -> None:
        t = self.topics
        raise_if_cancelling()
        await client.publish(t.availability, b"online", qos=1, retain=True)
        raise_if_cancelling()
        if self.cfg.discovery:
            relays = self.ctx.registry.get(RELAYS)
            names = list(relays.names()) if relays is not None else []
            for topic, payload in discovery_messages(t, self.cfg.discovery_prefix, self.ctx.config.site.name,
                                                     self.ctx.config.sensors, names):
                await client.publish(topic, payload, qos=1, retain=True)
                raise_if_cancelling()
        await client.subscribe([(t.cmd, 1), (f"{t.base}/relay/+/set", 1), (f"{t.base}/relay/+/pulse", 1)])
        raise_if_cancelling()
        tasks = [asyncio.create_task(self._sender(client)), asyncio.create_task(self._commands(client))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for d in done:
                d.result()
            raise aiomqtt.MqttError("uplink session ended")
        finally:
            for tk in tasks:
                tk.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection_loop(self) -> None:
        backoff = Backoff(self.mqtt.backoff_initial_s, self.mqtt.backoff_max_s)
        will = aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True)
        while True:
            began = time.monotonic()
            try:
                client = make_client(self.mqtt, self.identifier, clean_session=True, will=will, ssl_ctx=self._ssl,
                                     password=self._password)
                async with client:
                    raise_if_cancelling()
                    self.client = client
                    self.connected = True
                    self.connects += 1
                    self.m_connected.set(1)
                    backoff.reset()
                    log.info("uplink: connected to %s:%d, publishing under %s", self.mqtt.host, self.mqtt.port, self.topics.base)
                    try:
                        await self._session(client)
                    except asyncio.CancelledError:
                        # a clean stop says so itself (the will is only for an unexpected loss)
                        try:
                            await asyncio.wait_for(client.publish(self.topics.availability, b"offline", qos=1, retain=True), 1.0)
                        except (aiomqtt.MqttError, TimeoutError):
                            pass
                        raise
            except (aiomqtt.MqttError, OSError) as exc:
                self.last_error = str(exc) or type(exc).__name__
            finally:
                self.connected = False
                self.m_connected.set(0)
            if time.monotonic() - began > 60:
                backoff.reset()
            delay = backoff.next()
            log.warning("uplink: broker unavailable (%s); %s messages wait in the outbox; retry in %.1f s",
                        self.last_error, "some" if self.queued > self.sent else "no", delay)
            await asyncio.sleep(delay)

    # ---- component ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()

    async def run(self) -> None:
        if self.ctx.store is None:
            raise RuntimeError("uplink needs the store (outbox); it is not open")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._enqueue_loop(), name="uplink-enqueue")
            tg.create_task(self._connection_loop(), name="uplink-mqtt")

    async def stop(self) -> None:
        if self.sub is not None:
            # what is already on the bus goes into the outbox before the store closes
            while (ev := self.sub.get_nowait()) is not None:
                self._queue(ev)
            for sensor in list(self._held):
                self._release(sensor)

    def health(self) -> Health:
        if not self.connected:
            return Health(False, f"not connected: {self.last_error or 'connecting'}")
        return Health(True, f"{self.topics.base}: {self.sent} sent")
