"""The service is SIGKILLed in the middle of a 2 s hardware-timed pulse: the board (its own
process) releases the relay on time by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .peers import free_port, venv_bin, wait_port
from .relay_peers import REPO, SimProcess

TOL_MS = 20


def test_sigkill_mid_hardware_timed_pulse(tmp_path: Path):
    sim = SimProcess("waveshare-8")
    web_port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f"""
[web]
host = "127.0.0.1"
port = {web_port}

[relays.boards.main]
type = "modbus_tcp"
profile = "waveshare-8"
host = "127.0.0.1"
port = {sim.port}

[relays.channels.door_strike]
board = "main"
channel = 1
pulse_ms = 2000
""")
    data = tmp_path / "data"
    log = open(tmp_path / "service.log", "w")
    service = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--data-dir", str(data)],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", web_port, timeout=20)
        # the installer's CLI, through the running service's HTTP API
        out = subprocess.run([venv_bin("edge"), "relay", "pulse", "door_strike", "--ms", "2000",
                              "--config", str(cfg), "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert "door_strike: pulse 2000 ms ok" in out.stdout
        time.sleep(0.3)
        os.kill(service.pid, signal.SIGKILL)
        killed_at = time.time()
        service.wait(5)
        assert service.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and len(sim.changes(1)) < 2:
            time.sleep(0.02)
        changes = sim.changes(1)
        assert [on for _, on in changes] == [True, False], changes
        (t_on, _), (t_off, _) = changes
        assert t_on < killed_at < t_off, "the kill must land inside the pulse"
        assert abs((t_off - t_on) * 1000 - 2000) <= TOL_MS, f"board released after {(t_off - t_on) * 1000:.1f} ms"
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        sim.stop()
        log.close()
