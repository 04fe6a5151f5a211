"""Gradient-scale calibration of the CMI weight for a profile whose proxies differ from the paper's.

    python benchmarks/calibrate_lambda.py --dataset cifar10_jpeg --profile cpu --ipc 10

At the real-image initialisation it measures, over a few iterations and at every pixel update the
method makes (DC/DSA: each round; IDC: each class), the norm of the base method's gradient on the
synthetic pixels and the norm of the (unweighted) CMI gradient on the images CMI is applied to, and
prints the lambda at which the two are the same size. Works for every registered method
(``--method dsa``, ``--method idc``, ``--method mtt`` (its one update per iteration), ``--method idm``: there each class update carries its share
n_c/N of the set's CMI, and that scaled gradient is what is compared). That is the rule the ``cpu`` profile's lambda follows
(docs/profiles.md); it is a scale match, not a tuned optimum.
"""
from __future__ import annotations

import argparse
import statistics

import torch

import ddcmi
from ddcmi.cmi import CMIRegularizer
from ddcmi.methods import METHODS
from ddcmi.proxy import ProxyPool
from ddcmi.rng import Draws


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--method", default="dm")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    cfg = ddcmi.make_config(args.profile, ds.name, f"{args.method}+cmi", args.ipc)
    dev = torch.device("cpu")
    sampler = ds.real_sampler(dev, METHODS.get(args.method).input_transform(cfg, ds))  # MTT+ZCA: whitened
    pool = ProxyPool.build(cfg.pool, ds, dev)
    method = METHODS.get(args.method)(cfg, ds, sampler, dev)
    reg = CMIRegularizer(pool, cfg.cmi)
    g = torch.Generator().manual_seed(0)
    images, labels = method.initial(args.ipc, Draws(0, 0))
    images.requires_grad_(True)
    base_norms, cmi_norms, cmis = [], [], []

    def measure(terms, cmi_images=None, cmi_labels=None, new_proxy=False, cmi_scale=1.0):
        """The distiller's update, measuring instead of stepping: the pixels stay at the initialisation."""
        if terms is None:
            return None
        base_norms.append(float(images.grad.norm()))
        images.grad = None
        x, y = (images, labels) if cmi_images is None else (cmi_images, cmi_labels)
        cmis.append(reg.backward(x, y, pool.draw(g), weight=1.0))
        cmi_norms.append(cmi_scale * float(images.grad.norm()) if images.grad is not None else 0.0)
        images.grad = None
        return terms

    for step in range(args.steps):
        images.grad = None
        method.iteration(images, labels, Draws(0, step + 1), measure)
    lam = statistics.mean(base_norms) / statistics.mean(cmi_norms)
    print(f"pool: {cfg.pool.describe()}")
    print(f"{args.method} gradient norm: {statistics.mean(base_norms):.4g} (mean of {len(base_norms)} updates); "
          f"CMI gradient norm: {statistics.mean(cmi_norms):.4g}; CMI at init: {statistics.mean(cmis):.4g} nats "
          f"(feature space)")
    print(f"lambda at which the two gradients have the same norm: {lam:.4g}")
    print(f"profile's current lambda: {cfg.cmi.weight:g}")


if __name__ == "__main__":
    main()
