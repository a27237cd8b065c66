"""Relay board profiles: what a Modbus relay board understands, as data files in hw/boards/.

Adding a board is adding a TOML file there; its file name (without .toml) is the profile name
used in the config (``profile = "waveshare-8"``). A profile says how to switch a channel
(``[write]``), how to read all channels back (``[read]``) and, optionally, how to ask the
board to time a pulse itself (``[pulse]``).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WriteSpec(_Strict):
    kind: Literal["coil", "register_command"]
    base: int = Field(0, ge=0, le=0xFFFF)
    # coil boards that take FC15 (write multiple coils): every channel in one request (the
    # safe state at stop)
    multiple: bool = False
    on_value: int = Field(0x0100, ge=0, le=0xFFFF)  # register_command only
    off_value: int = Field(0x0200, ge=0, le=0xFFFF)


class ReadSpec(_Strict):
    kind: Literal["coils", "holding_registers"]
    base: int = Field(0, ge=0, le=0xFFFF)


class PulseSpec(_Strict):
    kind: Literal["fc05_flash", "fc06_delay"]
    on_base: int = Field(0x0200, ge=0, le=0xFFFF)  # fc05_flash
    off_base: int | None = Field(None, ge=0, le=0xFFFF)  # fc05_flash, reverse pulse (off for n)
    base: int = Field(0x0001, ge=0, le=0xFFFF)  # fc06_delay
    command: int = Field(0x0600, ge=0, le=0xFFFF)  # fc06_delay: high byte
    unit_ms: int = Field(gt=0)
    max_units: int = Field(gt=0, le=0xFFFF)

    def units_for(self, ms: int) -> int | None:
        """The board's count for a pulse of ``ms``, or None when the board cannot time it
        exactly (not a whole number of units, or too long)."""
        units, rest = divmod(ms, self.unit_ms)
        if rest or not 1 <= units <= self.max_units:
            return None
        return units

    def supports(self, level: bool) -> bool:
        """Whether the board can time a pulse to ``level`` (True: on for n, False: off for n)."""
        return level or (self.kind == "fc05_flash" and self.off_base is not None)


class BoardProfile(_Strict):
    name: str = ""
    description: str = ""
    channels: int = Field(ge=1, le=256)
    channels_configurable: bool = False
    write: WriteSpec
    read: ReadSpec
    pulse: PulseSpec | None = None


class ProfileError(Exception):
    pass


def load_profile_file(path: Path) -> BoardProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return BoardProfile.model_validate({**data, "name": path.stem})
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ProfileError(f"board profile {path}: {exc}") from None


@lru_cache(maxsize=4)
def load_profiles(directory: Path = BOARDS_DIR) -> dict[str, BoardProfile]:
    """Every profile in ``directory`` by name."""
    return {p.stem: load_profile_file(p) for p in sorted(Path(directory).glob("*.toml"))}


def get_profile(name: str) -> BoardProfile:
    profiles = load_profiles()
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown board profile {name!r}; known: {', '.join(profiles)}") from None
