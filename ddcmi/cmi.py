"""Class-aware conditional mutual information (CMI): the estimator and the regulariser built on it.

The formula lives in one function, :func:`empirical_cmi`::

    Q_c = mean of p_i over the samples i of class c
    CMI = (1/N) * sum_i KL(p_i || Q_{y_i})          (nats)

:class:`CMIRegularizer` feeds a synthetic set through a frozen proxy network and adds
``lambda * CMI`` to the gradient of the images, class by class (CMI decomposes over classes, so this
is exact and bounds memory). Two spaces, never mixed in one table:

- ``feature``: softmax over the proxy's penultimate feature channels (the paper's setting; the
  published lambda values refer to it);
- ``logit``: softmax(logits / T), the natural diagnostic of a dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .data import RealSampler
    from .proxy import ProxyPool

SPACES = ("feature", "logit")
CENTROIDS = ("synthetic", "real")


def empirical_cmi(probs: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples of KL(p_i || Q_{y_i}) in nats, as a differentiable 0-dim tensor.

    ``probs``: N x K rows of class probabilities (each row sums to 1). ``labels``: N integer labels.
    ``centroids``: optional (num_classes x K) fixed Q_c (e.g. from real data); by default Q_c is the
    mean of the rows of class c. With synthetic centroids a class with one sample has p = Q exactly,
    so it contributes an exact zero (value and gradient) and is left out of the graph.
    """
    if probs.dim() != 2 or labels.dim() != 1 or labels.shape[0] != probs.shape[0]:
        raise ConfigError(f"empirical_cmi expects probs N x K and labels N, got {tuple(probs.shape)} and "
                          f"{tuple(labels.shape)}")
    if probs.shape[0] == 0:
        raise ConfigError("empirical_cmi needs at least one sample")
    labels = labels.long()
    if centroids is None:
        _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        q = probs.new_zeros(counts.shape[0], probs.shape[1]).index_add(0, inverse, probs)
        q = q / counts.unsqueeze(1).to(probs.dtype)
        keep = counts[inverse] > 1
        p, q = probs[keep], q[inverse[keep]]
    else:
        p, q = probs, centroids.to(probs.dtype)[labels]
    kl = torch.special.xlogy(p, p) - torch.special.xlogy(p, q)
    return kl.sum() / probs.shape[0]


def proxy_probabilities(proxy: torch.nn.Module, images: torch.Tensor, space: str = "feature",
                        temperature: float = 1.0) -> torch.Tensor:
    """p = softmax(penultimate feature) (``feature``) or softmax(logits / T) (``logit``)."""
    if space == "feature":
        return F.softmax(proxy.embed(images), dim=1)
    if space == "logit":
        return F.softmax(proxy(images) / temperature, dim=1)
    raise ConfigError(f"unknown CMI space {space!r}; choose one of {SPACES}")


@dataclass(frozen=True)
class CMIConfig:
    """The regulariser: ``weight`` is lambda (0 turns CMI off); ``interval`` k applies it every k-th step."""

    weight: float = 0.0
    space: str = "feature"
    temperature: float = 1.0
    centroids: str = "synthetic"
    interval: int = 1
    real_centroid_samples: int = 256  # real images per class for real-data centroids
    max_batch: int = 256  # images per proxy pass; whole classes are grouped up to this size
    weight_note: str = ""  # where lambda comes from (published, borrowed, chosen for a profile)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ConfigError(f"unknown CMI space {self.space!r}; choose one of {SPACES}")
        if self.centroids not in CENTROIDS:
            raise ConfigError(f"unknown CMI centroids {self.centroids!r}; choose one of {CENTROIDS}")
        if self.interval < 1:
            raise ConfigError(f"CMI interval must be >= 1, got {self.interval}")
        if self.weight < 0:
            raise ConfigError(f"CMI weight (lambda) must be >= 0, got {self.weight}")


class CMIRegularizer:
    """lambda * CMI of a synthetic set under proxies drawn from a :class:`~ddcmi.proxy.ProxyPool`.

    ``input_space`` says what the caller's images are: ``"normalized"`` (the dataset's mean/std, as
    the pool was trained) or ``"unit"`` ([0,1] pixels, normalised here before the proxy sees them).
    """

    def __init__(self, pool: "ProxyPool", config: CMIConfig, input_space: str = "normalized",
                 real: "RealSampler | None" = None, compile: bool = False):
        if input_space not in ("normalized", "unit"):
            raise ConfigError(f"input_space must be 'normalized' or 'unit', got {input_space!r}")
        if config.centroids == "real" and real is None:
            raise ConfigError("real-data centroids need a RealSampler of the pool's dataset")
        self.pool, self.config, self.input_space, self.real = pool, config, input_space, real
        self._real_centroids: dict[int, torch.Tensor] = {}
        self._compiled = _CompiledProxy(pool.members[0]) if compile else None

    def proxy(self, index: int) -> torch.nn.Module:
        """Pool member ``index`` (with ``compile``: its weights copied into one compiled network,
        so the graph is compiled once for the whole pool)."""
        if self._compiled is None:
            return self.pool.members[index]
        return self._compiled.load(self.pool.members[index])

    def is_due(self, step: int) -> bool:
        return self.config.weight > 0 and step % self.config.interval == 0

    def known_zero(self, labels: torch.Tensor) -> bool:
        """True when CMI and its gradient are exactly zero: synthetic centroids, <= 1 image per class."""
        return self.config.centroids == "synthetic" and int(torch.bincount(labels).max()) <= 1

    def _proxy_input(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_space == "unit":
            from .data import normalize
            return normalize(images, self.pool.mean, self.pool.std)
        return images

    def centroids_for(self, index: int, proxy: torch.nn.Module) -> torch.Tensor | None:
        """Real-data centroids of proxy ``index`` (computed once per proxy), or None for synthetic ones."""
        if self.config.centroids == "synthetic":
            return None
        if index not in self._real_centroids:
            g = torch.Generator().manual_seed(10_007 * (index + 1))
            with torch.no_grad():
                rows = [proxy_probabilities(proxy, self.real.sample(c, self.config.real_centroid_samples, g),
                                            self.config.space, self.config.temperature).mean(0)
                        for c in range(len(self.real.by_class))]
            self._real_centroids[index] = torch.stack(rows)
        return self._real_centroids[index]

    def backward(self, images: torch.Tensor, labels: torch.Tensor, proxy_index: int,
                 weight: float | None = None) -> float:
        """Add ``weight * dCMI/d images`` to ``images.grad`` in chunks of whole classes; return the CMI value.

        With ``weight=0`` nothing is back-propagated (a measurement with the same proxy)."""
        weight = self.config.weight if weight is None else weight
        if self.known_zero(labels):
            return 0.0
        proxy = self.proxy(proxy_index)
        centroids = self.centroids_for(proxy_index, proxy)
        total, n = 0.0, labels.shape[0]
        for idx in self._class_chunks(labels, skip_singletons=centroids is None):
            with torch.set_grad_enabled(weight > 0 and torch.is_grad_enabled()):
                p = proxy_probabilities(proxy, self._proxy_input(images[idx]), self.config.space,
                                        self.config.temperature)
                # CMI decomposes over classes, so a chunk of whole classes contributes exactly its share
                part = empirical_cmi(p, labels[idx], centroids) * (idx.numel() / n)
                if weight > 0 and part.requires_grad:
                    (weight * part).backward()
            total += float(part.detach())
        return total

    def _class_chunks(self, labels: torch.Tensor, skip_singletons: bool) -> list[torch.Tensor]:
        """Indices of whole classes, grouped so that one proxy pass sees at most ``max_batch`` images
        (always at least one class): memory stays bounded, small sets go through in one pass."""
        chunks, current = [], []
        for c in torch.unique(labels).tolist():
            idx = torch.nonzero(labels == c).flatten()
            if skip_singletons and idx.numel() < 2:
                continue  # exact zero
            if current and sum(i.numel() for i in current) + idx.numel() > self.config.max_batch:
                chunks.append(torch.cat(current))
                current = []
            current.append(idx)
        if current:
            chunks.append(torch.cat(current))
        return chunks


class _CompiledProxy:
    """One frozen copy of a pool member with compiled ``embed`` and ``__call__``; :meth:`load` copies
    another member's weights in place (same shapes, so nothing is recompiled)."""

    def __init__(self, template: torch.nn.Module):
        import copy
        self.net = copy.deepcopy(template).eval().requires_grad_(False)
        self.embed = torch.compile(self.net.embed)
        self._forward = torch.compile(self.net.forward)
        self._loaded: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    @torch.no_grad()
    def load(self, member: torch.nn.Module) -> "_CompiledProxy":
        if self._loaded != id(member):
            for dst, src in zip(self.net.state_dict().values(), member.state_dict().values()):
                dst.copy_(src)
            self._loaded = id(member)
        return self


@torch.no_grad()
def measure_cmi(images: torch.Tensor, labels: torch.Tensor, pool: "ProxyPool", space: str = "logit",
                temperature: float = 1.0, centroids: str = "synthetic", real: "RealSampler | None" = None,
                members: Sequence[int] | None = None, input_space: str = "normalized") -> dict:
    """CMI of a set (synthetic or real) under each pool member: mean, std and the per-member values."""
    reg = CMIRegularizer(pool, CMIConfig(weight=0.0, space=space, temperature=temperature, centroids=centroids),
                         input_space=input_space, real=real)
    members = list(range(len(pool))) if members is None else list(members)
    values = torch.tensor([reg.backward(images, labels, i, weight=0.0) for i in members], dtype=torch.float64)
    return {"space": space, "temperature": temperature, "centroids": centroids, "mean": float(values.mean()),
            "std": float(values.std()) if len(values) > 1 else 0.0, "per_member": values.tolist(),
            "pool": pool.config.key()}
