"""The base of every config section and the error vocabulary of the config.

This module imports nothing from ``edge``: every component's section imports it, and the root
config (``edge.config``) imports the sections, so the dependencies run one way only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

Loc = tuple[Any, ...]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyProblem(ValueError):
    """Raise from a section's validator to point each problem at the key it is about (a path
    below the validated model, e.g. ``("channels", "zone2", "channel")``), so the error names
    that key and its line instead of the whole section."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))


@dataclass(frozen=True)
class Problem:
    """One problem found across sections: the key it is about, and the other keys it clashes
    with (each reported with its own line)."""

    loc: Loc
    message: str
    related: tuple[Loc, ...] = field(default=())


class ConfigError(Exception):
    """A config file that cannot be used. ``problems`` holds one line per problem;
    ``located`` the same problems as (key path, message) for a form to put each one next to
    its field (empty when the file did not parse)."""

    def __init__(self, path: str, problems: list[str], located: list[tuple[Loc, str]] | None = None):
        self.path = path
        self.problems = problems
        self.located = located or []
        super().__init__("\n".join(problems))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
