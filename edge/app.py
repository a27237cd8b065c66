"""The supervisor: builds components from the config, runs them, keeps them running.

- Components start in order (relays first, so every relay is in its safe state) and
  ``READY=1`` goes to systemd only once they are all up.
- A failed component is restarted with exponential backoff and jitter while the others keep
  running; why it failed is logged and counted.
- ``WATCHDOG=1`` is sent by the health task only while the event loop's lag stays under the
  bound, no component is stalled (a hung store writer is one) and no critical component has
  been down longer than ``critical_down_max_s``; ``STATUS=`` (and /healthz) say why not.
- SIGTERM/SIGINT: ``STOPPING=1``; the ``stop_first`` components (the relays: safe state) are
  stopped before anything else, then the others in reverse order (the store flushed late),
  exit within the stop budget.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from .component import Component, Health
from .context import Context
from .memtune import release_free_memory
from .notify import Notifier

log = logging.getLogger("edge.app")

STOP_BUDGET_S = 4.5
CANCEL_BUDGET_S = 1.0
FIRST_CANCEL_BUDGET_S = 0.2
STABLE_RUN_S = 60.0  # a component that ran this long gets its backoff reset
EXIT_RESTART = 75  # EX_TEMPFAIL: a clean stop that asks systemd (Restart=on-failure) for a restart


def settle_heap() -> None:
    """Once everything is built: collect, then move every object alive now (modules, configs,
    pydantic models, GStreamer bindings: a few hundred thousand) out of the garbage collector's
    reach. A full collection walks every tracked object; with them it stopped the loop for
    ~50 ms (a door message waited that long) whenever one ran under a steady ingest. After the
    freeze it walks only what was made since. Then the heap's free pages go back to the
    kernel. Safe to call again (a component rebuilt live)."""
    gc.collect()
    gc.freeze()
    release_free_memory()


@dataclass
class _Slot:
    component: Component
    started: asyncio.Event = field(default_factory=asyncio.Event)
    first_attempt_done: asyncio.Event = field(default_factory=asyncio.Event)
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    task: asyncio.Task[None] | None = None
    down_since: float = field(default_factory=time.monotonic)  # while not running


class Supervisor:
    def __init__(self, ctx: Context, components: list[Component], notifier: Notifier | None = None):
        self.ctx = ctx
        self.slots = [_Slot(c) for c in components]
        self.notifier = notifier or Notifier()
        self.stop_event = asyncio.Event()
        self.exit_code = 0  # non-zero: systemd (Restart=on-failure) starts the service again
        self.ready = False
        self.max_lag_s = 0.0
        self.last_lag_s = 0.0
        self.last_status = ""
        self.watchdog_pings = 0
        self.watchdog_withheld = ""
        cfg = ctx.config.service
        self.lag_bound_s = cfg.loop_lag_max_ms / 1000
        self.critical_down_max_s = cfg.critical_down_max_s
        self.backoff_initial = cfg.restart_backoff_initial_s
        self.backoff_max = cfg.restart_backoff_max_s
        self.started_at = time.time()

    # ---- lifecycle of one component -------------------------------------------------
    async def _lifecycle(self, slot: _Slot) -> None:
        comp = slot.component
        backoff = self.backoff_initial
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                await comp.start()
                slot.running = True
                slot.down_since = 0.0
                slot.started.set()
                slot.first_attempt_done.set()
                comp.beat()
                self.ctx.metrics.component_up.labels(comp.name).set(1)
                await comp.run()
                raise RuntimeError("run() returned")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a component failure must never kill the others
                if slot.running or not slot.down_since:
                    slot.down_since = time.monotonic()
                slot.running = False
                slot.first_attempt_done.set()
                self.ctx.metrics.component_up.labels(comp.name).set(0)
                if self.stop_event.is_set():
                    return
                if time.monotonic() - began > STABLE_RUN_S:
                    backoff = self.backoff_initial
                slot.restarts += 1
                slot.last_error = f"{type(exc).__name__}: {exc}"
                self.ctx.metrics.component_restarts.labels(comp.name).inc()
                delay = backoff * random.uniform(0.5, 1.0)
                log.error("component %s failed (%s); restart %d in %.1f s", comp.name, slot.last_error, slot.restarts, delay,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                backoff = min(backoff * 2, self.backoff_max)
                try:
                    await asyncio.wait_for(self.stop_event.wait(), delay)
                    return
                except TimeoutError:
                    pass

    # ---- health, watchdog, status ---------------------------------------------------
    def health_summary(self) -> tuple[bool, str]:
        problems = []
        for slot in self.slots:
            c = slot.component
            if not slot.running:
                problems.append(f"{c.name}: down ({slot.last_error or 'starting'})")
                continue
            h: Health = c.health()
            if not h.ok:
                problems.append(f"{c.name}: {h.detail}")
        if problems:
            return False, "degraded: " + "; ".join(problems)
        return True, f"ok: {len(self.slots)} components up"

    def _stalled(self) -> list[str]:
        out = [s.component.stall_detail() for s in self.slots if s.component.stalled_for() > 0]
        now = time.monotonic()
        for s in self.slots:
            if s.component.critical and not s.running and s.down_since and now - s.down_since > self.critical_down_max_s:
                out.append(f"{s.component.name} down for {now - s.down_since:.0f} s ({s.last_error or 'starting'})")
        return out

    async def _lag_monitor(self, tick: float = 0.1) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(tick)
            lag = max(0.0, loop.time() - t0 - tick)
            self.last_lag_s = lag
            self.max_lag_s = max(self.max_lag_s, lag)
            self.ctx.metrics.loop_lag.set(lag)

    async def _health_task(self) -> None:
        interval = Notifier.watchdog_interval() or 1.0
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(interval)
            # this task's own oversleep counts too: after a blocked loop it may run before the
            # lag monitor has seen the block
            own_lag = max(0.0, loop.time() - t0 - interval)
            window_lag, self.max_lag_s = max(self.max_lag_s, own_lag), 0.0
            stalled = self._stalled()
            ok, summary = self.health_summary()
            m = self.ctx.metrics
            m.bus_published.set(self.ctx.bus.published)
            m.bus_drops.set(self.ctx.bus.dropped)
            if window_lag > self.lag_bound_s:
                self.watchdog_withheld = f"watchdog withheld: event loop lag {window_lag * 1000:.0f} ms > {self.lag_bound_s * 1000:.0f} ms"
            elif stalled:
                self.watchdog_withheld = "watchdog withheld: " + ", ".join(stalled)
            else:
                self.watchdog_withheld = ""
            status = self.watchdog_withheld or summary
            if status != self.last_status:
                (log.warning if self.watchdog_withheld or not ok else log.info)("status: %s", status)
                self.notifier.status(status)
                self.last_status = status
            if not self.watchdog_withheld:
                self.notifier.watchdog()
                self.watchdog_pings += 1

    def component(self, name: str) -> Component:
        """The running component called ``name`` (tests, the CLI's in-process helpers)."""
        for slot in self.slots:
            if slot.component.name == name:
                return slot.component
        raise LookupError(f"no component {name!r} (have: {', '.join(s.component.name for s in self.slots)})")

    async def replace(self, name: str, build: "Callable[[Component], Component]") -> Component:
        """Stop the component called ``name`` and run ``build(old)`` in its place (same slot in
        the start and stop order); returns the new one once its first start was tried. The
        other components keep running (a config change applied live: edge.live_config)."""
        slot = next((s for s in self.slots if s.component.name == name), None)
        if slot is None:
            raise LookupError(f"no component {name!r}")
        old = slot.component
        if slot.task is not None:
            slot.task.cancel()
            await asyncio.wait({slot.task}, timeout=CANCEL_BUDGET_S)
        try:
            await asyncio.wait_for(old.stop(), STOP_BUDGET_S)
        except Exception as exc:  # noqa: BLE001 - the replacement still starts
            log.error("stopping %s for its replacement failed: %s", name, exc)
        await old.cancel_spawned(CANCEL_BUDGET_S)
        new = _Slot(build(old))
        self.slots[self.slots.index(slot)] = new
        new.task = asyncio.create_task(self._lifecycle(new), name=f"component:{name}")
        waiter = asyncio.ensure_future(new.first_attempt_done.wait())
        await asyncio.wait({waiter}, timeout=STOP_BUDGET_S)
        waiter.cancel()
        log.info("component %s replaced (%s)", name, "running" if new.running else new.last_error or "starting")
        return new.component

    # ---- whole service --------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_event.set()

    def request_restart(self, why: str) -> None:
        """Stop cleanly and exit with EXIT_RESTART so systemd starts the service again."""
        log.warning("restart requested: %s", why)
        self.exit_code = EXIT_RESTART
        self.stop_event.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.ctx.bus.bind_loop(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests)
        aux: list[asyncio.Task[None]] = [
            asyncio.create_task(self._lag_monitor(), name="lag-monitor"),
        ]
        log.info("starting %d components: %s", len(self.slots), ", ".join(s.component.name for s in self.slots))
        try:
            for slot in self.slots:
                slot.task = asyncio.create_task(self._lifecycle(slot), name=f"component:{slot.component.name}")
                # in order: the next component starts once this one has tried (relays first)
                waiter = slot.started if slot.component.critical else slot.first_attempt_done
                stop_wait = asyncio.ensure_future(self.stop_event.wait())
                done_wait = asyncio.ensure_future(waiter.wait())
                await asyncio.wait({stop_wait, done_wait}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                done_wait.cancel()
                if self.stop_event.is_set():
                    break
            if not self.stop_event.is_set():
                settle_heap()
                ok, summary = self.health_summary()
                self.ready = True
                self.ctx.metrics.ready.set(1)
                self.notifier.ready(summary)
                self.last_status = summary
                log.info("READY: %s", summary)
                aux.append(asyncio.create_task(self._health_task(), name="health"))
                await self.stop_event.wait()
        finally:
            await self._shutdown(aux)

    async def _shutdown(self, aux: list[asyncio.Task[None]]) -> None:
        self.notifier.stopping()
        log.info("stopping")
        deadline = time.monotonic() + STOP_BUDGET_S
        first = [s for s in self.slots if s.component.stop_first]
        # the relays before anything else: their own tasks end (no poll re-asserts a held
        # state meanwhile), then every relay to its safe state, whatever else is slow
        await self._cancel([s for s in first if s.task is not None], FIRST_CANCEL_BUDGET_S)
        await asyncio.gather(*(self._stop_one(s, deadline) for s in first))
        rest = [s for s in self.slots if not s.component.stop_first]
        # a component that swallows its cancellation must not hang the stop: its stop()
        # still runs below, and the process exits regardless
        await self._cancel([s for s in rest if s.task is not None], CANCEL_BUDGET_S)
        for slot in reversed(rest):
            await self._stop_one(slot, deadline)
        for t in aux:
            t.cancel()
        await asyncio.gather(*aux, return_exceptions=True)
        log.info("stopped")

    @staticmethod
    async def _cancel(slots: list[_Slot], budget: float) -> None:
        tasks = [s.task for s in slots if s.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=budget)
            for t in pending:
                log.error("component task %s ignored cancellation for %.1f s; stopping anyway", t.get_name(), budget)

    async def _stop_one(self, slot: _Slot, deadline: float) -> None:
        remaining = max(0.2, deadline - time.monotonic())
        try:
            await asyncio.wait_for(slot.component.stop(), remaining)
        except Exception as exc:  # noqa: BLE001
            log.error("stopping %s failed: %s", slot.component.name, exc)
        await slot.component.cancel_spawned(min(CANCEL_BUDGET_S, max(0.05, deadline - time.monotonic())))
