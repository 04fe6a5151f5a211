"""Writing a report folder from a notebook or a script: metrics.json (with provenance) and PNG figures."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .utils import _atomic, atomic_write_json, provenance


def write_report(out_dir: str | Path, metrics: dict, figures: dict | None = None,
                 device: torch.device | str = "cpu", started: float | None = None) -> Path:
    """Save ``metrics`` (plus provenance) as metrics.json and each matplotlib figure as NAME.png."""
    out = Path(out_dir)
    bad = [k for k, v in _flatten(metrics) if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"non-finite metrics: {bad}")
    atomic_write_json({**metrics, "provenance": provenance(torch.device(device), started)}, out / "metrics.json")
    for name, fig in (figures or {}).items():
        _atomic(out / f"{name}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    return out


def _flatten(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from _flatten(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), d
