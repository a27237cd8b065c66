"""End to end: MQTT publish -> relay driven, through the real service.

Three processes, like on the appliance: Mosquitto, the service (in this process, with its
real MQTT ingest, rules, relay service, store and uplink), and the relay board: a simulated
Waveshare Modbus TCP board in its own process (hw.relays.sim, a real pymodbus server that
prints each coil transition with its time). A fourth process publishes: it timestamps each
Zigbee2MQTT contact message just before publishing it.

- modbus_tcp: publish -> coil switched on the board process (CLOCK_MONOTONIC in both)
- gpio: publish -> GPIO pin set (gpiozero mock pin's own change time, CLOCK_MONOTONIC)
- loaded_modbus_tcp: the same while another process publishes 2,000 readings/s
- durable_events_per_s: readings published as fast as one client can, from its first publish
  until every one of them is committed in SQLite (its "sensor" event; the state changes and
  outbox go with it) and acknowledged to the broker (edge acknowledges a message only after
  its commit); durable_publisher_per_s: how fast that client got them to the broker (one
  Python paho client: the figure above cannot exceed it)

Prints one JSON line. E2E_EVENTS (default 1000) sets the number of events per latency run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers import free_port, mosquitto_broker, run_service_from_toml, wait_port  # noqa: E402

N = int(os.environ.get("E2E_EVENTS", "1000"))
INTERVAL_S = 0.01
LOAD_RATE = 2000
DURABLE_N = int(os.environ.get("E2E_DURABLE", "20000"))

BROKER_CONF = "max_inflight_messages 1000\nmax_queued_messages 1000000\n"

PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, mode, topic, n, interval = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
mono, wall = [], []
if mode == "contact":
    for i in range(n):
        payload = b'{"contact":false}' if i % 2 == 0 else b'{"contact":true}'
        mono.append(time.monotonic()); wall.append(time.time())
        c.publish(topic, payload, qos=1)
        time.sleep(interval)
elif mode == "rate":          # n readings per second until stdin closes / for interval seconds
    end = time.monotonic() + interval
    i = 0
    t_next = time.monotonic()
    while time.monotonic() < end:
        for _ in range(n // 100):
            c.publish(f"{topic}/{i % 16}", b'{"v": %d}' % i, qos=1)
            i += 1
        t_next += 0.01
        time.sleep(max(0.0, t_next - time.monotonic()))
    mono.append(i)
else:                         # "burst": n readings as fast as possible
    wall.append(time.time())
    infos = [c.publish(f"{topic}/{i % 16}", b'{"v": %d}' % i, qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    wall.append(time.time())
time.sleep(0.2)
c.loop_stop()
print(json.dumps({"mono": mono, "wall": wall}))
"""

CONFIG = """
[service]
log_level = "WARNING"

[mqtt]
host = "127.0.0.1"
port = {mqtt}
inflight_window = 1000  # BROKER_CONF's max_inflight_messages

[uplink]
device_id = "bench"

[relays.boards.board]
type = "modbus_tcp"
profile = "waveshare-8"
host = "127.0.0.1"
port = {board}

[relays.boards.pi]
type = "gpio"

[relays.channels.lock_modbus]
board = "board"
channel = 1
mode = "follow"

[relays.channels.lock_gpio]
board = "pi"
pin = 21
mode = "follow"

[[sensors]]
id = "door_modbus"
kind = "contact"
topic = "bench/door_modbus"

[[sensors]]
id = "door_gpio"
kind = "contact"
topic = "bench/door_gpio"

[[sensors]]
id = "load"
kind = "generic"
topic = "load/#"
adapter = "generic"
fields.v = {{ path = "v" }}

[[rules]]
sensor = "door_modbus"
actions = [{{ follow = "lock_modbus" }}]

[[rules]]
sensor = "door_gpio"
actions = [{{ follow = "lock_gpio" }}]
"""


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


class BoardProcess:
    """hw.relays.sim in its own process; collects its coil transitions (CLOCK_MONOTONIC)."""

    def __init__(self, port: int):
        self.port = port
        self.transitions: list[tuple[float, int, bool]] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "hw.relays.sim", "--profile", "waveshare-8", "--tcp",
                                      f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        threading.Thread(target=self._read, daemon=True).start()
        wait_port("127.0.0.1", port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "m" in d:  # {"t": unix, "m": CLOCK_MONOTONIC, "channel": n, "on": bool}
                self.transitions.append((d["m"], d["channel"], d["on"]))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


async def publisher(port: int, mode: str, topic: str, n: int, interval: float) -> dict:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, str(port), mode, topic, str(n),
                                                str(interval), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return json.loads(out)


async def until(pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("bench: timed out waiting")
        await asyncio.sleep(0.01)


async def lag_monitor(out: list[tuple[float, float]]) -> None:
    """Event-loop lag samples (monotonic time, lag s): how late a 5 ms sleep wakes up."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.005)
        out.append((t, time.monotonic() - t - 0.005))


def gpio_pin(svc, relay: str):
    """The mock pin behind a GPIO relay (its history holds (monotonic, state) per change)."""
    relays = svc.component("relays")
    ch = relays.channels[relay]
    return ch.board.pin(ch.index)


async def modbus_run(mqtt_port: int, board: BoardProcess, label: str) -> list[float]:
    start = len(board.transitions)
    pub = await publisher(mqtt_port, "contact", "bench/door_modbus", N, INTERVAL_S)
    await until(lambda: len([t for t in board.transitions[start:] if t[1] == 1]) >= N, 30)
    ch1 = [t for t in board.transitions[start:] if t[1] == 1][:N]
    lat = [(t - t0) * 1000 for (t, _, on), t0, i in zip(ch1, pub["mono"], range(N)) if on == (i % 2 == 0)]
    if len(lat) != N:
        raise RuntimeError(f"{label}: {N - len(lat)} transitions out of step with the messages")
    return lat


async def main() -> None:
    logging.basicConfig(level=getattr(logging, os.environ.get("E2E_LOG", "ERROR")))
    # the appliance's broker settings: Mosquitto's default per-client queue (1,000 QoS 1
    # messages beyond 20 in flight) drops readings in a burst before the service can read them
    with mosquitto_broker(BROKER_CONF) as broker, tempfile.TemporaryDirectory(prefix="edge-bench-") as d:
        board = BoardProcess(free_port())
        try:
            toml = CONFIG.format(mqtt=broker.port, board=board.port)
            async with run_service_from_toml(toml, Path(d) / "data", simulated=True) as svc:
                ctx = svc.ctx
                await until(lambda: svc.component("sensors").ingest.connected, 10)
                await asyncio.sleep(0.5)
                # ---- idle: Modbus TCP
                modbus = await modbus_run(broker.port, board, "modbus idle")
                # ---- idle: GPIO
                pin = gpio_pin(svc, "lock_gpio")
                h0 = len(pin.history)
                pub = await publisher(broker.port, "contact", "bench/door_gpio", N, INTERVAL_S)
                await until(lambda: len(pin.history) - h0 >= N, 30)
                gpio = [(t - t0) * 1000 for (t, _), t0 in zip(pin.history[h0:h0 + N], pub["mono"])]
                # ---- loaded: Modbus TCP while 2,000 readings/s are ingested
                duration = N * INTERVAL_S * 1.3 + 3
                load = asyncio.create_task(publisher(broker.port, "rate", "load", LOAD_RATE, duration))
                await asyncio.sleep(1.0)
                readings0 = svc.component("sensors").tracker.readings
                t_load = time.monotonic()
                lags: list[tuple[float, float]] = []
                lagger = asyncio.create_task(lag_monitor(lags))
                loaded = await modbus_run(broker.port, board, "modbus loaded")
                lagger.cancel()
                load_rate = (svc.component("sensors").tracker.readings - readings0) / (time.monotonic() - t_load)
                sent = (await load)["mono"][0]
                # ---- durable ingest
                await until(lambda: svc.component("sensors").tracker.readings >= readings0, 30)
                await ctx.store.flush()
                ingest = svc.component("sensors").ingest
                await until(lambda: not any(lane.acks.pending for lane in ingest.lanes), 30)
                a0 = ingest.acked
                burst = asyncio.create_task(publisher(broker.port, "burst", "load", DURABLE_N, 0))
                # acknowledged to the broker = committed first
                await until(lambda: ingest.acked - a0 >= DURABLE_N, 120)
                t1 = time.time()
                pub = await burst
                # from the first publish (the publisher's own clock, the same wall clock; its
                # process start and connect are not ingest) to the last acknowledgement
                durable = DURABLE_N / (t1 - pub["wall"][0])
                published = DURABLE_N / (pub["wall"][1] - pub["wall"][0])
        finally:
            board.stop()
    out = {
        "bench": "e2e",
        "modbus_tcp_p50_ms": round(statistics.median(modbus), 2),
        "modbus_tcp_p99_ms": round(pct(modbus, 99), 2),
        "gpio_p50_ms": round(statistics.median(gpio), 2),
        "gpio_p99_ms": round(pct(gpio, 99), 2),
        "loaded_modbus_tcp_p99_ms": round(pct(loaded, 99), 2),
        "durable_events_per_s": round(durable),
        "durable_publisher_per_s": round(published),  # how fast the one publisher got its messages to the broker
        "events": N,
        "load_readings_per_s": round(load_rate),
        "loaded_max_loop_lag_ms": round(max(lag for _, lag in lags) * 1000, 1),
        "load_published": sent,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
