"""Distillation methods: matching losses that plug into one :class:`~ddcmi.distill.Distiller`.

A method is a class with ``__init__(config, dataset, sampler, device)`` and
``iteration(images, labels, generator, update) -> list[dict]``: one outer iteration, in which the
method adds its matching-loss gradient to ``images.grad`` and calls ``update(terms)`` for every
image update (``terms`` holds ``"match"`` at least). ``update`` belongs to the distiller: it adds the
CMI gradient (optionally on other images, e.g. IDC's decoded ones: ``update(terms, cmi_images,
cmi_labels)``), checks for NaN and steps the optimiser. CMI is not part of any method, so ``X+cmi``
exists for every method X.

A method may store its synthetic set in another form than the images it trains on (IDC's
multi-formation). :class:`MatchingMethod` gives the defaults, which DM/DC/DSA keep: the optimised
pixels are the set itself, initialised from real images.
"""
from __future__ import annotations

from .._registry import Registry
from ..errors import UnknownNameError

METHODS: Registry[type] = Registry("method")


class MatchingMethod:
    """Defaults for the parameterisation hooks the distiller calls."""

    sampler = None

    def initial(self, ipc: int, generator):
        """The optimised tensor and its labels at the start: ``ipc`` real images per class."""
        return self.sampler.initial_images(ipc, generator)

    def synthetic(self, images, labels):
        """The synthetic set a network is trained on (normalised space), from the optimised tensor."""
        return images, labels

    def project_(self, images) -> None:
        """Called after every pixel update (no grad): keep the pixels in their domain."""

from .dm import DMMatching  # noqa: E402  (registers itself)
from .gradient_matching import DCMatching, DSAMatching  # noqa: E402
from .idc import IDCMatching  # noqa: E402


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


__all__ = ["METHODS", "MatchingMethod", "DMMatching", "DCMatching", "DSAMatching", "IDCMatching", "list_methods",
           "parse_method"]
