"""`edge demo`: the real service on the shipped demo config, simulated hardware, a local
Mosquitto on 127.0.0.1 and data under ./var. Ctrl-C stops everything cleanly."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from hw.platform import SimulatedPlatform

from . import credentials as credentials_mod
from .config import Config
from .service import configure_logging, run_service, run_to_exit

log = logging.getLogger("edge.demo")

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 1883


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def start_broker(data_dir: Path, port: int = BROKER_PORT) -> subprocess.Popen[bytes] | None:
    """Start Mosquitto on 127.0.0.1:port with a config under data_dir (None if one already
    listens there: the demo then uses it)."""
    if _port_open(BROKER_HOST, port):
        log.warning("an MQTT broker already listens on %s:%d; the demo uses it", BROKER_HOST, port)
        return None
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf_dir = (data_dir / "mosquitto").resolve()
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "mosquitto.conf"
    # loopback only: nothing off this machine can reach the demo broker
    conf.write_text(
        f"listener {port} {BROKER_HOST}\nallow_anonymous true\npersistence true\n"
        f"persistence_location {conf_dir}/\nlog_dest file {conf_dir}/mosquitto.log\n"
        # QoS 1 readings in a burst must queue for the service, not be dropped at 1,000
        "max_inflight_messages 1000\nmax_queued_messages 1000000\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _port_open(BROKER_HOST, port):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"mosquitto exited with {proc.returncode}; see {conf_dir}/mosquitto.log")
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"mosquitto did not listen on {BROKER_HOST}:{port} within 5 s")


def banner(cfg: Config, data_dir: Path) -> str:
    creds, _ = credentials_mod.load_or_create(data_dir)
    web = cfg.web
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::") else web.host
    lines = [
        "",
        "edge demo is running (simulated hardware). Ctrl-C stops it.",
        f"  health:   http://{host}:{web.port}/healthz",
        f"  metrics:  http://{host}:{web.port}/metrics",
        f"  login:    user '{creds.user}', password: run `.venv/bin/edge credentials --data-dir {data_dir}`",
    ]
    if cfg.video.enabled:
        v = cfg.video
        vhost = "127.0.0.1" if v.rtsp_host in ("0.0.0.0", "::") else v.rtsp_host
        lines += [
            f"  camera:   rtsp://{vhost}:{v.rtsp_port}{v.mount}  (RTSP, digest login as above;",
            f"            e.g. ffplay -rtsp_transport tcp rtsp://{creds.user}:<password>@{vhost}:{v.rtsp_port}{v.mount})",
            f"  snapshot: http://{host}:{web.port}/snapshot.jpg",
        ]
    lines += [
        f"  MQTT:     {BROKER_HOST}:{cfg.mqtt.port}",
        f"  panel:    http://{host}:{web.port}/panel (simulated LCD + buttons; or curl -X POST .../api/buttons/select)",
        "  trigger the front door:",
        "    mosquitto_pub -t zigbee2mqtt/front_door -m '{\"contact\":false}'   # door opens",
        "    mosquitto_pub -t zigbee2mqtt/front_door -m '{\"contact\":true}'    # door closes",
        "",
    ]
    return "\n".join(lines)


def run_demo(cfg: Config, data_dir: Path, config_path: Path) -> int:
    configure_logging(cfg.service.log_level)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # the demo config's broker port (another config may use another port: its own broker)
    broker = start_broker(data_dir, cfg.mqtt.port) if cfg.mqtt.enabled and cfg.mqtt.host in ("127.0.0.1", "localhost") else None

    def stop_broker() -> None:
        if broker is not None and broker.poll() is None:
            broker.terminate()
            try:
                broker.wait(5)
            except subprocess.TimeoutExpired:
                broker.kill()

    try:
        print(banner(cfg, data_dir), flush=True)
        # the demo's broker keeps its files under the data dir: a factory reset keeps them
        platform = SimulatedPlatform(keep_on_reset=("mosquitto",))
        run_to_exit(run_service(cfg, data_dir, platform=platform, config_path=config_path, demo=True), cleanup=stop_broker)
    except KeyboardInterrupt:
        pass
    finally:
        stop_broker()
    return 0
