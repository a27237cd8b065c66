from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .peers import Broker, mosquitto_broker, run_service_from_toml


@pytest.fixture
def mosquitto() -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port, stopped after the test."""
    with mosquitto_broker() as b:
        yield b


@pytest.fixture
def service_factory(tmp_path: Path):
    """`async with service_factory(toml_text) as svc:` runs the real service in-process."""

    def factory(toml_text: str = "", data_dir: Path | None = None, **kw):
        return run_service_from_toml(toml_text, data_dir or tmp_path / "data", **kw)

    return factory
