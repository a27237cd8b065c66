"""What the Raspberry Pi firmware would boot from the card, for `make image-test`'s qemu.

qemu's `virt` board has no Pi firmware: image_test.py boots the kernel directly. This module
makes that choice the way the Pi 4 bootloader does: it reads ``autoboot.txt`` from the first
FAT partition ([all], [tryboot] and board filters, later lines win), takes the partition named
by ``boot_partition`` (under [tryboot] only when the previous reboot asked for it), and from
that partition reads ``config.txt`` (kernel=, initramfs) and ``cmdline.txt``. The one-shot
tryboot flag lives in the firmware, not on the card: the kernel's last console line says
what the reboot asked for ("Restarting system with command '0 tryboot'").
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

BOARD_FILTERS_TRUE = {"all", "pi4"}  # the board we emulate: a Pi 4


def boot_partition(autoboot: str, tryboot: bool) -> int:
    """The partition number the firmware boots (1 = the first FAT partition, the default)."""
    active, part = True, 0
    for raw in autoboot.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\]", line):
            name = m.group(1).strip().lower()
            active = tryboot if name == "tryboot" else name in BOARD_FILTERS_TRUE
            continue
        key, _, value = line.partition("=")
        if active and key.strip() == "boot_partition":
            part = int(value.strip())
    return part or 1


def reboot_request(line: str) -> str | None:
    """'tryboot', 'reboot' or 'off' from the kernel's last words on the console, else None."""
    if "reboot: Power down" in line or "reboot: System halted" in line:
        return "off"
    if m := re.search(r"reboot: Restarting system(?: with command '([^']*)')?", line):
        return "tryboot" if m.group(1) and "tryboot" in m.group(1).split() else "reboot"
    return None


@dataclass
class BootChoice:
    partition: int
    kernel: Path
    initrd: Path
    cmdline: str


def _partitions(disk: Path) -> dict[int, int]:
    """partition number -> byte offset"""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]
    out = {}
    for p in table["partitions"]:
        num = int(re.search(r"(\d+)$", p["node"]).group(1))
        out[num] = p["start"] * 512
    return out


def _fat_read(disk: Path, offset: int, name: str) -> bytes | None:
    res = subprocess.run(["mcopy", "-n", "-i", f"{disk}@@{offset}", f"::{name}", "-"], capture_output=True)
    return res.stdout if res.returncode == 0 else None


def choose(disk: Path, tryboot: bool, into: Path) -> BootChoice:
    """Read the card as the firmware would; kernel and initrd are copied into ``into``."""
    parts = _partitions(disk)
    auto = _fat_read(disk, parts[1], "autoboot.txt")
    num = boot_partition(auto.decode() if auto else "", tryboot)
    if num not in parts:
        raise RuntimeError(f"autoboot.txt names partition {num}, which the card does not have")
    config = _fat_read(disk, parts[num], "config.txt")
    cmdline = _fat_read(disk, parts[num], "cmdline.txt")
    if config is None or cmdline is None:
        raise RuntimeError(f"partition {num} has no config.txt/cmdline.txt: the firmware would not boot it")
    conf = config.decode()
    kernel = re.search(r"^kernel=(\S+)", conf, re.M).group(1)
    initrd = re.search(r"^initramfs (\S+)", conf, re.M).group(1)
    into.mkdir(parents=True, exist_ok=True)
    out = []
    for name, local in ((kernel, f"p{num}-vmlinuz"), (initrd, f"p{num}-initrd.img")):
        data = _fat_read(disk, parts[num], name)
        if data is None:
            raise RuntimeError(f"partition {num}: config.txt names {name}, which is not there")
        (into / local).write_bytes(data)
        out.append(into / local)
    return BootChoice(num, out[0], out[1], cmdline.decode().strip())
