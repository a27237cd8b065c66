"""The shipped systemd unit: it verifies cleanly, its sandbox stays tight, and its command line
is one that `edge run` accepts; sysusers/tmpfiles create the user and a private data dir."""

from __future__ import annotations

import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from . import unitcheck

ROOT = Path(__file__).resolve().parent.parent
UNIT_DIR = ROOT / "systemd"
UNIT = UNIT_DIR / "edge.service"
MAX_EXPOSURE = 2.5

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt package `systemd`, in the Makefile's APT_PKGS)",
)


def unit_values(path: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith(key + "=")]


def verify_unit(unit: Path) -> subprocess.CompletedProcess:
    return unitcheck.verify(unit)


def test_unit_verifies_without_any_message():
    res = verify_unit(UNIT)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res.stdout + res.stderr


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a typo'd directive is reported."""
    bad = tmp_path / "edge.service"
    bad.write_text(UNIT.read_text().replace("ProtectHome=yes", "ProtectHomee=yes"))
    res = verify_unit(bad)
    assert "ProtectHomee" in res.stdout + res.stderr


def security_exposure(unit: Path) -> tuple[float, str]:
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    return float(m.group(1)), res.stdout


def test_sandbox_exposure_is_low():
    exposure, report = security_exposure(UNIT)
    assert exposure <= MAX_EXPOSURE, report


def test_exposure_check_sees_a_weakened_unit(tmp_path):
    weak = tmp_path / "edge.service"
    text = UNIT.read_text()
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "SystemCallFilter",
                "CapabilityBoundingSet", "RestrictAddressFamilies", "ProtectKernelTunables", "DevicePolicy"):
        text = re.sub(rf"^{key}=.*$", "", text, flags=re.M)
    weak.write_text(text)
    exposure, _ = security_exposure(weak)
    assert exposure > MAX_EXPOSURE


def test_unit_keeps_what_the_appliance_needs():
    """Hardening must not take away low ports, multicast (WS-Discovery), the hardware groups,
    the watchdog, or write access to the config the LCD setup saves."""
    def one(key):
        vals = unit_values(UNIT, key)
        assert vals, f"{key}= missing"
        return vals[-1]

    assert one("Type") == "notify" and one("NotifyAccess") == "main"
    assert 0 < int(one("WatchdogSec").rstrip("s")) <= 60
    assert one("Restart") == "on-failure"
    assert "CAP_NET_BIND_SERVICE" in one("AmbientCapabilities").split()
    assert "CAP_NET_BIND_SERVICE" in one("CapabilityBoundingSet").split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} <= set(one("RestrictAddressFamilies").split())
    assert {"gpio", "dialout", "i2c", "video"} <= set(one("SupplementaryGroups").split())
    assert one("User") == "edge" and one("StateDirectory") == "edge"
    assert "/etc/edge" in one("ReadWritePaths").split()
    allowed = " ".join(unit_values(UNIT, "DeviceAllow"))
    for dev in ("gpiochip", "i2c", "ttyUSB", "ttyAMA", "video4linux"):
        assert f"char-{dev} " in allowed + " ", dev
    # resource caps (connection floods, leaks): more descriptors than the default 1,024, bounded memory and tasks
    assert 4096 <= int(one("LimitNOFILE")) <= 65536
    assert one("MemoryMax").endswith("%") or one("MemoryMax")[-1] in "MG"
    assert 64 <= int(one("TasksMax")) <= 1024
    # PrivateNetwork/PrivateUsers/IPAddressDeny would break serving the LAN and binding port 80.
    for key in ("PrivateNetwork", "PrivateUsers", "IPAddressDeny"):
        assert not unit_values(UNIT, key) or unit_values(UNIT, key)[-1] in ("no", "false"), key


def test_execstart_is_a_command_line_edge_accepts():
    from edge.cli import cli

    argv = shlex.split(unit_values(UNIT, "ExecStart")[0])
    assert argv[0] == "/opt/edge/venv/bin/edge" and argv[1] == "run"
    # --help is eager but the parser still rejects unknown options first.
    res = CliRunner().invoke(cli, argv[1:] + ["--help"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, argv[1:] + ["--no-such-option", "--help"])
    assert res.exit_code != 0


def test_sysusers_and_tmpfiles_create_user_groups_and_private_data_dir(tmp_path):
    root = tmp_path
    (root / "etc").mkdir()
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    shutil.copy(UNIT_DIR / "edge.sysusers", root / "usr/lib/sysusers.d/edge.conf")
    shutil.copy(UNIT_DIR / "edge.tmpfiles", root / "usr/lib/tmpfiles.d/edge.conf")
    res = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    groups = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    assert passwd["edge"][6] == "/usr/sbin/nologin"
    for g in ("gpio", "dialout", "i2c", "video"):
        assert "edge" in groups[g][3].split(","), g
    res = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    st = (root / "var/lib/edge").stat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == int(passwd["edge"][2])
    assert stat.S_IMODE((root / "etc/edge").stat().st_mode) & 0o007 == 0
