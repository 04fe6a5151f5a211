"""Gradient-matching methods (DC, DSA, IDC) with and without CMI: time per outer iteration and the CMI overhead.

    python benchmarks/bench_methods.py                                  # cpu profile, mnist, IPC 10
    python benchmarks/bench_methods.py --profile paper --dataset cifar10 --iterations 2   # on a GPU

For each method the distiller runs ``--iterations`` outer iterations of the profile's config (after one
warm-up iteration) and the script prints a Markdown table: seconds per outer iteration (median), image
updates per outer iteration, and the +CMI time as a ratio of the base method's (``--warmup 0`` where one
iteration takes minutes: a CPU run has no compilation to warm up). Proxies are freshly
initialised networks of the profile's pool architecture: the cost of a step does not depend on their
weights, so no pool needs training. Absolute times are noisy on a shared machine; compare the ratios.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def time_method(method: str, args) -> dict:
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
    state = d._fresh_state()
    images = state["images"].detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    times = []
    for it in range(args.iterations + args.warmup):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        d._step(images, state["labels"], g, opt, it)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if it >= args.warmup:
            times.append(time.perf_counter() - t)
    updates = _updates_per_iteration(d.method, cfg)
    return {"method": method, "s_per_iteration": statistics.median(times), "updates": updates,
            "outer_loop": cfg.outer_loop, "inner_loop": cfg.inner_loop, "real_per_class": cfg.real_per_class}


def _updates_per_iteration(method, cfg) -> int:
    """Pixel updates in one outer iteration: DC/DSA update once per round, IDC once per class per round."""
    rounds = getattr(method, "outer", None) or cfg.outer_loop
    return rounds * (method.num_classes if cfg.base_method == "idc" else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--methods", default="dc,dc+cmi,dsa,dsa+cmi,idc,idc+cmi")
    ap.add_argument("--iterations", type=int, default=2, help="timed outer iterations")
    ap.add_argument("--warmup", type=int, default=1, help="untimed outer iterations first (0 for long CPU iterations)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    rows = [time_method(m.strip(), args) for m in args.methods.split(",") if m.strip()]
    base = {r["method"]: r["s_per_iteration"] for r in rows}
    from ddcmi.utils import device_name, pick_device
    print(f"profile {args.profile}, {args.dataset}, IPC {args.ipc}, {device_name(pick_device(args.device))}, "
          f"torch {torch.__version__}; median of {args.iterations} outer iteration(s) after {args.warmup} untimed\n")
    print("| method | s per outer iteration | ms per pixel update | pixel updates | (outer, inner) loops | real/class | CMI overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        plain = base.get(r["method"].split("+")[0])
        ratio = f"{r['s_per_iteration'] / plain:.2f}x" if r["method"].endswith("+cmi") and plain else "-"
        print(f"| {r['method']} | {r['s_per_iteration']:.2f} | {1000 * r['s_per_iteration'] / r['updates']:.0f} | "
              f"{r['updates']} | ({r['outer_loop']}, {r['inner_loop']}) | {r['real_per_class']} | {ratio} |")


if __name__ == "__main__":
    main()
