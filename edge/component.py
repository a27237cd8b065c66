"""The component seam: everything the supervisor runs is a Component.

Lifecycle, driven by ``edge.app.Supervisor``:

- ``start()`` once before READY=1, in the order components were added (relays first: safe
  state). An exception here is retried with backoff like a failed ``run``.
- ``run()`` runs until cancelled. Returning or raising is a failure: the supervisor logs why,
  waits (exponential backoff with jitter), calls ``start()`` again and then ``run()``; the other
  components keep running.
- ``stop()`` once at shutdown, in reverse order (relays to safe state, store flushed last).

A component that can hang sets ``stall_timeout_s`` and calls ``beat()`` while it works; the
watchdog stops pinging systemd if a beat is overdue (systemd then restarts the service).
``health()`` gives a one-line summary for STATUS= and /healthz.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


class Component:
    name: str = "component"
    stall_timeout_s: float | None = None
    critical: bool = False  # when True, a failing start() keeps READY=1 from being sent

    def __init__(self) -> None:
        self._last_beat = time.monotonic()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def stalled_for(self) -> float:
        """Seconds past the stall timeout (0 when fine or not watched)."""
        if self.stall_timeout_s is None:
            return 0.0
        late = time.monotonic() - self._last_beat - self.stall_timeout_s
        return max(0.0, late)

    async def start(self) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        return None

    def health(self) -> Health:
        return Health(True)
