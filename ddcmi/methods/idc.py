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

from ..augment import DSA
from ..data import denormalize, normalize
from ..errors import ConfigError
from ..evaluate import idc_recipe
from ..models import create_model, init_weights_
from ..train import sgd_steps
from . import register
from ._formation import FACTOR, decode, decoded_labels, encode, tile_sources
from .base import MatchingMethod
from .gradient_matching import class_gradient_distance

REAL_BATCH = 128  # real images per network-training step between rounds (spread evenly over classes)


def mse_distance(grads_real: list[torch.Tensor], grads_syn: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared difference of the gradients (IDC's 'mse' distance)."""
    return sum(((gr - gs) ** 2).sum() for gr, gs in zip(grads_real, grads_syn))


@register("idc")
class IDCMatching(MatchingMethod):
    factor = FACTOR
    cmi_sees_stored_set = False  # the CMI term sees factor^2 decoded images per stored image
    # method.md section 5
    paper_lambda = {("cifar10", 10): 100, ("cifar10", 50): 50, ("cifar100", 10): 100, ("cifar100", 50): 50,
                    ("svhn", 10): 50, ("svhn", 50): 50}
    # the gradient-scale rule of DM, measured on mnist: 1,555 (docs/profiles.md)
    cpu_lambda = 1500.0
    cpu_lambda_note = ("cpu profile: set so lambda*|grad CMI| ~ |grad match| at init with the quarter-width "
                       "ResNet-18 proxies (docs/profiles.md)")

    @classmethod
    def defaults(cls, profile: str, dataset: str, ipc: int) -> dict:
        # 2000 outer iterations, lr_img 5e-3 x IPC/10 on [0,1] pixels (method.md section 4). Not pinned
        # there, chosen here: 100 rounds of class updates per iteration, 5 network steps on 128 real
        # images between rounds, 128 real images per class per update.
        paper = {"iterations": 2000, "lr_img": 5e-3 * ipc / 10, "momentum": 0.5, "real_per_class": 128,
                 "lr_net": 0.01, "outer_loop": 100, "inner_loop": 5}
        if profile == "paper":
            return {**paper, "checkpoint_every": 25}
        if profile == "cpu":
            return {**paper, "iterations": 20, "real_per_class": 32, "outer_loop": 5, "inner_loop": 5,
                    "checkpoint_every": 5}
        return {**paper, "iterations": 2, "real_per_class": 16, "outer_loop": 2, "inner_loop": 2, "checkpoint_every": 5}

    @classmethod
    def eval_recipe(cls, eval_config, profile: str):
        """IDC's own recipe (batch 64, CutMix, multi-step lr; method.md section 6); the standard
        protocol beside it is ``ddcmi.evaluate.standard_recipe``."""
        return idc_recipe(eval_config)

    def __init__(self, config, dataset, sampler, device, classes=None):
        super().__init__(config, dataset, sampler, device, classes)
        self.mean, self.std = dataset.mean, dataset.std
        if config.outer_loop < 1 or config.inner_loop < 0:
            raise ConfigError("IDC needs outer_loop >= 1 (rounds of class updates per iteration) and inner_loop >= 0 "
                              "(network steps on real data between rounds); the profiles set both")
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.conv_params = [p for p in self.net.parameters() if p.dim() == 4]  # matched: conv weights only
        self.dsa = DSA(config.dsa)

    # ------------------------------------------------------------------ parameterisation
    def initial(self, ipc: int, draws):
        """Each storage image tiles f^2 distinct random real images of its class, downsampled; [0,1] pixels."""
        real, labels = tile_sources(self.sampler, self.num_classes, ipc, self.factor, draws)
        return encode(denormalize(real, self.mean, self.std).clamp(0, 1), self.factor).clamp(0, 1), labels

    def synthetic(self, images, labels):
        """The decoded images (normalised) and their labels: what networks are trained on."""
        return normalize(decode(images, self.factor), self.mean, self.std), decoded_labels(labels, self.factor)

    def project_(self, images) -> None:
        images.clamp_(0, 1)

    # ------------------------------------------------------------------ one outer iteration
    def iteration(self, images, labels, draws, update) -> list[dict]:
        """Rounds of one update per class, in class order (every process steps through all of them:
        momentum moves every image at every step, as in the release), the network trained on real
        images between rounds."""
        init_weights_(self.net, draws("net"))
        self.net.train()
        net_opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr_net, momentum=0.9, weight_decay=5e-4)
        out = []
        for r in range(self.config.outer_loop):
            for c in range(self.num_classes):
                if c not in self.classes:
                    out.append(update(None, new_proxy=c == 0))
                    continue
                mine = labels == c
                out.append(update(self.class_loss_and_backward(images, labels, c, draws("class", c, step=r)),
                                  *self.synthetic(images[mine], labels[mine]), new_proxy=c == 0))
            if r < self.config.outer_loop - 1:
                self.train_on_real(net_opt, draws("train", step=r))
        return out

    def class_loss_and_backward(self, images, labels, c: int, generator) -> dict:
        real = self.sampler.sample(c, self.config.real_per_class, generator)
        syn, _ = self.synthetic(images[labels == c], labels[labels == c])
        real, syn = self.dsa.siamese(real, syn, generator)
        loss = class_gradient_distance(self.net, self.conv_params, real, syn, c, mse_distance)
        loss.backward(inputs=[images])
        return {"match": float(loss.detach())}

    def train_on_real(self, optimizer, generator) -> None:
        """``inner_loop`` SGD steps on real batches spread evenly over all classes (shared work)."""
        sgd_steps(self.net, optimizer, self.sampler.balanced_batches(REAL_BATCH, self.config.inner_loop, generator),
                  generator, self.dsa)
