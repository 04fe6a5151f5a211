"""Every GPU figure of the performance issue in one short run (the body of benchmarks/gpu_check.sh).

    python benchmarks/gpu_check.py                 # on a GPU machine: paper settings, a few minutes
                                                   # (not yet timed on a GPU with every row)
    python benchmarks/gpu_check.py --device cpu --quick   # a smoke run of the script itself, on a CPU

Prints, each measured here and extrapolated only where said:

1. seconds per DM and DM+CMI iteration at paper settings, IPC 10 and 50 (ConvNet-3, 256 real images per
   class, DSA, ResNet-18 proxies with fresh weights), and the minutes for 20,000 iterations;
   each one class at a time, all classes in one forward (`batch_classes`) and that with bf16 autocast
   (`autocast=real+cmi` for DM+CMI, `real` for DM);
2. one `paper` pool member (ResNet-18, batch 256, the full training split): seconds per epoch, and the
   hours for the whole pool (200 members x 40 epochs, extrapolated from one epoch); the same compiled
   (`pool.compile=true`), and compiled under bf16 autocast (`pool.autocast=train` too); then 4 members trained
   together (`pool.stacked=4`), in fp32 and under bf16 autocast;
3. evaluation of an IPC 10 set (ConvNet-3, DSA, batch 256): seconds for 100 epochs of one network, and
   the minutes for 5 networks x 1000 epochs (extrapolated); the same compiled (`eval.compile=true`); then the
   5 trained together (`eval.stacked`),
   in fp32 and under bf16 autocast (`eval.autocast=train+test`);

against the issue's targets (3 min, 1 h, 1 min). Nothing is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    args = ap.parse_args()

    import ddcmi
    from ddcmi.distill import Distiller
    from ddcmi.evaluate import EvalConfig, train_on_synset
    from ddcmi.models import create_model, init_weights_
    from ddcmi.proxy import PoolConfig, ProxyPool
    from ddcmi.train import Recipe, train_epochs

    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    g = torch.Generator().manual_seed(0)
    sampler = ds.real_sampler(device)
    q = args.quick
    print(f"# GPU check on {ddcmi.utils.device_name(device)}, torch {torch.__version__}, {args.dataset}"
          f"{' (QUICK: tiny sizes, not the paper figures)' if q else ''}\n")

    # 1. DM / DM+CMI iterations
    members = [init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size,
                                          **({"width": 8} if q else {})), g).to(device) for _ in range(2)]
    pool = ProxyPool(PoolConfig(ds.name, arch="resnet18", count=2, epochs=0), members, ds.mean, ds.std)
    print("| method | IPC | classes, precision | s/iteration | 20,000 iterations | target |\n|---|---|---|---|---|---|")
    # one class at a time (the plain path), all classes in one forward (batch_classes), and that with bf16
    # autocast for the no-grad real embeddings (and, with CMI, the proxy passes)
    bf16 = {"dm": "real", "dm+cmi": "real+cmi"}
    for ipc, method, (batched, cast) in [(i, m, v) for i in ([2] if q else [10, 50]) for m in ("dm", "dm+cmi")
                                         for v in [(False, "none"), (True, "none"), (True, bf16[m])]]:
            over = {"real_per_class": 16, "net_kwargs": {"width": 16}} if q else {}
            over.update(batch_classes=batched, autocast=cast)
            cfg = ddcmi.make_config("paper", ds.name, method, ipc, overrides=over)
            d = Distiller(cfg, ds, device=device, pool=pool if cfg.uses_cmi else None, progress=False, sampler=sampler)
            state = d._fresh_state()
            images = state["images"].detach().clone().requires_grad_(True)
            opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
            it = iter(range(10 ** 9))
            s = timed(lambda: d._step(images, state["labels"], opt, next(it)), device, repeats=2 if q else 20,
                      warmup=1 if q else 5)
            target = "<= 3 min" if (method, ipc) == ("dm+cmi", 10) else ""
            how = ("one forward" if batched else "one by one") + ("" if cast == "none" else f", bf16 {cast}")
            print(f"| {method} | {ipc} | {how} | {s:.4f} | {20000 * s / 60:.1f} min | {target} |", flush=True)

    # 2. one pool member epoch
    n = 2000 if q else len(ds.train)
    x = ds.normalize(ds.train.images[:n], device)
    y = ds.train.labels[:n].to(device)
    model = init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size,
                                       **({"width": 8} if q else {})), g).to(device)
    recipe = Recipe(epochs=1, lr=0.01, momentum=0.9, weight_decay=1e-3, batch_size=256)
    epoch_s = timed(lambda: train_epochs(model, x, y, recipe, g), device, repeats=1, warmup=1)
    print(f"\npaper pool member (ResNet-18, {n} images, batch 256): {epoch_s:.2f} s per epoch; 200 members x 40 "
          f"epochs = {200 * 40 * epoch_s / 3600:.2f} h (extrapolated; target <= 1 h)", flush=True)
    rc = dataclasses.replace(recipe, compile=True)  # pool.compile=true; compiled in the warm-up epoch
    comp_s = timed(lambda: train_epochs(model, x, y, rc, g), device, repeats=1, warmup=1)
    print(f"the same compiled (pool.compile=true): {comp_s:.2f} s per epoch; the pool = {200 * 40 * comp_s / 3600:.2f} h "
          f"({epoch_s / comp_s:.2f}x eager)", flush=True)
    rb = dataclasses.replace(rc, bf16=True)  # pool.compile=true pool.autocast=train
    bf_s = timed(lambda: train_epochs(model, x, y, rb, g), device, repeats=1, warmup=1)
    print(f"compiled under bf16 autocast (pool.compile=true pool.autocast=train): {bf_s:.2f} s per epoch; the pool = "
          f"{200 * 40 * bf_s / 3600:.2f} h ({epoch_s / bf_s:.2f}x eager)", flush=True)
    from ddcmi.train import train_epochs_stacked
    for k, bf16 in ((4, False), (4, True)):  # several members trained together (instance norm: no buffers)
        stack = [init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size,
                                            **({"width": 8} if q else {})), g).to(device) for _ in range(k)]
        gens = [torch.Generator().manual_seed(i) for i in range(k)]
        r = dataclasses.replace(recipe, bf16=bf16)
        train_epochs_stacked(stack, x[:2560], y[:2560], r, gens)  # warm-up on 10 batches, not a whole epoch
        s = timed(lambda: train_epochs_stacked(stack, x, y, r, gens), device, repeats=1, warmup=0)
        print(f"{k} members trained together{' under bf16 autocast' if bf16 else ''} (pool.stacked={k}"
              f"{' pool.autocast=train' if bf16 else ''}): {s:.2f} s "
              f"per epoch of all {k}; the pool = {200 / k * 40 * s / 3600:.2f} h (extrapolated; "
              f"{k * epoch_s / s:.2f}x one by one)", flush=True)

    # 3. evaluation
    sx, sy = sampler.initial_images(10, g)
    ec = EvalConfig(epochs=10 if q else 100, num_models=1)
    eval_s = timed(lambda: train_on_synset(sx, sy, ds, ec, g, device), device, repeats=1, warmup=1)
    print(f"evaluation of an IPC 10 set: {eval_s:.2f} s for {ec.epochs} epochs of one ConvNet-3; 5 networks x 1000 "
          f"epochs = {5 * 1000 / ec.epochs * eval_s / 60:.2f} min (extrapolated; target <= 1 min)")
    cc = dataclasses.replace(ec, compile=True)
    comp_s = timed(lambda: train_on_synset(sx, sy, ds, cc, g, device), device, repeats=1, warmup=1)
    print(f"the same compiled (eval.compile=true): {comp_s:.2f} s; 5 x 1000 epochs = "
          f"{5 * 1000 / ec.epochs * comp_s / 60:.2f} min ({eval_s / comp_s:.2f}x eager)", flush=True)
    from ddcmi.evaluate import train_stacked_on_synset
    stacked_s = timed(lambda: train_stacked_on_synset(sx, sy, ds, ec, g, device, 5), device, repeats=1, warmup=1)
    print(f"the same, 5 networks trained together (eval.stacked): {stacked_s:.2f} s for {ec.epochs} epochs of all 5; "
          f"5 x 1000 epochs = {1000 / ec.epochs * stacked_s / 60:.2f} min ({5 * eval_s / stacked_s:.2f}x one by one)")
    bc = dataclasses.replace(ec, autocast="train+test")
    bf_s = timed(lambda: train_stacked_on_synset(sx, sy, ds, bc, g, device, 5), device, repeats=1, warmup=1)
    print(f"the same under bf16 autocast (eval.stacked, eval.autocast=train+test): {bf_s:.2f} s; 5 x 1000 epochs = "
          f"{1000 / ec.epochs * bf_s / 60:.2f} min ({5 * eval_s / bf_s:.2f}x one by one in fp32)")


if __name__ == "__main__":
    main()
