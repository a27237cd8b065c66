"""`edge demo`: the real service on the shipped demo config, simulated hardware, a local
Mosquitto on 127.0.0.1, a local SIA DC-09 alarm receiver (pysiaalarm) that prints what it
receives, and data under ./var. Ctrl-C stops everything cleanly."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from hw.platform import SimulatedPlatform

from . import credentials as credentials_mod
from . import paths
from .config import Config
from .receivers.keys import read_secret, secret_path, write_secret
from .service import configure_logging, run_service, run_to_exit

log = logging.getLogger("edge.demo")

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 1883
DEMO_RECEIVER = "arc"  # [receivers.sia.arc] in the demo config
DEMO_KEY = "DemoKey-16bytes!"  # a demo fixture (AES-128, ASCII): on an appliance a key is a secret of its own


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


def working_config(config_path: Path, data_dir: Path) -> Path:
    """The shipped demo config is part of the source tree: the demo runs on a copy in the data
    dir (made at the first start), so what the web console saves survives a restart and never
    edits the repository. Delete ``<data dir>/edge.toml`` to start from the shipped one again."""
    if Path(config_path).resolve() != paths.DEMO_CONFIG.resolve():
        return Path(config_path)
    copy = Path(data_dir) / "edge.toml"
    if not copy.exists():
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy2(config_path, copy)
    return copy


def start_demo_receiver(cfg: Config, data_dir: Path) -> Callable[[], None] | None:
    """When the config reports to ``[receivers.sia.arc]`` on this machine and nothing listens
    there: write the demo key file (0600) if missing, and run pysiaalarm there as the alarm
    receiving centre, printing each report. Returns its stop function (None: not started)."""
    rx = cfg.receivers.sia.get(DEMO_RECEIVER)
    if rx is None or rx.protocol != "tcp":
        return None
    _, host, port = rx.paths[0]
    if host not in ("127.0.0.1", "localhost"):
        return None
    key = None
    if rx.key_file is not None:
        path = secret_path(rx.key_file, data_dir)
        if not path.exists():
            write_secret(path, DEMO_KEY)
        key = read_secret(rx.key_file, data_dir, "AES key")
    if _port_open(host, port):
        log.warning("something already listens on %s:%d; the demo reports to it", host, port)
        return None
    try:
        from pysiaalarm import SIAAccount
        from pysiaalarm.aio import CommunicationsProtocol, SIAClient
    except ImportError:  # a test extra: `make setup` installs it
        log.warning("pysiaalarm is not installed (make setup installs it): no demo alarm receiver on %s:%d", host, port)
        return None
    seen: set[str] = set()

    async def on_event(ev: Any) -> None:
        kind = str(getattr(ev.message_type, "value", ev.message_type))
        if kind == "NULL" or ev.sequence in seen:  # link tests; a resend it already has
            return
        seen.add(ev.sequence)
        text = " ".join(x.value for x in (ev.extended_data or []) if x.identifier == "I")
        what = ev.sia_code.type if ev.sia_code else ""
        print(f"[alarm receiver {host}:{port}] account {ev.account} seq {ev.sequence}: {ev.code} ({what}) "
              f"zone {ev.message or ev.ri}: {text}", flush=True)

    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()

    async def serve() -> None:
        client = SIAClient(host, port, [SIAAccount(rx.account, key)], on_event, protocol=CommunicationsProtocol.TCP)
        await client.async_start(reuse_address=True)
        try:
            await stopped.wait()
        finally:
            await client.async_stop()

    started = threading.Event()
    thread = threading.Thread(target=lambda: (loop.call_soon(started.set), loop.run_until_complete(serve())),
                              name="demo-alarm-receiver", daemon=True)
    thread.start()
    started.wait(5)
    print(f"demo alarm receiver (pysiaalarm) on {host}:{port}, account {rx.account}, "
          f"{'AES-' + str(len(key) * 8) if key else 'plain'}", flush=True)

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(stopped.set)
            thread.join(5)

    return stop


def banner(cfg: Config, data_dir: Path) -> str:
    creds, _ = credentials_mod.load_or_create(data_dir)
    web = cfg.web
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::") else web.host
    lines = [
        "",
        "edge demo is running (simulated hardware). Ctrl-C stops it.",
        f"  console:  http://{host}:{web.port}/  (the web console; config edits go to {data_dir}/edge.toml)",
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
        f"  panel:    http://{host}:{web.port}/panel (simulated LCD + buttons; or: curl --digest -u {creds.user}:<password>",
        f"            -H 'Content-Type: application/json' -d '{{}}' http://{host}:{web.port}/api/buttons/select)",
        *([f"  alarm receiver: SIA DC-09 {cfg.receivers.sia[DEMO_RECEIVER].primary} (reports print here; "
           "`.venv/bin/edge report test --config edge/demo/edge.toml --data-dir var`)"]
          if DEMO_RECEIVER in cfg.receivers.sia else []),
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
    stop_receiver = start_demo_receiver(cfg, data_dir)

    def stop_broker() -> None:
        if stop_receiver is not None:
            stop_receiver()
        if broker is not None and broker.poll() is None:
            broker.terminate()
            try:
                broker.wait(5)
            except subprocess.TimeoutExpired:
                broker.kill()

    try:
        print(banner(cfg, data_dir), flush=True)
        # the demo's broker keeps its files under the data dir: a factory reset keeps them
        platform = SimulatedPlatform(keep_on_reset=("mosquitto", "receivers"))
        run_to_exit(run_service(cfg, data_dir, platform=platform, config_path=config_path, demo=True), cleanup=stop_broker)
    except KeyboardInterrupt:
        pass
    finally:
        stop_broker()
    return 0
