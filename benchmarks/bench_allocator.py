"""What the CPU allocator settings of ``ddcmi/_malloc.py`` buy, per training loop, on this machine.

    python benchmarks/bench_allocator.py                       # every workload, 2 pairs each
    python benchmarks/bench_allocator.py --workload dm --pairs 3

Each workload runs in a fresh subprocess, once with the kit's default (glibc keeps freed blocks:
``mallopt`` at ``import ddcmi``) and once with ``DDCMI_MALLOC=default`` (glibc's own behaviour),
alternating, so both see the same machine. Printed: median seconds per repetition of each, and the
ratio default / tuned (> 1 means the kit's setting is faster). Workloads (CIFAR-10 JPEG copy):

- ``dm`` / ``dmcmi``: one DM / DM+CMI iteration at paper settings, IPC 10 (ConvNet-3 width 128, 256
  real images per class, DSA, ResNet-18 proxies with fresh weights);
- ``eval``: 20 epochs of the evaluation protocol (ConvNet-3, DSA) on an IPC 50 set (500 images);
- ``pool``: 4 SGD steps of a `cpu`-pool member (quarter-width ResNet-18, batch 256);
- ``dsa`` / ``idc``: one outer iteration of DSA / IDC at the `cpu` profile, IPC 10.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = ("dm", "dmcmi", "eval", "pool", "dsa", "idc")


def single(name: str, args) -> dict:
    import torch

    import ddcmi
    from ddcmi.distill import Distiller
    from ddcmi.evaluate import EvalConfig, train_on_synset
    from ddcmi.models import create_model, init_weights_
    from ddcmi.proxy import PoolConfig, ProxyPool

    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    sampler = ds.real_sampler(device)

    def fresh_pool(arch, kwargs):
        members = [init_weights_(create_model(arch, ds.channels, ds.num_classes, ds.image_size, **kwargs), g)
                   for _ in range(2)]
        return ProxyPool(PoolConfig(ds.name, arch=arch, count=2, epochs=0, arch_kwargs=kwargs), members, ds.mean, ds.std)

    if name in ("dm", "dmcmi", "dsa", "idc"):
        profile, method = ("paper", name.replace("cmi", "+cmi")) if name.startswith("dm") else ("cpu", name)
        cfg = ddcmi.make_config(profile, ds.name, method, 10)
        pool = fresh_pool(cfg.pool.arch, cfg.pool.arch_kwargs) if cfg.uses_cmi else None
        d = Distiller(cfg, ds, device=device, pool=pool, progress=False, sampler=sampler)
        state = d._fresh_state()
        images = state["images"].detach().clone().requires_grad_(True)
        opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        counter = iter(range(10**9))

        def step():
            d._step(images, state["labels"], opt, next(counter))
    elif name == "eval":
        x, y = sampler.initial_images(50, g)
        ec = EvalConfig(epochs=20, num_models=1)

        def step():
            train_on_synset(x, y, ds, ec, g, device)
    elif name == "pool":
        model = init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size, width=16), g)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
        x, y = sampler.initial_images(26, g)  # 260 images: one batch of 256

        def step():
            for _ in range(4):
                loss = torch.nn.functional.cross_entropy(model(x[:256]), y[:256])
                opt.zero_grad()
                loss.backward()
                opt.step()
    else:
        raise SystemExit(f"unknown workload {name}")
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"workload": name, "s": statistics.median(times), "allocator": ddcmi._malloc.status()["reason"],
            "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--workload", action="append", choices=WORKLOADS, default=None)
    ap.add_argument("--pairs", type=int, default=2, help="alternating (tuned, default) process pairs per workload")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print("RESULT " + json.dumps(single(args.single, args)))
        return

    def run(name, tuned):
        env = dict(os.environ)
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        if tuned:
            env.pop("DDCMI_MALLOC", None)
        else:
            env["DDCMI_MALLOC"] = "default"
        cmd = [sys.executable, __file__, "--single", name, "--dataset", args.dataset, "--repeats", str(args.repeats),
               "--warmup", str(args.warmup)] + (["--data-root", args.data_root] if args.data_root else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
        return json.loads(line[0][7:])

    import torch
    print(f"# CPU allocator settings, {os.cpu_count()} cores, torch {torch.__version__}, {args.dataset}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| workload | glibc default s/rep | kit (mallopt) s/rep | speed-up |")
    print("|---|---|---|---|")
    for name in args.workload or WORKLOADS:
        tuned, default = [], []
        for _ in range(args.pairs):
            tuned.append(run(name, True)["s"])
            default.append(run(name, False)["s"])
        t, d = statistics.median(tuned), statistics.median(default)
        print(f"| {name} | {d:.3f} ({', '.join(f'{v:.2f}' for v in default)}) | {t:.3f} "
              f"({', '.join(f'{v:.2f}' for v in tuned)}) | {d / t:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
