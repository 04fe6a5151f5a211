"""Random draws keyed by (seed, iteration, class, purpose, step): the same draws in any process.

Every random draw of a distillation run (initial images, network initialisation, real-image
sampling, DSA parameters, proxy choice, the network training between updates) comes from its own
``torch.Generator``, seeded from a hash of what it is for. A class's draws therefore do not depend
on the classes computed before it, so computing any subset of the classes, in any order, in any
process, gives the same draws as a single-process run over all classes: what makes a class-parallel
run equal to a single-process one. Nothing needs saving to resume: iteration ``t`` draws the same
whatever happened before it.

``RNG_VERSION`` names this scheme. It is recorded in every config (``DistillConfig.rng``); a
checkpoint written under another version is refused on resume (its random streams differ).
Version 1 was the single sequential generator of ddcmi <= 0.1 (no longer produced).
"""
from __future__ import annotations

import hashlib

import torch

RNG_VERSION = 2

SHARED = -1  # the class index of a draw that every class shares (the iteration's network, its proxy)


def seed_for(seed: int, iteration: int, cls: int, purpose: str, step: int = 0) -> int:
    """A 63-bit seed from the key; stable across Python, torch versions and machines."""
    key = f"ddcmi-rng-v{RNG_VERSION}/{int(seed)}/{int(iteration)}/{int(cls)}/{purpose}/{int(step)}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


def generator(seed: int, iteration: int, cls: int, purpose: str, step: int = 0) -> torch.Generator:
    """A fresh CPU generator for one purpose (draws happen on the CPU: the same on any device)."""
    return torch.Generator().manual_seed(seed_for(seed, iteration, cls, purpose, step))


class Draws:
    """The generators of one iteration of a run: ``draws(purpose, cls=SHARED, step=0)``.

    ``step`` separates repeated draws of one purpose inside an iteration (DC/DSA's image updates,
    IDC's rounds)."""

    def __init__(self, seed: int, iteration: int):
        self.seed, self.iteration = int(seed), int(iteration)

    def __call__(self, purpose: str, cls: int = SHARED, step: int = 0) -> torch.Generator:
        return generator(self.seed, self.iteration, cls, purpose, step)

    def __repr__(self) -> str:
        return f"Draws(seed={self.seed}, iteration={self.iteration})"
