"""Input transforms beyond the dataset's mean/std: ZCA whitening (MTT's optional preprocessing).

``zca_for(dataset)`` fits (once, cached in the run store under ``transforms/``, keyed by the content
of the training split) the whitening of the *normalised* training images, as MTT's release does with
kornia's ``ZCAWhitening(eps=0.1)``: centre with the per-pixel mean, covariance over the training set
(unbiased), eigendecomposition ``C = U diag(S) U^T``, and

    white(x) = (x - mean) @ U diag(1 / sqrt(S + eps)) U^T,   unwhite(w) = w @ U diag(sqrt(S + eps)) U^T + mean.

Where ZCA is on, the method's sampler, the expert buffer, the evaluation's training and test images
are whitened; the synthetic-set artefact stores its images *un*whitened (the dataset's normalised
space, like every other set, so the proxies, plots and exports see what they expect) and records
``zca`` so that evaluation whitens them again (``EvalConfig.zca``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import store
from .errors import ArtefactError
from .utils import atomic_torch_save, load_artefact, slug

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset

ZCA_EPS = 0.1  # MTT's release (kornia's ZCAWhitening(eps=0.1))
FORMAT = "ddcmi-zca-v1"


@dataclass
class ZCA:
    """A fitted whitening: ``mean`` (D,), ``U`` (D, D) and ``S`` (D,) in float64, for images of ``shape``."""

    mean: torch.Tensor
    U: torch.Tensor
    S: torch.Tensor
    eps: float
    shape: tuple[int, int, int]
    source: str = ""  # what it was fitted on (dataset name and content digest)

    def __post_init__(self):
        self._cache: dict = {}

    @classmethod
    def fit(cls, images: torch.Tensor, eps: float = ZCA_EPS, source: str = "") -> "ZCA":
        """Fit on normalised images N x C x H x W (float64 arithmetic)."""
        x = images.detach().reshape(images.shape[0], -1).to("cpu", torch.float64)
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / max(x.shape[0] - 1, 1)
        S, U = torch.linalg.eigh(cov)
        return cls(mean, U, S.clamp_min(0), float(eps), tuple(images.shape[1:]), source)

    def _matrices(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._cache:
            root = (self.S + self.eps).sqrt()
            white = (self.U / root) @ self.U.T
            unwhite = (self.U * root) @ self.U.T
            self._cache[key] = tuple(t.to(device, dtype) for t in (self.mean, white, unwhite))
        return self._cache[key]

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> whitened images (same shape; differentiable)."""
        mean, white, _ = self._matrices(x.device, x.dtype)
        return ((x.reshape(x.shape[0], -1) - mean) @ white).reshape(x.shape)

    def unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        """Whitened images -> normalised images (the inverse of :meth:`whiten`; differentiable)."""
        mean, _, unwhite = self._matrices(w.device, w.dtype)
        return (w.reshape(w.shape[0], -1) @ unwhite + mean).reshape(w.shape)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "mean": self.mean, "U": self.U, "S": self.S, "eps": self.eps,
                "shape": list(self.shape), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "ZCA":
        return cls(d["mean"], d["U"], d["S"], float(d["eps"]), tuple(d["shape"]), d.get("source", ""))


def train_digest(dataset: "Dataset") -> str:
    """SHA-1 (16 hex digits) of the training split's pixels and labels: what a fit is keyed on."""
    h = hashlib.sha1()
    h.update(dataset.train.images.contiguous().numpy().tobytes())
    h.update(dataset.train.labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_FITTED: dict[tuple[str, float], ZCA] = {}


def zca_for(dataset: "Dataset", eps: float = ZCA_EPS) -> ZCA:
    """The ZCA of ``dataset``'s normalised training split: from memory, else the store's cache, else
    fitted now (seconds: a D x D eigendecomposition, D = 3,072 for CIFAR) and cached atomically."""
    digest = getattr(dataset, "_train_digest", None)
    if digest is None:  # hashed once per loaded dataset: evaluation asks for every network it trains
        digest = dataset._train_digest = train_digest(dataset)
    key = (digest, float(eps))
    if key in _FITTED:
        return _FITTED[key]
    path = store.transforms_dir() / f"{slug(dataset.name)}-zca-eps{eps:g}-{digest}.pt"
    zca = None
    if path.exists():
        try:
            zca = ZCA.from_dict(load_artefact(path, FORMAT, "ZCA fit", "it is fitted again"))
        except (ArtefactError, KeyError):  # written by this function: a damaged file is simply fitted again
            zca = None
    if zca is None:
        zca = ZCA.fit(dataset.normalize(dataset.train.images), eps, source=f"{dataset.name} train split {digest}")
        atomic_torch_save(zca.to_dict(), path)
    _FITTED[key] = zca
    return zca
