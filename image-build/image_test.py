#!/usr/bin/env python3
"""Boot the built SD image under qemu-system-aarch64 (-M virt) and check it from outside.

    make image-test            (after `make image`)

A throwaway copy of the image (1 GiB larger, so first-boot growroot has work) gets one
test-only file, written with debugfs (no mounts): a drop-in that runs edge with --simulated
(qemu has no GPIO/I2C/serial hardware). Kernel and initrd come from the image's own FAT
partition; the serial console is read line by line and timed.

Boot 1 (first boot, as on a new card): root partition grown, hostname edge-XXXX, edge
READY=1 (systemd's "Started edge.service"), multi-user.target, plain-HTTP /healthz redirects
to HTTPS, and HTTPS /healthz refuses without credentials; then a power-button shutdown in
which edge stops cleanly.
Between the boots the credentials and the TLS certificate edge made on first boot are read
from the disk (debugfs): 0600, owned by edge, and their serial names the host.
Boot 2: READY again, /healthz answers ready over HTTPS (the client trusts exactly the device
certificate read from the disk) with those credentials; RTSP: if something answers RTSP on
the forwarded 554, a frame is read with ffmpeg (skipped, and said so, otherwise). Then the
front panel (its simulated buttons, through /api/buttons): Network > Use DHCP, which goes
through the real networkd backend and root's edge-ctl unit (`networkctl reload`), and
System > Reboot, which reboots the machine through edge-ctl (qemu runs with -no-reboot, so
the reboot ends qemu). After it the .network file edge wrote is read from the disk. Times are
printed; the last line is one JSON object.

The copy's /etc/edge/edge.toml gets `[service] system = "systemd"` so the simulated platform
still reboots for real (and `[network] driver = "networkd"` is already the appliance's), and
`loop_lag_max_ms = 5000`: under qemu's emulation the x264 encoder keeps the event loop more
than the Pi's 500 ms behind, and the watchdog would restart edge 15 s after READY.

"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


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


def prepare(image: Path, work: Path):
    """Copy the image, take kernel+initrd from its FAT partition, add the simulated drop-in."""
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
    cmds = work / "debugfs.cmds"
    cmds.write_text(
        "mkdir /etc/systemd/system/edge.service.d\n"
        f"write {dropin} /etc/systemd/system/edge.service.d/image-test.conf\n"
        "sif /etc/systemd/system/edge.service.d/image-test.conf mode 0100644\n"
    )
    out = run("debugfs", "-w", "-f", str(cmds), fs)
    check = run("debugfs", "-R", "cat /etc/systemd/system/edge.service.d/image-test.conf", fs).stdout
    assert "--simulated" in check, f"drop-in not written: {out.stderr}"
    # reboot for real under --simulated: [service] system = "systemd" in the copy's config
    toml = run("debugfs", "-R", "cat /etc/edge/edge.toml", fs).stdout
    # and a loop-lag bound for emulation: x264 under qemu TCG keeps the event loop 0.5-1 s behind,
    # so at the Pi's 500 ms the watchdog pings stop and systemd kills edge 15 s after READY
    toml = re.sub(r"^\[service\]$", '[service]\nsystem = "systemd"\nloop_lag_max_ms = 5000', toml, count=1,
                  flags=re.M)
    assert 'system = "systemd"' in toml and 'driver = "networkd"' in toml, "appliance config lacks [service]/[network]"
    (work / "edge.toml").write_text(toml)
    cmds.write_text(
        "rm /etc/edge/edge.toml\n"
        f"write {work / 'edge.toml'} /etc/edge/edge.toml\n"
        "sif /etc/edge/edge.toml mode 0100660\n"
        f"sif /etc/edge/edge.toml gid {gid}\n"
    )
    run("debugfs", "-w", "-f", str(cmds), fs)
    leftover = run("debugfs", "-R", "ls -l /var/lib/edge", fs).stdout
    assert "credentials.json" not in leftover, "the image ships credentials"
    # room for growroot; the partition table still ends where the image did
    with open(disk, "r+b") as fh:
        fh.truncate(disk.stat().st_size + (1 << 30))
    return disk, work / "vmlinuz", work / "initrd.img", fs, (int(uid), int(gid))


def http_get(url: str, auth: tuple[str, str] | None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def https_request(url: str, auth: tuple[str, str] | None, *, cafile: str | None = None, body: dict | None = None,
                  timeout: float = 15) -> tuple[int, bytes]:
    """GET (or POST a JSON body) over HTTPS: trusting exactly ``cafile`` (the device's own
    certificate), or, without it, not verifying (boot 1, before the certificate is read)."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    if cafile:
        ctx.check_hostname = False  # reached through a forwarded port on 127.0.0.1; the chain is pinned
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:  # Basic: inside TLS only
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def http_status_no_redirect(url: str, timeout: float = 10) -> tuple[int, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


class FrontPanel:
    """The simulated buttons and LCD through the web API (HTTPS, device credentials)."""

    def __init__(self, base: str, auth: tuple[str, str], cafile: str):
        self.base, self.auth, self.cafile = base, auth, cafile

    def lines(self) -> list[str]:
        status, body = https_request(self.base + "/api/lcd", self.auth, cafile=self.cafile)
        if status != 200:
            raise AssertionError(f"/api/lcd: {status} {body[:200]!r}")
        return json.loads(body)["lines"]

    def press(self, name: str) -> list[str]:
        status, body = https_request(self.base + f"/api/buttons/{name}", self.auth, cafile=self.cafile, body={})
        if status != 200:
            raise AssertionError(f"button {name}: {status} {body[:200]!r}")
        time.sleep(0.3)
        return self.lines()

    def until(self, pred, button: str = "down", tries: int = 10) -> list[str]:
        lines = self.lines()
        for _ in range(tries):
            if pred(lines):
                return lines
            lines = self.press(button)
        raise AssertionError(f"front panel: never got there; the LCD shows {lines}")

    def wait(self, pred, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        lines = self.lines()
        while not pred(lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"front panel: waited {timeout:.0f} s; the LCD shows {lines}")
            time.sleep(0.5)
            lines = self.lines()
        return lines

    def open_menu(self, entry: str, password: str) -> None:
        """From anywhere: back to home (the first-boot credentials screen, which shows the
        password, is acknowledged with SELECT), into the main menu, down to ``entry``, select."""
        for _ in range(3):
            self.press("back")
        for _ in range(8):
            lines = self.lines()
            if lines[0].startswith("Menu "):
                break
            if password in " ".join(lines):
                self.press("select")  # first-boot credentials: noted
                time.sleep(1.0)
                continue
            self.press("select")  # home -> main menu
        else:
            raise AssertionError(f"front panel: no main menu; the LCD shows {self.lines()}")
        self.until(lambda ls: any(f"> {entry}" in l for l in ls))
        self.press("select")


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


EDGE_FAILED = (r"Failed to start edge\.service|edge\.service: (Main process exited|Watchdog timeout|Failed with result)"
               r"|edge\.service: State '\S+' timed out")


class Boot:
    """One qemu run of the disk copy, with HTTP and RTSP forwarded to free local ports."""

    def __init__(self, name: str, work: Path, disk: Path, kernel: Path, initrd: Path):
        self.name, self.work = name, work
        self.http_port, self.rtsp_port, self.https_port = free_port(), free_port(), free_port()
        self.monitor = work / f"{name}.monitor"
        cmd = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-monitor", f"unix:{self.monitor},server,nowait",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "root=LABEL=RASPIROOT rw rootwait console=ttyAMA0 systemd.show_status=1 "
            # systemd stops printing unit status once a getty owns the console: journald's
            # copy of the log on the console keeps "Started edge.service" (READY=1) visible.
            "systemd.journald.forward_to_console=1",
            "-drive", f"if=none,file={disk},format=raw,id=hd0,cache=unsafe", "-device", "virtio-blk-pci,drive=hd0",
            "-device", "virtio-rng-pci",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.http_port}-:80,"
                       f"hostfwd=tcp:127.0.0.1:{self.rtsp_port}-:554,hostfwd=tcp:127.0.0.1:{self.https_port}-:443",
            "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE rom (package ipxe-qemu) needed
        ]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.con = Console(self.proc, self.t0, work / f"console-{name}.log")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def healthz(self, auth, deadline: float, cafile: str | None = None) -> tuple[int, bytes]:
        url = f"https://127.0.0.1:{self.https_port}/healthz"
        status, body = 0, b""
        while time.monotonic() < deadline:
            try:
                status, body = https_request(url, auth, cafile=cafile)
                if status in (200, 401):
                    return status, body
            except OSError:
                pass
            time.sleep(2)
        return status, body

    def power_button(self, timeout: float) -> float:
        """Press the virt board's power button (gpio-keys -> logind) and wait for power-off."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.monitor))
            s.sendall(b"system_powerdown\n")
            time.sleep(0.5)
        t_press = self.elapsed()
        t, _ = self.con.wait_for(r"reboot: Power down", timeout)
        self.proc.wait(30)
        return t - t_press

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> int:
    # a SIGTERM (make interrupted, CI timeout) still stops qemu through the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where `make image` put the image")
    ap.add_argument("--image", type=Path, help="image file (default: newest edge-*.img in --out)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for each boot")
    ap.add_argument("--rtsp-path", default="/dashboard")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (disk copy, console logs)")
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
    results: dict = {"bench": "image_test", "image": image.name}
    failures: list[str] = []
    print(f"image-test: {image} (work dir {work})")
    disk, kernel, initrd, fs, (uid, gid) = prepare(image, work)
    boot: Boot | None = None
    boots: list[Boot] = []
    try:
        # ---- boot 1: first boot ---------------------------------------------------------
        print("boot 1 (first boot):")
        boot = Boot("boot1", work, disk, kernel, initrd)
        boots.append(boot)
        con, deadline = boot.con, time.monotonic() + args.timeout
        left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
        t, m = con.wait_for(r"growroot: /dev/\S+ grew from (\d+) MiB to (\d+) MiB", left(), fail=EDGE_FAILED)
        grown = (int(m.group(1)), int(m.group(2)))
        print(f"  {t:6.1f} s  root partition grown {grown[0]} -> {grown[1]} MiB")
        if grown[1] <= grown[0]:
            failures.append(f"growroot did not grow the partition: {grown}")
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["first_boot_ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge.service started: READY=1 (Type=notify)")
        t, _ = con.wait_for(r"Reached target multi-user\.target", left(), fail=EDGE_FAILED)
        results["first_boot_multi_user_s"] = round(t, 1)
        print(f"  {t:6.1f} s  multi-user.target reached")
        t, m = con.wait_for(r"^(edge-[0-9a-z]{4}|\S+) login:", left())
        hostname = results["hostname"] = m.group(1)
        print(f"  {t:6.1f} s  login prompt of {hostname}")
        status, _ = boot.healthz(None, deadline)
        print(f"  {boot.elapsed():6.1f} s  HTTPS /healthz without credentials -> {status}")
        if status != 401:
            failures.append(f"/healthz without credentials answered {status}, expected 401")
        status, location = http_status_no_redirect(f"http://127.0.0.1:{boot.http_port}/healthz")
        print(f"           plain HTTP /healthz -> {status} {location}")
        if status != 308 or not location.startswith("https://"):
            failures.append(f"plain HTTP /healthz answered {status} {location!r}, expected a 308 to HTTPS")
        took = boot.power_button(min(120.0, left()))
        results["shutdown_s"] = round(took, 1)
        stopped = any(re.search(r"Stopped edge\.service|edge\.service: Deactivated successfully", l)
                      for _, l in con.lines)
        print(f"           power button -> powered off in {took:.1f} s (edge stopped cleanly: {stopped})")
        if not stopped or any(re.search(EDGE_FAILED, l) for _, l in con.lines):
            failures.append("edge.service did not stop cleanly at shutdown")
        boot = None

        # ---- the identity edge made on first boot -----------------------------------------
        st = run("debugfs", "-R", "stat /var/lib/edge/credentials.json", fs).stdout
        mode = re.search(r"Mode:\s+(\d+)", st)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", st)
        if not (mode and owner):
            raise AssertionError("no /var/lib/edge/credentials.json after the first boot")
        creds = json.loads(run("debugfs", "-R", "cat /var/lib/edge/credentials.json", fs).stdout)
        print(f"           credentials.json: mode {mode.group(1)}, uid {owner.group(1)}, serial {creds['serial']}")
        if mode.group(1) != "0600" or int(owner.group(1)) != uid:
            failures.append(f"credentials.json mode {mode.group(1)} uid {owner.group(1)}, want 0600 uid {uid}")
        if hostname != "edge-" + creds["serial"][-4:].lower():
            failures.append(f"hostname {hostname} does not come from the serial {creds['serial']}")
        cafile = work / "device-cert.pem"
        cafile.write_text(run("debugfs", "-R", "cat /var/lib/edge/tls/cert.pem", fs).stdout)
        key_st = run("debugfs", "-R", "stat /var/lib/edge/tls/key.pem", fs).stdout
        if not re.search(r"Mode:\s+0600", key_st):
            failures.append("the TLS key is not mode 0600")
        print(f"           TLS certificate made on first boot ({cafile.stat().st_size} bytes PEM)")

        # ---- boot 2 ---------------------------------------------------------------------
        print("boot 2:")
        boot = Boot("boot2", work, disk, kernel, initrd)
        boots.append(boot)
        con, deadline = boot.con, time.monotonic() + args.timeout
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge.service started: READY=1")
        status, body = boot.healthz((creds["user"], creds["password"]), deadline, cafile=str(cafile))
        health = json.loads(body) if status == 200 else {}
        results["healthz_s"] = round(boot.elapsed(), 1)
        print(f"  {boot.elapsed():6.1f} s  /healthz with the device credentials -> {status} "
              f"ready={health.get('ready')} ({health.get('status')})")
        if status != 200 or not health.get("ready"):
            failures.append(f"/healthz: {status} {body[:300]!r}")

        reply = rtsp_answers(boot.rtsp_port)
        results["first_frame_s"] = None
        if reply is None:
            print("           RTSP: nothing answers on port 554 in this image (video not in this build): "
                  "frame check SKIPPED")
        elif shutil.which("ffmpeg") is None:
            print(f"           RTSP answers ({reply}) but ffmpeg is missing here: frame check SKIPPED")
        else:
            frame = work / "frame.png"
            url = f"rtsp://{creds['user']}:{creds['password']}@127.0.0.1:{boot.rtsp_port}{args.rtsp_path}"
            t_ask = time.monotonic()
            res = subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1",
                                  "-y", str(frame)], capture_output=True, text=True, timeout=max(30, left()))
            if res.returncode == 0 and frame.exists() and frame.stat().st_size > 0:
                results["first_frame_s"] = round(boot.elapsed(), 1)
                results["frame_after_request_s"] = round(time.monotonic() - t_ask, 1)
                print(f"  {boot.elapsed():6.1f} s  RTSP {args.rtsp_path}: first frame decoded "
                      f"({results['frame_after_request_s']} s after asking)")
            else:
                failures.append(f"RTSP answers ({reply}) but no frame from {args.rtsp_path}: {res.stderr[-500:]}")

        # ---- the front panel: network through networkd, then a reboot ------------------------
        panel = FrontPanel(f"https://127.0.0.1:{boot.https_port}", (creds["user"], creds["password"]), str(cafile))
        t_net = boot.elapsed()
        panel.open_menu("Network", creds["password"])
        panel.until(lambda ls: ls[0].startswith("Use DHCP"))
        panel.press("select")
        panel.wait(lambda ls: any("DHCP?" in l for l in ls), 10)
        panel.press("select")
        t, _ = con.wait_for(r"edge-ctl: network settings reloaded", 60)
        lines = panel.wait(lambda ls: any("Network OK" in l or "Rolled back" in l or "failed" in l for l in ls), 60)
        results["network_change_s"] = round(boot.elapsed() - t_net, 1)
        print(f"  {boot.elapsed():6.1f} s  front panel Network > Use DHCP: {' | '.join(l.strip() for l in lines)} "
              f"(networkctl reload by edge-ctl at {t:.1f} s)")
        if not any("Network OK" in l for l in lines):
            failures.append(f"front panel network change: {lines}")
        status, _ = boot.healthz((creds["user"], creds["password"]), time.monotonic() + 60, cafile=str(cafile))
        if status != 200:
            failures.append(f"/healthz after the network change: {status}")
        panel.open_menu("System", creds["password"])
        panel.until(lambda ls: ls[0].startswith("Reboot"))
        panel.press("select")
        panel.wait(lambda ls: any("Reboot now?" in l for l in ls), 10)
        t_reboot = boot.elapsed()
        try:
            panel.press("select")
        except (AssertionError, OSError):
            pass  # the machine may go down before the answer
        con.wait_for(r"edge-ctl: reboot asked on the front panel", 60)
        t, _ = con.wait_for(r"reboot: Restarting system", 120)
        boot.proc.wait(30)  # -no-reboot: qemu exits where a Pi would restart
        results["reboot_s"] = round(t - t_reboot, 1)
        print(f"  {t:6.1f} s  front panel System > Reboot: the machine restarted {t - t_reboot:.1f} s later")
        stopped = any(re.search(r"Stopped edge\.service|edge\.service: Deactivated successfully", l)
                      for _, l in con.lines)
        if not stopped:
            failures.append("edge.service did not stop cleanly on the front-panel reboot")
        boot = None
        net = run("debugfs", "-R", "cat /etc/systemd/network/10-edge.network", fs).stdout  # root installed it
        st = run("debugfs", "-R", "stat /etc/edge/network/10-edge.network", fs).stdout  # edge wrote it
        owner = re.search(r"User:\s+(\d+)", st)
        print(f"           /etc/edge/network/10-edge.network: DHCP={'yes' if 'DHCP=yes' in net else 'no'}, "
              f"uid {owner.group(1) if owner else '?'}")
        if "DHCP=yes" not in net or not owner or int(owner.group(1)) != uid:
            failures.append("the .network file was not rewritten by edge")
    except AssertionError as exc:
        failures.append(str(exc))
    finally:
        if boot is not None:
            boot.stop()

    results["ok"] = not failures
    if failures:
        print("image-test FAILED:\n  " + "\n  ".join(failures))
        if boots:
            print(f"console tail ({boots[-1].name}):\n" + boots[-1].con.tail())
    if failures or args.keep:
        if not args.keep:
            (work / "disk.img").unlink(missing_ok=True)
        print(f"console logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
