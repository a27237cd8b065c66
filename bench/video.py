"""Benchmark: the dashboard camera. One JSON line per resolution (1280x720, 1920x1080).

- alarm_to_frame_*: a Zigbee2MQTT door message is published on a real Mosquitto (the service's
  ingest, rules and alarm path included; BENCH_VIDEO_ALARM_SOURCE=bus publishes the Alarm on
  the bus instead) and the time to the first decoded red frame is taken at a PyAV
  (libavformat/ffmpeg) client and at a GStreamer rtspsrc client, both over RTSP/TCP, 30
  alarms, p50/p95.
- cpu_ms_per_frame: service CPU time per frame drawn+encoded at the idle rate, 1 client.
- pss_mb_total / pss_mb_total_32_clients: the service's memory with 1 and 32 RTSP clients:
  PSS (shared pages divided among the processes that map them, so libraries shared with
  other programs count in part) summed over every process of the service (the process and
  any children); pss_mb_per_extra_client = what each of the 31 extra clients added.
  rss_mb_1_client / rss_mb_32_clients: the service process's RSS, as before (the figure of
  earlier runs; it counts shared libraries whole).
- cpu_ratio_32_vs_1: service CPU/s with 32 clients over CPU/s with 1 (children included).

The service runs in a child process (this file with --serve) so its CPU and memory are its
own; it sets up the process as ``edge run`` does (``edge.memtune``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALARMS = int(os.environ.get("BENCH_VIDEO_ALARMS", "30"))
WINDOW_S = float(os.environ.get("BENCH_VIDEO_WINDOW_S", "10"))
ALARM_SOURCE = os.environ.get("BENCH_VIDEO_ALARM_SOURCE", "mqtt")
MQTT_SENSOR = """
[[sensors]]
id = "front_door"
name = "Front door"
kind = "contact"
topic = "zigbee2mqtt/front_door"
adapter = "zigbee2mqtt"

[[rules]]
name = "front-door"
sensor = "front_door"
actions = [{ alarm = "Door forced open", kind = "intrusion" }]
"""


# ---- the service (child) ------------------------------------------------------------------
def serve(toml_path: str, data_dir: str) -> None:
    import asyncio

    from edge import config as config_mod
    from edge.bus import Alarm, SensorChanged
    from edge.service import build_service

    try:  # as `edge run` does (absent before issue 16)
        from edge.memtune import tune_process
    except ImportError:
        pass
    else:
        tune_process()

    async def main() -> None:
        cfg = config_mod.load(toml_path)
        service = build_service(cfg, Path(data_dir), simulated=True, config_path=Path(toml_path))
        ctx, sup = service.ctx, service.supervisor
        video = service.component("video")
        task = asyncio.create_task(sup.run())
        loop = asyncio.get_running_loop()
        while not (video.rtsp and video.rtsp.port and sup.ready):
            await asyncio.sleep(0.05)
        for i, (name, kind, st) in enumerate([("Hall", "motion", {"occupancy": False}),
                                              ("Kitchen", "leak", {"water_leak": False}), ("Server room", "temperature", {"temperature": 21.5}),
                                              ("Back door", "contact", {"contact": True}), ("Garage", "contact", {"contact": False})]):
            ctx.bus.publish(SensorChanged(name, {**st, "battery": 80 - i, "linkquality": 150}, tuple(st)))
        c = ctx.credentials.get()
        print(json.dumps({"port": video.rtsp.port, "user": c.user, "password": c.password,
                          "mount": cfg.video.mount, "web": cfg.web.port}), flush=True)

        def reader() -> None:
            for line in sys.stdin:
                cmd = line.strip()
                if cmd in ("on", "off"):
                    loop.call_soon_threadsafe(ctx.bus.publish, Alarm("bench", "Front door", cmd == "on", "intrusion", "Door forced open"))
                elif cmd == "quit":
                    break
            loop.call_soon_threadsafe(sup.request_stop)

        threading.Thread(target=reader, daemon=True).start()
        await task

    asyncio.run(main())


# ---- clients (bench process) ------------------------------------------------------------
def is_red(rgb) -> bool:
    return rgb[0] > 150 and rgb[1] < 70 and rgb[2] < 70


class PyAVClient(threading.Thread):
    def __init__(self, url: str, decode: bool = True):
        super().__init__(daemon=True)
        self.url, self.decode = url, decode
        self.events: list[tuple[float, bool]] = []  # (time, red)
        self.packets = 0
        self.stop_flag = False
        self.error = None

    def run(self) -> None:
        import av
        from PIL import ImageStat

        try:
            with av.open(self.url, options={"rtsp_transport": "tcp", "flags": "low_delay", "analyzeduration": "1000000"},
                         timeout=15) as c:
                s = c.streams.video[0]
                for pkt in c.demux(s):
                    self.packets += 1
                    if self.stop_flag:
                        return
                    if not self.decode:
                        continue
                    for f in pkt.decode():
                        img = f.reformat(width=32, height=18, format="rgb24").to_image()
                        self.events.append((time.time(), is_red(ImageStat.Stat(img).mean)))
        except Exception as exc:  # noqa: BLE001
            self.error = exc


class RtspsrcClient:
    def __init__(self, url: str, user: str, password: str):
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst

        Gst.init(None)
        self.Gst = Gst
        self.events: list[tuple[float, bool]] = []
        self.pipe = Gst.parse_launch(
            f"rtspsrc location={url} user-id={user} user-pw={password} protocols=tcp latency=0 "
            "! rtph264depay ! avdec_h264 ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=32,height=18 "
            "! appsink name=sink emit-signals=true sync=false max-buffers=4 drop=true")
        self.pipe.get_by_name("sink").connect("new-sample", self._sample)

    def _sample(self, sink):
        s = sink.emit("pull-sample")
        buf = s.get_buffer()
        data = buf.extract_dup(0, buf.get_size())
        n = len(data) // 3
        mean = [sum(data[i::3]) / n for i in range(3)]
        self.events.append((time.time(), is_red(mean)))
        return self.Gst.FlowReturn.OK

    def start(self) -> None:
        self.pipe.set_state(self.Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipe.set_state(self.Gst.State.NULL)


def wait_event(client, red: bool, after: float, timeout: float = 10.0) -> float | None:
    deadline = time.monotonic() + timeout
    i = 0
    while time.monotonic() < deadline:
        ev = client.events
        while i < len(ev):
            t, r = ev[i]
            if t >= after and r == red:
                return t
            i += 1
        time.sleep(0.002)
    return None


def proc_tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def proc_cpu_s(pid: int) -> float:
    """CPU time of ``pid`` and its children (live ones, and those it waited for)."""
    total = 0.0
    for p in proc_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = fields[11:15] if p == pid else fields[11:13]  # utime stime (cutime cstime: children it waited for)
        total += sum(int(f) for f in ticks)
    return total / os.sysconf("SC_CLK_TCK")


def pss_mb(pid: int) -> float:
    """PSS of ``pid`` and every process under it (/proc/PID/smaps_rollup)."""
    total = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total / 1024


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def frames_total(web_port: int, user: str, password: str) -> float:
    import requests
    from requests.auth import HTTPDigestAuth

    r = requests.get(f"http://127.0.0.1:{web_port}/metrics", auth=HTTPDigestAuth(user, password), timeout=5)
    for line in r.text.splitlines():
        if line.startswith("edge_video_frames_total "):
            return float(line.split()[1])
    return 0.0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def first_boot(data_dir: Path) -> None:
    """The data dir as every start after the first finds it (credentials, TLS certificate): the
    figures are the appliance's in service, not its first boot's (making the certificate
    loads the cryptography package, ~2 MB, once)."""
    from edge import credentials

    data_dir.mkdir(parents=True, exist_ok=True)
    credentials.load_or_create(data_dir)
    try:
        from edge import tls
    except ImportError:  # before issue 14
        return
    tls.load_or_create(data_dir)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(width: int, height: int) -> dict:
    from tests.peers import mosquitto_broker

    with contextlib.ExitStack() as stack:
        mqtt = None
        extra = ""
        if ALARM_SOURCE == "mqtt":
            import paho.mqtt.client as paho

            broker = stack.enter_context(mosquitto_broker())
            extra = f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n' + MQTT_SENSOR
            mqtt = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-video-door")
            mqtt.connect(broker.host, broker.port)
            mqtt.loop_start()
            stack.callback(mqtt.loop_stop)
        return _bench(width, height, extra, mqtt)


def _bench(width: int, height: int, extra_toml: str, mqtt) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-video-"))
    toml = tmp / "edge.toml"
    toml.write_text(f'[site]\nname = "Bench site"\n[web]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                    f'[video]\nwidth = {width}\nheight = {height}\nfps = 1\nrtsp_host = "127.0.0.1"\nrtsp_port = {free_port()}\n'
                    + extra_toml)
    first_boot(tmp / "data")
    log = open(tmp / "service.log", "w")
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(toml), str(tmp / "data")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    try:
        info = json.loads(child.stdout.readline())
        base = f"rtsp://127.0.0.1:{info['port']}{info['mount']}"
        url = base.replace("rtsp://", f"rtsp://{info['user']}:{info['password']}@")

        def send(cmd: str) -> None:
            if mqtt is not None:  # the door opens (alarm) / closes (clear), as a Zigbee2MQTT sensor says it
                mqtt.publish("zigbee2mqtt/front_door", json.dumps({"contact": cmd != "on"}), qos=1)
                return
            child.stdin.write(cmd + "\n")
            child.stdin.flush()

        ff = PyAVClient(url)
        ff.start()
        gs = RtspsrcClient(base, info["user"], info["password"])
        gs.start()
        t_start = time.time()
        assert wait_event(ff, False, t_start - 60, 20) and wait_event(gs, False, t_start - 60, 20), f"no picture: {ff.error}"
        if mqtt is not None:
            send("off")  # the door starts closed
            time.sleep(1.0)
        ff_ms: list[float] = []
        gs_ms: list[float] = []
        for _ in range(ALARMS):
            time.sleep(random.uniform(0.3, 0.9))  # not in step with the idle ticks
            t0 = time.time()
            send("on")
            a, b = wait_event(ff, True, t0), wait_event(gs, True, t0)
            if a is not None:
                ff_ms.append((a - t0) * 1000)
            if b is not None:
                gs_ms.append((b - t0) * 1000)
            time.sleep(random.uniform(0.2, 0.5))
            t1 = time.time()
            send("off")
            wait_event(ff, False, t1)
            wait_event(gs, False, t1)
        gs.stop()

        def window() -> tuple[float, float]:
            c0, f0, t0 = proc_cpu_s(child.pid), frames_total(info["web"], info["user"], info["password"]), time.monotonic()
            time.sleep(WINDOW_S)
            c1, f1, t1 = proc_cpu_s(child.pid), frames_total(info["web"], info["user"], info["password"]), time.monotonic()
            return (c1 - c0) / (t1 - t0), (c1 - c0) / max(1.0, f1 - f0)

        time.sleep(2)
        cpu1_s, cpu_per_frame = window()
        rss1 = proc_rss_mb(child.pid)
        pss1 = pss_mb(child.pid)
        more = [PyAVClient(url, decode=False) for _ in range(31)]
        for c in more:
            c.start()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not all(c.packets > 0 for c in more):
            time.sleep(0.1)
        receiving = sum(1 for c in more if c.packets > 0) + 1
        time.sleep(2)
        cpu32_s, _ = window()
        rss32 = proc_rss_mb(child.pid)
        pss32 = pss_mb(child.pid)
        ff.stop_flag = True
        for c in more:
            c.stop_flag = True
        return {
            "bench": "video",
            "resolution": f"{width}x{height}",
            "alarm_to_frame_ffmpeg_p50_ms": round(statistics.median(ff_ms), 1) if ff_ms else None,
            "alarm_to_frame_ffmpeg_p95_ms": round(pct(ff_ms, 95), 1) if ff_ms else None,
            "alarm_to_frame_rtspsrc_p50_ms": round(statistics.median(gs_ms), 1) if gs_ms else None,
            "alarm_to_frame_rtspsrc_p95_ms": round(pct(gs_ms, 95), 1) if gs_ms else None,
            "alarms_seen_ffmpeg": len(ff_ms),
            "alarms_seen_rtspsrc": len(gs_ms),
            "alarm_source": ALARM_SOURCE,
            "cpu_ms_per_frame": round(cpu_per_frame * 1000, 1),
            "pss_mb_total": round(pss1, 1),
            "pss_mb_total_32_clients": round(pss32, 1),
            "pss_mb_per_extra_client": round((pss32 - pss1) / max(1, receiving - 1), 2),
            "rss_mb_1_client": round(rss1, 1),
            "rss_mb_32_clients": round(rss32, 1),
            "clients_receiving": receiving,
            "cpu_ratio_32_vs_1": round(cpu32_s / cpu1_s, 2) if cpu1_s else None,
        }
    finally:
        try:
            child.stdin.write("quit\n")
            child.stdin.flush()
            child.wait(15)
        except Exception:  # noqa: BLE001
            child.kill()
            child.wait()
        log.close()


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
        return
    for w, h in ((1280, 720), (1920, 1080)):
        print(json.dumps(bench(w, h)), flush=True)


if __name__ == "__main__":
    main()
