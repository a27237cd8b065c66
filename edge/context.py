"""What every component is built from: the config, the bus, the platform, the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from hw.platform import Platform

from . import credentials as credentials_mod
from .auth import HttpAuth
from .bus import Bus
from .interfaces import STORE, EventStore
from .metrics import Metrics
from .registry import Registry

if TYPE_CHECKING:
    from .config import Config


class CredentialsHolder:
    """The device credentials, re-read on rotation so every surface switches at once."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.current, self.created = credentials_mod.load_or_create(data_dir)
        self.listeners: list[Callable[[credentials_mod.Credentials], None]] = []

    def get(self) -> credentials_mod.Credentials:
        return self.current

    def rotate(self) -> credentials_mod.Credentials:
        self.current = credentials_mod.rotate(self.data_dir)
        for cb in self.listeners:
            cb(self.current)
        return self.current

    def reload(self) -> credentials_mod.Credentials:
        fresh = credentials_mod.load(self.data_dir)
        if fresh is not None and fresh != self.current:
            self.current = fresh
            for cb in self.listeners:
                cb(self.current)
        return self.current


@dataclass
class Context:
    """What every component is built from. Components find each other in ``registry``
    (keys and interfaces in ``edge.interfaces``) and reach hardware through ``platform``."""

    config: "Config"
    data_dir: Path
    bus: Bus
    metrics: Metrics
    credentials: CredentialsHolder
    auth: HttpAuth
    web: web.Application
    platform: Platform
    registry: Registry = field(default_factory=Registry)
    open_paths: set[str] = field(default_factory=set)  # web paths their protocol requires open (ONVIF)
    plain_paths: set[str] = field(default_factory=set)  # also answered on plain HTTP when HTTPS is on (snapshot)
    config_path: Path | None = None
    demo: bool = False  # `edge demo`: the sensor simulator runs

    @property
    def store(self) -> EventStore | None:
        return self.registry.get(STORE)
