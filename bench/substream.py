"""Benchmark: what the substream costs. One JSON line: the service at 1280x720, 5 fps idle, with
and without the 640x360 substream (one render, a scaled copy into a second encoder), with one
RTSP client on each stream served (the substream's encoder gets frames only while a client
watches it: without one it costs nothing).

- cpu_ms_per_frame_{main,with_sub}: service CPU time per frame drawn and encoded.
- rss_mb_{main,with_sub}: service RSS after the window; pss_mb_*: its PSS (every process).
- sub_extra_cpu_ms_per_frame, sub_extra_rss_mb: the difference.

The service runs in a child process (bench/video.py --serve) so its CPU and RSS are its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW_S = float(os.environ.get("BENCH_SUBSTREAM_WINDOW_S", "20"))
FPS = 5

spec = importlib.util.spec_from_file_location("bench_video", ROOT / "bench" / "video.py")
video = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video)  # type: ignore[union-attr]


def measure(substream: bool) -> tuple[float, float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-sub-"))
    toml = tmp / "edge.toml"
    toml.write_text(f'[site]\nname = "Bench site"\n[web]\nhost = "127.0.0.1"\nport = {video.free_port()}\n'
                    f'[video]\nwidth = 1280\nheight = 720\nfps = {FPS}\nrtsp_host = "127.0.0.1"\n'
                    f'rtsp_port = {video.free_port()}\nsubstream = {"true" if substream else "false"}\n')
    video.first_boot(tmp / "data")
    log = open(tmp / "service.log", "w")
    child = subprocess.Popen([sys.executable, str(ROOT / "bench" / "video.py"), "--serve", str(toml), str(tmp / "data")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    try:
        info = json.loads(child.stdout.readline())
        auth = f"rtsp://{info['user']}:{info['password']}@127.0.0.1:{info['port']}"
        clients = [video.PyAVClient(auth + info["mount"], decode=False)]
        if substream:
            clients.append(video.PyAVClient(auth + info["mount"] + "_sub", decode=False))
        for c in clients:
            c.start()
        deadline = time.monotonic() + 20
        while not all(c.packets for c in clients) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # past start-up
        f0, c0 = video.frames_total(info["web"], info["user"], info["password"]), video.proc_cpu_s(child.pid)
        time.sleep(WINDOW_S)
        f1, c1 = video.frames_total(info["web"], info["user"], info["password"]), video.proc_cpu_s(child.pid)
        rss = video.proc_rss_mb(child.pid)
        pss = video.pss_mb(child.pid)
        for c in clients:
            c.stop_flag = True
        return (c1 - c0) / max(1.0, f1 - f0) * 1000, rss, pss
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


def main() -> None:
    cpu_main, rss_main, pss_main = measure(False)
    cpu_sub, rss_sub, pss_sub = measure(True)
    print(json.dumps({
        "bench": "substream", "size": "1280x720", "substream": "640x360", "fps": FPS,
        "cpu_ms_per_frame_main": round(cpu_main, 1), "cpu_ms_per_frame_with_sub": round(cpu_sub, 1),
        "sub_extra_cpu_ms_per_frame": round(cpu_sub - cpu_main, 1),
        "rss_mb_main": round(rss_main, 1), "rss_mb_with_sub": round(rss_sub, 1),
        "sub_extra_rss_mb": round(rss_sub - rss_main, 1),
        "pss_mb_main": round(pss_main, 1), "pss_mb_with_sub": round(pss_sub, 1),
        "sub_extra_pss_mb": round(pss_sub - pss_main, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
