"""Distillation methods: matching losses that plug into one :class:`~ddcmi.distill.Distiller`.

The contract (configuration each method owns, the per-iteration call, method state) is in
:mod:`ddcmi.methods.base`. CMI is not part of any method: ``update`` adds it, so ``X+cmi`` exists for
every registered method X.
"""
from __future__ import annotations

from .._registry import Registry
from ..errors import UnknownNameError
from .base import MatchingMethod

METHODS: Registry[type] = Registry("method")


def register(name: str):
    """Register a method class under ``name`` (and record the name on the class)."""
    def add(cls):
        cls.name = name
        return METHODS.register(name, cls)
    return add


from .dm import DMMatching  # noqa: E402  (registers itself)
from .gradient_matching import DCMatching, DSAMatching  # noqa: E402
from .idc import IDCMatching  # noqa: E402
from .idm import IDMMatching  # noqa: E402
from .mtt import MTTMatching  # noqa: E402


def list_methods() -> list[str]:
    """Every runnable method name: each base method with and without ``+cmi``."""
    return sorted([m for base in METHODS.names() for m in (base, f"{base}+cmi")])


def parse_method(name: str) -> tuple[str, bool]:
    """``"dm+cmi"`` -> ``("dm", True)``; unknown names raise an error that lists the known ones."""
    key = str(name).lower().strip()
    base, _, suffix = key.partition("+")
    if base not in METHODS or suffix not in ("", "cmi"):
        raise UnknownNameError(f"unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return base, suffix == "cmi"


def method_class(name: str) -> type:
    """The class of a method name (with or without ``+cmi``)."""
    return METHODS.get(parse_method(name)[0])


__all__ = ["METHODS", "MatchingMethod", "DMMatching", "DCMatching", "DSAMatching", "IDCMatching", "IDMMatching", "MTTMatching", "list_methods",
           "parse_method", "method_class", "register"]
