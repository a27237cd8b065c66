"""What ONVIF clients set that outlives a restart: the relay output settings
(SetRelayOutputSettings: mode and pulse length), in ``<data dir>/onvif-relays.json``.

The data dir rather than the installer's TOML: an NVR's change is the device's state, the TOML
is the installer's (managed elsewhere, or a file of the repository in the demo). A factory
reset wipes the data dir and with it these settings. Settings of a relay that is no longer in
the config are dropped when read.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("edge.onvif.kept")

RELAYS_FILE = "onvif-relays.json"


def write_json(path: Path, body: Any) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".new")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_relay_settings(data_dir: Path | None) -> dict[str, dict[str, Any]]:
    if data_dir is None:
        return {}
    path = Path(data_dir) / RELAYS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        relays = data["relays"]
        assert isinstance(relays, dict)
    except (OSError, ValueError, KeyError, AssertionError) as exc:
        log.error("%s is unreadable (%s): relays keep their configured settings", path, exc)
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, s in relays.items():
        if isinstance(s, dict) and s.get("mode") in ("Monostable", "Bistable") and isinstance(s.get("delay_s"), (int, float)):
            out[str(name)] = {"mode": s["mode"], "delay_s": float(s["delay_s"]), "idle": "open"}
    return out


def save_relay_settings(data_dir: Path | None, settings: dict[str, dict[str, Any]]) -> None:
    if data_dir is None:
        return
    write_json(Path(data_dir) / RELAYS_FILE, {"version": 1, "relays": settings})
