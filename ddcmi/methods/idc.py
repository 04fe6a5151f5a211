"""IDC (Kim et al., ICML 2022): multi-formation and gradient matching with a network trained on real data.

The optimised tensor holds ``ipc`` *storage* images per class in [0,1] pixels. Multi-formation with
factor f tiles f x f downsampled images into each storage image; ``decode`` cuts the tiles out and
upsamples each back to full size, so a storage set of IPC images trains networks on f^2 x IPC images.
Matching, evaluation and CMI all see the decoded images (normalised with the dataset's mean/std, the
space the networks and proxies were trained in).

One outer iteration (method.md section 4): a freshly initialised network; ``outer_loop`` rounds, each
updating the pixels class by class (MSE between the real and synthetic cross-entropy gradients of the
conv weights, both batches DSA-augmented with one shared draw), then training the network for
``inner_loop`` SGD steps on real images. Pixels are clamped to [0,1] after every update. With CMI,
lambda x CMI of the class's decoded images is added at each class update (one proxy per round).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..augment import DSA
from ..data import denormalize, normalize
from ..errors import ConfigError
from ..models import create_model, init_weights_
from . import METHODS, MatchingMethod
from .gradient_matching import class_gradient_distance

FACTOR = 2
REAL_BATCH = 128  # real images per network-training step between rounds (spread evenly over classes)


def tile(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(B*f*f) x C x h x w small images -> B x C x (f*h) x (f*w) storage images; image k*f*f + i*f + j
    goes to tile (row i, column j) of storage image k."""
    n, c, h, w = images.shape
    if n % (factor * factor):
        raise ConfigError(f"{n} images cannot be tiled {factor}x{factor}")
    b = n // (factor * factor)
    return images.reshape(b, factor, factor, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, factor * h, factor * w)


def untile(storage: torch.Tensor, factor: int) -> torch.Tensor:
    """The exact inverse of :func:`tile`."""
    b, c, hh, ww = storage.shape
    if hh % factor or ww % factor:
        raise ConfigError(f"a {hh}x{ww} image cannot hold {factor}x{factor} tiles")
    h, w = hh // factor, ww // factor
    return storage.reshape(b, c, factor, h, factor, w).permute(0, 2, 4, 1, 3, 5).reshape(b * factor * factor, c, h, w)


def encode(images: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """Full-size images (f^2 per storage image) -> storage images: downsample each, then tile."""
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(h // factor, w // factor), mode="bilinear", align_corners=False,
                          antialias=True)
    return tile(small, factor)


def decode(storage: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """Storage images -> f^2 full-size images each: cut the tiles out and upsample them (bilinear)."""
    h, w = storage.shape[-2:]
    return F.interpolate(untile(storage, factor), size=(h, w), mode="bilinear", align_corners=False)


def decoded_labels(labels: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    return labels.repeat_interleave(factor * factor)


def mse_distance(grads_real: list[torch.Tensor], grads_syn: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared difference of the gradients (IDC's 'mse' distance)."""
    return sum(((gr - gs) ** 2).sum() for gr, gs in zip(grads_real, grads_syn))


@METHODS.register("idc")
class IDCMatching(MatchingMethod):
    factor = FACTOR

    def __init__(self, config, dataset, sampler, device):
        self.config, self.sampler, self.device = config, sampler, device
        self.mean, self.std = dataset.mean, dataset.std
        self.num_classes = dataset.num_classes
        if config.outer_loop < 1 or config.inner_loop < 0:
            raise ConfigError("IDC needs outer_loop >= 1 (rounds of class updates per iteration) and inner_loop >= 0 "
                              "(network steps on real data between rounds); the profiles set both")
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.conv_params = [p for p in self.net.parameters() if p.dim() == 4]  # matched: conv weights only
        self.dsa = DSA(config.dsa)

    # ------------------------------------------------------------------ parameterisation
    def initial(self, ipc: int, generator):
        """Each storage image tiles f^2 distinct random real images of its class, downsampled; [0,1] pixels."""
        f2 = self.factor * self.factor
        self.sampler.check_ipc(ipc * f2)
        real = torch.cat([self.sampler.sample(c, ipc * f2, generator) for c in range(self.num_classes)])
        storage = encode(denormalize(real, self.mean, self.std).clamp(0, 1), self.factor).clamp(0, 1)
        labels = torch.arange(self.num_classes, device=storage.device).repeat_interleave(ipc)
        return storage, labels

    def synthetic(self, images, labels):
        """The decoded images (normalised) and their labels: what networks are trained on."""
        return normalize(decode(images, self.factor), self.mean, self.std), decoded_labels(labels, self.factor)

    def project_(self, images) -> None:
        images.clamp_(0, 1)

    # ------------------------------------------------------------------ one outer iteration
    def iteration(self, images, labels, generator, update) -> list[dict]:
        init_weights_(self.net, generator)
        self.net.train()
        net_opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr_net, momentum=0.9, weight_decay=5e-4)
        out = []
        for r in range(self.config.outer_loop):
            for c in range(self.num_classes):
                out.append(update(self.class_loss_and_backward(images, labels, c, generator),
                                  *self.synthetic(images[labels == c], labels[labels == c]), new_proxy=c == 0))
            if r < self.config.outer_loop - 1:
                self.train_on_real(net_opt, generator)
        return out

    def class_loss_and_backward(self, images, labels, c: int, generator) -> dict:
        real = self.sampler.sample(c, self.config.real_per_class, generator)
        syn, _ = self.synthetic(images[labels == c], labels[labels == c])
        if self.dsa.enabled:
            p = self.dsa.sample(real.shape, generator, siamese=True)
            real, syn = self.dsa.apply(real, p), self.dsa.apply(syn, p)
        loss = class_gradient_distance(self.net, self.conv_params, real, syn, c, mse_distance)
        loss.backward(inputs=[images])
        return {"match": float(loss.detach())}

    def train_on_real(self, optimizer, generator) -> None:
        per_class = max(1, REAL_BATCH // self.num_classes)
        for _ in range(self.config.inner_loop):
            x = torch.cat([self.sampler.sample(c, per_class, generator) for c in range(self.num_classes)])
            y = torch.arange(self.num_classes, device=x.device).repeat_interleave(per_class)
            if self.dsa.enabled:
                x = self.dsa(x, generator, siamese=False)
            loss = F.cross_entropy(self.net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
