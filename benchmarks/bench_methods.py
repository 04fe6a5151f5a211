"""Distillation methods (DC, DSA, IDC, IDM, MTT; DM too) with and without CMI: time per outer iteration, the CMI
overhead and the share of the iteration spent training networks between image updates.

    python benchmarks/bench_methods.py                                  # cpu profile, mnist, IPC 10
    python benchmarks/bench_methods.py --profile paper --dataset cifar10 --iterations 2   # on a GPU

For each method the distiller runs ``--iterations`` outer iterations of the profile's config (after one
warm-up iteration) and the script prints a Markdown table: seconds per outer iteration (median), image
updates per outer iteration, the share of the iteration spent training the method's networks between
updates (DC/DSA's inner epochs, IDC's steps on real data, IDM's queue), and the +CMI time as a ratio of
the base method's (``--warmup 0`` where one
iteration takes minutes: a CPU run has no compilation to warm up). Proxies are freshly
initialised networks of the profile's pool architecture: the cost of a step does not depend on their
weights, so no pool needs training. Absolute times are noisy on a shared machine; compare the ratios.

    python benchmarks/bench_methods.py --components --methods dsa+cmi,idc+cmi --dataset cifar10_jpeg

times the pieces of one outer iteration instead (a matching update over all classes, one network step
between updates, one CMI backward) and predicts the seconds per outer iteration of the profile's
(outer, inner) schedule: how the ``cpu`` schedules of DC, DSA and IDC were chosen (docs/profiles.md).

    python benchmarks/bench_methods.py --mtt-memory --syn-steps 5,10,20

compares MTT's two gradient modes (``unrolled`` and the constant-memory ``recompute``) at several
``syn_steps``: seconds per iteration and peak activation memory (bytes autograd holds for backward,
``ddcmi.utils.SavedTensorMeter``; on CUDA also ``torch.cuda.max_memory_allocated``). MTT runs here on an
expert buffer of random parameter vectors (the cost of a step does not depend on them), so no buffer
needs training.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch


def _distiller(method: str, args):
    """A distiller of the profile's config with freshly initialised proxies, and its initial state."""
    import ddcmi
    from ddcmi.distill import Distiller
    from ddcmi.models import create_model, init_weights_
    from ddcmi.proxy import ProxyPool

    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    device = ddcmi.utils.pick_device(args.device)
    cfg = ddcmi.make_config(args.profile, ds.name, method, args.ipc, overrides=args.set or None)
    g = torch.Generator().manual_seed(0)
    pc = cfg.pool
    members = [init_weights_(create_model(pc.arch, ds.channels, ds.num_classes, ds.image_size, **pc.arch_kwargs), g)
               .to(device) for _ in range(2)]
    pool = ProxyPool(pc, members, ds.mean, ds.std)
    d = Distiller(cfg, ds, device=device, pool=pool, progress=False)
    if hasattr(d.method, "experts_config"):  # MTT: random trajectories instead of a trained buffer
        d.method._buffer = _RandomBuffer(d.method, g)
    return d, d._fresh_state(), g


class _RandomBuffer:
    """An expert buffer of random parameter vectors with the student's layout (MTT's timing only)."""

    def __init__(self, method, g: torch.Generator):
        from ddcmi.experts import flat_parameters
        from ddcmi.models import init_weights_
        self.start = flat_parameters(init_weights_(method.net, g))
        self.step = 0.01 * torch.randn(self.start.shape, generator=g)

    def __len__(self) -> int:
        return 1

    def epochs(self, index, epochs, device="cpu"):
        return [(self.start + e * self.step).to(device) for e in epochs]


def mtt_memory(args) -> list[dict]:
    """MTT's two gradient modes at each ``syn_steps``: s per iteration and peak activation memory."""
    from ddcmi.rng import Draws
    from ddcmi.utils import SavedTensorMeter
    rows = []
    for steps in [int(v) for v in args.syn_steps.split(",")]:
        for mode in ("unrolled", "recompute"):
            args_mode = argparse.Namespace(**{**vars(args), "set": [*args.set, f"options.gradient={mode}",
                                                                     f"options.syn_steps={steps}"]})
            d, state, _ = _distiller("mtt", args_mode)
            images = state["images"].detach().clone().requires_grad_(True)
            start, target = d.method.buffer.epochs(0, [0, 2], d.device)
            if d.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(d.device)
            with SavedTensorMeter() as meter:
                d.method.loss_and_backward(images, state["labels"], start, target, Draws(0, 1))
            cuda_peak = torch.cuda.max_memory_allocated(d.device) if d.device.type == "cuda" else None

            def once():
                images.grad = None
                d.method.loss_and_backward(images, state["labels"], start, target, Draws(0, 1))
            rows.append({"syn_steps": steps, "gradient": mode, "s": _timed(once, args.iterations, 0, d.device),
                         "saved_mb": meter.peak / 2 ** 20, "cuda_mb": None if cuda_peak is None else cuda_peak / 2 ** 20})
    return rows


# the methods' network training between image updates, timed inside each iteration
TRAINING_PARTS = ("train_inner", "train_on_real", "train_queue")


def time_method(method: str, args) -> dict:
    d, state, g = _distiller(method, args)
    cfg, device = d.config, d.device
    images = state["images"].detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    iteration = itertools.count()
    counts = {"updates": 0, "training_s": 0.0}
    run_iteration = d.method.iteration

    def counted(*a, **k):  # pixel updates per iteration, as the method makes them
        out = run_iteration(*a, **k)
        counts["updates"] = len(out)
        return out

    d.method.iteration = counted
    for name in TRAINING_PARTS:
        if hasattr(d.method, name):
            setattr(d.method, name, _accumulating(getattr(d.method, name), counts, device))
    seconds = _timed(lambda: d._step(images, state["labels"], opt, next(iteration)), args.iterations,
                     args.warmup, device)
    timed_iterations = args.warmup + max(1, args.iterations)
    outer, inner = _schedule(d.method, cfg)
    return {"method": method, "s_per_iteration": seconds, "updates": counts["updates"],
            "training_share": counts["training_s"] / timed_iterations / seconds,
            "outer_loop": outer, "inner_loop": inner, "real_per_class": cfg.real_per_class}


def _accumulating(fn, counts: dict, device):
    def timed(*a, **k):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        out = fn(*a, **k)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        counts["training_s"] += time.perf_counter() - t
        return out
    return timed


def time_components(method: str, args) -> dict:
    """The pieces of one outer iteration, each timed on its own (median of ``--iterations`` after
    ``--warmup``): a matching update over all classes, one network step between updates (DC/DSA: one
    epoch on the synthetic set; IDC: one step on real images) and one CMI backward on the set that CMI
    sees. From them, the predicted seconds per outer iteration for any (outer, inner) schedule:
    outer * (match + cmi) + (outer - 1) * inner * step."""
    import dataclasses

    from ddcmi.rng import Draws
    d, state, g = _distiller(method, args)
    m, cfg = d.method, d.config
    if not hasattr(m, "train_on_real") and not hasattr(m, "train_inner"):
        raise SystemExit(f"--components times gradient matching's pieces (DC, DSA, IDC); {method} has none: "
                         f"run it without --components (its network training share is in that table)")
    images = state["images"].detach().clone().requires_grad_(True)
    labels = state["labels"]
    net_opt = torch.optim.SGD(m.net.parameters(), lr=cfg.lr_net)
    reps = dict(repeats=args.iterations, warmup=args.warmup, device=d.device)
    if hasattr(m, "class_loss_and_backward"):  # IDC: class by class, the network trained on real data
        match = _timed(lambda: [m.class_loss_and_backward(images, labels, c, g) for c in range(m.num_classes)], **reps)
        m.config = dataclasses.replace(cfg, inner_loop=1)
        step = _timed(lambda: m.train_on_real(net_opt, g), **reps)
        m.config = cfg
        cmi_x, cmi_y = m.synthetic(images.detach(), labels)
    else:
        match = _timed(lambda: m.loss_and_backward(images, labels, Draws(0, 1), 0), **reps)
        saved, m.inner = m.inner, 1
        step = _timed(lambda: m.train_inner(images, labels, net_opt, g), **reps)
        m.inner = saved
        cmi_x, cmi_y = images.detach(), labels
    outer, inner = _schedule(m, cfg)
    cmi_x = cmi_x.clone().requires_grad_(True)
    cmi = _timed(lambda: d.regularizer.backward(cmi_x, cmi_y, 0, weight=1.0), **reps) if d.regularizer else 0.0
    return {"method": method, "match_s": match, "step_s": step, "cmi_s": cmi, "outer": outer, "inner": inner,
            "predicted_s": outer * (match + cmi) + (outer - 1) * inner * step}


def _timed(fn, repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (CUDA synchronised)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    out = []
    for _ in range(max(1, repeats)):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _schedule(method, cfg) -> tuple[int, int]:
    """The (outer, inner) loops that ran: DC/DSA resolve theirs per IPC (their configs hold 0 for "the
    published schedule"), IDC takes the config's."""
    return (method.outer, method.inner) if hasattr(method, "outer") else (cfg.outer_loop, cfg.inner_loop)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--methods", default="dc,dc+cmi,dsa,dsa+cmi,idc,idc+cmi,idm,idm+cmi,mtt,mtt+cmi")
    ap.add_argument("--iterations", type=int, default=2, help="timed outer iterations")
    ap.add_argument("--warmup", type=int, default=1, help="untimed outer iterations first (0 for long CPU iterations)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--mtt-memory", action="store_true", help="MTT's unrolled vs recompute gradient: time and peak memory")
    ap.add_argument("--syn-steps", default="5,10,20", help="with --mtt-memory: the syn_steps to compare")
    ap.add_argument("--components", action="store_true",
                    help="time the pieces of an iteration (match, network step, CMI) and predict s per iteration")
    args = ap.parse_args()
    from ddcmi.utils import device_name, pick_device
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.mtt_memory:
        print(f"MTT, profile {args.profile}, {args.dataset}, IPC {args.ipc}, {device_name(pick_device(args.device))}, "
              f"torch {torch.__version__}; median of {args.iterations} iteration(s) per row\n")
        print("| syn_steps | gradient | s per iteration | peak activation memory (MB) | CUDA peak allocated (MB) |")
        print("|---|---|---|---|---|")
        for r in mtt_memory(args):
            cuda = "-" if r["cuda_mb"] is None else f"{r['cuda_mb']:.0f}"
            print(f"| {r['syn_steps']} | {r['gradient']} | {r['s']:.2f} | {r['saved_mb']:.1f} | {cuda} |")
        return
    if args.components:
        print(f"profile {args.profile}, {args.dataset}, IPC {args.ipc}, {device_name(pick_device(args.device))}, "
              f"torch {torch.__version__}; medians of {args.iterations} after {args.warmup} untimed\n")
        print("| method | match, all classes (s) | one network step (s) | one CMI backward (s) | (outer, inner) | "
              "predicted s per outer iteration |")
        print("|---|---|---|---|---|---|")
        for r in (time_components(m, args) for m in methods if m.endswith("+cmi")):
            print(f"| {r['method']} | {r['match_s']:.2f} | {r['step_s']:.3f} | {r['cmi_s']:.3f} | "
                  f"({r['outer']}, {r['inner']}) | {r['predicted_s']:.1f} |")
        return
    rows = [time_method(m, args) for m in methods]
    base = {r["method"]: r["s_per_iteration"] for r in rows}
    print(f"profile {args.profile}, {args.dataset}, IPC {args.ipc}, {device_name(pick_device(args.device))}, "
          f"torch {torch.__version__}; median of {args.iterations} outer iteration(s) after {args.warmup} untimed\n")
    print("| method | s per outer iteration | ms per pixel update | pixel updates | network training share | "
          "(outer, inner) loops | real/class | CMI overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        plain = base.get(r["method"].split("+")[0])
        ratio = f"{r['s_per_iteration'] / plain:.2f}x" if r["method"].endswith("+cmi") and plain else "-"
        print(f"| {r['method']} | {r['s_per_iteration']:.2f} | {1000 * r['s_per_iteration'] / r['updates']:.0f} | "
              f"{r['updates']} | {100 * r['training_share']:.0f} % | "
              f"{'-' if not (r['outer_loop'] or r['inner_loop']) else (r['outer_loop'], r['inner_loop'])} | "
              f"{r['real_per_class']} | {ratio} |")


if __name__ == "__main__":
    main()
