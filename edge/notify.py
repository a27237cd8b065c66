"""systemd notify protocol (sd_notify) without a library that swallows errors.

``NOTIFY_SOCKET`` is a unix datagram socket path (``@`` = abstract namespace). Without it
(run by hand, in tests) every call is a no-op. A failing send is logged once, not hidden.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = addr or None
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent: list[str] = []  # last messages, for status pages and tests
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @staticmethod
    def watchdog_interval() -> float | None:
        """Half of WATCHDOG_USEC in seconds, when systemd asked for pings (for this pid)."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1e6 / 2
        except ValueError:
            return None

    def notify(self, *lines: str) -> bool:
        msg = "\n".join(lines)
        self.sent = (self.sent + [msg])[-20:]
        if self._sock is None or self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            self._sock.sendto(msg.encode(), addr)
            return True
        except OSError as exc:
            if not self._warned:
                log.error("sd_notify to %s failed: %s (systemd will not see READY/WATCHDOG)", self.address, exc)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *( [f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
