"""Picks up a credentials rotation done outside the service (``edge credentials rotate``).

The file is checked every second (stat only) and at once on SIGHUP; a change goes through
``ctx.credentials.reload()``, whose listeners switch RTSP, ONVIF and HTTP to the new password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from .. import credentials as credentials_mod
from ..component import Component

log = logging.getLogger("edge.setup.watch")


def _signature(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class CredentialsWatcher(Component):
    name = "credentials-watch"

    def __init__(self, ctx: Any, interval_s: float = 1.0):
        super().__init__()
        self.ctx = ctx
        self.interval_s = interval_s
        self.path = credentials_mod.path_for(ctx.data_dir)
        self._kick = asyncio.Event()
        self._sig: tuple[int, int, int] | None = None
        self.reloads = 0
        self._hup = False

    async def start(self) -> None:
        self._sig = await asyncio.to_thread(_signature, self.path)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._kick.set)
            self._hup = True  # only in the main thread (not in tests running the service in-process)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):  # not wait_for: it may swallow a cancel on 3.11
                    await self._kick.wait()
            forced = self._kick.is_set()
            self._kick.clear()
            sig = await asyncio.to_thread(_signature, self.path)
            if sig is None or (sig == self._sig and not forced):
                continue
            self._sig = sig
            before = self.ctx.credentials.get()
            try:
                after = self.ctx.credentials.reload()
            except (ValueError, TypeError, OSError) as exc:  # half-written or hand-edited file
                log.error("cannot read %s: %s; keeping the current credentials", self.path, exc)
                continue
            if after.password != before.password:
                self.reloads += 1
                log.warning("credentials changed outside the service; every surface now uses the new password")

    async def stop(self) -> None:
        if self._hup:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
