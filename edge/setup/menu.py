"""The front-panel menu as a pure state machine: buttons and time in, screen text and actions out.

No I/O here: ``Menu.button(ev, now)`` and ``Menu.tick(now)`` change the state and may queue
``Action``s (``Menu.take_actions()``); the component performs them and reports back with
``Menu.done(...)``. ``Menu.render(now)`` gives the lines a person reads. Tests drive it with a
controllable clock.

Precedence on the screen: an active alarm that was not dismissed > first-boot credentials
(until acknowledged) > the screen stack (home at the bottom).

Buttons: UP/DOWN move, SELECT enters/does, BACK goes back. In the address editor a held
UP/DOWN steps by 10. Factory reset needs SELECT held 10 s, then a fresh SELECT to confirm.

Where the rest lives: reusable screens in ``widgets``, this panel's screens in ``screens``,
line fitting and sensor words in ``text``. The menu's vocabulary (the ``actions``, what the
screens read: ``views``) is re-exported here: one import for tests and benches.
"""

from __future__ import annotations

from hw.buttons import ButtonEvent

from .actions import (AckAlarm, AcknowledgeCredentials, Action, ApplyNetwork, FactoryReset, Pulse, Reboot,
                      RotateCredentials)
from .screens import FirstBootScreen, HomeScreen, alarm_lines
from .text import SCROLL_STEP_S, fit
from .views import AlarmView, MenuData, SensorView
from .widgets import BusyScreen, MessageScreen, Screen

__all__ = ["Menu", "Action", "AcknowledgeCredentials", "RotateCredentials", "Pulse", "AckAlarm", "ApplyNetwork",
           "Reboot", "FactoryReset", "MenuData", "SensorView", "AlarmView", "HomeScreen", "SCROLL_STEP_S"]


class Menu:
    def __init__(self, data: MenuData, cols: int = 16, rows: int = 2, *, home_cycle_s: float = 4.0,
                 menu_timeout_s: float = 300.0, now: float = 0.0):
        self.data = data
        self.cols = cols
        self.rows = rows
        self.home_cycle_s = home_cycle_s
        self.menu_timeout_s = menu_timeout_s
        self.now = now
        home = HomeScreen()
        home.since = home.shown_at = now
        self.stack: list[Screen] = [home]
        self.interrupts: list[str] = []  # alarm ids shown over everything, newest last
        self._actions: list[Action] = []
        self.last_input = now
        self._first_boot = FirstBootScreen()
        self._alarm_since = now
        self._shown: Screen | None = home

    # -- stack ---------------------------------------------------------------------------
    def push(self, screen: Screen) -> None:
        screen.since = self.now
        self.stack.append(screen)

    def pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def home(self) -> None:
        del self.stack[1:]

    def emit(self, action: Action, busy_title: str = "", busy_message: str = "") -> None:
        """Queue ``action`` for the component; with a title, a busy screen waits for its result."""
        self._actions.append(action)
        if busy_title:
            self.push(BusyScreen(busy_title, busy_message, action))

    def take_actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def done(self, action: Action, title: str, message: str) -> None:
        """The component finished ``action``: replace its busy screen with the result."""
        for i in range(len(self.stack) - 1, 0, -1):
            s = self.stack[i]
            if isinstance(s, BusyScreen) and s.action is action:
                del self.stack[i:]
                break
        if title:
            self.push(MessageScreen(title, message))

    @property
    def top(self) -> Screen:
        return self.stack[-1]

    def current(self) -> Screen | None:
        """The screen on display (None: an alarm)."""
        if self.interrupts:
            return None
        if not self.data.acknowledged:
            return self._first_boot
        return self.top

    # -- inputs --------------------------------------------------------------------------
    def alarm(self, view: AlarmView, active: bool) -> None:
        if active:
            if view.alarm not in self.interrupts:
                self.interrupts.append(view.alarm)
                self._alarm_since = self.now
        elif view.alarm in self.interrupts:
            self.interrupts.remove(view.alarm)

    def button(self, ev: ButtonEvent, now: float) -> None:
        self.now = now
        if ev.kind == "press":
            self.last_input = now
        if self.interrupts:
            if ev.kind != "press":
                # a release still reaches the screen underneath (a hold there has ended)
                under = self._first_boot if not self.data.acknowledged else self.top
                under.button(self, ev, now)
                return
            alarm_id = self.interrupts[-1]
            if ev.button == "select":
                self.emit(AckAlarm(alarm_id))
            self.interrupts.pop()  # dismissed (still listed under Alarms while active)
            return
        scr = self.current()
        assert scr is not None
        scr.button(self, ev, now)

    def tick(self, now: float) -> None:
        self.now = now
        # drop interrupts of alarms no longer active
        self.interrupts = [a for a in self.interrupts if a in self.data.alarms]
        if (now - self.last_input >= self.menu_timeout_s and len(self.stack) > 1
                and not any(s.keeps_menu_open for s in self.stack)):
            self.home()
        scr = self.current()
        if scr is not None and scr is not self._shown:
            scr.shown(now)
        self._shown = scr
        if scr is not None:
            scr.tick(self, now)

    # -- output --------------------------------------------------------------------------
    def render(self, now: float | None = None) -> list[str]:
        now = self.now if now is None else now
        if self.interrupts:
            lines = alarm_lines(self, self.interrupts[-1], len(self.interrupts) - 1)
            since = self._alarm_since
        else:
            scr = self.current()
            assert scr is not None
            lines = scr.render(self, now)
            since = scr.scroll_since()
        lines = (list(lines) + [""] * self.rows)[: self.rows]
        return [fit(line, self.cols, now - since) for line in lines]
