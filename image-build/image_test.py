#!/usr/bin/env python3
"""Boot the built SD image under qemu-system-aarch64 (-M virt) and check it from outside:
first boot, HTTPS and the device credentials, the front panel; then update it: A/B slots with
RAUC, automatic rollback.

    make image-test            (after `make image`; `make bundle` is not needed: the test makes
                                its own bundles from the same slot images)

A throwaway copy of the image (1 GiB larger, so first-boot growroot has work) gets test-only
changes, written with debugfs/mtools (no mounts): a drop-in that runs edge with --simulated
(qemu has no GPIO/I2C/serial) in root slot A; an SSH key on the FAT partition (the documented
way to turn SSH on); and in the config on the data partition (/edge/etc/edge.toml, which is
/etc/edge/edge.toml) `[service] system = "systemd"`, so the simulated platform still reboots
for real through root's edge-ctl unit, and `loop_lag_max_ms = 5000`: under qemu's emulation the
x264 encoder keeps the event loop more than the Pi's 500 ms behind, and the watchdog would
restart edge. The kernel, initrd and command line come from the card as the Pi firmware reads
it (pi_firmware.py: autoboot.txt, the one-shot tryboot flag, the chosen partition's config.txt
and cmdline.txt); qemu runs with -no-reboot, so a reboot ends the run, and the kernel's last
console line says what the next one starts with.

Boot 1 (first boot of slot A, as on a new card): data partition grown, hostname edge-XXXX,
edge READY=1, plain-HTTP /healthz redirects (308) to https://, HTTPS /healthz refuses without
credentials (401), the first RTSP frame (first boot to first frame is the figure the issue
bounds at 90 s). Then the front panel, through its simulated buttons (/api/buttons, HTTPS with
the device credentials): Network > Use DHCP, through the real networkd backend and root's
edge-ctl unit (`networkctl reload`), and System > Reboot, which reboots through edge-ctl.
Between the boots, read off the disk: credentials.json (0600, owned by edge, its serial names
the host), the TLS key (0600) and certificate (the one HTTPS served), and the .network file
edge wrote (owned by edge) and root installed for networkd.
Boot 2 (slot A again, a plain reboot): READY, HTTPS /healthz with the device credentials
answers ready, the client trusting exactly the certificate read off the data partition; a
bundle signed with another key is refused; `edge update install URL` of a good bundle (served
from this host).
Boot 3 (tryboot into slot B): READY, committed once READY, /healthz ready with the
credentials and certificate made on boot 1, an RTSP frame; then a deliberately broken bundle
(edge exits at once) is installed into slot A.
Boot 4 (tryboot into A): edge fails; the device reboots by itself without the flag.
Boot 5 (slot B again): it says it rolled back, READY, `edge update status`; power button; the
credentials and certificate on the disk are still the ones made on boot 1.
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


def disk_stat(fs: str, path: str) -> dict | None:
    """inode, mode ("0600"), uid and gid of ``path`` in the ext4 file system ``fs``, or None."""
    st = subprocess.run(["debugfs", "-R", f"stat {path}", fs], capture_output=True, text=True).stdout
    inode, mode = re.search(r"Inode:\s+(\d+)", st), re.search(r"Mode:\s+(\d+)", st)
    owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", st)
    if not (inode and mode and owner):
        return None
    return {"inode": int(inode.group(1)), "mode": mode.group(1), "uid": int(owner.group(1)),
            "gid": int(owner.group(2))}


def disk_cat(fs: str, path: str) -> str:
    return run("debugfs", "-R", f"cat {path}", fs).stdout


CONFIG = "/edge/etc/edge.toml"  # on the data partition; /etc/edge/edge.toml on the device


def tweak_config(data: str, work: Path) -> None:
    """The copy's config: reboot for real under --simulated (``[service] system = "systemd"``,
    through root's edge-ctl unit like the appliance), and a loop-lag bound for emulation: x264
    under qemu TCG keeps the event loop 0.5-1 s behind, so at the Pi's 500 ms the watchdog pings
    stop and systemd kills edge 15 s after READY. Mode and owner stay the image's."""
    st = disk_stat(data, CONFIG)
    if st is None:
        raise AssertionError(f"no {CONFIG} on the data partition: rebuild with `make image`")
    toml = disk_cat(data, CONFIG)
    toml, n = re.subn(r"^\[service\]$", "[service]\n# image-test: the machine's reboot, and a loop-lag bound for "
                      "qemu TCG\nsystem = \"systemd\"\nloop_lag_max_ms = 5000", toml, count=1, flags=re.M)
    if n != 1 or not re.search(r'^driver = "networkd"$', toml, re.M):
        raise AssertionError(f"the image's {CONFIG} lacks [service] or [network] driver = \"networkd\"")
    (work / "edge.toml").write_text(toml)
    cmds = work / "debugfs.cmds"
    cmds.write_text(
        f"rm {CONFIG}\n"
        f"write {work / 'edge.toml'} {CONFIG}\n"
        f"sif {CONFIG} mode 0100{st['mode'][-3:]}\n"
        f"sif {CONFIG} uid {st['uid']}\n"
        f"sif {CONFIG} gid {st['gid']}\n"
    )
    out = subprocess.run(["debugfs", "-w", "-f", str(cmds), data], capture_output=True, text=True)
    after = disk_stat(data, CONFIG)
    if disk_cat(data, CONFIG) != toml or after is None or (after["mode"], after["uid"], after["gid"]) != \
            (st["mode"], st["uid"], st["gid"]):
        raise AssertionError(f"{CONFIG} not rewritten on the data partition: {out.stderr[-400:]}")


def prepare(image: Path, work: Path):
    """Copy the image, add the simulated drop-in to root slot A, the config tweaks to the data
    partition and an SSH key to p1."""
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
    tweak_config(data, work)
    leftover = run("debugfs", "-R", "ls -l /edge/lib", data).stdout
    assert "credentials.json" not in leftover, "the image ships credentials"
    key = work / "id_ed25519"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "image-test", "-f", str(key))
    run("mcopy", "-o", "-i", f"{disk}@@{parts[1]}", f"{key}.pub", "::authorized_keys")
    # room for growroot; the partition table still ends where the image did
    with open(disk, "r+b") as fh:
        fh.truncate(disk.stat().st_size + (1 << 30))
    return disk, root_a, data, key, (int(uid), int(gid))


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


def https_request(url: str, auth: tuple[str, str] | None, *, cafile: str | None = None, body: dict | None = None,
                  timeout: float = 15) -> tuple[int, bytes]:
    """GET (or POST a JSON body) over HTTPS, trusting exactly ``cafile`` (the device's own
    certificate; its names include 127.0.0.1, where the port is forwarded, so the host name is
    checked too), or, without it, not verifying (before the certificate is known)."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:  # Basic: inside TLS only (edge refuses it over plain HTTP)
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
    """Status and Location of a plain-HTTP GET, the redirect not followed."""
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
    """One qemu run of the disk copy, booted as the Pi firmware would (pi_firmware.py), with
    HTTP, HTTPS, RTSP and SSH forwarded to free local ports."""

    def __init__(self, name: str, work: Path, disk: Path, tryboot: bool):
        self.name, self.work, self.disk = name, work, disk
        self.http_port, self.https_port = free_port(), free_port()
        self.rtsp_port, self.ssh_port = free_port(), free_port()
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
                       f"hostfwd=tcp:127.0.0.1:{self.https_port}-:443,hostfwd=tcp:127.0.0.1:{self.rtsp_port}-:554,"
                       f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE rom (package ipxe-qemu) needed
        ]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.con = Console(self.proc, self.t0, work / f"console-{name}.log")
        print(f"{name}: firmware boots partition {self.choice.partition} (slot {self.slot}"
              f"{', tryboot' if tryboot else ''})")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def healthz(self, auth, deadline: float, cafile: str | None = None) -> tuple[int, bytes]:
        """HTTPS /healthz, polled until it answers 200 or 401 (or ``deadline``)."""
        url = f"https://127.0.0.1:{self.https_port}/healthz"
        status, body = 0, b""
        while time.monotonic() < deadline:
            try:
                status, body = https_request(url, auth, cafile=cafile)
                if status in (200, 401):
                    return status, body
            except OSError as exc:  # not up yet; or the certificate is not the one trusted
                status, body = 0, str(getattr(exc, "reason", exc)).encode()
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


STOPPED_CLEANLY = r"Stopped edge\.service|edge\.service: Deactivated successfully"
NETWORK_FILE = "10-edge.network"  # edge's in /etc/edge/network (data partition), root's in /etc/systemd/network


def main() -> int:
    # a SIGTERM (make interrupted, CI timeout) still stops qemu through the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where `make image` put the image")
    ap.add_argument("--image", type=Path, help="image file (default: newest edge-*.img in --out)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for each boot (to READY and its checks)")
    ap.add_argument("--bundles", type=Path, help="reuse good/broken/foreign.raucb from this dir (a --keep work dir)")
    ap.add_argument("--rtsp-path", default="/dashboard")
    ap.add_argument("--no-update", action="store_true",
                    help="no bundles, no A/B: boot 1 (with the front panel), the disk checks, boot 2's HTTPS check")
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
    disk, root_a, data_fs, key, (uid, gid) = prepare(image, work)
    # what the front panel's network change must replace: the image's own files
    net_before = {"edge": disk_stat(data_fs, f"/edge/etc/network/{NETWORK_FILE}"),
                  "root": disk_stat(root_a, f"/etc/systemd/network/{NETWORK_FILE}")}
    if None in net_before.values():
        raise AssertionError(f"the image lacks a {NETWORK_FILE}: {net_before}")
    cafile = work / "device-cert.pem"  # the device certificate as read off the data partition
    server: BundleServer | None = None
    boot: Boot | None = None
    boots: list[Boot] = []

    def start(name: str, tryboot: bool) -> Boot:
        b = Boot(name, work, disk, tryboot)
        boots.append(b)
        return b

    def identity_from_disk(creds: dict | None) -> dict:
        """credentials.json and the TLS files on the data partition (/edge/lib = /var/lib/edge):
        made by edge, only its user may read the secrets; unchanged if ``creds`` is given."""
        st = disk_stat(data_fs, "/edge/lib/credentials.json")
        if st is None:
            raise AssertionError("no credentials.json on the data partition after the first boot")
        on_disk = json.loads(disk_cat(data_fs, "/edge/lib/credentials.json"))
        print(f"           credentials.json: mode {st['mode']}, uid {st['uid']}, serial {on_disk['serial']}")
        if st["mode"] != "0600" or st["uid"] != uid:
            failures.append(f"credentials.json mode {st['mode']} uid {st['uid']}, want 0600 uid {uid}")
        if creds is not None and {k: on_disk.get(k) for k in ("user", "password", "serial")} != \
                {k: creds.get(k) for k in ("user", "password", "serial")}:
            failures.append("the credentials on the data partition are not the ones made on the first boot")
        for name, want in (("key.pem", "0600"), ("cert.pem", "0644")):
            st = disk_stat(data_fs, f"/edge/lib/tls/{name}")
            print(f"           tls/{name}: mode {st and st['mode']}, uid {st and st['uid']}")
            if st is None or st["mode"] != want or st["uid"] != uid:
                failures.append(f"tls/{name}: {st}, want mode {want} uid {uid}")
        cert = disk_cat(data_fs, "/edge/lib/tls/cert.pem")
        if "BEGIN CERTIFICATE" not in cert:
            raise AssertionError("no TLS certificate on the data partition after the first boot")
        if cafile.exists() and cafile.read_text() != cert:
            failures.append("the TLS certificate on the data partition changed since the first boot")
        cafile.write_text(cert)
        return on_disk

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
        status, body = boot.healthz(None, deadline)
        print(f"  {boot.elapsed():6.1f} s  HTTPS /healthz without credentials -> {status}")
        if status != 401:
            failures.append(f"HTTPS /healthz without credentials answered {status} {body[:200]!r}, expected 401")
        status, location = http_status_no_redirect(f"http://127.0.0.1:{boot.http_port}/healthz")
        print(f"           plain HTTP /healthz -> {status} {location}")
        if status != 308 or not location.startswith("https://"):
            failures.append(f"plain HTTP /healthz answered {status} {location!r}, expected a 308 to https://")
        creds = json.loads(boot.ssh(key, "cat /var/lib/edge/credentials.json").stdout)
        auth = (creds["user"], creds["password"])
        if hostname != "edge-" + creds["serial"][-4:].lower():
            failures.append(f"hostname {hostname} does not come from the serial {creds['serial']}")
        results["first_frame_s"] = boot.rtsp_frame(creds, args.rtsp_path, work, left())
        print(f"  {results['first_frame_s']} s  first boot: first RTSP frame decoded ({args.rtsp_path})")
        if results["first_frame_s"] is None:
            failures.append("first boot: no RTSP frame")
        elif results["first_frame_s"] > 90:
            failures.append(f"first boot to first RTSP frame {results['first_frame_s']} s > 90 s")

        # ---- the front panel: network through networkd, then a reboot ------------------------
        # (HTTPS trusting the certificate as root reads it on the box; compared with the disk's below)
        served_cert = work / "served-cert.pem"
        served_cert.write_text(boot.ssh(key, "cat /var/lib/edge/tls/cert.pem").stdout)
        panel = FrontPanel(f"https://127.0.0.1:{boot.https_port}", auth, str(served_cert))
        t_net = boot.elapsed()
        panel.open_menu("Network", creds["password"])
        panel.until(lambda ls: ls[0].startswith("Use DHCP"))
        panel.press("select")
        panel.wait(lambda ls: any("DHCP?" in l for l in ls), 10)
        panel.press("select")
        t, _ = con.wait_for(r"edge-ctl: network settings reloaded", 60, fail=r"edge-ctl: (networkctl reload failed|no usable)")
        lines = panel.wait(lambda ls: any("Network OK" in l or "Rolled back" in l or "failed" in l for l in ls), 60)
        results["network_change_s"] = round(boot.elapsed() - t_net, 1)
        print(f"  {boot.elapsed():6.1f} s  front panel Network > Use DHCP: {' | '.join(l.strip() for l in lines)} "
              f"(networkctl reload by edge-ctl at {t:.1f} s; {results['network_change_s']} s from the first press)")
        if not any("Network OK" in l for l in lines):
            failures.append(f"front panel network change: {lines}")
        status, body = boot.healthz(auth, time.monotonic() + 60, cafile=str(served_cert))
        if status != 200:
            failures.append(f"HTTPS /healthz after the network change: {status} {body[:200]!r}")
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
        t, _ = con.wait_for(r"reboot: (Restarting system|Power down|System halted)", 120)
        ask = boot.ended(30)  # -no-reboot: qemu exits where a Pi would restart
        results["reboot_s"] = round(t - t_reboot, 1)
        stopped = any(re.search(STOPPED_CLEANLY, l) for _, l in con.lines)
        print(f"  {t:6.1f} s  front panel System > Reboot: the kernel asked for '{ask}' {results['reboot_s']} s later "
              f"(edge stopped cleanly: {stopped})")
        if ask != "reboot":
            failures.append(f"the front panel's reboot asked the firmware for '{ask}', not a plain reboot")
        if not stopped:
            failures.append("edge.service did not stop cleanly on the front-panel reboot")
        boot = None

        # ---- what the first boot left on the disk ---------------------------------------------
        identity_from_disk(creds)
        if cafile.read_text() != served_cert.read_text():
            failures.append("the certificate HTTPS served is not the one on the data partition")
        print(f"           TLS certificate made on the first boot ({cafile.stat().st_size} bytes PEM)")
        edge_net = disk_stat(data_fs, f"/edge/etc/network/{NETWORK_FILE}")
        root_net = disk_stat(root_a, f"/etc/systemd/network/{NETWORK_FILE}")
        net_text = disk_cat(root_a, f"/etc/systemd/network/{NETWORK_FILE}")
        print(f"           /etc/edge/network/{NETWORK_FILE}: uid {edge_net and edge_net['uid']}, "
              f"{'new' if edge_net and edge_net['inode'] != net_before['edge']['inode'] else 'unchanged'} file; "
              f"/etc/systemd/network/{NETWORK_FILE}: "
              f"{'new' if root_net and root_net['inode'] != net_before['root']['inode'] else 'unchanged'} file, "
              f"DHCP={'yes' if re.search(r'^DHCP=yes$', net_text, re.M) else 'no'}")
        if edge_net is None or edge_net["uid"] != uid or edge_net["inode"] == net_before["edge"]["inode"]:
            failures.append(f"the .network file was not rewritten by edge: {edge_net} (before: {net_before['edge']})")
        if root_net is None or root_net["inode"] == net_before["root"]["inode"] or \
                not re.search(r"^DHCP=yes$", net_text, re.M) or \
                net_text != disk_cat(data_fs, f"/edge/etc/network/{NETWORK_FILE}"):
            failures.append(f"edge-ctl did not install edge's .network file for networkd: {root_net} {net_text!r}")

        # ---- boot 2: slot A again, after the front panel's reboot ------------------------------
        boot = start("boot2", tryboot=ask == "tryboot")
        con, deadline = boot.con, time.monotonic() + args.timeout
        if boot.slot != "A":
            failures.append(f"after the front panel's reboot the firmware booted slot {boot.slot}, not A")
        t, _ = con.wait_for(r"Started edge\.service", left(), fail=EDGE_FAILED)
        results["second_boot_ready_s"] = round(t, 1)
        print(f"  {t:6.1f} s  edge.service started: READY=1")
        status, body = boot.healthz(auth, deadline, cafile=str(cafile))
        health = json.loads(body) if status == 200 else {}
        print(f"  {boot.elapsed():6.1f} s  HTTPS /healthz with the device credentials, trusting only the "
              f"certificate on the disk -> {status} ready={health.get('ready')}")
        if status != 200 or not health.get("ready"):
            failures.append(f"HTTPS /healthz with the device credentials: {status} {body[:300]!r}")

        if args.no_update:
            took = boot.power_button(min(120.0, left()))
            results["shutdown_s"] = round(took, 1)
            print(f"           power button -> powered off in {took:.1f} s")
            boot = None
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

        # ---- boot 3: tryboot into slot B -------------------------------------------------------
        boot = start("boot3", tryboot=ask == "tryboot")
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
        status, body = boot.healthz(auth, deadline, cafile=str(cafile))
        health = json.loads(body) if status == 200 else {}
        print(f"  {boot.elapsed():6.1f} s  HTTPS /healthz with the credentials and certificate made on slot A -> "
              f"{status} ready={health.get('ready')}")
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

        # ---- boot 4: tryboot into the broken slot A: edge fails, the device reboots itself -----
        t_try = time.monotonic()
        boot = start("boot4", tryboot=ask == "tryboot")
        con, deadline = boot.con, time.monotonic() + args.timeout
        if boot.slot != "A":
            failures.append(f"the broken bundle's trial booted slot {boot.slot}, not A")
        t, m = con.wait_for(r"edge-update: (edge failed on slot A.*|edge not READY on slot A.*)", left())
        print(f"  {t:6.1f} s  {m.group(1)}")
        ask = boot.ended(300)
        if ask == "tryboot":
            failures.append("the rollback reboot carried the tryboot flag")

        # ---- boot 5: the firmware's default, slot B, again ------------------------------------
        boot = start("boot5", tryboot=ask == "tryboot")
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
        stopped = any(re.search(STOPPED_CLEANLY, l) for _, l in con.lines)
        print(f"           power button -> powered off in {took:.1f} s (edge stopped cleanly: {stopped})")
        if not stopped:
            failures.append("edge.service did not stop cleanly at shutdown")
        boot = None
        identity_from_disk(creds)  # the same credentials and certificate through two updates
    except StopIteration:
        pass
    except (AssertionError, OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError,
            KeyError, ValueError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        failures.append(f"{type(exc).__name__}: {exc} {detail[-500:] if isinstance(detail, str) else ''}".strip())
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
