"""Reusable screens for a small character display driven by four buttons (UP, DOWN, SELECT,
BACK): a list of pages, a yes/no question, a message, a busy screen, an IPv4 address editor,
a hold-to-confirm. They know nothing of this app's data: what a page says and what a choice
does come from their callers (``screens``).

A screen lives on the menu's stack (``menu.Menu``): it renders its lines, takes button events
and ticks with the menu's clock; it may push/pop screens and queue actions on the menu.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from hw.buttons import ButtonEvent

if TYPE_CHECKING:
    from .menu import Menu

OnChoice = Callable[["Menu", float], None]  # (menu, now): what a choice does


class Screen:
    since: float = 0.0  # when it was pushed (a long line scrolls from then)
    keeps_menu_open = False  # True: the menu timeout does not go home while it is on the stack

    def render(self, m: "Menu", now: float) -> list[str]:
        raise NotImplementedError

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind == "press" and ev.button == "back":
            m.pop()

    def tick(self, m: "Menu", now: float) -> None:
        pass

    def shown(self, now: float) -> None:
        """It is on display again (another screen, an alarm or first boot was over it)."""

    def scroll_since(self) -> float:
        """The time its lines scroll from."""
        return self.since


@dataclass
class Page:
    title: str
    value: str
    select: OnChoice | None = None


class PagesScreen(Screen):
    """One page at a time: a title line and a value line; UP/DOWN between pages."""

    def __init__(self, pages: Callable[["Menu"], list[Page]], name: str = ""):
        self.pages_fn = pages
        self.name = name
        self.index = 0

    def pages(self, m: "Menu") -> list[Page]:
        pages = self.pages_fn(m)
        self.index = min(self.index, max(0, len(pages) - 1))
        return pages

    def render(self, m: "Menu", now: float) -> list[str]:
        pages = self.pages(m)
        if not pages:
            return [self.name, "(empty)"]
        p = pages[self.index]
        lines = [p.title, p.value]
        if m.rows >= 4:
            hint = "UP/DN  SEL  BACK" if p.select else "UP/DN       BACK"
            lines += ["", f"{self.index + 1}/{len(pages)}".ljust(m.cols - len(hint))[: max(0, m.cols - len(hint))] + hint]
        return lines

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind != "press":
            return
        pages = self.pages(m)
        if ev.button == "back":
            m.pop()
        elif ev.button == "up" and pages:
            self.index = (self.index - 1) % len(pages)
        elif ev.button == "down" and pages:
            self.index = (self.index + 1) % len(pages)
        elif ev.button == "select" and pages and pages[self.index].select is not None:
            pages[self.index].select(m, now)


class ConfirmScreen(Screen):
    def __init__(self, question: str, on_yes: OnChoice):
        self.question = question
        self.on_yes = on_yes

    def render(self, m: "Menu", now: float) -> list[str]:
        return [self.question, "SEL=yes BACK=no"]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind != "press":
            return  # the release of a hold that led here is not a yes
        if ev.button == "select":
            m.pop()
            self.on_yes(m, now)
        elif ev.button == "back":
            m.pop()


class MessageScreen(Screen):
    """A result: any button goes back."""

    def __init__(self, title: str, message: str):
        self.title = title
        self.message = message

    def render(self, m: "Menu", now: float) -> list[str]:
        return [self.title, self.message]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind == "press":
            m.pop()


class BusyScreen(Screen):
    """An action in progress; buttons wait. ``Menu.done(action, ...)`` replaces it."""

    keeps_menu_open = True

    def __init__(self, title: str, message: str, action: object):
        self.title = title
        self.message = message
        self.action = action

    def render(self, m: "Menu", now: float) -> list[str]:
        dots = "." * (1 + int(now - self.since) % 3)
        return [self.title, self.message + dots]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        pass


class AddressEditor(Screen):
    """Edit a dotted IPv4 address (and optionally its prefix) field by field: UP/DOWN change
    the field (a hold steps by 10), SELECT goes to the next field (after the last: done),
    BACK to the previous one (from the first: cancel)."""

    def __init__(self, title: str, initial: str, with_prefix: bool, on_done: Callable[["Menu", float, str], None]):
        self.title = title
        self.with_prefix = with_prefix
        self.on_done = on_done
        if with_prefix:
            iface = ipaddress.IPv4Interface(initial)
            octets = str(iface.ip).split(".")
            self.fields = [int(o) for o in octets] + [iface.network.prefixlen]
        else:
            self.fields = [int(o) for o in str(ipaddress.IPv4Address(initial)).split(".")]
        self.field = 0

    def value(self) -> str:
        ip = ".".join(str(f) for f in self.fields[:4])
        return f"{ip}/{self.fields[4]}" if self.with_prefix else ip

    def render(self, m: "Menu", now: float) -> list[str]:
        name = f"part {self.field + 1}/4" if self.field < 4 else "prefix"
        v = self.value()
        if len(v) > m.cols and self.field == 4:
            v = f"prefix /{self.fields[4]}"
        elif len(v) > m.cols:
            v = v.split("/")[0]
        return [f"{self.title} {name}", v]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.kind not in ("press", "hold"):
            return
        hi = 32 if self.field == 4 else 255
        lo = 1 if self.field == 4 else 0
        step = 10 if ev.kind == "hold" else 1
        if ev.button in ("up", "down"):
            delta = step if ev.button == "up" else -step
            self.fields[self.field] = lo + (self.fields[self.field] - lo + delta) % (hi - lo + 1)
        elif ev.kind != "press":
            return
        elif ev.button == "select":
            if self.field + 1 < len(self.fields):
                self.field += 1
            else:
                m.pop()
                self.on_done(m, now, self.value())
        elif ev.button == "back":
            if self.field > 0:
                self.field -= 1
            else:
                m.pop()


class HoldToConfirm(Screen):
    """Entered by pressing SELECT (on the page that pushes it): SELECT must stay held
    ``hold_s`` (measured with the menu's clock); letting go earlier, or BACK, goes back. Held
    long enough, it gives way to ``then`` (e.g. a ``ConfirmScreen`` wanting a fresh SELECT)."""

    keeps_menu_open = True

    def __init__(self, title: str, hold_s: float, held_since: float, then: OnChoice):
        self.title = title
        self.hold_s = hold_s
        self.held_since: float | None = held_since
        self.then = then

    def render(self, m: "Menu", now: float) -> list[str]:
        left = max(0.0, self.hold_s - (now - (self.held_since if self.held_since is not None else now)))
        return [self.title, f"keep holding {math.ceil(left)}s"]

    def button(self, m: "Menu", ev: ButtonEvent, now: float) -> None:
        if ev.button == "select" and ev.kind == "press":
            self.held_since = now
        elif ev.button == "select" and ev.kind == "release":
            self.held_since = None
            m.pop()
        elif ev.button == "back" and ev.kind == "press":
            self.held_since = None
            m.pop()

    def tick(self, m: "Menu", now: float) -> None:
        if self.held_since is not None and now - self.held_since >= self.hold_s:
            self.held_since = None
            m.pop()
            self.then(m, now)
