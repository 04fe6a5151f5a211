"""A tiny name -> object registry shared by datasets, models and methods."""
from __future__ import annotations

import fnmatch
from typing import Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to objects; unknown names raise a KeyError that lists the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; without ``obj`` it returns a decorator."""
        def add(o: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[key] = o
            return o
        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests register throw-away entries and take them out again)."""
        self._items.pop(name.lower(), None)

    def get(self, name: str) -> T:
        key = str(name).lower()
        if key not in self._items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[key]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
