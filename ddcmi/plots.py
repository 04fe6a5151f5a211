"""Figures: one colour per method across every notebook, and grids of synthetic images (one row per
class). Matplotlib only; seaborn styles are optional."""
from __future__ import annotations

from pathlib import Path

import torch

# One hue per base method (matplotlib's tab10, fixed order); the base method is drawn in a lighter
# shade and ``X+cmi`` in a darker shade of the same hue, so a pair reads as a pair in every figure.
_BASE_HUES = {"dm": "#1f77b4", "dc": "#ff7f0e", "dsa": "#2ca02c", "idc": "#d62728", "idm": "#9467bd",
              "mtt": "#8c564b"}
# Reference sets that are not distilled (the CMI-diagnostic notebook): greys and an olive.
_OTHER_COLORS = {"random": "#7f7f7f", "herding coreset": "#bcbd22", "real": "#17becf"}


def method_color(name: str) -> str:
    """The colour of a method (``"dm"``, ``"dm+cmi"``, ``"distilled dsa+cmi"``, ``"random"``...) as '#rrggbb'.
    The same name gets the same colour in every figure; unknown names fall back to a colour derived from
    the name, so they are stable too."""
    import zlib

    key = name.lower().removeprefix("distilled ").strip()
    for other, color in _OTHER_COLORS.items():
        if key.startswith(other):
            return color
    base, _, suffix = key.partition("+")
    base = base.split()[0] if base else base
    if base in _BASE_HUES:
        return _shade(_BASE_HUES[base], dark=bool(suffix))
    import matplotlib

    palette = matplotlib.colormaps["tab20b"].colors
    return matplotlib.colors.to_hex(palette[zlib.crc32(key.encode()) % len(palette)])


def _shade(hex_color: str, dark: bool) -> str:
    """A darker (mixed with 20 % black) or lighter (mixed with 40 % white) version of ``hex_color``."""
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    mixed = [c * 0.8 for c in rgb] if dark else [c + (1 - c) * 0.4 for c in rgb]
    return "#" + "".join(f"{round(255 * c):02x}" for c in mixed)


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


def log_axis(ax, axis: str = "x") -> None:
    """Put ``axis`` of ``ax`` on a log scale labelled 1-2-5 (decades only past 2.5 decades), in a short
    form (2e-4): matplotlib's default labels every minor tick of a range near one decade, and the
    labels then overlap. Call it after plotting, so the data's range is known."""
    import math
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = getattr(ax, f"get_{axis}lim")()
    subs = (1.0, 2.0, 5.0) if math.log10(hi / lo) <= 2.5 else (1.0,)
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(LogLocator(subs=subs))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")))
    a.set_minor_formatter(NullFormatter())
