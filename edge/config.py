"""TOML configuration -> typed, validated objects.

Parsed with tomllib, validated with pydantic (unknown keys are errors). Every error names the
key path and the line it is on, and what was expected. ``write_value`` updates the file with
tomlkit so the installer's comments survive (the LCD setup writes settings back).

Each component owns the model of its own section (``edge/<component>/...``) and the root
model below only lists the sections.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced from
    strings to numbers silently beyond pydantic's lax mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyProblem(ValueError):
    """Raise from a section's validator to point each problem at the key it is about (a path
    below the validated model, e.g. ``("channels", "zone2", "channel")``), so the error names
    that key and its line instead of the whole section."""

    def __init__(self, problems: list[tuple[tuple[Any, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))


class SiteConfig(Section):
    name: str = Field("edge", min_length=1, max_length=64, description="site name on the dashboard header")
    location: str = ""


class StoreConfig(Section):
    path: Path | None = Field(None, description="database file; default <data dir>/edge.db")
    retention_days: int = Field(30, ge=1, le=3650, description="raw events kept this many days")
    aggregate_retention_days: int = Field(3650, ge=1, description="hourly aggregates kept")
    batch_ms: int = Field(50, ge=1, le=1000, description="group-commit window")
    telemetry_batch_ms: int = Field(10000, ge=1, le=60_000,
                                    description="routine readings that changed nothing may wait this long for a commit")
    prune_batch_rows: int = Field(500, ge=10, le=100_000, description="rows deleted per retention step")
    prune_interval_s: float = Field(1.0, gt=0, le=3600, description="pause between retention steps")


class WebConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(80, ge=1, le=65535)


class ServiceConfig(Section):
    loop_lag_max_ms: int = Field(500, ge=10, description="watchdog pings stop above this loop lag")
    restart_backoff_initial_s: float = Field(0.5, gt=0)
    restart_backoff_max_s: float = Field(30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


from .relays.config import RelaysConfig  # noqa: E402 - sections import Section from here
from .video.config import VideoConfig  # noqa: E402 - sections import Section from here
# Component sections, each owned by its component's module (they import Section from here;
# edge/__init__.py imports this module first so that order always holds).
from .rules import RuleConfig, check_rules  # noqa: E402
from .sensors.config import MqttConfig, SensorConfig, check_sensors  # noqa: E402
from .uplink.config import UplinkConfig  # noqa: E402


class Config(Section):
    site: SiteConfig = SiteConfig()
    service: ServiceConfig = ServiceConfig()
    store: StoreConfig = StoreConfig()
    web: WebConfig = WebConfig()
    relays: RelaysConfig = RelaysConfig()
    video: VideoConfig = VideoConfig()
    mqtt: MqttConfig = MqttConfig()
    sensors: list[SensorConfig] = []
    rules: list[RuleConfig] = []
    uplink: UplinkConfig = UplinkConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        check_sensors(self.sensors, dict(self.relays.boards))
        check_rules(self.rules, self.sensors)
        return self


class ConfigError(Exception):
    """A config file that cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


_HEADER_ARRAY = re.compile(r"^\[\[\s*(.+?)\s*\]\]")
_HEADER_TABLE = re.compile(r"^\[\s*(.+?)\s*\]")
_ASSIGN = re.compile(r"""^((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path (with array-of-table indexes) to the line that defines it."""
    lines: dict[tuple[Any, ...], int] = {}
    array_index: dict[tuple[Any, ...], int] = {}
    current: tuple[Any, ...] = ()

    def resolve(path: tuple[str, ...]) -> tuple[Any, ...]:
        out: tuple[Any, ...] = ()
        for part in path:
            out = out + (part,)
            if out in array_index:
                out = out + (array_index[out],)
        return out

    for no, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if m := _HEADER_ARRAY.match(s):
            path = _split_dotted(m.group(1))
            parent = resolve(path[:-1])
            full = parent + (path[-1],)
            array_index[full] = array_index.get(full, -1) + 1
            current = full + (array_index[full],)
            lines.setdefault(full, no)
            lines[current] = no
        elif m := _HEADER_TABLE.match(s):
            current = resolve(_split_dotted(m.group(1)))
            lines[current] = no
        elif m := _ASSIGN.match(s):
            lines[current + _split_dotted(m.group(1))] = no
    return lines


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(err: dict[str, Any]) -> str:
    typ = err["type"]
    if typ == "extra_forbidden":
        return "unknown key (typo?)"
    if typ == "missing":
        return "required key is missing"
    msg = err["msg"]
    inp = err.get("input")
    if typ.endswith("_type") or typ.endswith("_parsing"):
        return f"{msg}, got {inp!r}"
    return msg


def validate(data: dict[str, Any], text: str = "", source: str = "<config>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            cause = (err.get("ctx") or {}).get("error")
            located = cause.problems if isinstance(cause, KeyProblem) else [((), _describe(err))]
            for sub_loc, msg in located:
                full = loc + tuple(sub_loc)
                line = _line_for(full, lines)
                where = f"{source}:{line}" if line else source
                problems.append(f"{where}: {format_loc(full)}: {msg}")
        raise ConfigError(source, problems) from None


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file, raising ConfigError with clear problems."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"{p}: cannot read config: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [f"{p}: not UTF-8 text: {exc}"]) from None
    return loads(text, source=str(p))


def loads(text: str, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"{source}:{m.group(1)}" if m else source
        raise ConfigError(source, [f"{where}: invalid TOML: {msg}"]) from None
    return validate(data, text, source)


def write_value(path: str | Path, key_path: str, value: Any) -> None:
    """Set ``a.b.c = value`` in the TOML file, keeping comments and layout; validate first.

    The new file is written next to the old one and renamed over it, so a power cut leaves
    either the old or the new file, never half of one.
    """
    p = Path(path)
    doc = tomlkit.parse(p.read_text(encoding="utf-8"))
    parts = key_path.split(".")
    table: Any = doc
    for part in parts[:-1]:
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
    table[parts[-1]] = value
    new_text = tomlkit.dumps(doc)
    loads(new_text, source=str(p))  # refuse to write a config that would not load
    tmp = p.with_suffix(p.suffix + ".new")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(new_text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(p)
