"""The CMI regulariser: ``lambda * CMI`` of a synthetic set under frozen proxies from a pool.

:class:`CMIRegularizer` feeds a synthetic set through a frozen proxy network and adds
``lambda * CMI`` to the gradient of the images, class by class (CMI decomposes over classes, so this
is exact and bounds memory). The formula itself is :func:`ddcmi.cmi.empirical_cmi`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from .cmi import SPACES, empirical_cmi, proxy_probabilities
from .errors import ConfigError
from .utils import bf16_autocast

if TYPE_CHECKING:  # pragma: no cover
    from .data import RealSampler
    from .proxy import ProxyPool

CENTROIDS = ("synthetic", "real")


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
                 real: "RealSampler | None" = None, compile: bool = False, bf16: bool = False):
        if input_space not in ("normalized", "unit"):
            raise ConfigError(f"input_space must be 'normalized' or 'unit', got {input_space!r}")
        if config.centroids == "real" and real is None:
            raise ConfigError("real-data centroids need a RealSampler of the pool's dataset")
        self.pool, self.config, self.input_space, self.real = pool, config, input_space, real
        self.bf16 = bf16  # the proxy passes under bf16 autocast (probabilities and CMI stay fp32)
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
                 weight: float | None = None, classes: Sequence[int] | None = None) -> float:
        """Add ``weight * dCMI/d images`` to ``images.grad`` in chunks of whole classes; return the CMI value.

        With ``weight=0`` nothing is back-propagated (a measurement with the same proxy). With
        ``classes`` (a class-parallel worker), only the chunks holding those classes are computed: the
        returned value is then the share of the chunks whose first class is one of them (a chunk that
        straddles two workers is computed by both, for its gradient rows, and counted once), normalised
        by the whole set's N."""
        weight = self.config.weight if weight is None else weight
        if self.known_zero(labels):
            return 0.0
        proxy = self.proxy(proxy_index)
        centroids = self.centroids_for(proxy_index, proxy)
        total, n = 0.0, labels.shape[0]
        keep = None if classes is None else set(int(c) for c in classes)
        for idx in self._class_chunks(labels, skip_singletons=centroids is None, classes=classes):
            with torch.set_grad_enabled(weight > 0 and torch.is_grad_enabled()):
                with bf16_autocast(images.device, self.bf16):
                    p = proxy_probabilities(proxy, self._proxy_input(images[idx]), self.config.space,
                                            self.config.temperature)
                p = p.float()
                # CMI decomposes over classes, so a chunk of whole classes contributes exactly its share
                part = empirical_cmi(p, labels[idx], centroids) * (idx.numel() / n)
                if weight > 0 and part.requires_grad:
                    (weight * part).backward()
            if keep is None or int(labels[idx[0]]) in keep:
                total += float(part.detach())
        return total

    def _class_chunks(self, labels: torch.Tensor, skip_singletons: bool,
                      classes: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Indices of whole classes, grouped so that one proxy pass sees at most ``max_batch`` images
        (always at least one class): memory stays bounded, small sets go through in one pass. The
        grouping is made over all classes; with ``classes``, only the groups holding one of them are
        passed, whole: a class-parallel worker (whose other classes' pixels are current, exchanged after
        every update) computes its classes in exactly the batches of a full run, so their gradients are
        bitwise those of the full run (batch composition changes the last bits of a convolution)."""
        groups, current, size = [], [], 0
        for c in torch.unique(labels).tolist():
            idx = torch.nonzero(labels == c).flatten()
            if skip_singletons and idx.numel() < 2:
                continue  # exact zero
            if current and size + idx.numel() > self.config.max_batch:
                groups.append(current)
                current, size = [], 0
            current.append((c, idx))
            size += idx.numel()
        if current:
            groups.append(current)
        keep = None if classes is None else set(int(c) for c in classes)
        return [torch.cat([idx for _, idx in group]) for group in groups
                if keep is None or any(c in keep for c, _ in group)]


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
