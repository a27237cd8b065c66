#!/usr/bin/env python3
"""Boot the built SD image under qemu-system-aarch64 (-M virt) and check it from outside.

    make image-test            (after `make image`)

On a throwaway copy of the image (1 GiB larger, so first-boot growroot has work) this writes
two things that exist only for the test, with debugfs (no mounts):
  * a drop-in that runs edge with --simulated (qemu has no GPIO/I2C/serial hardware), and
  * device credentials with a password made up here (the image ships none; on a real device
    edge creates them on first start), so the test can log in to /healthz.
Kernel and initrd are taken from the image's own FAT partition. The serial console is
read line by line and timed. Checks, in order: first-boot units (growroot, hostname edge-XXXX
from the serial), multi-user.target reached, edge.service started (= READY=1 from Type=notify),
/healthz refuses without credentials and answers ready with them, then RTSP: if something
answers RTSP on the forwarded 554, a frame is read with ffmpeg; if nothing answers there,
that check is reported as skipped (video is not in this build). Times are printed and the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST_SERIAL = "IMGTEST9"  # -> hostname edge-est9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Console:
    """qemu's serial console on a pipe; every line kept with its time since boot start."""

    def __init__(self, proc: subprocess.Popen, t0: float, log_path: Path):
        self.proc, self.t0 = proc, t0
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.log = open(log_path, "w", encoding="utf-8", errors="replace")
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not chunk:
                break
            buf += chunk
            *done, buf = re.split(rb"\r?\n", buf)
            # the getty prompt has no newline after it
            if re.search(rb"login: $", buf):
                done.append(buf)
                buf = b""
            for raw in done:
                text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace")).strip("\r")
                t = time.monotonic() - self.t0
                with self.cond:
                    self.lines.append((t, text))
                    self.cond.notify_all()
                self.log.write(f"[{t:7.1f}] {text}\n")
                self.log.flush()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, fail: str | None = None) -> tuple[float, re.Match]:
        rx, bad = re.compile(pattern), re.compile(fail) if fail else None
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for t, line in self.lines[seen:]:
                    if m := rx.search(line):
                        return t, m
                    if bad and bad.search(line):
                        raise AssertionError(f"console: {line}")
                seen = len(self.lines)
                if self.proc.poll() is not None:
                    raise AssertionError(f"qemu exited ({self.proc.returncode}) before /{pattern}/")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no /{pattern}/ on the console within {timeout:.0f} s")
                self.cond.wait(min(left, 1.0))

    def tail(self, n: int = 40) -> str:
        return "\n".join(f"[{t:7.1f}] {l}" for t, l in self.lines[-n:])


def partitions(img: Path) -> list[dict]:
    table = json.loads(run("sfdisk", "-J", str(img)).stdout)["partitiontable"]
    return table["partitions"]


def prepare(image: Path, work: Path, password: str) -> tuple[Path, Path, Path]:
    """Copy the image, take kernel+initrd from its FAT partition, seed the test-only files."""
    disk = work / "disk.img"
    run("cp", "--sparse=always", str(image), str(disk))
    boot, root = partitions(disk)[:2]
    boot_off, root_off = boot["start"] * 512, root["start"] * 512
    run("mcopy", "-n", "-i", f"{disk}@@{boot_off}", "::config.txt", str(work / "config.txt"))
    conf = (work / "config.txt").read_text()
    kernel = re.search(r"^kernel=(\S+)", conf, re.M).group(1)
    initrd = re.search(r"^initramfs (\S+)", conf, re.M).group(1)
    for name, local in ((kernel, "vmlinuz"), (initrd, "initrd.img")):
        run("mcopy", "-n", "-i", f"{disk}@@{boot_off}", f"::{name}", str(work / local))
    fs = f"{disk}?offset={root_off}"
    passwd = run("debugfs", "-R", "cat /etc/passwd", fs).stdout
    m = re.search(r"^edge:x:(\d+):(\d+):", passwd, re.M)
    if not m:
        raise AssertionError("no edge user in the image's /etc/passwd")
    uid, gid = m.groups()
    dropin = work / "image-test.conf"
    dropin.write_text(
        "# written by image-build/image_test.py into a throwaway copy: qemu has no GPIO/I2C/serial\n"
        "[Service]\nExecStart=\n"
        "ExecStart=/opt/edge/venv/bin/edge run --config /etc/edge/edge.toml --data-dir /var/lib/edge --simulated\n"
    )
    creds = work / "credentials.json"
    creds.write_text(json.dumps({"user": "admin", "password": password, "device_uuid": str(uuid.uuid4()),
                                 "serial": TEST_SERIAL, "acknowledged": False}))
    cmds = work / "debugfs.cmds"
    cmds.write_text(
        "mkdir /etc/systemd/system/edge.service.d\n"
        f"write {dropin} /etc/systemd/system/edge.service.d/image-test.conf\n"
        "sif /etc/systemd/system/edge.service.d/image-test.conf mode 0100644\n"
        f"write {creds} /var/lib/edge/credentials.json\n"
        f"sif /var/lib/edge/credentials.json uid {uid}\n"
        f"sif /var/lib/edge/credentials.json gid {gid}\n"
        "sif /var/lib/edge/credentials.json mode 0100600\n"
    )
    out = run("debugfs", "-w", "-f", str(cmds), fs)
    if "rror" in out.stderr.replace("debugfs 1.", ""):
        raise AssertionError(f"debugfs: {out.stderr}")
    check = run("debugfs", "-R", "cat /var/lib/edge/credentials.json", fs).stdout
    assert password in check, "credentials were not written into the image copy"
    # room for growroot; the partition table still ends where the image did
    with open(disk, "r+b") as fh:
        fh.truncate(disk.stat().st_size + (1 << 30))
    return disk, work / "vmlinuz", work / "initrd.img"


def http_get(url: str, auth: tuple[str, str] | None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def rtsp_answers(port: int, timeout: float = 5) -> str | None:
    """The first line of a reply to RTSP OPTIONS, or None (slirp accepts the TCP connect even
    when nothing listens in the guest, so only a reply counts)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            data = s.recv(512)
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line if line.startswith("RTSP/1.0") else None


def main() -> int:
    # a SIGTERM (make interrupted, CI timeout) still stops qemu through the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where `make image` put the image")
    ap.add_argument("--image", type=Path, help="image file (default: newest edge-*.img in --out)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for the whole boot")
    ap.add_argument("--rtsp-path", default="/dashboard")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (disk copy, console log)")
    args = ap.parse_args()

    image = args.image or max(args.out.glob("edge-*-rpi-arm64.img"), key=lambda p: p.stat().st_mtime, default=None)
    if image is None or not image.exists():
        print(f"image-test: no image in {args.out}: run `make image` first", file=sys.stderr)
        return 2
    for tool in ("qemu-system-aarch64", "mcopy", "debugfs", "sfdisk"):
        if shutil.which(tool) is None:
            print(f"image-test: {tool} missing (make image-tools)", file=sys.stderr)
            return 2

    work = Path(tempfile.mkdtemp(prefix="image-test-", dir=args.out))
    password = "-".join(secrets.token_hex(2) for _ in range(3))
    results: dict = {"bench": "image_test", "image": image.name}
    print(f"image-test: {image} (work dir {work})")
    disk, kernel, initrd = prepare(image, work, password)
    http_port, rtsp_port = free_port(), free_port()
    cmd = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "root=LABEL=RASPIROOT rw rootwait console=ttyAMA0 systemd.show_status=1 "
        # systemd stops printing unit status once a getty owns the console: journald's copy
        # of the log on the console keeps "Started edge.service" (READY=1) visible.
        "systemd.journald.forward_to_console=1",
        "-drive", f"if=none,file={disk},format=raw,id=hd0,cache=unsafe", "-device", "virtio-blk-pci,drive=hd0",
        "-device", "virtio-rng-pci",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{http_port}-:80,hostfwd=tcp:127.0.0.1:{rtsp_port}-:554",
        "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE rom (package ipxe-qemu) needed
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    con = Console(proc, t0, work / "console.log")
    deadline = t0 + args.timeout
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    failures: list[str] = []
    try:
        edge_failed = r"Failed to start edge\.service|edge\.service: (Main process exited|Watchdog timeout|Failed with result)"
        t, m = con.wait_for(r"growroot: /dev/\S+ grew from (\d+) MiB to (\d+) MiB", left(), fail=edge_failed)
        grown = (int(m.group(1)), int(m.group(2)))
        print(f"  {t:6.1f} s  first boot grew the root partition {grown[0]} -> {grown[1]} MiB")
        if grown[1] <= grown[0]:
            failures.append(f"growroot did not grow the partition: {grown}")
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=edge_failed)
        results["ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge.service started: READY=1 (Type=notify)")
        t, _ = con.wait_for(r"Reached target multi-user\.target", left(), fail=edge_failed)
        results["multi_user_s"] = round(t, 1)
        print(f"  {t:6.1f} s  multi-user.target reached")
        t, m = con.wait_for(r"^(\S+) login:", left())
        results["hostname"] = m.group(1)
        print(f"  {t:6.1f} s  login prompt of {m.group(1)}")
        want = "edge-" + TEST_SERIAL[-4:].lower()
        if m.group(1) != want:
            failures.append(f"hostname {m.group(1)!r}, expected {want!r} from the serial {TEST_SERIAL}")

        url = f"http://127.0.0.1:{http_port}/healthz"
        status, body = 0, b""
        while time.monotonic() < deadline:
            try:
                status, body = http_get(url, ("admin", password))
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(2)
        t = time.monotonic() - t0
        results["healthz_s"] = round(t, 1)
        health = json.loads(body) if status == 200 else {}
        print(f"  {t:6.1f} s  /healthz -> {status} ready={health.get('ready')} ok={health.get('ok')}")
        if status != 200 or not health.get("ready"):
            failures.append(f"/healthz: {status} {body[:300]!r}")
        anon, _ = http_get(url, None)
        print(f"           /healthz without credentials -> {anon}")
        if anon != 401:
            failures.append(f"/healthz without credentials answered {anon}, expected 401")

        reply = rtsp_answers(rtsp_port)
        if reply is None:
            results["first_frame_s"] = None
            print("           RTSP: nothing answers on port 554 in this image (video not in this build): "
                  "frame check SKIPPED")
        elif shutil.which("ffmpeg") is None:
            print(f"           RTSP answers ({reply}) but ffmpeg is missing here: frame check SKIPPED")
        else:
            frame = work / "frame.png"
            url = f"rtsp://admin:{password}@127.0.0.1:{rtsp_port}{args.rtsp_path}"
            t_ask = time.monotonic()
            res = subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1",
                                  "-y", str(frame)], capture_output=True, text=True, timeout=max(30, left()))
            t = time.monotonic() - t0
            if res.returncode == 0 and frame.exists() and frame.stat().st_size > 0:
                results["first_frame_s"] = round(t, 1)
                results["frame_after_request_s"] = round(time.monotonic() - t_ask, 1)
                print(f"  {t:6.1f} s  RTSP {args.rtsp_path}: first frame decoded "
                      f"({results['frame_after_request_s']} s after asking)")
            else:
                failures.append(f"RTSP answers ({reply}) but no frame from {args.rtsp_path}: {res.stderr[-500:]}")
    except AssertionError as exc:
        failures.append(str(exc))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    results["ok"] = not failures
    if failures:
        print("image-test FAILED:\n  " + "\n  ".join(failures))
        print("console tail:\n" + con.tail())
    if failures or args.keep:
        print(f"console log and disk copy kept in {work}")
        (work / "disk.img").unlink(missing_ok=True) if not args.keep else None
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
