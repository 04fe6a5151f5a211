"""A 2-D picture of class-aware CMI for teaching: probability vectors over three outcomes drawn as
points of a triangle (the probability simplex), their class centroids Q_c, and KL(p_i || Q_c).

``toy_problem`` draws the points, ``minimise_cmi`` moves them down lambda * CMI (what the regulariser
does to a synthetic set's proxy outputs), ``draw_simplex`` plots one state.
"""
from __future__ import annotations

import math

import torch

from .cmi import empirical_cmi

CORNERS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
CLASS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def toy_problem(num_classes: int = 3, per_class: int = 10, spread: float = 1.0, seed: int = 0):
    """Logits (N x 3) and labels: class c is centred on outcome c mod 3, ``spread`` scales the scatter."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    centre = torch.zeros(num_classes, 3)
    centre[torch.arange(num_classes), torch.arange(num_classes) % 3] = 1.5
    logits = centre[labels] + spread * torch.randn(len(labels), 3, generator=g)
    return logits, labels


def kl_to_centroid(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample KL(p_i || Q_{y_i}) and the centroids Q (num_classes x 3)."""
    q = torch.stack([probs[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    kl = (torch.special.xlogy(probs, probs) - torch.special.xlogy(probs, q[labels])).sum(1)
    return kl, q


def minimise_cmi(logits: torch.Tensor, labels: torch.Tensor, lam: float = 1.0, steps: int = 50, lr: float = 1.0):
    """Gradient descent on lam * CMI(softmax(logits)); returns the logits after each step."""
    x = logits.clone().requires_grad_(True)
    path = [x.detach().clone()]
    for _ in range(steps):
        loss = lam * empirical_cmi(torch.softmax(x, 1), labels)
        grad, = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= lr * grad
        path.append(x.detach().clone())
    return path


def to_xy(probs: torch.Tensor) -> torch.Tensor:
    """Barycentric coordinates of the triangle."""
    return probs @ CORNERS


def draw_simplex(ax, logits: torch.Tensor, labels: torch.Tensor, title: str | None = None):
    """Points, centroids (stars) and a line from each point to its centroid, labelled with CMI."""
    probs = torch.softmax(logits, 1)
    kl, q = kl_to_centroid(probs, labels)
    xy, qxy = to_xy(probs), to_xy(q)
    tri = torch.cat([CORNERS, CORNERS[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="0.6", lw=1)
    for k, name in enumerate(("outcome 0", "outcome 1", "outcome 2")):
        ax.annotate(name, CORNERS[k].tolist(), fontsize=8, ha="center", va="top" if k < 2 else "bottom")
    for c in range(q.shape[0]):
        col = CLASS_COLORS[c % len(CLASS_COLORS)]
        m = labels == c
        for p in xy[m]:
            ax.plot([p[0], qxy[c, 0]], [p[1], qxy[c, 1]], color=col, lw=0.5, alpha=0.5)
        ax.scatter(xy[m, 0], xy[m, 1], s=18, color=col, label=f"class {c}")
        ax.scatter(qxy[c, 0], qxy[c, 1], s=160, marker="*", color=col, edgecolor="k", zorder=3)
    cmi = float(kl.mean())
    ax.set_title((title + "\n" if title else "") + f"CMI = mean KL(p_i || Q_c) = {cmi:.4f} nats", fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(fontsize=7, loc="upper right")  # which colour is which class, on every panel
    return cmi
