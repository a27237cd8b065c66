"""Reboot and factory reset, behind an interface so tests and the demo never reboot the box.

Factory reset wipes the credentials, the config changes made on the box (the shipped config
is kept as ``<config>.factory`` before the first change and put back) and the data
directory, then reboots: the next start is a first boot with new credentials.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Protocol

log = logging.getLogger("hw.system")


def factory_copy_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".factory")


def keep_factory_copy(config_path: Path | None) -> None:
    """Before the first change written from the box: keep the shipped config to go back to."""
    if config_path is None:
        return
    fc = factory_copy_path(config_path)
    if not fc.exists() and config_path.exists():
        shutil.copy2(config_path, fc)


def wipe(data_dir: Path, config_path: Path | None, keep: Iterable[str] = ()) -> list[str]:
    """Blocking: restore the shipped config, delete everything in data_dir except ``keep``.
    Returns what was removed (for the log)."""
    removed: list[str] = []
    if config_path is not None:
        fc = factory_copy_path(config_path)
        if fc.exists():
            tmp = config_path.with_name(config_path.name + ".new")
            shutil.copy2(fc, tmp)
            tmp.replace(config_path)
            fc.unlink()
            removed.append(f"config changes in {config_path}")
    data_dir = Path(data_dir)
    spare = {(data_dir / k).resolve() for k in keep}
    if config_path is not None:  # a config kept in the data dir (tests, demo) is restored, not deleted
        spare |= {Path(config_path).resolve(), factory_copy_path(Path(config_path).resolve())}
    if data_dir.is_dir():
        for entry in sorted(data_dir.iterdir()):
            if entry.resolve() in spare:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(str(entry))
    return removed


class SystemControl(Protocol):
    async def reboot(self) -> None: ...
    async def factory_reset(self) -> None: ...


class RealSystem:
    def __init__(self, data_dir: Path, config_path: Path | None):
        self.data_dir = Path(data_dir)
        self.config_path = config_path

    async def reboot(self) -> None:
        log.warning("rebooting (asked on the front panel)")
        proc = await asyncio.create_subprocess_exec("systemctl", "reboot")
        await proc.wait()

    async def factory_reset(self) -> None:
        removed = await asyncio.to_thread(wipe, self.data_dir, self.config_path)
        log.warning("factory reset: removed %s", ", ".join(removed) or "nothing")
        await self.reboot()


class SimulatedSystem:
    """Wipes for real (the demo's ./var, a test's tmp dir) but "reboots" by calling back."""

    def __init__(self, data_dir: Path, config_path: Path | None, on_reboot: Callable[[], Awaitable[None]] | None = None,
                 keep: Iterable[str] = ()):
        self.data_dir = Path(data_dir)
        self.config_path = config_path
        self.on_reboot = on_reboot
        self.keep = tuple(keep)
        self.reboots = 0
        self.factory_resets = 0

    async def reboot(self) -> None:
        self.reboots += 1
        log.warning("reboot (simulated)")
        if self.on_reboot is not None:
            await self.on_reboot()

    async def factory_reset(self) -> None:
        self.factory_resets += 1
        removed = await asyncio.to_thread(wipe, self.data_dir, self.config_path, self.keep)
        log.warning("factory reset (simulated): removed %s", ", ".join(removed) or "nothing")
        await self.reboot()
