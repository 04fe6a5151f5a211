"""DM and DM+CMI speed at paper settings, against a naive loop (the kit's own code, not the release: for the release itself see bench_release.py).

    python benchmarks/bench_dm.py                      # IPC 1, 10, 50; writes nothing, prints Markdown
    python benchmarks/bench_dm.py --ipc 10 --compile   # also the torch.compile'd matching network

Settings: ConvNet-3 (width 128, instance norm), 256 real images per class, DSA, lr_img 1.0,
ResNet-18 (instance norm) proxies for feature-space CMI. Proxy weights are freshly initialised, not
trained: the cost of a step does not depend on them.

Two loops are timed, with the same method and the same tensors:

- **ddcmi**: this kit's ``Distiller`` step: one matching network re-drawn in place from the run's
  generator, real images embedded under ``no_grad``, per-class backward, the proxy pool held in memory
  with frozen weights (no weight gradients), and no CMI work where it is identically zero (IPC 1).
- **naive-loop**: the same computation with the public release's avoidable costs put back
  (method.md section 8): a new network built each iteration with trainable weights, real images
  embedded with autograd recording (then detached), one backward over the summed loss, the proxy
  rebuilt and re-read from a checkpoint file on disk at every draw and run in train mode with
  trainable weights, CMI computed even at IPC 1.

Each configuration runs in a fresh subprocess, so the reported peak memory (max RSS on CPU, max
allocated on CUDA) belongs to it alone. Times are medians over ``--repeats`` iterations after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def single(args) -> dict:
    import ddcmi
    from ddcmi.augment import DSA
    from ddcmi.cmi import empirical_cmi
    from ddcmi.distill import Distiller
    from ddcmi.models import create_model, init_weights_
    from ddcmi.proxy import PoolConfig, ProxyPool

    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    method = "dm+cmi" if args.cmi else "dm"
    cfg = ddcmi.make_config("paper", ds.name, method, args.ipc,
                            overrides=[f"compile={args.compile}", f"batch_classes={args.batch_classes}",
                                       *(args.set or [])])
    g = torch.Generator().manual_seed(0)
    pool = None
    if args.cmi:
        members = [init_weights_(create_model("resnet18", ds.channels, ds.num_classes, ds.image_size), g).to(device)
                   for _ in range(2)]
        pool = ProxyPool(PoolConfig(ds.name, arch="resnet18", count=2, epochs=0), members, ds.mean, ds.std)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    if args.loop == "ddcmi":
        d = Distiller(cfg, ds, device=device, pool=pool, progress=False)
        state = d._fresh_state()
        images = state["images"].detach().clone().requires_grad_(True)
        labels = state["labels"]
        opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        counter = iter(range(10**9))

        def step():
            d._step(images, labels, opt, next(counter))
    else:
        sampler = ds.real_sampler(device)
        images, labels = sampler.initial_images(args.ipc, g)
        images.requires_grad_(True)
        opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        dsa = DSA(cfg.dsa)
        ckpt = os.path.join(tempfile.mkdtemp(), "proxy.pt")
        if args.cmi:
            torch.save(pool.members[0].state_dict(), ckpt)

        def step():
            net = init_weights_(create_model(cfg.net, ds.channels, ds.num_classes, ds.image_size), g).to(device)
            net.train()
            loss = torch.zeros((), device=device)
            for c in range(ds.num_classes):
                real = sampler.sample(c, cfg.real_per_class, g)
                syn = images[labels == c]
                p = dsa.sample(real.shape, g, siamese=True)
                real_emb = net.embed(dsa.apply(real, p)).detach()  # recorded by autograd, then dropped
                loss = loss + ((real_emb.mean(0) - net.embed(dsa.apply(syn, p)).mean(0)) ** 2).sum()
            if args.cmi:
                proxy = create_model("resnet18", ds.channels, ds.num_classes, ds.image_size)
                proxy.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
                proxy.to(device).train()
                probs = F.softmax(proxy.embed(images), dim=1)
                loss = loss + cfg.cmi.weight * empirical_cmi(probs, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()

    for _ in range(args.warmup):
        step()
    times = [_timed(step, device) for _ in range(args.repeats)]
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        import resource
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"loop": args.loop, "cmi": args.cmi, "ipc": args.ipc, "compile": args.compile,
           "s_per_iter": statistics.median(times), "peak_mb": peak_mb,
           "device": ddcmi.utils.device_name(device)}
    if args.throughput:
        net = create_model(cfg.net, ds.channels, ds.num_classes, ds.image_size).to(device).requires_grad_(False)
        x = ds.real_sampler(device).sample(0, 256, g)
        with torch.no_grad():
            t = statistics.median([_timed(lambda: net.embed(x), device) for _ in range(3)])
        out["real_images_per_s"] = 256 / t
    return out


def _timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipc", type=int, action="append", default=None, help="repeatable; default 1, 10, 50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time ddcmi with torch.compile (IPC 10)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a config override of the kit's runs, repeatable (e.g. autocast=real+cmi)")
    ap.add_argument("--batch-classes", action="store_true",
                    help="the kit's loop with all classes in one forward (DistillConfig.batch_classes)")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="ddcmi", help=argparse.SUPPRESS)
    ap.add_argument("--cmi", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--throughput", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        args.ipc = args.ipc[0]
        print("RESULT " + json.dumps(single(args)))
        return

    def run(loop, cmi, ipc, compile_=False, throughput=False, batched=False):
        cmd = [sys.executable, __file__, "--single", "--loop", loop, "--ipc", str(ipc), "--dataset", args.dataset,
               "--device", args.device, "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
        cmd += (["--cmi"] if cmi else []) + (["--compile"] if compile_ else []) + (["--throughput"] if throughput else [])
        cmd += ["--batch-classes"] if batched else []
        cmd += [a for kv in (args.set or []) for a in ("--set", kv)]
        cmd += ["--data-root", args.data_root] if args.data_root else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
        return json.loads(line[0][7:])

    ipcs = args.ipc or [1, 10, 50]
    rows = []
    for ipc in ipcs:
        r = {key: run(loop, cmi, ipc, throughput=(loop == "ddcmi" and not cmi and ipc == ipcs[0]))
             for key, (loop, cmi) in {"dm": ("ddcmi", False), "dmcmi": ("ddcmi", True),
                                      "rel_dm": ("naive", False), "rel_dmcmi": ("naive", True)}.items()}
        if args.compile and ipc == 10:
            r["dmcmi_compiled"] = run("ddcmi", True, ipc, compile_=True)
        if args.batch_classes:
            r["dm_batched"], r["dmcmi_batched"] = run("ddcmi", False, ipc, batched=True), run("ddcmi", True, ipc, batched=True)
        rows.append((ipc, r))
        print(f"IPC {ipc} done", file=sys.stderr)
    dev = rows[0][1]["dm"]["device"]
    print(f"# DM / DM+CMI speed at paper settings on {dev}, torch {torch.__version__}, {args.dataset}\n")
    print("| IPC | DM ms/it | DM+CMI ms/it | CMI overhead | naive-loop DM ms/it | naive-loop DM+CMI ms/it "
          "| DM+CMI speed-up vs naive-loop | peak MB DM / DM+CMI / naive DM+CMI |")
    print("|---|---|---|---|---|---|---|---|")
    for ipc, r in rows:
        ms = {k: 1000 * v["s_per_iter"] for k, v in r.items()}
        print(f"| {ipc} | {ms['dm']:.0f} | {ms['dmcmi']:.0f} | {ms['dmcmi'] / ms['dm']:.2f}x | {ms['rel_dm']:.0f} | "
              f"{ms['rel_dmcmi']:.0f} | {ms['rel_dmcmi'] / ms['dmcmi']:.2f}x | {r['dm']['peak_mb']:.0f} / "
              f"{r['dmcmi']['peak_mb']:.0f} / {r['rel_dmcmi']['peak_mb']:.0f} |")
    tp = rows[0][1]["dm"].get("real_images_per_s")
    if tp:
        print(f"\nReal-image throughput of the matching network (ConvNet-3 embed, no_grad, batch 256): {tp:.0f} images/s")
    for ipc, r in rows:
        if "dmcmi_compiled" in r:
            c = r["dmcmi_compiled"]["s_per_iter"] * 1000
            print(f"\nIPC {ipc} DM+CMI with torch.compile: {c:.0f} ms/it ({1000 * r['dmcmi']['s_per_iter'] / c:.2f}x "
                  f"vs eager, {1000 * r['rel_dmcmi']['s_per_iter'] / c:.2f}x vs naive-loop); compile time excluded")
        if "dm_batched" in r:
            b, bc = (1000 * r[k]["s_per_iter"] for k in ("dm_batched", "dmcmi_batched"))
            print(f"\nIPC {ipc} with all classes in one forward (batch_classes): DM {b:.0f} ms/it "
                  f"({1000 * r['dm']['s_per_iter'] / b:.2f}x the per-class loop), DM+CMI {bc:.0f} ms/it "
                  f"({1000 * r['dmcmi']['s_per_iter'] / bc:.2f}x); peak MB {r['dm_batched']['peak_mb']:.0f} / "
                  f"{r['dmcmi_batched']['peak_mb']:.0f}")
        ms_dm, ms_cmi = 1000 * r["dm"]["s_per_iter"], 1000 * (r["dmcmi"]["s_per_iter"] - r["dm"]["s_per_iter"])
        if ipc > 1:
            print(f"\nIPC {ipc}, CMI interval k (regulariser every k-th step): " + ", ".join(
                f"k={k}: {ms_dm + ms_cmi / k:.0f} ms/it ({(ms_dm + ms_cmi / k) / ms_dm:.2f}x DM)" for k in (1, 2, 5, 10)))


if __name__ == "__main__":
    main()
