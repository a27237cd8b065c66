"""The component seam: everything the supervisor runs is a Component.

Lifecycle, driven by ``edge.app.Supervisor``:

- ``start()`` once before READY=1, in the order components were added (relays first: safe
  state). An exception here is retried with backoff like a failed ``run``.
- ``run()`` runs until cancelled. Returning or raising is a failure: the supervisor logs why,
  waits (exponential backoff with jitter), calls ``start()`` again and then ``run()``; the other
  components keep running.
- ``stop()`` once at shutdown, in reverse order (relays to safe state, store flushed last).

A component that can hang sets ``stall_timeout_s`` and calls ``beat()`` while it works (or
overrides ``stalled_for``/``stall_detail``); the watchdog stops pinging systemd while one is
stalled (systemd then restarts the service). ``stop_first`` components (the relays) are
stopped before all others, so the safe state never waits for a slow component.
``health()`` gives a one-line summary for STATUS= and /healthz.

Background work a component starts outside ``run()`` (a pulse's end, a front-panel action, a
publish) goes through ``spawn()``: the task is kept (so it is not garbage-collected mid-flight)
and cancelled by the supervisor after ``stop()``; a failure is logged with the component's name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
log = logging.getLogger("edge.component")


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


class Component:
    name: str = "component"
    stall_timeout_s: float | None = None
    critical: bool = False  # when True, a failing start() keeps READY=1 from being sent
    stop_first: bool = False  # stopped before every other component (relays: safe state first)

    def __init__(self) -> None:
        self._last_beat = time.monotonic()
        self._spawned: set[asyncio.Task[Any]] = set()

    # ---- background tasks -----------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> "asyncio.Task[T]":
        """Run ``coro`` as a task owned by this component (cancelled at stop)."""
        task = asyncio.get_running_loop().create_task(coro, name=name or f"{self.name}-task")
        self._spawned.add(task)
        task.add_done_callback(self._spawn_done)
        return task

    def _spawn_done(self, task: "asyncio.Task[Any]") -> None:
        self._spawned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: background task %s failed: %s: %s", self.name, task.get_name(), type(exc).__name__, exc)

    @property
    def spawned(self) -> set["asyncio.Task[Any]"]:
        return set(self._spawned)

    async def cancel_spawned(self, timeout: float = 1.0) -> None:
        """Cancel every task from ``spawn()`` and wait up to ``timeout`` for them to end."""
        tasks = [t for t in self._spawned if not t.done() and t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def stalled_for(self) -> float:
        """Seconds past the stall timeout (0 when fine or not watched)."""
        if self.stall_timeout_s is None:
            return 0.0
        late = time.monotonic() - self._last_beat - self.stall_timeout_s
        return max(0.0, late)

    def stall_detail(self) -> str:
        """Why the watchdog is withheld for this component (when ``stalled_for() > 0``)."""
        return f"{self.name} stalled {self.stalled_for():.1f}s"

    async def start(self) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        return None

    def health(self) -> Health:
        return Health(True)
