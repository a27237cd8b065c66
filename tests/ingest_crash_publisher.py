"""Publisher of the ingest crash test: a sensor gateway as the broker sees it.

``python ingest_crash_publisher.py PORT N RATE`` publishes N QoS 1 messages at RATE per
second with a sequence number each, alternately a door contact (the fast lane) and a
temperature (telemetry, the bulk lane), then waits for the broker's acknowledgements and
prints one JSON line: the sequence numbers the broker acknowledged.
"""

from __future__ import annotations

import json
import sys
import time

import paho.mqtt.client as mqtt


def main(port: int, n: int, rate: float) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="crash-gateway", clean_session=True)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = []
    t0 = time.monotonic()
    for seq in range(n):
        if seq % 2 == 0:
            # the door opens and closes every 20 of its messages: state changes among repeats
            topic, body = "crash/door", {"contact": (seq // 40) % 2 == 0, "seq": seq}
        else:
            topic, body = "crash/temp", {"temperature": 20 + (seq % 50) / 10, "seq": seq}
        infos.append((seq, c.publish(topic, json.dumps(body).encode(), qos=1)))
        delay = t0 + (seq + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    deadline = time.monotonic() + 30
    for _, info in infos:
        info.wait_for_publish(max(0.01, deadline - time.monotonic()))
    acked = [seq for seq, info in infos if info.is_published()]
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"acked": acked, "seconds": round(time.monotonic() - t0, 2)}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
