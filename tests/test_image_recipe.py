"""Quick consistency checks of the SD image recipe (image-build/), in seconds, without
building it: the units verify, every file the hooks install exists, the Debian package list
resolves, the appliance config loads, the shell scripts parse. The real build is `make image`
and its boot test `make image-test`."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from edge import config as config_mod

from . import unitcheck

ROOT = Path(__file__).resolve().parent.parent
IB = ROOT / "image-build"
UNITS = sorted((ROOT / "systemd").glob("*.service"))


def package_list() -> list[tuple[str, set[str]]]:
    out = []
    for raw in (IB / "packages.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split()[0]
        tags = set(re.findall(r"\[([^\]]+)\]", line))
        out.append((name, tags))
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt: systemd)")
def test_all_units_verify():
    res = unitcheck.verify(*UNITS, *sorted((ROOT / "systemd").glob("*.path")))
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def test_every_unit_the_hooks_install_and_enable_exists():
    # customize.sh installs the appliance's units, customize-updates.sh those of A/B updates
    customize = (IB / "hooks" / "customize.sh").read_text() + (IB / "hooks" / "customize-updates.sh").read_text()
    installed = set(re.findall(r'"\$REPO"/systemd/([\w.-]+\.service)', customize))
    assert installed == {u.name for u in UNITS}, "a unit in systemd/ is not installed by customize.sh (or vice versa)"
    enabled = set()
    for m in re.finditer(r"systemctl --root=\"\$R\" enable ((?:[^\n\\]|\\\n)+)", customize):
        enabled |= set(m.group(1).replace("\\\n", " ").split())
    # a oneshot started by an enabled .path unit needs no enabling of its own
    triggered = {re.search(r"^Unit=(\S+)$", p.read_text(), re.M).group(1)
                 for p in (ROOT / "systemd").glob("*.path") if p.name in enabled}
    assert {u.name for u in UNITS} <= enabled | triggered
    for path_unit in (ROOT / "systemd").glob("*.path"):
        assert f'"$REPO"/systemd/{path_unit.name}' in customize, path_unit.name
    for rel in ("systemd/edge.sysusers", "systemd/edge.tmpfiles", "systemd/60-edge-hw.rules",
                "image-build/edge.toml", "image-build/requirements-image.txt"):
        assert rel.split("/", 1)[1] in customize + (IB / "build.sh").read_text(), rel
        assert (ROOT / rel).is_file(), rel


def test_exec_paths_of_units_are_shipped():
    """An Exec path under /usr/local/lib/edge must be a file in the overlay, executable."""
    for unit in UNITS:
        for path in unitcheck.exec_paths(unit):
            if path.startswith("/usr/local/"):
                f = IB / "overlay" / path.lstrip("/")
                assert f.is_file(), f"{unit.name}: {path} not in image-build/overlay"
                assert f.stat().st_mode & stat.S_IXUSR, f"{f} is not executable"


def test_overlay_settings_the_appliance_relies_on():
    fstab = (IB / "overlay/etc/fstab").read_text()
    lines = {l.split()[1]: l.split() for l in fstab.splitlines() if l.strip() and not l.startswith("#")}
    # A/B: the root fs is the kernel's (no line, both slots share fstab); what updates keep is on /data
    assert "/" not in lines
    assert lines["/data"][0] == "PARTUUID=45444745-07" and "noatime" in lines["/data"][3].split(",")
    assert lines["/boot/firmware"][0] == "PARTUUID=45444745-01"
    for kept in ("/etc/edge", "/var/lib/edge", "/var/lib/mosquitto"):
        assert "bind" in lines[kept][3] and "nofail" not in lines[kept][3], kept
    journald = (IB / "overlay/etc/systemd/journald.conf.d/edge.conf").read_text()
    assert re.search(r"^Storage=volatile$", journald, re.M) and re.search(r"^RuntimeMaxUse=\d+M$", journald, re.M)
    essential = (IB / "hooks/essential.sh").read_text()
    assert "MODULES=list" in essential and "ROOTPART=LABEL=RASPIROOT" in essential
    # no kernel console (nor getty) on the GPIO UART the docs suggest for RS485
    consoles = re.search(r'^CONSOLES="([^"]*)"', essential, re.M).group(1).split()
    assert consoles and not any(c.startswith(("ttyS", "ttyAMA", "serial")) for c in consoles), consoles
    # ab-image.sh turns that into slot A's root by PARTUUID, with its name for RAUC
    ab = (IB / "ab-image.sh").read_text()
    assert "root=PARTUUID=$DISK_ID-05" in ab and "rauc.slot=A" in ab and "rootflags=noatime" in ab
    customize = (IB / "hooks/customize.sh").read_text()
    assert "mask systemd-firstboot.service" in customize
    assert re.search(r"disable ssh\.service ssh\.socket", customize)
    build = (IB / "build.sh").read_text()
    assert "echo uninitialized > \"$ROOT/etc/machine-id\"" in build
    assert 'rm -f "$ROOT"/etc/ssh/ssh_host_*' in build
    assert "losetup" not in build and "mount -o loop" not in build and "kpartx" not in build
    sshd = (IB / "overlay/etc/systemd/system/ssh.service.d/hostkeys.conf").read_text()
    assert sshd.index("ssh-keygen -A") < sshd.index("sshd -t")


def test_scripts_parse():
    scripts = [IB / "build.sh", IB / "ab-image.sh", IB / "bundle.sh", IB / "bundle/hook.sh",
               *sorted((IB / "hooks").glob("*.sh")), *sorted((IB / "overlay/usr/local/lib/edge").iterdir())]
    for s in scripts:
        shell = "bash" if s.read_text().startswith("#!/bin/bash") else "sh"
        res = subprocess.run([shell, "-n", str(s)], capture_output=True, text=True)
        assert res.returncode == 0, f"{s}: {res.stderr}"
        assert s.stat().st_mode & stat.S_IXUSR, f"{s} is not executable"


def test_appliance_config_loads_and_serves_on_port_80():
    cfg = config_mod.load(IB / "edge.toml")
    assert cfg.web.port == 80 and cfg.web.host == "0.0.0.0"


def test_appliance_config_commented_defaults_and_examples_are_valid(tmp_path):
    """An installer who uncomments any documented default or example gets a config that loads."""
    text = (IB / "edge.toml").read_text()
    uncommented = "\n".join(re.sub(r"^# (\[[a-z_.]+\]|[a-z_]+ = .*)$", r"\1", line) for line in text.splitlines())
    assert uncommented.count("\n[") > text.count("\n["), "no commented examples found"
    p = tmp_path / "edge.toml"
    p.write_text(uncommented)
    cfg = config_mod.load(p)
    assert cfg.web.port == 80


def test_appliance_config_check_catches_a_typo(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text((IB / "edge.toml").read_text().replace("port = 80", "prot = 80"))
    with pytest.raises(config_mod.ConfigError) as exc:
        config_mod.load(bad)
    assert "web.prot" in str(exc.value)


def test_image_requirements_are_pinned():
    for raw in (IB / "requirements-image.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line), line


def _apt_lists_present() -> bool:
    lists = Path("/var/lib/apt/lists")
    return shutil.which("apt-get") is not None and any(lists.glob("*_Packages*"))


@pytest.mark.skipif(not _apt_lists_present(), reason="no apt package lists on this host (run apt-get update)")
def test_package_list_resolves_against_bookworm():
    """Names that exist for amd64 in main must have a candidate and install together
    (simulated); names tagged [arm64] / [non-free-firmware] cannot be seen from here and are
    resolved by the real build."""
    pkgs = package_list()
    names = [n for n, _ in pkgs]
    assert len(names) == len(set(names)), "duplicate package names"
    for name, tags in pkgs:
        assert tags <= {"arm64", "non-free-firmware"}, f"{name}: unknown tag {tags}"
    checkable = [n for n, tags in pkgs if not tags]
    res = subprocess.run(["apt-cache", "policy", *checkable], capture_output=True, text=True, timeout=60)
    no_candidate = re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: \(none\)", res.stdout, re.M)
    known = set(re.findall(r"^(\S+):$", res.stdout, re.M))
    assert not no_candidate, f"no candidate: {no_candidate}"
    assert set(checkable) <= known, f"unknown to apt: {sorted(set(checkable) - known)}"
    sim = subprocess.run(["apt-get", "install", "--simulate", "-q", "--no-install-recommends", *checkable],
                         capture_output=True, text=True, timeout=120, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]


def test_build_reads_the_package_list_without_tags():
    """build.sh turns packages.txt into mmdebstrap's --include: tags and comments stripped."""
    script = r"""sed -e 's/#.*//' -e 's/\[[^]]*\]//g' "$1" | xargs | tr ' ' ','"""
    res = subprocess.run(["sh", "-c", script, "sh", str(IB / "packages.txt")], capture_output=True, text=True)
    assert script.split("|")[0].strip() in (IB / "build.sh").read_text().replace('"$HERE/packages.txt"', '"$1"')
    assert res.stdout.strip().split(",") == [n for n, _ in package_list()]
