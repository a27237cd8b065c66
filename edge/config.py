"""TOML configuration -> typed, validated objects.

Parsed with tomllib, validated with pydantic (unknown keys are errors). Every error names the
key path and the line it is on, and what was expected. ``write_value`` updates the file with
tomlkit so the installer's comments survive (the LCD setup writes settings back).

Dependencies run one way: ``edge.section`` holds the base and the error vocabulary and
imports nothing from edge; each component owns its section (``edge/<component>/config.py``);
this module lists the sections, and ``edge.config_checks`` checks across them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


from . import config_checks
from .mqtt.config import MqttConfig
from .onvif.config import OnvifConfig
from .receivers.config import ReceiversConfig
from .relays.config import RelaysConfig
from .rules.config import RuleConfig
from .section import ConfigError, KeyProblem, Loc, Problem, Section, format_loc
from .sensors.config import SensorConfig, YoLinkSource
from .service_config import ServiceConfig, SiteConfig
from .setup.config import ButtonsConfig, LcdConfig, NetworkConfig
from .store.config import StoreConfig
from .uplink.config import UplinkConfig
from .video.config import VideoConfig
from .web.config import WebConfig

__all__ = ["Config", "ConfigError", "KeyProblem", "Problem", "Section", "backup_path", "format_loc", "key_lines",
           "load", "loads", "replace_file", "validate", "write_value"]


class Config(Section):
    site: SiteConfig = SiteConfig()
    service: ServiceConfig = ServiceConfig()
    store: StoreConfig = StoreConfig()
    web: WebConfig = WebConfig()
    onvif: OnvifConfig = OnvifConfig()
    relays: RelaysConfig = RelaysConfig()
    video: VideoConfig = VideoConfig()
    mqtt: MqttConfig = MqttConfig()
    sensors: list[SensorConfig] = []
    yolink: dict[str, YoLinkSource] = {}
    rules: list[RuleConfig] = []
    uplink: UplinkConfig = UplinkConfig()
    receivers: ReceiversConfig = ReceiversConfig()
    lcd: LcdConfig = LcdConfig()
    buttons: ButtonsConfig = ButtonsConfig()
    network: NetworkConfig = NetworkConfig()


_HEADER_ARRAY = re.compile(r"^\[\[\s*(.+?)\s*\]\]")
_HEADER_TABLE = re.compile(r"^\[\s*(.+?)\s*\]")
_ASSIGN = re.compile(r"""^((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[Loc, int]:
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


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


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


def _where(loc: Loc, lines: dict[Loc, int], source: str) -> str:
    line = _line_for(loc, lines)
    return f"{source}:{line}" if line else source


def validate(data: dict[str, Any], text: str = "", source: str = "<config>") -> Config:
    lines = key_lines(text)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems, where = [], []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            cause = (err.get("ctx") or {}).get("error")
            located = cause.problems if isinstance(cause, KeyProblem) else [((), _describe(err))]
            for sub_loc, msg in located:
                full = loc + tuple(sub_loc)
                problems.append(f"{_where(full, lines, source)}: {format_loc(full)}: {msg}")
                where.append((full, msg))
        raise ConfigError(source, problems, where) from None
    found = config_checks.problems(cfg)
    if found:
        raise ConfigError(source, [_format_problem(p, lines, source) for p in found],
                          [(p.loc, _problem_message(p, lines, source)) for p in found])
    return cfg


def _problem_message(p: Problem, lines: dict[Loc, int], source: str) -> str:
    related = [f"{format_loc(r)} ({_where(r, lines, source)})" for r in p.related]
    return p.message.format(*related)


def _format_problem(p: Problem, lines: dict[Loc, int], source: str) -> str:
    return f"{_where(p.loc, lines, source)}: {format_loc(p.loc)}: {_problem_message(p, lines, source)}"


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
    import tomlkit  # only when writing: ~0.8 MB the running service does not need otherwise

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
    replace_file(p, new_text)


def backup_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".bak")


def replace_file(path: str | Path, new_text: str, *, backup: bool = False) -> None:
    """Write ``new_text`` next to the file and rename it over it (a power cut leaves the old
    or the new file, never half of one); ``backup`` keeps the previous file as ``<name>.bak``."""
    p = Path(path)
    if backup and p.exists():
        bak = backup_path(p)
        tmp_bak = bak.with_name(bak.name + ".new")
        tmp_bak.write_bytes(p.read_bytes())
        os.replace(tmp_bak, bak)
    tmp = p.with_suffix(p.suffix + ".new")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(new_text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(p)
