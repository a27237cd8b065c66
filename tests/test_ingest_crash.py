"""Nothing a sender handed over is lost: SIGKILL the service while a gateway publishes.

An external paho publisher (its own process) sends QoS 1 messages at 1,000/s, each with a
sequence number, to a real Mosquitto with persistence and the appliance's broker settings
(image-build/.../edge-durability.conf). The service (``edge run``, its own process, on a
persistent session) is killed with SIGKILL at random moments (some during its start) and
started again each time; after every kill the database passes ``PRAGMA integrity_check`` and
holds no sequence number twice. At the end every message the broker acknowledged to the
publisher is in the store exactly once; the duplicates the broker delivered again are
recognised (counted in the service's log) and not recorded twice.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from .peers import free_port, mosquitto_broker
from .relay_peers import REPO

PUBLISHER = Path(__file__).with_name("ingest_crash_publisher.py")
BROKER_CONF = (REPO / "image-build/overlay/etc/mosquitto/conf.d/edge-durability.conf").read_text()
KILLS = 10
RATE = 1000
MESSAGES = 14_000

CONFIG = """
[service]
log_level = "INFO"

[web]
host = "127.0.0.1"
port = {web}

[video]
enabled = false

[onvif]
enabled = false

[uplink]
enabled = false

[mqtt]
host = "127.0.0.1"
port = {mqtt}
client_id = "crash"
inflight_window = 1000

[store]
batch_ms = 50
telemetry_batch_ms = 10000

[relays.boards.pi]
type = "gpio"

[relays.channels.strike]
board = "pi"
pin = 17
pulse_ms = 300

[[sensors]]
id = "door"
kind = "contact"
topic = "crash/door"
adapter = "generic"
fields.contact = {{ path = "contact" }}
fields.seq = {{ path = "seq" }}

[[sensors]]
id = "temp"
kind = "temperature"
topic = "crash/temp"
adapter = "generic"
fields.temperature = {{ path = "temperature" }}
fields.seq = {{ path = "seq" }}

[[rules]]
sensor = "door"
equals = false
actions = [{{ pulse = "strike" }}]
"""


class Service:
    """``edge run`` as its own process; its log lines are kept."""

    def __init__(self, cfg: Path, data: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--simulated", "--config", str(cfg),
                                      "--data-dir", str(data)], cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.connected = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "mqtt in: connected" in line and "crash-in-bulk" in line:
                self.connected.set()

    def duplicates(self) -> int:
        return sum(int(m.group(1)) for line in self.lines
                   if (m := re.search(r"(\d+) messages delivered again were recorded already", line)))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(5)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        self.reader.join(5)
        return rc


def stored(db: Path) -> dict[int, int]:
    """sequence number -> how many times it is stored (a normal connection: recovers the WAL)."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute("SELECT json_extract(payload, '$.seq'), count(*) FROM events WHERE kind = 'sensor' "
                            "GROUP BY 1").fetchall()
    conn.close()
    return {int(seq): n for seq, n in rows if seq is not None}


def test_sigkill_while_a_gateway_publishes_loses_nothing_acknowledged(tmp_path: Path):
    rng = random.Random()
    with mosquitto_broker(BROKER_CONF) as broker:
        cfg = tmp_path / "edge.toml"
        cfg.write_text(CONFIG.format(web=free_port(), mqtt=broker.port))
        data = tmp_path / "data"
        db = data / "edge.db"
        t0 = time.monotonic()
        svc = Service(cfg, data)
        assert svc.connected.wait(30), "".join(svc.lines[-20:])  # the session exists before anything is sent
        publisher = subprocess.Popen([sys.executable, str(PUBLISHER), str(broker.port), str(MESSAGES), str(RATE)],
                                     stdout=subprocess.PIPE, text=True)
        duplicates = 0
        kills_running = 0
        runs: list[Service] = []
        for kill in range(KILLS):
            if kill % 4 == 3:
                time.sleep(rng.uniform(0.05, 0.6))  # may land while it starts (store, relays, subscribe)
            else:
                assert svc.connected.wait(30), "".join(svc.lines[-20:])
                kills_running += 1
                time.sleep(rng.uniform(0.2, 1.2))
            assert svc.proc.poll() is None, "".join(svc.lines[-30:])
            svc.kill()
            duplicates += svc.duplicates()
            runs.append(svc)
            if db.exists():
                twice = {seq: n for seq, n in stored(db).items() if n > 1}
                assert not twice, f"kill {kill}: stored more than once: {list(twice.items())[:5]}" + "".join(
                    line for r in runs for line in r.lines if "WARNING" in line or "ERROR" in line)
            svc = Service(cfg, data)
        out, _ = publisher.communicate(timeout=60)
        acked = set(json.loads(out)["acked"])
        assert len(acked) >= MESSAGES * 0.99, f"the broker acknowledged only {len(acked)} of {MESSAGES}"
        # the last run drains what the broker kept for it
        assert svc.connected.wait(30), "".join(svc.lines[-20:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if db.exists() and acked <= set(stored(db)):
                break
            time.sleep(0.5)
        assert svc.stop() == 0, "".join(svc.lines[-30:])
        duplicates += svc.duplicates()
        final = stored(db)
        missing = sorted(acked - set(final))
        twice = {seq: n for seq, n in final.items() if n > 1}
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:10]}"
        assert not twice, f"{len(twice)} stored more than once, e.g. {list(twice.items())[:5]}"
        assert kills_running >= KILLS // 2
        # a duplicate needs a kill between a commit and its PUBACK (a few ms per batch): it may
        # happen here or not; tests/test_ingest_acks.py makes them on purpose
        print(f"\n{len(acked)} acknowledged, {len(final)} stored once each, {duplicates} duplicates recognised, "
              f"{KILLS} kills, {time.monotonic() - t0:.1f} s")
