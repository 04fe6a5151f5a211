"""Class-balanced real subsets: random, and herding (Welling 2009) in a network's feature space."""
from __future__ import annotations

import torch

from .data import RealSampler


@torch.no_grad()
def herding(sampler: RealSampler, ipc: int, embed, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, greedily pick ``ipc`` images whose running feature mean stays closest to the class
    mean under ``embed`` (a feature extractor). Deterministic given the network."""
    sampler.check_ipc(ipc)
    images, labels = [], []
    for c, pool in enumerate(sampler.by_class):
        feats = torch.cat([embed(pool[s:s + batch]) for s in range(0, pool.shape[0], batch)])
        mu = feats.mean(0)
        chosen: list[int] = []
        total = torch.zeros_like(mu)
        available = torch.ones(feats.shape[0], dtype=torch.bool, device=feats.device)
        for k in range(1, ipc + 1):
            dist = ((mu - (total + feats) / k) ** 2).sum(1)
            dist[~available] = float("inf")
            i = int(dist.argmin())
            chosen.append(i)
            available[i] = False
            total += feats[i]
        images.append(pool[chosen])
        labels.append(torch.full((ipc,), c, dtype=torch.long, device=pool.device))
    return torch.cat(images), torch.cat(labels)


def random_subsets(sampler: RealSampler, ipc: int, seeds) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One class-balanced random subset per seed."""
    return [sampler.initial_images(ipc, torch.Generator().manual_seed(int(s))) for s in seeds]
