"""Reboot and factory reset, behind an interface so tests and the demo never reboot the box.

Factory reset wipes the credentials, the config changes made on the box (the shipped config
is kept as ``<config>.factory`` before the first change and put back) and the data
directory, then reboots: the next start is a first boot with new credentials.

The service runs as an unprivileged, sandboxed user: on the appliance what needs root
(reboot, the reset's wipe, ``networkctl reload``) is asked of root's ``edge-ctl.service``
(``Privileged``): edge drops a request file into its runtime directory, a systemd path unit
starts the root oneshot, which does the one thing asked and removes the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
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


CTL_DIR = Path("/run/edge/ctl")  # in edge.service's RuntimeDirectory (only the edge user writes there)
CTL_UNIT = Path("/usr/local/lib/systemd/system/edge-ctl.path")
REQUESTS = ("network-reload", "reboot", "factory-reset")


class PrivilegeError(OSError):
    pass


class Privileged:
    """Asks root's edge-ctl.service to do one thing: writes ``<dir>/<what>`` and waits until
    the unit has removed it (done) or ``timeout_s`` passed."""

    def __init__(self, directory: Path = CTL_DIR, timeout_s: float = 20.0, poll_s: float = 0.1):
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    @classmethod
    def installed(cls) -> "Privileged | None":
        """The appliance's helper, when its units are installed (the SD image)."""
        return cls() if CTL_UNIT.exists() else None

    async def request(self, what: str, wait: bool = True) -> None:
        if what not in REQUESTS:
            raise ValueError(f"unknown privileged request {what!r}")
        path = self.directory / what
        await asyncio.to_thread(self._drop, path)
        if not wait:
            return
        deadline = time.monotonic() + self.timeout_s
        while path.exists():
            if time.monotonic() > deadline:
                raise PrivilegeError(f"edge-ctl.service did not take {what!r} within {self.timeout_s:.0f} s "
                                     "(is edge-ctl.path enabled?)")
            await asyncio.sleep(self.poll_s)

    def _drop(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")  # the path unit only sees the finished name
        tmp.write_text(f"{os.getpid()} {time.time():.0f}\n")
        tmp.replace(path)


class RealSystem:
    """Reboot and reset on the machine: through ``privileged`` (the appliance's edge-ctl unit),
    else directly (``systemctl reboot``: root, or a polkit rule that allows it)."""

    def __init__(self, data_dir: Path, config_path: Path | None, privileged: Privileged | None = None):
        self.data_dir = Path(data_dir)
        self.config_path = config_path
        self.privileged = privileged

    async def reboot(self) -> None:
        log.warning("rebooting (asked on the front panel)")
        if self.privileged is not None:
            await self.privileged.request("reboot", wait=False)
            return
        proc = await asyncio.create_subprocess_exec("systemctl", "reboot", stderr=subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise PrivilegeError(f"systemctl reboot: {err.decode(errors='replace').strip() or proc.returncode}")

    async def factory_reset(self) -> None:
        if self.privileged is not None:  # root stops edge, wipes data and config changes, reboots
            log.warning("factory reset: asking edge-ctl.service to wipe and reboot")
            await self.privileged.request("factory-reset", wait=False)
            return
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
