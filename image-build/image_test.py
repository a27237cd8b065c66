#!/usr/bin/env python3
"""Boot the built SD image under qemu-system-aarch64 (-M virt) and check it from outside,
then update it: A/B slots with RAUC, automatic rollback.

    make image-test            (after `make image`; `make bundle` is not needed: the test makes
                                its own bundles from the same slot images)

A throwaway copy of the image (1 GiB larger, so first-boot growroot has work) gets two
test-only changes, written with debugfs/mtools (no mounts): a drop-in that runs edge with
--simulated (qemu has no GPIO/I2C/serial) in root slot A, and an SSH key on the FAT
partition (the documented way to turn SSH on). The kernel, initrd and command line come from
the card as the Pi firmware reads it (pi_firmware.py: autoboot.txt, the one-shot tryboot
flag, the chosen partition's config.txt and cmdline.txt); qemu runs with -no-reboot, so a
reboot ends the run and the next one starts with what the kernel asked for.

Boot 1 (first boot of slot A, as on a new card): data partition grown, hostname edge-XXXX,
edge READY=1, /healthz refuses without credentials, the first RTSP frame (first boot to
first frame is the figure the issue bounds at 90 s); a bundle signed with another key is
refused; `edge update install URL` of a good bundle (served from this host).
Boot 2 (tryboot into slot B): READY, committed once READY, /healthz ready with the
credentials made on boot 1, an RTSP frame; then a deliberately broken bundle (edge exits at
once) is installed into slot A.
Boot 3 (tryboot into A): edge fails; the device reboots by itself without the flag.
Boot 4 (slot B again): it says it rolled back, READY, `edge update status`; power button.
Times are printed; the last line is one JSON object.
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
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pi_firmware  # noqa: E402

SIMULATED_DROPIN = (
    "# written by image-build/image_test.py into a throwaway copy: qemu has no GPIO/I2C/serial\n"
    "[Service]\nExecStart=\n"
    "ExecStart=/opt/edge/venv/bin/edge run --config /etc/edge/edge.toml --data-dir /var/lib/edge --simulated\n"
)
BROKEN_DROPIN = (
    "# image-test: a deliberately broken build of edge (it exits at once)\n"
    "[Service]\nExecStart=\n"
    "ExecStart=/bin/sh -c 'echo \"edge: broken on purpose by image-test\"; exit 1'\n"
)


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


def part_offsets(disk: Path) -> dict[int, int]:
    return {int(re.search(r"(\d+)$", p["node"]).group(1)): p["start"] * 512 for p in partitions(disk)}


def write_dropin(fs: str, work: Path, text: str) -> None:
    """The edge.service drop-in into the ext4 file system ``fs`` (debugfs, no mount)."""
    dropin = work / "dropin.conf"
    dropin.write_text(text)
    cmds = work / "debugfs.cmds"
    cmds.write_text(
        "mkdir /etc/systemd/system/edge.service.d\n"
        "rm /etc/systemd/system/edge.service.d/image-test.conf\n"
        f"write {dropin} /etc/systemd/system/edge.service.d/image-test.conf\n"
        "sif /etc/systemd/system/edge.service.d/image-test.conf mode 0100644\n"
    )
    out = subprocess.run(["debugfs", "-w", "-f", str(cmds), fs], capture_output=True, text=True)
    check = run("debugfs", "-R", "cat /etc/systemd/system/edge.service.d/image-test.conf", fs).stdout
    assert check.strip() == text.strip(), f"drop-in not written to {fs}: {out.stderr}"


def prepare(image: Path, work: Path):
    """Copy the image, add the simulated drop-in to root slot A and an SSH key to p1."""
    disk = work / "disk.img"
    run("cp", "--sparse=always", str(image), str(disk))
    parts = part_offsets(disk)
    if 7 not in parts:
        raise AssertionError(f"{image.name} has no A/B layout (partitions {sorted(parts)}): rebuild with `make image`")
    root_a, data = f"{disk}?offset={parts[5]}", f"{disk}?offset={parts[7]}"
    passwd = run("debugfs", "-R", "cat /etc/passwd", root_a).stdout
    m = re.search(r"^edge:x:(\d+):(\d+):", passwd, re.M)
    if not m:
        raise AssertionError("no edge user in the image's /etc/passwd")
    uid, gid = m.groups()
    write_dropin(root_a, work, SIMULATED_DROPIN)
    leftover = run("debugfs", "-R", "ls -l /edge/lib", data).stdout
    assert "credentials.json" not in leftover, "the image ships credentials"
    key = work / "id_ed25519"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "image-test", "-f", str(key))
    run("mcopy", "-o", "-i", f"{disk}@@{parts[1]}", f"{key}.pub", "::authorized_keys")
    # room for growroot; the partition table still ends where the image did
    with open(disk, "r+b") as fh:
        fh.truncate(disk.stat().st_size + (1 << 30))
    return disk, data, key, (int(uid), int(gid))


def make_bundles(out: Path, work: Path) -> dict[str, Path]:
    """Bundles from the build's slot images (bundle.sh, the build's development key): 'good'
    (+ the simulated drop-in), 'broken' (edge exits at once), 'foreign' (signed with another key)."""
    bundles = {}
    for name, dropin in (("good", SIMULATED_DROPIN), ("broken", BROKEN_DROPIN)):
        root = work / f"{name}-root.ext4"
        run("cp", "--sparse=always", str(out / "slot-root.ext4"), str(root))
        write_dropin(str(root), work, dropin)
        target = work / f"{name}.raucb"
        t0 = time.monotonic()
        env = {**os.environ, "SLOT_ROOT": str(root), "BUNDLE": str(target)}
        if name == "broken":
            env["MKSQUASHFS_ARGS"] = "-comp lz4"  # only its failure matters: fast to make
        for k in ("RAUC_KEY", "RAUC_CERT", "RAUC_KEYRING"):
            env.pop(k, None)
        subprocess.run([str(HERE / "bundle.sh"), str(out)], check=True, env=env, capture_output=True, text=True)
        root.unlink()
        print(f"           bundle '{name}': {target.stat().st_size / 1048576:.0f} MiB in {time.monotonic() - t0:.0f} s")
        bundles[name] = target
    other = work / "other"
    run("openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "365", "-subj", "/CN=not the fleet key",
        "-keyout", f"{other}.key", "-out", f"{other}.cert")
    bundles["foreign"] = work / "foreign.raucb"
    run("rauc", "resign", f"--cert={other}.cert", f"--key={other}.key", f"--keyring={out}/keys/dev.cert",
        "--signing-keyring", f"{other}.cert", str(bundles["good"]), str(bundles["foreign"]))
    return bundles


class BundleServer:
    """The bundles over HTTP on this host's loopback; the guest reaches it as 10.0.2.2 (slirp)."""

    def __init__(self, directory: Path):
        import functools
        import http.server

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://10.0.2.2:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()


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


EDGE_FAILED = (r"Failed to start edge\.service|edge\.service: (Main process exited|Watchdog timeout|Failed with result)"
               r"|edge\.service: State '\S+' timed out")


class Boot:
    """One qemu run of the disk copy, booted as the Pi firmware would (pi_firmware.py), with
    HTTP, RTSP and SSH forwarded to free local ports."""

    def __init__(self, name: str, work: Path, disk: Path, tryboot: bool):
        self.name, self.work, self.disk = name, work, disk
        self.http_port, self.rtsp_port, self.ssh_port = free_port(), free_port(), free_port()
        self.monitor = work / f"{name}.monitor"
        self.choice = pi_firmware.choose(disk, tryboot, work / "firmware")
        # the card's command line, with qemu's serial console instead of the Pi's
        args = [a for a in self.choice.cmdline.split() if not a.startswith("console=")]
        args += ["console=ttyAMA0", "systemd.show_status=1",
                 # systemd stops printing unit status once a getty owns the console: journald's
                 # copy of the log on the console keeps "Started edge.service" (READY=1) visible.
                 "systemd.journald.forward_to_console=1"]
        self.slot = next((a.split("=", 1)[1] for a in args if a.startswith("rauc.slot=")), "?")
        cmd = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-monitor", f"unix:{self.monitor},server,nowait",
            "-kernel", str(self.choice.kernel), "-initrd", str(self.choice.initrd), "-append", " ".join(args),
            "-drive", f"if=none,file={disk},format=raw,id=hd0,cache=unsafe", "-device", "virtio-blk-pci,drive=hd0",
            "-device", "virtio-rng-pci",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.http_port}-:80,"
                       f"hostfwd=tcp:127.0.0.1:{self.rtsp_port}-:554,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE rom (package ipxe-qemu) needed
        ]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.con = Console(self.proc, self.t0, work / f"console-{name}.log")
        print(f"{name}: firmware boots partition {self.choice.partition} (slot {self.slot}"
              f"{', tryboot' if tryboot else ''})")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def healthz(self, auth, deadline: float) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        status, body = 0, b""
        while time.monotonic() < deadline:
            try:
                status, body = http_get(url, auth)
                if status in (200, 401):
                    return status, body
            except OSError:
                pass
            time.sleep(2)
        return status, body

    def ssh(self, key: Path, command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """A command as root over SSH (key login, as the README tells an installer)."""
        deadline = time.monotonic() + 180
        while True:
            res = subprocess.run(["ssh", "-i", str(key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                  "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
                                 capture_output=True, text=True, timeout=timeout)
            # 255: ssh itself failed (sshd not up yet) -- unless the command rebooted the guest
            if res.returncode != 255 or time.monotonic() > deadline or self.proc.poll() is not None \
                    or "tryboot reboot" in command or "update install" in command:
                break
            time.sleep(3)
        if check and res.returncode != 0:
            raise AssertionError(f"ssh {command!r}: exit {res.returncode}: {res.stdout[-800:]}{res.stderr[-800:]}")
        return res

    def rtsp_frame(self, creds: dict, path: str, work: Path, timeout: float) -> float | None:
        """Seconds since boot start at which a frame was decoded, polling until ``timeout``."""
        deadline = time.monotonic() + timeout
        frame = work / f"frame-{self.name}.png"
        while time.monotonic() < deadline:
            if rtsp_answers(self.rtsp_port, timeout=3) is not None:
                url = f"rtsp://{creds['user']}:{creds['password']}@127.0.0.1:{self.rtsp_port}{path}"
                res = subprocess.run(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1",
                                      "-y", str(frame)], capture_output=True, text=True, timeout=60)
                if res.returncode == 0 and frame.exists() and frame.stat().st_size > 0:
                    return round(self.elapsed(), 1)
            time.sleep(0.5)
        return None

    def ended(self, timeout: float) -> str:
        """Wait for the run to end; what the kernel asked the firmware for (tryboot/reboot/off)."""
        t, m = self.con.wait_for(r"reboot: (Restarting system|Power down|System halted)", timeout)
        self.proc.wait(30)
        for _, line in reversed(self.con.lines):
            if (req := pi_firmware.reboot_request(line)) is not None:
                return req
        return "reboot"

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
    ap.add_argument("--timeout", type=float, default=900, help="seconds for each boot (to READY and its checks)")
    ap.add_argument("--bundles", type=Path, help="reuse good/broken/foreign.raucb from this dir (a --keep work dir)")
    ap.add_argument("--rtsp-path", default="/dashboard")
    ap.add_argument("--no-update", action="store_true", help="first boot only (no bundles, no A/B)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (disk copy, console logs)")
    args = ap.parse_args()

    image = args.image or max(args.out.glob("edge-*-rpi-arm64.img"), key=lambda p: p.stat().st_mtime, default=None)
    if image is None or not image.exists():
        print(f"image-test: no image in {args.out}: run `make image` first", file=sys.stderr)
        return 2
    for tool in ("qemu-system-aarch64", "mcopy", "debugfs", "sfdisk", "ssh", "ssh-keygen", "rauc", "ffmpeg"):
        if shutil.which(tool) is None:
            print(f"image-test: {tool} missing (make image-tools)", file=sys.stderr)
            return 2

    work = Path(tempfile.mkdtemp(prefix="image-test-", dir=args.out))
    results: dict = {"bench": "image_test", "image": image.name}
    failures: list[str] = []
    print(f"image-test: {image} (work dir {work})")
    disk, data_fs, key, (uid, gid) = prepare(image, work)
    server: BundleServer | None = None
    boot: Boot | None = None
    boots: list[Boot] = []

    def start(name: str, tryboot: bool) -> Boot:
        b = Boot(name, work, disk, tryboot)
        boots.append(b)
        return b

    def creds_from_disk() -> dict:
        st = run("debugfs", "-R", "stat /edge/lib/credentials.json", data_fs).stdout
        mode = re.search(r"Mode:\s+(\d+)", st)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", st)
        if not (mode and owner):
            raise AssertionError("no credentials.json on the data partition after the first boot")
        creds = json.loads(run("debugfs", "-R", "cat /edge/lib/credentials.json", data_fs).stdout)
        print(f"           credentials.json: mode {mode.group(1)}, uid {owner.group(1)}, serial {creds['serial']}")
        if mode.group(1) != "0600" or int(owner.group(1)) != uid:
            failures.append(f"credentials.json mode {mode.group(1)} uid {owner.group(1)}, want 0600 uid {uid}")
        return creds

    try:
        # bundles first: building them while qemu runs would slow the boots being timed
        bundles: dict[str, Path] = {}
        if not args.no_update:
            if args.bundles:
                for name in ("good", "broken", "foreign"):
                    shutil.copy(args.bundles / f"{name}.raucb", work / f"{name}.raucb")
                    bundles[name] = work / f"{name}.raucb"
            else:
                print("bundles from this build's slot images (bundle.sh, the build's development key):")
                bundles = make_bundles(args.out, work)
            results["bundle_mib"] = round(bundles["good"].stat().st_size / 1048576)
            server = BundleServer(work)

        # ---- boot 1: first boot of slot A ------------------------------------------------------
        boot = start("boot1", tryboot=False)
        con, deadline = boot.con, time.monotonic() + args.timeout
        left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
        t, m = con.wait_for(r"growroot: /dev/\S+ \(/data\) grew from (\d+) MiB to (\d+) MiB", left(), fail=EDGE_FAILED)
        grown = (int(m.group(1)), int(m.group(2)))
        print(f"  {t:6.1f} s  data partition grown {grown[0]} -> {grown[1]} MiB")
        if grown[1] <= grown[0]:
            failures.append(f"growroot did not grow the data partition: {grown}")
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["first_boot_ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge.service started: READY=1 (Type=notify)")
        t, m = con.wait_for(r"^(edge-[0-9a-z]{4}|\S+) login:", left())
        hostname = results["hostname"] = m.group(1)
        print(f"  {t:6.1f} s  login prompt of {hostname}")
        status, _ = boot.healthz(None, deadline)
        print(f"  {boot.elapsed():6.1f} s  /healthz without credentials -> {status}")
        if status != 401:
            failures.append(f"/healthz without credentials answered {status}, expected 401")
        creds = json.loads(boot.ssh(key, "cat /var/lib/edge/credentials.json").stdout)
        if hostname != "edge-" + creds["serial"][-4:].lower():
            failures.append(f"hostname {hostname} does not come from the serial {creds['serial']}")
        results["first_frame_s"] = boot.rtsp_frame(creds, args.rtsp_path, work, left())
        print(f"  {results['first_frame_s']} s  first boot: first RTSP frame decoded ({args.rtsp_path})")
        if results["first_frame_s"] is None:
            failures.append("first boot: no RTSP frame")
        elif results["first_frame_s"] > 90:
            failures.append(f"first boot to first RTSP frame {results['first_frame_s']} s > 90 s")

        if args.no_update:
            took = boot.power_button(min(120.0, left()))
            results["shutdown_s"] = round(took, 1)
            boot = None
            creds_from_disk()
            raise StopIteration

        # ---- updates --------------------------------------------------------------------------
        assert server is not None
        res = boot.ssh(key, f"edge update install {server.url('foreign.raucb')}", check=False)
        refusal = (res.stdout + res.stderr).strip().splitlines()[-1:] or ["(nothing)"]
        print(f"  {boot.elapsed():6.1f} s  bundle signed with another key: exit {res.returncode}: {refusal[0][:160]}")
        if res.returncode == 0 or "signature" not in (res.stdout + res.stderr).lower():
            failures.append(f"a bundle signed with another key was not refused: {res.stdout[-400:]}{res.stderr[-400:]}")
        t_install = time.monotonic()
        res = boot.ssh(key, f"edge update install {server.url('good.raucb')}", check=False)
        m = re.search(r"installed \S+ in ([\d.]+) s", res.stdout)
        results["install_s"] = float(m.group(1)) if m else None
        print(f"  {boot.elapsed():6.1f} s  good bundle installed into slot B in {results['install_s']} s; rebooting")
        if not m:
            raise AssertionError(f"install failed: {res.stdout[-800:]}{res.stderr[-800:]}")
        ask = boot.ended(300)
        if ask != "tryboot":
            failures.append(f"after the install the kernel asked the firmware for '{ask}', not tryboot")

        # ---- boot 2: tryboot into slot B -------------------------------------------------------
        boot = start("boot2", tryboot=ask == "tryboot")
        con, deadline = boot.con, time.monotonic() + args.timeout
        if boot.slot != "B":
            raise AssertionError(f"the firmware booted slot {boot.slot} after the update, not B")
        con.wait_for(r"trial boot of slot B", left(), fail=EDGE_FAILED)
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["update_to_ready_s"] = round(time.monotonic() - t_install, 1)
        results["ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge READY on slot B ({results['update_to_ready_s']} s after the install began)")
        t, _ = con.wait_for(r"committed: slot B is now the default", left())
        print(f"  {t:6.1f} s  slot B committed (marked good after READY)")
        status, body = boot.healthz((creds["user"], creds["password"]), deadline)
        health = json.loads(body) if status == 200 else {}
        print(f"  {boot.elapsed():6.1f} s  /healthz with the credentials made on slot A -> {status} ready={health.get('ready')}")
        if status != 200 or not health.get("ready"):
            failures.append(f"slot B /healthz: {status} {body[:300]!r}")
        results["slot_b_frame_s"] = boot.rtsp_frame(creds, args.rtsp_path, work, left())
        print(f"  {results['slot_b_frame_s']} s  RTSP frame on slot B")
        if results["slot_b_frame_s"] is None:
            failures.append("slot B: no RTSP frame")
        res = boot.ssh(key, f"edge update install {server.url('broken.raucb')}", check=False)
        print(f"  {boot.elapsed():6.1f} s  broken bundle installed into slot A "
              f"({'ok' if 'installed' in res.stdout else res.stdout[-200:] + res.stderr[-200:]}); rebooting")
        ask = boot.ended(600)  # the install, then the reboot

        # ---- boot 3: tryboot into the broken slot A: edge fails, the device reboots itself -----
        t_try = time.monotonic()
        boot = start("boot3", tryboot=ask == "tryboot")
        con, deadline = boot.con, time.monotonic() + args.timeout
        if boot.slot != "A":
            failures.append(f"the broken bundle's trial booted slot {boot.slot}, not A")
        t, m = con.wait_for(r"edge-update: (edge failed on slot A.*|edge not READY on slot A.*)", left())
        print(f"  {t:6.1f} s  {m.group(1)}")
        ask = boot.ended(300)
        if ask == "tryboot":
            failures.append("the rollback reboot carried the tryboot flag")

        # ---- boot 4: the firmware's default, slot B, again ------------------------------------
        boot = start("boot4", tryboot=ask == "tryboot")
        con, deadline = boot.con, time.monotonic() + args.timeout
        t, m = con.wait_for(r"edge-update: (rolled back: .*)", left())
        print(f"  {t:6.1f} s  {m.group(1)}")
        if boot.slot != "B":
            failures.append(f"after the rollback the device runs slot {boot.slot}, not B")
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["rollback_s"] = round(time.monotonic() - t_try, 1)
        print(f"  {t:6.1f} s  edge READY on slot B again ({results['rollback_s']} s after the broken slot was tried)")
        st = boot.ssh(key, "edge update status").stdout
        print("           " + st.strip().replace("\n", "\n           "))
        if "default: B" not in st or "bad: A" not in st:
            failures.append(f"update status after the rollback: {st}")
        took = boot.power_button(min(120.0, left()))
        results["shutdown_s"] = round(took, 1)
        stopped = any(re.search(r"Stopped edge\.service|edge\.service: Deactivated successfully", l) for _, l in con.lines)
        print(f"           power button -> powered off in {took:.1f} s (edge stopped cleanly: {stopped})")
        if not stopped:
            failures.append("edge.service did not stop cleanly at shutdown")
        boot = None
        creds_from_disk()
    except StopIteration:
        pass
    except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        failures.append(f"{exc} {detail[-500:] if isinstance(detail, str) else ''}".strip())
    finally:
        if boot is not None:
            boot.stop()
        if server is not None:
            server.close()

    results["ok"] = not failures
    if failures:
        print("image-test FAILED:\n  " + "\n  ".join(failures))
        if boots:
            print(f"console tail ({boots[-1].name}):\n" + boots[-1].con.tail())
    if failures or args.keep:
        if not args.keep:
            for f in [work / "disk.img", *work.glob("*.raucb")]:
                f.unlink(missing_ok=True)
        print(f"console logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
