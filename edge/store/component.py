"""Placeholder until the store lands: the supervisor's store component."""
from __future__ import annotations

from ..component import Component


class StoreComponent(Component):
    name = "store"
    critical = True

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx
