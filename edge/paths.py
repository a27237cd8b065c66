"""Where things live: the data dir and the config file."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/edge")
DEFAULT_CONFIG = Path("/etc/edge/edge.toml")
DEMO_CONFIG = Path(__file__).parent / "demo" / "edge.toml"


def data_dir(option: str | os.PathLike[str] | None) -> Path:
    """--data-dir, else EDGE_DATA_DIR, else /var/lib/edge."""
    if option:
        return Path(option)
    env = os.environ.get("EDGE_DATA_DIR")
    return Path(env) if env else DEFAULT_DATA_DIR
