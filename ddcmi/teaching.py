"""A 2-D picture of class-aware CMI for teaching: probability vectors over three outcomes drawn as
points of a triangle (the probability simplex), their class centroids Q_c, and KL(p_i || Q_c).

``toy_problem`` draws the points, ``minimise_cmi`` moves them down lambda * CMI (what the regulariser
does to a synthetic set's proxy outputs), ``draw_simplex`` plots one state.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from .cmi import empirical_cmi
from .config import override_dict
from .proxy import PoolConfig

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


# --- the real-image part: a small precomputed sweep of lambda and IPC that sliders browse ---------------

@dataclass(frozen=True)
class DemoSweep:
    """DM on the demo's dataset at every IPC, with lambda = scale x the profile's DM+CMI lambda (scale 0 is
    plain DM). ``overrides`` make it a live-demo setting, smaller than the profile's own runs (they are
    named in every output: :meth:`describe`); the runs live in the shared run store, so the sweep is built
    once and then reused by every kernel, ``ddcmi reproduce`` and the command line."""

    ipcs: tuple[int, ...]
    lambda_scales: tuple[float, ...]
    overrides: dict = field(default_factory=dict)

    def describe(self) -> str:
        o = self.overrides
        if not o:
            return "the profile's own DM settings"
        parts = [f"{o['iterations']} iterations" if "iterations" in o else "",
                 f"{o['real_per_class']} real images per class per step" if "real_per_class" in o else "",
                 f"distillation network width {o['net_kwargs']['width']}" if "width" in o.get("net_kwargs", {}) else ""]
        return "a live-demo reduction of the profile: " + ", ".join(p for p in parts if p)


# Chosen by measurement on a 2-core machine (docs/profiles.md, "Teaching demo"): at ``cpu`` the 15 runs
# and the pool together take a few minutes on MNIST, and lambda x10 visibly textures the digits.
_CPU_DEMO_POOL = {"pool.arch": "convnet3", "pool.count": 2, "pool.epochs": 2, "pool.train_per_class": 1000,
                  "pool.arch_kwargs": {"width": 32}}
DEMO_SWEEPS = {
    "smoke": DemoSweep(ipcs=(1, 10), lambda_scales=(0.0, 1.0, 10.0)),
    "cpu": DemoSweep(ipcs=(1, 5, 10), lambda_scales=(0.0, 0.1, 1.0, 10.0, 100.0),
                     overrides={**_CPU_DEMO_POOL, "iterations": 100, "real_per_class": 32, "net_kwargs": {"width": 32}}),
    "paper": DemoSweep(ipcs=(1, 10, 50), lambda_scales=(0.0, 0.1, 1.0, 10.0, 100.0),
                       overrides={"pool.count": 4, "pool.epochs": 10, "iterations": 2000}),
}


@dataclass
class DemoRun:
    ipc: int
    scale: float
    weight: float            # the lambda the run used (0 for plain DM)
    images: torch.Tensor     # in [0, 1], for drawing
    labels: torch.Tensor
    cmi: float               # feature-space CMI of the set, mean over the pool


@dataclass
class Demo:
    sweep: DemoSweep
    runs: dict               # (ipc, scale) -> DemoRun
    classes: list
    dataset_label: str
    pool: PoolConfig         # the proxies that distil the +CMI runs and measure every run's CMI
    profile_lambda: float
    seconds: float

    @property
    def pool_title(self) -> str:
        return self.pool.title()

    def run(self, ipc: int, scale: float) -> DemoRun:
        return self.runs[(ipc, float(scale))]

    def lambda_label(self, scale: float) -> str:
        value = scale * self.profile_lambda
        return "0 (plain DM)" if scale == 0 else f"{value:,.0f} ({scale:g} x profile)" if value >= 10 else f"{value:.3g} ({scale:g} x profile)"

    def table(self) -> list[dict]:
        return [{"ipc": r.ipc, "lambda_scale": r.scale, "lambda": r.weight, "cmi_feature": r.cmi}
                for r in self.runs.values()]


def demo_configs(profile: str, dataset: str, seed: int = 0, sweep: DemoSweep | None = None) -> dict:
    """(ipc, scale) -> the DistillConfig of each run of the demo's sweep."""
    from .profiles import make_config

    sweep = sweep or DEMO_SWEEPS[profile]
    configs = {}
    for ipc in sweep.ipcs:
        weight = make_config(profile, dataset, "dm+cmi", ipc, seed, sweep.overrides).cmi.weight
        for scale in sweep.lambda_scales:
            method = "dm+cmi" if scale else "dm"
            extra = {"cmi.weight": scale * weight} if scale else {}
            configs[(ipc, float(scale))] = make_config(profile, dataset, method, ipc, seed, {**sweep.overrides, **extra})
    return configs


def build_demo(profile: str, dataset, device, seed: int = 0, sweep: DemoSweep | None = None,
               progress: bool = True, overrides: list[str] | None = None) -> Demo:
    """Run (or reuse from the run store) every run of the demo's sweep and measure each set's CMI under the
    sweep's proxy pool. ``dataset`` is a loaded :class:`ddcmi.Dataset`; ``overrides`` (``key=value`` strings,
    as for ``--set``, speed switches say) go on top of the sweep's own, for every run and the pool."""
    import time

    from tqdm.auto import tqdm

    from .experiments import run_or_resume
    from .proxy import ProxyPool
    from .regularizers import measure_cmi

    started = time.time()
    sweep = sweep or DEMO_SWEEPS[profile]
    if overrides:
        sweep = dataclasses.replace(sweep, overrides={**sweep.overrides, **override_dict(overrides)})
    configs = demo_configs(profile, dataset.name, seed, sweep)
    with_cmi = next(c for c in configs.values() if c.cmi.weight > 0)
    pool = ProxyPool.build(with_cmi.pool, dataset, device)
    runs, classes = {}, []
    bar = tqdm(configs.items(), desc=f"demo sweep ({len(configs)} runs: {len(sweep.ipcs)} IPCs x "
                                     f"{len(sweep.lambda_scales)} lambdas)", disable=not progress)
    for (ipc, scale), cfg in bar:
        bar.set_postfix_str(f"IPC {ipc}, lambda x{scale:g}")
        synset = run_or_resume(cfg, dataset, device, pool, progress=False).synset
        cmi = measure_cmi(synset.images.to(device), synset.labels.to(device), pool, space="feature")["mean"]
        classes = list(synset.classes)
        runs[(ipc, scale)] = DemoRun(ipc, scale, cfg.cmi.weight, synset.to_unit().cpu(), synset.labels.cpu(), cmi)
    profile_lambda = next(c.cmi.weight / s for (_, s), c in configs.items() if s)
    return Demo(sweep, runs, classes, dataset.label, with_cmi.pool, profile_lambda,
                time.time() - started)


def draw_demo(demo: Demo, ipc: int, scale: float, fig=None):
    """Four panels for one slider position: the plain DM set, the set at this lambda, what lambda changed
    (|difference| per pixel), and CMI against lambda for every IPC with this position marked."""
    import matplotlib.pyplot as plt

    from .plots import image_grid

    base, run = demo.run(ipc, 0.0), demo.run(ipc, scale)
    fig = fig or plt.figure(figsize=(17, 4.8))
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.15]})
    image_grid(base.images, base.labels, demo.classes, ax=axes[0],
               title=f"plain DM, IPC {ipc}\nfeature-space CMI {base.cmi:.3g} nats")
    image_grid(run.images, run.labels, demo.classes, ax=axes[1],
               title=f"lambda = {demo.lambda_label(scale)}\nfeature-space CMI {run.cmi:.3g} nats")
    change = (run.images - base.images).abs().mean(1, keepdim=True).mul(2).clamp(0, 1)
    image_grid(change, run.labels, demo.classes, ax=axes[2], title="what lambda changed\n(|difference| x 2, white = 0.5 or more)")
    for i, k in enumerate(demo.sweep.ipcs):
        xs = list(range(len(demo.sweep.lambda_scales)))
        ys = [demo.run(k, s).cmi for s in demo.sweep.lambda_scales]
        axes[3].plot(xs, ys, marker="os^Dv"[i % 5], color=_IPC_COLORS[i % len(_IPC_COLORS)], label=f"IPC {k}")
    axes[3].plot([demo.sweep.lambda_scales.index(scale)], [run.cmi], marker="o", ms=16, mfc="none", mec="k", mew=2,
                 ls="none", label="this slider position")
    axes[3].set_xticks(range(len(demo.sweep.lambda_scales)), [f"x{s:g}" for s in demo.sweep.lambda_scales])
    axes[3].set_xlabel(f"lambda (x the profile's {demo.profile_lambda:,.4g})")
    axes[3].set_yscale("symlog", linthresh=1e-4)  # zero (IPC 1) at the bottom, the rest on a log scale
    axes[3].set_ylim(bottom=0)
    axes[3].set_ylabel("feature-space CMI of the set (nats)")
    axes[3].set_title(f"{demo.dataset_label}: CMI after distillation\n(IPC 1: zero whatever lambda)", fontsize=9)
    axes[3].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


_IPC_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
