"""Exponential backoff with jitter, for every reconnect and retry loop."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: initial, x2 per failure, capped; reset on success."""

    def __init__(self, initial: float, maximum: float):
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def next(self) -> float:
        delay = self.current * random.uniform(0.5, 1.0)
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial
