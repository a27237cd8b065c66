"""A/B updates, checked in seconds without building the image: the tryboot backend's state
machine (install -> trial boot -> commit, or -> rollback with the database put back), the
bundle recipe (signed, verity, refused under another key), the bundle's hooks (downgrade
refused with a clear message, the new slot's command line and the device identity), and the
service on a database from newer software (refused clearly, relays still to their safe
state, no READY). The real thing: `make image && make bundle && make image-test`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.store.schema import SCHEMA_VERSION

from .peers import free_port

ROOT = Path(__file__).resolve().parent.parent
IB = ROOT / "image-build"
TRYBOOT = IB / "overlay/usr/local/lib/edge/tryboot"
HOOK = IB / "bundle/hook.sh"

sys.path.insert(0, str(IB))
import pi_firmware  # noqa: E402  (image-build/pi_firmware.py: the firmware's choice, for qemu)


class Card:
    """The pieces of the card the backend touches, in a temp dir."""

    def __init__(self, d: Path):
        self.d = d
        self.autoboot = d / "autoboot.txt"
        self.autoboot.write_text("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n")
        self.state = d / "rauc"
        self.cmdline = d / "cmdline"
        self.db = d / "edge.db"
        self.boot("A")

    def boot(self, slot: str) -> None:
        self.cmdline.write_text(f"console=ttyAMA0 root=PARTUUID=45444745-0{5 if slot == 'A' else 6} rauc.slot={slot} rw\n")

    def run(self, *args: str, ok: bool = True) -> str:
        env = {"PATH": os.environ["PATH"], "EDGE_AUTOBOOT": str(self.autoboot), "EDGE_UPDATE_STATE": str(self.state),
               "EDGE_CMDLINE": str(self.cmdline), "EDGE_DB": str(self.db), "EDGE_PY": sys.executable,
               "PYTHONPATH": str(ROOT)}
        res = subprocess.run(["sh", str(TRYBOOT), *args], capture_output=True, text=True, env=env, timeout=30)
        if ok:
            assert res.returncode == 0, res.stdout + res.stderr
        return (res.stdout + res.stderr).strip()

    def firmware_choice(self, tryboot: bool) -> int:
        return pi_firmware.boot_partition(self.autoboot.read_text(), tryboot)


def make_db(path: Path, version: int, rows: int = 1) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_install_trial_commit(tmp_path):
    card = Card(tmp_path)
    assert card.run("get-primary") == "A" and card.run("get-current") == "A"
    # RAUC installing into B: marks it bad while writing, then primary
    card.run("set-state", "B", "bad")
    assert card.run("get-state", "B") == "bad"
    out = card.run("set-primary", "B")
    assert "tried on the next reboot" in out
    assert card.run("get-primary") == "B"
    # the firmware: a plain reset still boots A; only the tryboot flag boots B
    assert card.firmware_choice(tryboot=False) == 2 and card.firmware_choice(tryboot=True) == 3
    make_db(card.db, SCHEMA_VERSION - 1)  # the new edge will migrate it
    card.boot("B")
    out = card.run("boot-check")
    assert "trial boot of slot B" in out and "database copied" in out
    assert (tmp_path / "edge.db.before-update").exists()
    # edge READY on B: `rauc status mark-good` -> set-state B good commits
    out = card.run("set-state", "B", "good")
    assert "committed: slot B is now the default" in out
    assert card.firmware_choice(tryboot=False) == 3 and card.firmware_choice(tryboot=True) == 2
    assert card.run("get-primary") == "B" and card.run("get-state", "B") == "good"
    assert not (tmp_path / "edge.db.before-update").exists()
    assert "running slot B" in card.run("boot-check")


def test_failed_trial_rolls_back_and_restores_the_database(tmp_path):
    card = Card(tmp_path)
    make_db(card.db, SCHEMA_VERSION - 1, rows=3)
    card.run("set-state", "B", "bad")
    card.run("set-primary", "B")
    card.boot("B")
    card.run("boot-check")
    make_db(card.db, SCHEMA_VERSION + 1, rows=2)  # the trial's edge migrated and wrote
    # edge never READY: trial-watch reboots without the flag -> the firmware boots A
    card.boot(f"{'AB'[card.firmware_choice(tryboot=False) - 2]}")
    out = card.run("boot-check")
    assert "rolled back: slot B booted but edge did not reach READY on it; running slot A, slot B marked bad" in out
    assert "database restored" in out
    assert card.run("get-state", "B") == "bad" and card.run("get-primary") == "A"
    conn = sqlite3.connect(card.db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    kept = list(tmp_path.glob("edge.db.from-slot-B-*"))
    assert kept and sqlite3.connect(kept[0]).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert "rolled back" in card.run("status")


def test_reboot_without_the_flag_is_reported_as_not_tried(tmp_path):
    card = Card(tmp_path)
    card.run("set-primary", "B")
    out = card.run("boot-check")  # still on A: the reboot carried no tryboot flag
    assert "the firmware did not boot slot B" in out
    assert card.firmware_choice(tryboot=False) == 2


def test_backend_rejects_nonsense(tmp_path):
    card = Card(tmp_path)
    assert "unknown slot 'C'" in card.run("set-primary", "C", ok=False)
    assert "good or bad" in card.run("set-state", "A", "maybe", ok=False)
    card.autoboot.write_text("[all]\nboot_partition=7\n")
    assert "2 or 3 expected" in card.run("get-primary", ok=False)


def test_firmware_reads_autoboot_like_the_pi():
    text = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n[pi5]\nboot_partition=9\n"
    assert pi_firmware.boot_partition(text, tryboot=False) == 2
    assert pi_firmware.boot_partition(text, tryboot=True) == 3
    assert pi_firmware.boot_partition("", tryboot=True) == 1  # no autoboot.txt: the first FAT partition
    assert pi_firmware.reboot_request("[ 12.3] reboot: Restarting system with command '0 tryboot'") == "tryboot"
    assert pi_firmware.reboot_request("reboot: Restarting system") == "reboot"
    assert pi_firmware.reboot_request("reboot: Power down") == "off"
    assert pi_firmware.reboot_request("something else") is None


# ---- the bundle ----------------------------------------------------------------------------
needs_rauc = pytest.mark.skipif(not (shutil.which("rauc") and shutil.which("mksquashfs") and shutil.which("mcopy")),
                                reason="rauc, squashfs-tools, mtools (make setup installs them)")


def tiny_slot_images(d: Path) -> tuple[Path, Path]:
    root = d / "rootdir"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("edge test\n")
    (root / "etc/payload").write_bytes(os.urandom(32768))  # squashfs wants more than a block
    subprocess.run(["mkfs.ext4", "-q", "-d", str(root), str(d / "root.ext4"), "8M"], check=True)
    (d / "cmdline.txt").write_text("console=tty0 root=PARTUUID=45444745-05 rootfstype=ext4 rauc.slot=A rw\n")
    subprocess.run(["mkfs.vfat", "-C", str(d / "boot.vfat"), "4096"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", str(d / "boot.vfat"), str(d / "cmdline.txt"), "::/"], check=True)
    return d / "root.ext4", d / "boot.vfat"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    root, boot = tiny_slot_images(d)
    env = {**os.environ, "SLOT_ROOT": str(root), "SLOT_BOOT": str(boot), "PYTHON_HOST": sys.executable}
    for k in ("RAUC_KEY", "RAUC_CERT", "RAUC_KEYRING"):
        env.pop(k, None)
    res = subprocess.run(["bash", str(IB / "bundle.sh"), str(d / "out")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return d / "out", next((d / "out").glob("edge-*-rpi-arm64.raucb"))


@needs_rauc
def test_bundle_is_signed_verity_with_hooks_and_schema(bundle, tmp_path):
    out, path = bundle
    info = subprocess.run(["rauc", "info", "--keyring", str(out / "keys/dev.cert"), str(path)],
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    text = info.stdout + info.stderr
    assert "Compatible: \t'edge-rpi-arm64'" in text
    assert "Bundle Format: \tverity" in text
    assert re.search(r"Hooks:\s+'install-check'", text)
    assert "root.ext4" in text and "boot.vfat" in text and text.count("post-install") == 2
    assert f"store schema {SCHEMA_VERSION}" in text and "development key" in text
    x = tmp_path / "x"
    subprocess.run(["rauc", "extract", "--keyring", str(out / "keys/dev.cert"), str(path), str(x)], check=True,
                   capture_output=True)
    release = (x / "edge-release").read_text()
    assert f"schema={SCHEMA_VERSION}\n" in release and "version=" in release
    assert os.access(x / "hook.sh", os.X_OK)
    # the image trusts exactly the key the bundle was signed with
    assert (out / "keys/dev.cert").read_bytes() == (out / "keys/dev.cert").read_bytes()


@needs_rauc
def test_bundle_signed_with_another_key_is_refused(bundle, tmp_path):
    _, path = bundle
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c")], check=True, capture_output=True)
    res = subprocess.run(["rauc", "info", "--keyring", str(tmp_path / "c"), str(path)], capture_output=True, text=True)
    assert res.returncode != 0
    assert "signature" in (res.stdout + res.stderr).lower()


# ---- the bundle's hooks ---------------------------------------------------------------------
def run_hook(*args: str, **env: str) -> subprocess.CompletedProcess:
    hook = env.pop("HOOK", str(HOOK))
    return subprocess.run(["sh", hook, *args], capture_output=True, text=True, cwd="/",
                          env={"PATH": os.environ["PATH"], **env}, timeout=30)


def test_install_check_refuses_downgrade_and_foreign_bundles(tmp_path):
    # as RAUC 1.8 runs it: from the mounted bundle, with the compatibles in its environment and
    # nothing saying where the bundle is mounted
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    (bundle_dir / "edge-release").write_text("version=0.0.9\nschema=2\n")
    shutil.copy(HOOK, bundle_dir / "hook.sh")
    host = tmp_path / "host"
    (host / "var/lib/edge").mkdir(parents=True)
    common = {"EDGE_HOOK_ROOT": str(host), "RAUC_SYSTEM_COMPATIBLE": "edge-rpi-arm64", "HOOK": str(bundle_dir / "hook.sh")}
    assert run_hook("install-check", RAUC_MF_COMPATIBLE="edge-rpi-arm64", **common).returncode == 0  # no db yet
    make_db(host / "var/lib/edge/edge.db", 2)
    assert run_hook("install-check", RAUC_MF_COMPATIBLE="edge-rpi-arm64", **common).returncode == 0
    make_db(host / "var/lib/edge/edge.db", 3)
    res = run_hook("install-check", RAUC_MF_COMPATIBLE="edge-rpi-arm64", **common)
    assert res.returncode == 10
    assert ("refusing the downgrade: this device's database is at schema version 3, and edge 0.0.9 in this bundle "
            "knows only up to 2") in res.stderr
    res = run_hook("install-check", RAUC_MF_COMPATIBLE="other-board", **common)
    assert res.returncode == 10 and "bundle is for 'other-board'" in res.stderr


def test_post_install_names_the_slot_and_keeps_the_identity(tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=tty0 root=PARTUUID=45444745-05 rootfstype=ext4 rauc.slot=A panic=10\n")
    res = run_hook("slot-post-install", RAUC_SLOT_MOUNT_POINT=str(boot), RAUC_SLOT_NAME="boot.1", RAUC_SLOT_CLASS="boot")
    assert res.returncode == 0, res.stderr
    assert (boot / "cmdline.txt").read_text() == \
        "console=tty0 root=PARTUUID=45444745-06 rootfstype=ext4 rauc.slot=B panic=10\n"
    host, new = tmp_path / "host", tmp_path / "new"
    for d in (host / "etc/ssh", host / "etc/systemd/network", new / "etc/ssh", new / "etc/systemd/network"):
        d.mkdir(parents=True)
    (host / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (host / "etc/hostname").write_text("edge-ab12\n")
    (host / "etc/ssh/ssh_host_ed25519_key").write_text("KEY")
    (host / "etc/systemd/network/10-static.network").write_text("device made\n")
    (host / "etc/systemd/network/20-wired.network").write_text("old shipped\n")
    (new / "etc/machine-id").write_text("uninitialized\n")
    (new / "etc/systemd/network/20-wired.network").write_text("new shipped\n")
    res = run_hook("slot-post-install", RAUC_SLOT_MOUNT_POINT=str(new), RAUC_SLOT_NAME="rootfs.1",
                   RAUC_SLOT_CLASS="rootfs", EDGE_HOOK_ROOT=str(host))
    assert res.returncode == 0, res.stderr
    assert (new / "etc/machine-id").read_text().startswith("0123")  # not a first boot again
    assert (new / "etc/hostname").read_text() == "edge-ab12\n"
    assert (new / "etc/ssh/ssh_host_ed25519_key").read_text() == "KEY"
    assert (new / "etc/systemd/network/10-static.network").read_text() == "device made\n"
    assert (new / "etc/systemd/network/20-wired.network").read_text() == "new shipped\n"


# ---- the service on a database from newer software ------------------------------------------
async def test_newer_database_refused_clearly_relays_still_safe(tmp_path, caplog):
    """(A downgrade the install check would refuse, or a slot switched by hand.) The store says
    why and leaves the file alone; the relays still reach their safe state; the service's
    status names the store, which keeps a trial boot from being committed (tryboot
    trial-watch)."""
    from edge import config as config_mod
    from edge.service import build_service
    from edge.store.component import DB_NAME

    data = tmp_path / "data"
    data.mkdir()
    make_db(data / DB_NAME, SCHEMA_VERSION + 1)
    cfg = config_mod.loads(f"""
[onvif]
enabled = false
[video]
enabled = false
[web]
host = "127.0.0.1"
port = {free_port()}
[relays.boards.pi]
type = "gpio"
[relays.channels.maglock]
board = "pi"
pin = 17
mode = "pulse"
safe_state = "on"
""")
    svc = build_service(cfg, data, simulated=True)
    task = asyncio.create_task(svc.supervisor.run())
    try:
        relays = svc.component("relays")
        for _ in range(500):
            if relays.state("maglock") is not None and svc.supervisor.ready:
                break
            await asyncio.sleep(0.01)
        assert relays.state("maglock") is True  # the fail-secure maglock is held: its safe state
        ok, summary = svc.supervisor.health_summary()
        assert not ok and "store: " in summary
        assert f"database schema version {SCHEMA_VERSION + 1} is newer than this edge knows ({SCHEMA_VERSION})" in summary
        assert "Install that newer edge again" in summary
        conn = sqlite3.connect(data / DB_NAME)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1  # untouched
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0] == 0
    finally:
        svc.supervisor.request_stop()
        await asyncio.wait_for(task, 10)
        svc.ctx.platform.close()


def fake_systemctl(d: Path, status: str, restarts: int = 0) -> Path:
    """A systemctl stand-in for trial-watch: edge's state, and what was asked of it."""
    bin_dir = d / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f"""#!/bin/sh
echo "$*" >> {d}/systemctl.calls
case "$*" in
  *ActiveState*) echo active ;;
  *NRestarts*) echo {restarts} ;;
  *StatusText*) echo "{status}" ;;
  "start edge-update-good.service") rm -f {d}/rauc/trial ;;
esac
""")
    (bin_dir / "systemctl").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("status,commits", [("ok: 9 components up", True),
                                            ("degraded: uplink: not connected: broker away", True),
                                            ("degraded: store: cannot open the database: SchemaTooNew", False)])
def test_trial_commits_on_ready_unless_the_store_is_down(tmp_path, status, commits):
    card = Card(tmp_path)
    card.run("set-primary", "B")
    card.boot("B")
    card.run("boot-check")
    bin_dir = fake_systemctl(tmp_path, status)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "EDGE_AUTOBOOT": str(card.autoboot),
           "EDGE_UPDATE_STATE": str(card.state), "EDGE_CMDLINE": str(card.cmdline), "TRIAL_TIMEOUT_S": "3"}
    res = subprocess.run(["sh", str(TRYBOOT), "trial-watch"], capture_output=True, text=True, env=env, timeout=30)
    calls = (tmp_path / "systemctl.calls").read_text()
    if commits:
        assert res.returncode == 0 and "start edge-update-good.service" in calls and "reboot" not in calls
    else:
        assert "edge READY on slot B but its store is not" in res.stdout + res.stderr
        assert calls.rstrip().endswith("reboot") and "edge-update-good" not in calls


# ---- `edge update install` (RAUC and the reboot stand-ins: the real ones run in image-test) ----
def test_update_install_downloads_installs_reboots_and_reports_refusals(tmp_path):
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    (www / "edge-9.raucb").write_bytes(b"bundle bytes")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log = tmp_path / "calls"
    fake_rauc = tmp_path / "rauc"
    fake_rauc.write_text(f"""#!/bin/sh
echo "rauc $* $(cat "$2")" >> {log}
case $(cat "$2") in *bytes*) echo "Installing done." ;; *) echo "LastError: signature verification failed" >&2; exit 1 ;; esac
""")
    fake_tryboot = tmp_path / "tryboot"
    fake_tryboot.write_text(f"#!/bin/sh\necho \"tryboot $*\" >> {log}\n")
    for f in (fake_rauc, fake_tryboot):
        f.chmod(0o755)
    env = {**os.environ, "EDGE_RAUC": str(fake_rauc), "EDGE_TRYBOOT": str(fake_tryboot),
           "EDGE_UPDATE_DIR": str(tmp_path / "dl")}
    edge = [sys.executable, "-m", "edge"]
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/edge-9.raucb"
        res = subprocess.run([*edge, "update", "install", url], capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        assert "installed edge-9.raucb" in res.stdout and "rebooting into the new slot" in res.stdout
        calls = log.read_text().splitlines()
        assert calls[0].startswith("rauc install ") and calls[0].endswith("bundle bytes")
        assert calls[1] == "tryboot reboot"
        assert list((tmp_path / "dl").iterdir()) == []  # the download does not stay on /data
        bad = tmp_path / "bad.raucb"
        bad.write_bytes(b"tampered")
        res = subprocess.run([*edge, "update", "install", str(bad)], capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 1
        assert "update refused or failed (nothing changed on the running slot): LastError: signature verification failed" \
            in res.stderr
        assert len(log.read_text().splitlines()) == 3  # no reboot after a refusal
        res = subprocess.run([*edge, "update", "install", "ftp://x/y"], capture_output=True, text=True, env=env)
        assert res.returncode == 2 and "only http(s) URLs" in res.stderr
    finally:
        httpd.shutdown()
