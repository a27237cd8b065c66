"""Relays first, whatever the disk does.

- The database directory is read-only (``edge run`` as its own process, as an unprivileged
  user): READY within 2 s with every relay in its safe state, the service degraded with the
  reason (STATUS, /healthz), and a door message still pulses its relay. No restart loop.
- The disk stops taking writes (a lock held elsewhere): the store is degraded, relays and
  alarms go on, MQTT messages are acknowledged as they are queued in memory, and everything
  is written once the disk takes it again.
- A store write hangs: the watchdog pings stop within the bound and STATUS says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


from edge import config as config_mod
from edge.interfaces import RELAYS
from edge.notify import Notifier
from edge.service import build_service
from edge.store import ops
from edge.store.readers import query_events

from .peers import FakeSystemd, digest_session, free_port, mosquitto_broker
from .relay_peers import REPO, SimProcess
from .sensor_helpers import publish, wait_for

READ_ONLY_TOML = """
[web]
host = "127.0.0.1"
port = {web}

[video]
enabled = false

[onvif]
enabled = false

[uplink]
enabled = false

[lcd]
enabled = false

[mqtt]
host = "127.0.0.1"
port = {mqtt}

[store]
path = "{db}"

[relays.boards.main]
type = "modbus_tcp"
profile = "waveshare-8"
host = "127.0.0.1"
port = {board}

[relays.channels.strike]
board = "main"
channel = 1
pulse_ms = 500

[relays.channels.maglock]
board = "main"
channel = 2
safe_state = "on"

[relays.channels.light]
board = "main"
channel = 3
mode = "latch"

[[sensors]]
id = "door"
kind = "contact"
topic = "zigbee2mqtt/door"

[[rules]]
sensor = "door"
actions = [{{ pulse = "strike" }}]
"""


def _unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run the service as when the tests run as root (root writes anywhere)."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def _set_coils(port: int, on: dict[int, bool]) -> None:
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient("127.0.0.1", port=port)
    assert c.connect()
    for ch, state in on.items():
        c.write_coil(ch - 1, state, device_id=1)
    c.close()


def test_read_only_database_dir_ready_in_2s_safe_degraded_and_relays_work():
    user = _unprivileged()
    base = Path(tempfile.mkdtemp(prefix="edge-ro-"))
    board = SimProcess("waveshare-8")
    svc = None
    try:
        with mosquitto_broker() as broker:
            os.chmod(base, 0o755)
            data, dbdir = base / "data", base / "db"
            data.mkdir()
            dbdir.mkdir()
            os.chmod(dbdir, 0o555)  # the card went read-only (or the directory is not ours)
            if user is not None:
                os.chown(data, *user)
            web = free_port()
            cfg = base / "edge.toml"
            cfg.write_text(READ_ONLY_TOML.format(web=web, mqtt=broker.port, db=dbdir / "edge.db", board=board.port))
            fake = FakeSystemd(base / "notify.sock")
            os.chmod(fake.path, 0o777)
            _set_coils(board.port, {1: True, 2: False, 3: True})  # left anywhere by the last run
            lines: list[tuple[float, str]] = []

            def demote() -> None:
                if user is not None:
                    os.setgid(user[1])
                    os.setuid(user[0])

            svc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--data-dir", str(data)],
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=demote,
                                   env={**os.environ, "NOTIFY_SOCKET": fake.path, "PYTHONDONTWRITEBYTECODE": "1"})

            def read() -> None:
                assert svc is not None and svc.stderr is not None
                for line in svc.stderr:
                    lines.append((time.monotonic(), line))

            threading.Thread(target=read, daemon=True).start()
            t_ready = fake.wait_for("READY=1", 30)
            [t_start] = [t for t, line in lines if "starting" in line and "components" in line]
            assert t_ready - t_start < 2.0, f"READY {t_ready - t_start:.2f} s after the service started"
            # every relay in its safe state: strike off, maglock on (fail-secure), light off
            time.sleep(0.2)  # the board process prints its transitions
            coils = {ch: on for ch, on in ((e["channel"], e["on"]) for e in board.events)}
            assert (coils.get(1), coils.get(2), coils.get(3)) == (False, True, False), board.events
            # degraded, saying why, in STATUS= and /healthz
            status = [m for _, m in fake.drain() if "READY=1" in m][0]
            assert "degraded" in status and "store" in status and "cannot open the database" in status
            health = _healthz(web, data)
            assert health["ready"] and not health["ok"]
            assert "cannot open the database" in health["components"]["store"]["health"]
            # the door still pulses the strike
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any("mqtt in: connected" in line for _, line in lines):
                time.sleep(0.02)
            asyncio.run(publish(broker.port, ("zigbee2mqtt/door", '{"contact": false}')))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(board.changes(1)) < 4:
                time.sleep(0.02)
            assert [on for _, on in board.changes(1)][-2:] == [True, False], board.changes(1)
            (t_on, _), (t_off, _) = board.changes(1)[-2:]
            assert abs((t_off - t_on) * 1000 - 500) <= 30, (board.changes(1), "".join(line for _, line in lines))
            time.sleep(1.0)
            assert svc.poll() is None, "the service gave up (a restart loop would follow)"
            svc.terminate()
            assert svc.wait(15) == 0, "".join(line for _, line in lines[-20:])
            assert not [line for _, line in lines if "Traceback" in line], "".join(line for _, line in lines)
    finally:
        if svc is not None and svc.poll() is None:
            svc.kill()
            svc.wait()
        board.stop()
        os.chmod(base / "db", 0o755) if (base / "db").exists() else None
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _healthz(port: int, data: Path) -> dict:
    from edge import credentials as credentials_mod

    c = credentials_mod.load(data)
    assert c is not None

    async def get() -> dict:
        async with digest_session(c.user, c.password) as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 503
                return await r.json()

    return asyncio.run(get())


SERVICE_TOML = """
[service]
loop_lag_max_ms = 1000

[web]
host = "127.0.0.1"
port = {web}

[video]
enabled = false

[mqtt]
host = "127.0.0.1"
port = {mqtt}
backoff_initial_s = 0.1

[uplink]
enabled = false

[store]
write_timeout_s = {timeout}

[relays.boards.pi]
type = "gpio"

[relays.channels.strike]
board = "pi"
pin = 17
pulse_ms = 300

[[sensors]]
id = "door"
kind = "contact"
topic = "zigbee2mqtt/door"

[[rules]]
sensor = "door"
actions = [{{ pulse = "strike" }}, {{ alarm = "Door open" }}]
"""


async def test_disk_stops_writing_degraded_relays_and_alarms_go_on_nothing_lost(mosquitto, service_factory, monkeypatch):
    from edge.store import schema

    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    async with service_factory(SERVICE_TOML.format(web=free_port(), mqtt=mosquitto.port, timeout=20)) as svc:
        sensors, store = svc.component("sensors"), svc.ctx.store
        lane = sensors.ingest.lanes[0]
        await wait_for(lambda: lane.connected, what="ingest connected")
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the disk takes no writes for now
        try:
            await publish(mosquitto.port, *[("zigbee2mqtt/door", json.dumps({"contact": i % 2 == 1})) for i in range(6)])
            await wait_for(lambda: not store.durable, 5, what="store degraded")
            assert "locked" in store.problem and not svc.component("store").health().ok
            ok, summary = svc.supervisor.health_summary()
            assert not ok and "store: writes fail" in summary
            relays = svc.component("relays")
            pin = relays.channels["strike"].board.pin(relays.channels["strike"].index)
            await wait_for(lambda: any(s for _, s in pin.history), 2, what="the relay pulses meanwhile")
            await wait_for(lambda: svc.component("rules").alarms, 2, what="the alarm is raised meanwhile")
            # acknowledged as queued in memory, so the broker keeps sending the door messages
            await wait_for(lambda: lane.acks.acked == 6, 5, what="acknowledged while the disk is away")
            assert lane.acks.early == 6
        finally:
            other.execute("ROLLBACK")
            other.close()
        await wait_for(lambda: store.durable, 10, what="writes again")
        await store.flush()
        changes = [e for e in query_events(store.path) if e.kind == "state_change"]
        assert len(changes) == 6, "what waited in memory was written"
        assert len([e for e in query_events(store.path) if e.kind == "alarm"]) == 6
        assert svc.supervisor.health_summary()[0] or "store" not in svc.supervisor.health_summary()[1]


async def test_hung_store_writer_stops_the_watchdog_and_says_why(tmp_path, monkeypatch, mosquitto):
    fake = FakeSystemd(tmp_path / "notify.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    release = threading.Event()
    real_execute = ops.execute

    def execute(conn, code, args):
        if code == ops.EVENT and args[2] == "hang":
            release.wait(30)  # a write that does not come back (a card stuck in its fsync)
        return real_execute(conn, code, args)

    monkeypatch.setattr(ops, "execute", execute)
    web = free_port()
    path = tmp_path / "edge.toml"
    path.write_text(SERVICE_TOML.format(web=web, mqtt=mosquitto.port, timeout=0.5))
    service = build_service(config_mod.load(path), tmp_path / "data", simulated=True, notifier=Notifier(fake.path),
                            config_path=path)
    sup = service.supervisor
    task = asyncio.create_task(sup.run())
    try:
        await wait_for(lambda: sup.ready, 15, what="READY")
        await wait_for(lambda: sup.watchdog_pings >= 3, 5, what="pings")
        store = service.ctx.store
        store.record_event("sensor", "hang", {"v": 1})
        t_hang = time.monotonic()
        await wait_for(lambda: sup.watchdog_withheld, 3, what="watchdog withheld")
        assert time.monotonic() - t_hang < 0.5 + 0.5, "withheld within the bound (and one health check)"
        assert re.search(r"store writer hung: one write has run [0-9.]+ s \(bound 0.5 s\)", sup.watchdog_withheld)
        pings = sup.watchdog_pings
        await asyncio.sleep(0.6)
        assert sup.watchdog_pings == pings, "pings went on while the writer hung"
        await asyncio.to_thread(fake.wait_for, "STATUS=watchdog withheld: store writer hung", 2)
        creds = service.ctx.credentials.get()
        async with digest_session(creds.user, creds.password) as s:
            async with s.get(f"http://127.0.0.1:{web}/healthz") as r:
                body = await r.json()
        assert r.status == 503 and "store writer hung" in body["watchdog"] and not body["ok"]
        # the relays do not care
        relays = service.ctx.registry.get(RELAYS)
        assert (await relays.pulse("strike", source="test")).ok
        release.set()
        await wait_for(lambda: not sup.watchdog_withheld, 3, what="pings again once the write returned")
        await wait_for(lambda: sup.watchdog_pings > pings, 2, what="pinging again")
    finally:
        release.set()
        sup.request_stop()
        await asyncio.wait_for(task, 15)
        service.ctx.platform.close()
        fake.close()
