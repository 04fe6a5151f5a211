"""Class-aware conditional mutual information (CMI): the estimator.

The formula lives in one function, :func:`empirical_cmi`::

    Q_c = mean of p_i over the samples i of class c
    CMI = (1/N) * sum_i KL(p_i || Q_{y_i})          (nats)

:func:`proxy_probabilities` turns a proxy network's output into the rows ``p_i``, in one of two
spaces, never mixed in one table:

- ``feature``: softmax over the proxy's penultimate feature channels (the paper's setting; the
  published lambda values refer to it);
- ``logit``: softmax(logits / T), the natural diagnostic of a dataset.

The regulariser built on it (``CMIRegularizer``, ``CMIConfig``, ``measure_cmi``) is in
:mod:`ddcmi.regularizers` (re-exported here).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError

SPACES = ("feature", "logit")


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




from .regularizers import CENTROIDS, CMIConfig, CMIRegularizer, measure_cmi  # noqa: E402,F401  (re-exported)
