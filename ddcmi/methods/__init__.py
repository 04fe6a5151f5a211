"""Distillation methods: matching losses that plug into one :class:`~ddcmi.distill.Distiller`.

A method is a class with ``__init__(config, dataset, sampler, device)`` and
``loss_and_backward(images, labels, generator) -> dict`` that adds its loss gradient to
``images.grad`` for one image update and returns its loss terms (``"match"`` at least). CMI is not
part of any method: the distiller adds it as a regulariser, so ``X+cmi`` exists for every method X.
"""
from __future__ import annotations

from .._registry import Registry
from ..errors import UnknownNameError

METHODS: Registry[type] = Registry("method")

from .dm import DMMatching  # noqa: E402  (registers itself)


def list_methods() -> list[str]:
    """Every runnable method name: each base method with and without ``+cmi``."""
    return sorted([m for base in METHODS.names() for m in (base, f"{base}+cmi")])


def parse_method(name: str) -> tuple[str, bool]:
    """``"dm+cmi"`` -> ``("dm", True)``; unknown names raise an error that lists the known ones."""
    key = name.lower().strip()
    base, _, suffix = key.partition("+")
    if base not in METHODS or suffix not in ("", "cmi"):
        raise UnknownNameError(f"unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return base, suffix == "cmi"


__all__ = ["METHODS", "DMMatching", "list_methods", "parse_method"]
