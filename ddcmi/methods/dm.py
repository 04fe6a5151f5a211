"""Distribution matching (DM): match mean embeddings of real and synthetic images per class under a
freshly initialised, frozen network, both DSA-augmented with one shared (Siamese) draw per class."""
from __future__ import annotations

import torch

from ..augment import DSA
from ..models import create_model, init_weights_
from . import METHODS, MatchingMethod


@METHODS.register("dm")
class DMMatching(MatchingMethod):
    """loss = sum_c || mean embed(real_c) - mean embed(syn_c) ||^2, one new random network per step.

    Speed without changing the method: the network is one module re-drawn in place from the run's
    generator (no construction per step), its weights never need gradients, the real images are
    embedded under ``no_grad``, and the loss is back-propagated class by class (bounded memory)."""

    def __init__(self, config, dataset, sampler, device):
        self.config, self.sampler, self.device = config, sampler, device
        self.num_classes = dataset.num_classes
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.net.requires_grad_(False)
        self.embed = torch.compile(self.net.embed) if config.compile else self.net.embed
        self.dsa = DSA(config.dsa)

    def iteration(self, images, labels, generator, update) -> list[dict]:
        """One image update per iteration."""
        return [update(self.loss_and_backward(images, labels, generator))]

    def loss_and_backward(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict:
        init_weights_(self.net, generator)
        self.net.train()
        total = 0.0
        for c in range(self.num_classes):
            real = self.sampler.sample(c, self.config.real_per_class, generator)
            syn = images[labels == c]
            if self.dsa.enabled:
                params = self.dsa.sample(real.shape, generator, siamese=True)
                real, syn = self.dsa.apply(real, params), self.dsa.apply(syn, params)
            with torch.no_grad():
                real_mean = self.embed(real).mean(0)
            loss = ((real_mean - self.embed(syn).mean(0)) ** 2).sum()
            loss.backward()
            total += float(loss.detach())
        return {"match": total}
