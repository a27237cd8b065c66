"""A typed registry: how components find each other without knowing each other's classes.

A ``Key`` carries the type of what is registered under it (declared with the interfaces in
``edge.interfaces``), so ``registry.get(RELAYS)`` is a ``RelayControl`` to a type checker and
to the reader. A component provides itself under its key when it is built; a user asks when
it needs it (the provider may be absent: a config without relays, a test of one component).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Key(Generic[T]):
    """A registry slot for one ``T``; ``name`` is for messages."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


class Registry:
    def __init__(self) -> None:
        self._items: dict[Key[Any], Any] = {}

    def provide(self, key: Key[T], value: T) -> T:
        self._items[key] = value
        return value

    def get(self, key: Key[T]) -> T | None:
        return self._items.get(key)

    def require(self, key: Key[T]) -> T:
        try:
            return self._items[key]
        except KeyError:
            raise LookupError(f"nothing provides {key.name} (is its component configured?)") from None

    def __contains__(self, key: Key[Any]) -> bool:
        return key in self._items
