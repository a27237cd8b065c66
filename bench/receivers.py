"""Alarm receivers: MQTT door message -> SIA DC-09 ACK from the receiving centre, on loopback.

Three processes: Mosquitto, the service (this process: MQTT ingest, rules, store with its
outbox, the receivers), and the receiving centre (pysiaalarm, TCP, AES-128) in its own
process. A fourth process publishes Zigbee2MQTT door messages (open, closed, ...) and notes
CLOCK_MONOTONIC just before each; the service notes it when the receiver's ACK for the
report that message caused is read (every report is committed to the outbox before it is
sent, and deleted once acknowledged).

- sia_ack_p50_ms / sia_ack_p99_ms: over RECEIVER_ALARMS (default 200) door messages, 50 ms apart
- reports_per_s: RECEIVER_BURST (default 2000) reports queued at once to one receiver, until
  the last one is acknowledged (one message at a time on the wire, as receivers require)

Prints one JSON line.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.interfaces import REPORTS  # noqa: E402
from edge.receivers.keys import write_secret  # noqa: E402
from tests.peers import free_port, mosquitto_broker, run_service_from_toml, wait_port  # noqa: E402

N = int(os.environ.get("RECEIVER_ALARMS", "200"))
BURST = int(os.environ.get("RECEIVER_BURST", "2000"))
INTERVAL_S = 0.05
KEY = "Bench-AES128key!"

RECEIVER = r"""
import asyncio, sys
from pysiaalarm import SIAAccount
from pysiaalarm.aio import SIAClient, CommunicationsProtocol
port, key = int(sys.argv[1]), sys.argv[2]
async def on_event(ev):
    pass
async def main():
    c = SIAClient("127.0.0.1", port, [SIAAccount("1234", key)], on_event, protocol=CommunicationsProtocol.TCP)
    await c.async_start(reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, n, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
c.connect("127.0.0.1", port)
c.loop_start()
mono = []
for i in range(n):
    mono.append(time.monotonic())
    c.publish("bench/door", b'{"contact":false}' if i % 2 == 0 else b'{"contact":true}', qos=1)
    time.sleep(interval)
time.sleep(0.2)
c.loop_stop()
print(json.dumps(mono))
"""

CONFIG = """
[service]
log_level = "WARNING"

[mqtt]
port = {mqtt}

[uplink]
device_id = "bench"

[[sensors]]
id = "door"
name = "Door"
kind = "contact"
topic = "bench/door"

[receivers]
zones = {{ door = 1 }}

[receivers.sia.arc]
primary = "127.0.0.1:{port}"
account = "1234"
key_file = "receivers/arc.key"
kinds = ["contact"]
"""


async def run(broker_port: int, data: Path) -> dict[str, float]:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        wait_port("127.0.0.1", port)
        write_secret(data / "receivers" / "arc.key", KEY)
        async with run_service_from_toml(CONFIG.format(mqtt=broker_port, port=port), data) as svc:
            rx = svc.component("receivers").receivers["arc"]
            acked: list[float] = []
            done = rx.on_done

            def on_done(r, item, outcome):  # the ACK was just read
                acked.append(time.monotonic())
                done(r, item, outcome)

            rx.on_done = on_done
            await asyncio.sleep(0.5)  # the first link test is done
            acked.clear()
            pub = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, str(broker_port), str(N),
                                                       str(INTERVAL_S), stdout=asyncio.subprocess.PIPE)
            out, _ = await pub.communicate()
            sent = json.loads(out)
            deadline = time.monotonic() + 30
            while len(acked) < N and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if len(acked) != N:
                raise SystemExit(f"{len(acked)} of {N} reports acknowledged")
            lat = sorted((a - s) * 1000 for s, a in zip(sent, acked))

            reporter = svc.ctx.registry.get(REPORTS)
            acked.clear()
            t0 = time.monotonic()
            for i in range(BURST):
                reporter.report("arc", active=i % 2 == 0, sensor="door", kind="contact", text="Door")
            while len(acked) < BURST and time.monotonic() - t0 < 120:
                await asyncio.sleep(0.01)
            elapsed = (acked[-1] if acked else time.monotonic()) - t0
            if len(acked) != BURST:
                raise SystemExit(f"{len(acked)} of {BURST} burst reports acknowledged")
    finally:
        receiver.terminate()
        receiver.wait(5)
    return {"sia_ack_p50_ms": round(statistics.median(lat), 2),
            "sia_ack_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
            "reports_per_s": round(BURST / elapsed, 1)}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    with mosquitto_broker() as broker, tempfile.TemporaryDirectory(prefix="edge-bench-rx-") as d:
        figures = asyncio.run(run(broker.port, Path(d)))
    print(json.dumps({"bench": "receivers", **figures, "alarms": N, "burst": BURST, "transport": "tcp aes-128"}))


if __name__ == "__main__":
    main()
