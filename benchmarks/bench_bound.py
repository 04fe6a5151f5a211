"""How close the kit's DM step is to what this machine's arithmetic allows (the fp32 bound).

    python benchmarks/bench_bound.py                  # paper settings, IPC 10, DM and DM+CMI
    python benchmarks/bench_bound.py --ipc 50 --dtype bf16
    python benchmarks/bench_bound.py --set compile=true   # the step timed with a speed switch on

Three numbers, measured in this one process on this machine:

1. **peak**: the dense matmul rate (``--size`` square fp32 matrices, or bf16 with ``--dtype bf16``) on the
   threads torch uses here, in GFLOP/s: the best this CPU or GPU does on the densest kernel it has;
2. **work**: the floating-point operations of one distillation step at paper settings, counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls, forward and backward, as the
   kit's ``Distiller`` runs them; elementwise work, augmentation and instance norm are not counted);
3. **step**: the median time of that step (``Distiller._step``) after a warm-up.

``bound = work / peak`` is the time the step would take if all of its counted work ran at the matmul's
rate; ``step / bound`` is how far the kit is from it (1.0 = at the bound; the issue's target for plain DM
is at most 1.2). Convolutions on small images rarely reach the matmul rate, so this bound is strict.
With ``--set`` (a speed switch: ``compile=true``, ``autocast=real``) the step is timed with it, the work
still counted on the plain step (the same arithmetic; a compiled graph hides its operations from the counter).
"""
from __future__ import annotations

import argparse
import statistics

import torch
from bench_dm import _timed  # the same clock as bench_dm.py (CUDA synchronised)


def matmul_peak(size: int, dtype: torch.dtype, device, repeats: int = 5) -> float:
    """GFLOP/s of a size x size matmul (2 n^3 operations), the median of ``repeats`` after a warm-up."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device, dtype)
    b = torch.randn(size, size, generator=g).to(device, dtype)
    a @ b
    t = statistics.median(_timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * size ** 3 / t / 1e9


def dm_step(dataset, ipc: int, cmi: bool, device, data_root=None, overrides: list[str] | None = None):
    """The kit's DM (or DM+CMI) step at paper settings, as bench_dm.py times it; returns a callable."""
    import ddcmi
    from ddcmi.distill import Distiller
    from ddcmi.models import create_model, init_weights_
    from ddcmi.proxy import PoolConfig, ProxyPool

    ds = ddcmi.load_dataset(dataset, root=data_root)
    cfg = ddcmi.make_config("paper", ds.name, "dm+cmi" if cmi else "dm", ipc, overrides=overrides)
    pool = None
    if cmi:  # freshly initialised proxies: the cost of a step does not depend on their weights
        g = torch.Generator().manual_seed(0)
        members = [init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size), g).to(device)
                   for _ in range(2)]
        pool = ProxyPool(PoolConfig(ds.name, arch="resnet18", count=2, epochs=0), members, ds.mean, ds.std)
    d = Distiller(cfg, ds, device=device, pool=pool, progress=False)
    state = d._fresh_state()
    images = state["images"].detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    counter = iter(range(10 ** 9))
    return lambda: d._step(images, state["labels"], opt, next(counter))


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--size", type=int, default=4096, help="matmul size for the peak")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="the peak's precision")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-cmi", action="store_true", help="plain DM only")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the timed step (e.g. compile=true); repeatable")
    args = ap.parse_args()
    import ddcmi
    device = ddcmi.utils.pick_device(args.device)
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    peak = matmul_peak(args.size, dtype, device)
    print(f"machine: {ddcmi.utils.device_name(device)}, torch {torch.__version__}, allocator "
          f"{ddcmi._malloc.status()}")
    print(f"peak: {args.size} x {args.size} {args.dtype} matmul at {peak:.0f} GFLOP/s")
    print(f"timed step: {' '.join(args.overrides) or 'as the paper profile sets it'}\n")
    print("| step (paper settings) | counted work (GFLOP) | bound at the peak (s) | measured step (s) | step / bound |")
    print("|---|---|---|---|---|")
    for cmi in ([False] if args.no_cmi else [False, True]):
        step = dm_step(args.dataset, args.ipc, cmi, device, args.data_root)
        step()  # warm-up
        flops = count_flops(step)
        if args.overrides:
            step = dm_step(args.dataset, args.ipc, cmi, device, args.data_root, args.overrides)
            step()  # warm-up (and compilation)
        t = statistics.median(_timed(step, device) for _ in range(args.repeats))
        bound = flops / (peak * 1e9)
        print(f"| {'DM+CMI' if cmi else 'DM'}, IPC {args.ipc} | {flops / 1e9:.0f} | {bound:.3f} | {t:.3f} | {t / bound:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
