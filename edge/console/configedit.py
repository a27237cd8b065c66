"""Config edits from the console's forms: the TOML file changed with tomlkit (comments and
layout survive), validated by the same models as ``edge check-config``, written atomically
with the previous file kept as ``<name>.bak``, then applied to the running service.

A problem is reported next to the form field it is about: the validation errors carry key
paths (``rules[0].actions[0].ms``), and each form maps the paths under the table it edits to
its field names. A config that does not validate is never written.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import config as config_mod
from ..interfaces import Applied
from ..section import Loc, format_loc

if TYPE_CHECKING:
    from tomlkit.items import AoT, InlineTable

log = logging.getLogger("edge.console")


def toml_kit() -> Any:
    """tomlkit, imported at the first edit: the service runs without it (~0.8 MB) until then."""
    import tomlkit

    return tomlkit


class FieldError(ValueError):
    """A form value that cannot even be turned into a config value."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass
class Outcome:
    ok: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # form field -> message
    general: list[str] = field(default_factory=list)  # problems with no field on this form
    applied: Applied | None = None

    def summary(self) -> str:
        a = self.applied or Applied()
        parts = ["Saved."]
        if a.live:
            parts.append(f"Applied now: {', '.join(a.live)}.")
        if a.on_restart:
            parts.append(f"Takes effect after a restart of the service: {', '.join(a.on_restart)}.")
        return " ".join(parts)


def config_path(console: Any) -> Path:
    p = console.ctx.config_path
    if p is None:
        raise FieldError("", "this service runs without a config file: nothing to edit")
    return Path(p)


async def save(console: Any, mutate: Callable[[Any], None], prefix: Loc,
               field_of: Callable[[Loc], str | None] = lambda rest: ".".join(map(str, rest)) or None) -> Outcome:
    """Apply ``mutate(doc)`` to the config file; ``prefix`` is the key path of the table the
    form edits (its problems go to ``field_of(rest of the path)``)."""
    out = Outcome()
    async with console.edit_lock:
        try:
            path = config_path(console)
            doc = toml_kit().parse(path.read_text(encoding="utf-8"))
            mutate(doc)
        except FieldError as exc:
            (out.errors.__setitem__(exc.field, str(exc)) if exc.field else out.general.append(str(exc)))
            return out
        new_text = toml_kit().dumps(doc)
        try:
            cfg = config_mod.loads(new_text, source=str(path))
        except config_mod.ConfigError as exc:
            place(out, exc, prefix, field_of)
            return out
        config_mod.replace_file(path, new_text, backup=True)
        log.info("console: config saved (%s)", format_loc(prefix))
        svc = console.service
        out.applied = await svc.apply(cfg) if svc is not None else Applied()
        out.ok = True
        return out


async def replace_whole(console: Any, text: str) -> Outcome:
    """A restored config file: validated as a whole, written with a backup, applied."""
    out = Outcome()
    async with console.edit_lock:
        path = config_path(console)
        try:
            cfg = config_mod.loads(text, source=path.name)
        except config_mod.ConfigError as exc:
            out.general = list(exc.problems)
            return out
        config_mod.replace_file(path, text, backup=True)
        svc = console.service
        out.applied = await svc.apply(cfg) if svc is not None else Applied()
        out.ok = True
        return out


def place(out: Outcome, exc: Any, prefix: Loc, field_of: Callable[[Loc], str | None]) -> None:
    located = exc.located or []
    if not located:
        out.general.extend(exc.problems)
        return
    for loc, msg in located:
        loc = tuple(loc)
        name = field_of(loc[len(prefix):]) if loc[:len(prefix)] == prefix else None
        if name:
            out.errors.setdefault(name, f"{format_loc(loc)}: {msg}")
        else:
            out.general.append(f"{format_loc(loc)}: {msg}")


# ---- values from forms ---------------------------------------------------------------------
def text(form: Any, key: str) -> str:
    v = form.get(key, "")
    return v.strip() if isinstance(v, str) else ""


def integer(form: Any, key: str) -> int | None:
    raw = text(form, key)
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise FieldError(key, f"{key}: a whole number, got {raw!r}") from None


def number(form: Any, key: str) -> float | None:
    raw = text(form, key)
    if raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise FieldError(key, f"{key}: a number, got {raw!r}") from None


def scalar(raw: str) -> Any:
    """A value typed in a form as TOML reads it: true/false, a number, else the text."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return tomllib.loads(f"v = {raw}")["v"] if raw[:1] in "-+0123456789." else raw
    except tomllib.TOMLDecodeError:
        return raw


def inline_tables(form: Any, key: str) -> dict[str, Any]:
    """A textarea of ``name = { ... }`` lines (TOML) as a dict."""
    raw = form.get(key, "")
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        return tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise FieldError(key, f"{key}: not TOML ({exc})") from None


# ---- writing into the document ---------------------------------------------------------------
def set_key(table: Any, key: str, value: Any) -> None:
    """Set or (``None``) remove ``key``; an unchanged value is left as written."""
    if value is None or value == "":
        if key in table:
            del table[key]
        return
    if key in table and _plain(table[key]) == value:
        return
    table[key] = value


def _plain(v: Any) -> Any:
    return v.unwrap() if hasattr(v, "unwrap") else v


def inline(values: dict[str, Any]) -> InlineTable:
    t = toml_kit().inline_table()
    for k, v in values.items():
        if v is not None and v != "":
            t[k] = v
    return t


def set_inline(table: Any, key: str, values: dict[str, Any] | None) -> None:
    """A nested table written as ``key = { ... }``: edited in place when it is there."""
    if values is None:
        if key in table:
            del table[key]
        return
    items = toml_kit().items
    if key in table and isinstance(table[key], (items.InlineTable, items.Table)):
        sub = table[key]
        for k in [k for k in sub if k not in values or values[k] in (None, "")]:
            del sub[k]
        for k, v in values.items():
            set_key(sub, k, v)
        return
    table[key] = inline(values)


def array_of_tables(doc: Any, key: str) -> AoT:
    if key not in doc:
        doc.append(key, toml_kit().aot())
    aot = doc[key]
    if not isinstance(aot, toml_kit().items.AoT):
        raise FieldError("", f"{key} is not written as [[{key}]] tables here; edit the file by hand")
    return aot
