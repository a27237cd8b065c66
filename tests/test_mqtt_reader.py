"""Reading MQTT in batches (edge.mqtt.reader) with a real Mosquitto: every message whole and in
order whatever its size (packets split across reads, larger than one read), and a message on
another connection handled while a backlog is being read, not after it."""

from __future__ import annotations

import asyncio
import time

import paho.mqtt.client as paho_mqtt

from edge.mqtt.client import take_messages
from edge.mqtt.reader import CHUNK, read_in_batches

from .peers import mosquitto_broker

BROKER_CONF = "max_inflight_messages 1000\nmax_queued_messages 100000\n"


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, waited for: the broker has them all when this returns."""
    c = paho_mqtt.Client(paho_mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.loop_stop()
        c.disconnect()


async def subscriber(port: int, ident: str, topic: str | None, got: list, *, batched: bool, work_s: float = 0.0):
    """A persistent-session subscriber as the ingest makes one; acknowledges each message at
    once, after ``work_s`` of work on the loop (the ingest's decoding, rules and records)."""
    import aiomqtt

    client = aiomqtt.Client("127.0.0.1", port, identifier=ident, clean_session=False, timeout=10)
    if batched:
        read_in_batches(client, 32)
    acks: list = []

    def on_message(msg) -> None:
        t = time.monotonic()
        got.append((t, msg.topic, bytes(msg.payload)))
        while time.monotonic() - t < work_s:
            pass
        acks[0](msg.mid, msg.qos)

    acks.append(take_messages(client, on_message))
    await client.__aenter__()
    if topic is not None:  # (a persistent session keeps its subscription)
        await client.subscribe(topic, qos=1)
    return client


async def test_every_message_whole_and_in_order_whatever_its_size():
    sizes = [0, 1, 120, 127, 128, 16383, 16384, CHUNK - 5, CHUNK, CHUNK + 7, 3 * CHUNK + 1] * 3 + [40] * 2000
    messages = [("bulk/t", bytes([i % 251]) * n) for i, n in enumerate(sizes)]
    with mosquitto_broker(BROKER_CONF) as broker:
        got: list = []
        client = await subscriber(broker.port, "edge-test-reader", "bulk/#", got, batched=True)
        try:
            await asyncio.to_thread(publish_all, broker.port, messages)
            deadline = time.monotonic() + 30
            while len(got) < len(messages) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            await client.__aexit__(None, None, None)
    assert [p for _, _, p in got] == [p for _, p in messages]


async def test_a_message_on_another_connection_is_read_within_a_backlog():
    """The state sensors' lane is read between batches of the telemetry lane's backlog."""
    backlog = [("bulk/t", b'{"v": %d}' % i) for i in range(10000)]
    with mosquitto_broker(BROKER_CONF) as broker:
        bulk: list = []
        fast: list = []
        # the bulk session exists, then goes away: its backlog waits at the broker
        c = await subscriber(broker.port, "edge-test-bulk", "bulk/#", bulk, batched=True)
        await c.__aexit__(None, None, None)
        await asyncio.to_thread(publish_all, broker.port, backlog)
        door = await subscriber(broker.port, "edge-test-fast", "door", fast, batched=True)
        # ~50 us a reading, as the ingest: the backlog takes ~0.5 s to read
        c = await subscriber(broker.port, "edge-test-bulk", None, bulk, batched=True, work_s=50e-6)
        try:
            while not bulk:
                await asyncio.sleep(0)
            # another process (this one's threads wait for the loop's GIL)
            pub = await asyncio.create_subprocess_exec("mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                                       "-t", "door", "-m", '{"contact": false}')
            await pub.wait()
            read_by_then = len(bulk)  # the door message is at the broker: its socket is readable
            deadline = time.monotonic() + 30
            while (len(bulk) < len(backlog) or not fast) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await c.__aexit__(None, None, None)
            await door.__aexit__(None, None, None)
    assert len(bulk) == len(backlog) and len(fast) == 1
    door_at = fast[0][0]
    after = sum(1 for t, _, _ in bulk if t > door_at)
    # read within a batch or two (32 packets each), not after everything one recv brought in
    # (a 64 KB read holds ~3,000 of these)
    meanwhile = sum(1 for t, _, _ in bulk if t <= door_at) - read_by_then
    assert meanwhile < 1000, f"{meanwhile} backlog messages were read before the door message"
    assert after > 0, f"the door message was read only after the whole backlog ({len(bulk)} {len(fast)} {door_at - bulk[0][0]:.3f} s after the first, backlog took {bulk[-1][0] - bulk[0][0]:.3f} s)"
