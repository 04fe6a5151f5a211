"""Figures: one colour-blind-safe colour and marker per method across every notebook, a check that a
figure can be read on its own, and grids of synthetic images (one row per class). Matplotlib only;
seaborn styles are optional."""
from __future__ import annotations

from pathlib import Path

import torch

# Colour-blind-safe colours (Okabe & Ito 2008; Paul Tol's indigo, sand-free muted picks where eight run out):
# each base method has a cool hue and its ``X+cmi`` a warm one, and the two also differ in marker, so a
# pair reads apart on a projector, in grey print and for readers with a colour-vision deficiency.
_PAIRS = {"dm": ("#0072B2", "#D55E00"),     # blue / vermillion
          "dsa": ("#009E73", "#CC79A7"),    # bluish green / reddish purple
          "idc": ("#56B4E9", "#E69F00"),    # sky blue / orange
          "idm": ("#332288", "#AA4499"),    # indigo / purple (Tol)
          "dc": ("#000000", "#882255"),     # black / wine (Tol)
          "mtt": ("#117733", "#CC6677")}    # green / rose (Tol)
# Reference sets that are not distilled (the CMI-diagnostic notebook): greys and an olive.
_OTHER_COLORS = {"random": "#7f7f7f", "herding coreset": "#999933", "real": "#44AA99"}
BASE_MARKER, CMI_MARKER = "o", "s"


def _key(name: str) -> str:
    """A method or set name as the palette looks it up: lower case, without "distilled "."""
    return name.lower().removeprefix("distilled ").strip()


def _reference(key: str) -> str | None:
    """The reference set (random subset, coreset, real data) a key names, or None for a method."""
    return next((other for other in _OTHER_COLORS if key.startswith(other)), None)


def _split(key: str) -> tuple[str, bool]:
    base, _, suffix = key.partition("+")
    return (base.split()[0] if base else base), bool(suffix)


def method_color(name: str) -> str:
    """The colour of a method (``"dm"``, ``"dm+cmi"``, ``"distilled dsa+cmi"``, ``"random"``...) as '#rrggbb'.
    The same name gets the same colour in every figure; unknown names fall back to a colour derived from
    the name, so they are stable too."""
    import zlib

    key = _key(name)
    if (ref := _reference(key)) is not None:
        return _OTHER_COLORS[ref]
    base, cmi = _split(key)
    if base in _PAIRS:
        return _PAIRS[base][int(cmi)]
    import matplotlib

    palette = matplotlib.colormaps["tab20b"].colors
    return matplotlib.colors.to_hex(palette[zlib.crc32(key.encode()) % len(palette)])


def method_marker(name: str) -> str:
    """``"s"`` for a method with CMI, ``"o"`` for a base method (``"^"`` for reference sets)."""
    key = _key(name)
    if _reference(key) is not None:
        return "^"
    return CMI_MARKER if _split(key)[1] else BASE_MARKER


def figure_problems(fig) -> list[str]:
    """What keeps a figure from being read on its own: a plotting panel without axis labels (text tick
    labels count as a label: a categorical axis), or with more than one labelled series and no legend
    (on the panel or the figure) unless its tick labels name each series. Image panels (``imshow``) are
    exempt. Recorded by :func:`ddcmi.report.write_report` for every figure a notebook writes."""
    out = []
    figure_legend = bool(fig.legends)
    for i, ax in enumerate(fig.axes):
        if ax.images or not ax.get_visible() or not ax.has_data():
            continue
        where = f"panel {i} ({ax.get_title() or 'untitled'})"
        for axis in ("x", "y") if ax.axison else ():  # a drawing with its axes off (a simplex) has none to label
            twins = getattr(ax, f"get_shared_{axis}_axes")().get_siblings(ax)  # a twinx/twiny panel shares one
            label = "".join(getattr(t, f"get_{axis}label")() for t in twins)
            ticks = [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]
            categorical = any(_is_word(t) for t in ticks)
            if not label and not categorical:
                out.append(f"{where}: no {axis} label")
        series = {lb for lb in ax.get_legend_handles_labels()[1] if not lb.startswith("_")}
        ticks = {t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()}
        named_by_ticks = series <= ticks  # one series per category, the axis names them
        if len(series) > 1 and ax.get_legend() is None and not figure_legend and not named_by_ticks:
            out.append(f"{where}: {len(series)} labelled series and no legend")
    return out


def slow_stretches(iterations, seconds, factor: float = 1.5) -> list[tuple[int, int, float]]:
    """Stretches of a run's clock between checkpoints whose seconds per iteration exceed ``factor`` times
    the run's median rate: (first iteration, last iteration, times the median). On a wall-time axis these
    are most often a stretch that shared the CPU with other work, or a stop and resume; a figure that draws
    wall time says which stretches they are."""
    rates = [(i0, i1, (s1 - s0) / (i1 - i0)) for i0, i1, s0, s1 in zip(iterations, iterations[1:], seconds, seconds[1:])
             if i1 > i0]
    if len(rates) < 2:
        return []
    median = sorted(r for *_, r in rates)[len(rates) // 2]
    return [(i0, i1, r / median) for i0, i1, r in rates if median > 0 and r > factor * median]


def _is_word(tick: str) -> bool:
    """A tick label that names something (``dm+cmi``, ``convnet3``), not a number (``0.5``, ``2e-4``,
    ``$\\mathdefault{10^{-3}}$``)."""
    return any(ch.isalpha() and ch != "e" for ch in tick.replace("\\mathdefault", ""))


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


def _short_number(v: float) -> str:
    """0.2, 5, 2000 as written; 2e-4 and 5e5 in exponent form (what fits under a tick)."""
    return f"{v:g}" if 0.01 <= abs(v) < 1e5 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def log_axis(ax, axis: str = "x") -> None:
    """Put ``axis`` of ``ax`` on a log scale labelled 1-2-5 (decades only past 2.5 decades), in a short
    form (2e-4, 0.5, 200): matplotlib's default labels every minor tick of a range near one decade, and the
    labels then overlap. Call it after plotting, so the data's range is known."""
    import math
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = getattr(ax, f"get_{axis}lim")()
    subs = (1.0, 2.0, 5.0) if math.log10(hi / lo) <= 2.5 else (1.0,)
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(LogLocator(subs=subs))
    a.set_major_formatter(FuncFormatter(lambda v, _: _short_number(v)))
    a.set_minor_formatter(NullFormatter())
