"""Gradient matching: DC and DSA (the same loss; DSA augments real and synthetic batches Siamese-ly).

One outer iteration: a fresh network; ``outer_loop`` image updates, each matching per class the
gradient of the cross-entropy on real images with the gradient on synthetic images (layer-wise
(1 - cosine) per output channel, conv and linear weights only); between updates the network is
trained for ``inner_loop`` epochs on the current synthetic set. Batch-norm networks take their
running statistics from real images and then freeze them, before each update.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import DSA
from ..errors import ConfigError
from ..models import create_model, has_batchnorm, init_weights_
from . import METHODS, MatchingMethod

# (outer_loop, inner_loop) by IPC in the releases
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int) -> tuple[int, int]:
    if ipc in LOOPS:
        return LOOPS[ipc]
    raise ConfigError(f"no published (outer, inner) loop schedule for IPC {ipc}; set outer_loop and inner_loop")


def gradient_distance(grads_real: list[torch.Tensor], grads_syn: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of sum over output channels of (1 - cosine) between real and synthetic
    gradients; 1-d tensors (biases, norm parameters) are left out, as in the DC release."""
    total = grads_syn[0].new_zeros(())
    for gr, gs in zip(grads_real, grads_syn):
        if gr.dim() == 1:
            continue
        gr, gs = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


def class_gradient_distance(net, params, real, syn, c: int, distance) -> torch.Tensor:
    """``distance`` between the cross-entropy gradients (w.r.t. ``params``) of a real and a synthetic
    batch of class ``c``; differentiable with respect to the synthetic images."""
    y_real = torch.full((real.shape[0],), c, device=real.device)
    g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(real), y_real), params)]
    y_syn = torch.full((syn.shape[0],), c, device=syn.device)
    g_syn = torch.autograd.grad(F.cross_entropy(net(syn), y_syn), params, create_graph=True)
    return distance(g_real, g_syn)


@METHODS.register("dc")
class DCMatching(MatchingMethod):
    """DC (no augmentation unless a strategy is given explicitly)."""

    augment = False

    def __init__(self, config, dataset, sampler, device):
        self.config, self.sampler, self.device = config, sampler, device
        self.num_classes = dataset.num_classes
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.dsa = DSA(config.dsa)
        if self.augment and not self.dsa.enabled:
            raise ConfigError("DSA needs an augmentation strategy (dsa.strategy); 'none' would silently be DC")
        self.outer, self.inner = (config.outer_loop, config.inner_loop) if config.outer_loop else loops_for(config.ipc)
        self.params = list(self.net.parameters())
        self.bn = has_batchnorm(self.net)

    def _augment(self, real, syn, generator):
        if not (self.augment and self.dsa.enabled):
            return real, syn
        p = self.dsa.sample(real.shape, generator, siamese=True)
        return self.dsa.apply(real, p), self.dsa.apply(syn, p)

    def _freeze_bn_from_real(self, generator):
        """Running statistics from 16 real images per class, then BN layers in eval mode."""
        real = torch.cat([self.sampler.sample(c, 16, generator) for c in range(self.num_classes)])
        self.net.train()
        with torch.no_grad():
            self.net(real)
        for m in self.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    def loss_and_backward(self, images, labels, generator) -> dict:
        if self.bn:
            self._freeze_bn_from_real(generator)
        total = 0.0
        for c in range(self.num_classes):
            real = self.sampler.sample(c, self.config.real_per_class, generator)
            syn = images[labels == c]
            real, syn = self._augment(real, syn, generator)
            loss = class_gradient_distance(self.net, self.params, real, syn, c, gradient_distance)
            loss.backward(inputs=[images])  # gradients for the pixels only, not the network
            total += float(loss.detach())
        return {"match": total}

    def train_inner(self, images, labels, optimizer, generator) -> None:
        """``inner_loop`` epochs of the network on the (detached) synthetic set, batch 256."""
        x, y = images.detach(), labels
        self.net.train()
        for _ in range(self.inner):
            order = torch.randperm(len(y), generator=generator).to(self.device)
            for s in range(0, len(y), 256):
                idx = order[s:s + 256]
                xb = self.dsa(x[idx], generator, siamese=False) if self.augment and self.dsa.enabled else x[idx]
                loss = F.cross_entropy(self.net(xb), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def iteration(self, images, labels, generator, update) -> list[dict]:
        init_weights_(self.net, generator)
        self.net.train()
        net_opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr_net)
        out = []
        for ol in range(self.outer):
            out.append(update(self.loss_and_backward(images, labels, generator)))
            if ol == self.outer - 1:
                break
            self.train_inner(images, labels, net_opt, generator)
        return out


@METHODS.register("dsa")
class DSAMatching(DCMatching):
    """DSA: DC's gradient matching with Siamese augmentation of real and synthetic batches."""

    augment = True
