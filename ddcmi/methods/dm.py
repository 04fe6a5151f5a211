"""Distribution matching (DM): match mean embeddings of real and synthetic images per class under a
freshly initialised, frozen network, both DSA-augmented with one shared (Siamese) draw per class."""
from __future__ import annotations

import torch

from ..augment import DSA
from ..models import create_model, init_weights_
from ..utils import bf16_autocast
from . import register
from .base import MatchingMethod


@register("dm")
class DMMatching(MatchingMethod):
    """loss = sum_c || mean embed(real_c) - mean embed(syn_c) ||^2, one new random network per step.

    Speed without changing the method: the network is one module re-drawn in place from the
    iteration's generator (no construction per step), its weights never need gradients, the real
    images are embedded under ``no_grad``, and the loss is back-propagated class by class (bounded
    memory)."""

    # method.md section 5 (feature-space CMI, ResNet-18 proxies); cifar10_jpeg shares CIFAR-10's
    paper_lambda = {("cifar10", 10): 8000, ("cifar10", 50): 2000, ("cifar100", 10): 2000, ("cifar100", 50): 500,
                    ("svhn", 10): 18000, ("svhn", 50): 500}
    cpu_lambda = 5000.0
    thread_invariant = True  # measured: a resume at another CPU thread count gives the same bits
    batches_classes = True
    autocasts_real = True
    cpu_lambda_note = ("cpu profile: set so lambda*|grad CMI| ~ |grad DM| at init with the quarter-width "
                       "ResNet-18 proxies (docs/profiles.md)")

    @classmethod
    def defaults(cls, profile: str, dataset: str, ipc: int) -> dict:
        paper = {"iterations": 20_000, "lr_img": 1.0, "momentum": 0.5, "real_per_class": 256}
        if profile == "paper":
            return {**paper, "checkpoint_every": 500}
        if profile == "cpu":  # 600 iterations on 64 real images per class (docs/profiles.md)
            return {**paper, "iterations": 600, "real_per_class": 64, "checkpoint_every": 50}
        return {**paper, "iterations": 10, "real_per_class": 16, "checkpoint_every": 5}

    def __init__(self, config, dataset, sampler, device, classes=None):
        super().__init__(config, dataset, sampler, device, classes)
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.net.requires_grad_(False)
        self.embed = torch.compile(self.net.embed) if config.compile else self.net.embed
        self.dsa = DSA(config.dsa)
        self.real_bf16 = "real" in config.autocast  # the real images' embeddings only feed a mean

    def iteration(self, images, labels, draws, update) -> list[dict]:
        """One image update per iteration."""
        return [update(self.loss_and_backward(images, labels, draws))]

    def loss_and_backward(self, images: torch.Tensor, labels: torch.Tensor, draws) -> dict:
        init_weights_(self.net, draws("net"))
        self.net.train()
        if self.config.batch_classes:
            return self._batched_loss_and_backward(images, labels, draws)
        total = 0.0
        for c in self.classes:
            g = draws("class", c)  # real sample, then the Siamese DSA draw
            real = self.sampler.sample(c, self.config.real_per_class, g)
            real, syn = self.dsa.siamese(real, images[labels == c], g)
            with torch.no_grad(), bf16_autocast(real.device, self.real_bf16):
                real_mean = self.embed(real).float().mean(0)
            loss = ((real_mean - self.embed(syn).mean(0)) ** 2).sum()
            loss.backward()
            total += float(loss.detach())
        return {"match": total}

    def _batched_loss_and_backward(self, images: torch.Tensor, labels: torch.Tensor, draws) -> dict:
        """The same loss with all classes in two forwards (real under no_grad, synthetic with autograd)
        and one backward: the draws are taken class by class in the same order as the per-class path."""
        reals, syns = [], []
        for c in self.classes:
            g = draws("class", c)
            real, syn = self.dsa.siamese(self.sampler.sample(c, self.config.real_per_class, g), images[labels == c], g)
            reals.append(real)
            syns.append(syn)
        with torch.no_grad(), bf16_autocast(images.device, self.real_bf16):
            real_emb = self.embed(torch.cat(reals)).float().split([r.shape[0] for r in reals])
        syn_emb = self.embed(torch.cat(syns)).split([s.shape[0] for s in syns])
        losses = torch.stack([((r.mean(0) - s.mean(0)) ** 2).sum() for r, s in zip(real_emb, syn_emb)])
        losses.sum().backward()
        return {"match": float(losses.detach().sum())}
