"""Figures: grids of synthetic images (one row per class). Matplotlib only; seaborn styles are optional."""
from __future__ import annotations

from pathlib import Path

import torch


def image_grid(images_unit: torch.Tensor, labels: torch.Tensor, classes: list[str], max_per_class: int = 10,
               ax=None, title: str | None = None):
    """Draw images (in [0,1]) with one row per class and the class names on the left."""
    import matplotlib.pyplot as plt

    num_classes = len(classes)
    per_class = min(max_per_class, int(torch.bincount(labels, minlength=num_classes).max()))
    c, h, w = images_unit.shape[1:]
    canvas = torch.ones(num_classes * (h + 1), per_class * (w + 1), c)
    for k in range(num_classes):
        imgs = images_unit[labels == k][:per_class]
        for j, im in enumerate(imgs):
            canvas[k * (h + 1):k * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = im.permute(1, 2, 0)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * per_class + 1.5, 0.45 * num_classes + 0.6))
    ax.imshow(canvas.squeeze(-1).numpy(), cmap="gray" if c == 1 else None, interpolation="nearest")
    ax.set_yticks([k * (h + 1) + h / 2 for k in range(num_classes)], classes, fontsize=8)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def save_synset_grid(synset, path: str | Path, title: str | None = None, max_per_class: int = 10) -> Path:
    """Save a synthetic set's image grid as a PNG (atomic)."""
    import matplotlib
    import matplotlib.pyplot as plt

    from .utils import _atomic

    matplotlib.use("Agg", force=False)
    ax = image_grid(synset.to_unit(), synset.labels, synset.classes, max_per_class, title=title)
    fig = ax.figure
    fig.tight_layout()
    path = Path(path)
    _atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path
