"""The last log lines in memory, for the System page's log download (the appliance's full
log is in the journal; this works the same in the demo and on the box)."""

from __future__ import annotations

import collections
import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogRing(logging.Handler):
    def __init__(self, lines: int = 5000):
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            pass

    def attach(self) -> None:
        root = logging.getLogger()
        if self not in root.handlers:
            root.addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
