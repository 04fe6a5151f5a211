"""Measure the costs that choose the ``cpu`` profile's reductions (docs/profiles.md).

    python benchmarks/profile_costs.py --dataset cifar10_jpeg

Prints, on this machine: training throughput of candidate proxy architectures, the time of one DM
iteration at several real-batch sizes (IPC 10), the CMI overhead per proxy architecture, and the time
of one evaluation epoch and one test pass. Every number is measured here, with the medians of a few
repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import ddcmi
import ddcmi.methods
import ddcmi.utils
from ddcmi.cmi import CMIConfig, CMIRegularizer
from ddcmi.evaluate import EvalConfig, TestSet, train_on_synset
from ddcmi.models import create_model, init_weights_
from ddcmi.proxy import PoolConfig, ProxyPool, accuracy


def timed(fn, repeats=3, warmup=1):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    dev = torch.device("cpu")
    sampler = ds.real_sampler(dev)
    g = torch.Generator().manual_seed(0)
    print(f"# profile costs on {ddcmi.utils.device_name(dev)}, torch {torch.__version__}, dataset {ds.name}")

    print("\n## proxy candidates: training step (batch 256) and forward (batch 500)")
    print("| arch | train images/s | forward images/s | feature dim |")
    print("|---|---|---|---|")
    x = sampler.sample(0, 256, g)
    y = torch.zeros(256, dtype=torch.long)
    for arch, kw in [("resnet18", {}), ("resnet18", {"width": 16}), ("convnet3", {}), ("convnet3", {"width": 64})]:
        m = create_model(arch, ds.channels, ds.num_classes, ds.image_size, **kw)
        opt = torch.optim.SGD(m.parameters(), lr=0.01)

        def step():
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_train = timed(step, repeats=2)
        with torch.no_grad():
            xf = torch.cat([x, x[:244]])
            t_fwd = timed(lambda: m(xf), repeats=2)
        print(f"| {arch} {kw or ''} | {256 / t_train:.0f} | {500 / t_fwd:.0f} | {m.feature_dim} |")

    print("\n## one DM iteration at IPC 10 (ConvNet-3 width 128, DSA), by real images per class")
    print("| real per class | s / iteration |")
    print("|---|---|")
    for n_real in (256, 128, 64, 32):
        cfg = ddcmi.make_config("cpu", ds.name, "dm", 10, overrides={"real_per_class": n_real})
        method = ddcmi.methods.METHODS.get("dm")(cfg, ds, sampler, dev)
        imgs, labels = sampler.initial_images(10, g)
        imgs.requires_grad_(True)
        print(f"| {n_real} | {timed(lambda: method.loss_and_backward(imgs, labels, g), repeats=2):.2f} |")

    print("\n## CMI term at IPC 10 (100 images, forward + backward to the pixels), by proxy architecture")
    print("| proxy | s / CMI step |")
    print("|---|---|")
    for arch, kw in [("resnet18", {}), ("resnet18", {"width": 16}), ("convnet3", {"width": 64})]:
        pc = PoolConfig(ds.name, arch=arch, count=1, epochs=0, arch_kwargs=kw)
        member = init_weights_(create_model(arch, ds.channels, ds.num_classes, ds.image_size, **kw), g)
        pool = ProxyPool(pc, [member], ds.mean, ds.std)
        reg = CMIRegularizer(pool, CMIConfig(weight=1.0))
        imgs, labels = sampler.initial_images(10, g)
        imgs.requires_grad_(True)
        print(f"| {arch} {kw or ''} | {timed(lambda: reg.backward(imgs, labels, 0), repeats=2):.2f} |")

    print("\n## evaluation: one epoch of training on an IPC-10 set (100 images), and one full test pass")
    imgs, labels = sampler.initial_images(10, g)
    ec = EvalConfig(epochs=5, num_models=1)
    t_ep = timed(lambda: train_on_synset(imgs, labels, ds, ec, g, dev), repeats=1) / ec.epochs
    test = TestSet(ds, dev)
    model = create_model("convnet3", ds.channels, ds.num_classes, ds.image_size)
    t_test = timed(lambda: accuracy(model, test.x, test.y), repeats=1, warmup=0)
    print(f"ConvNet-3 training epoch on 100 images (DSA): {t_ep:.3f} s; full test set ({len(test.y)} images): {t_test:.1f} s")


if __name__ == "__main__":
    main()
