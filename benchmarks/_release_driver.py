"""Run a public release's own ``main_DM.py``, unchanged, and time its iterations (used by bench_release.py).

Nothing of the release is copied here: its script runs as it ships, in this process, with only what it
cannot have offline supplied from outside:

- ``utils.get_dataset`` returns the kit's local copy of the dataset (the release would download it);
- ``utils.get_premodel`` (CMIDD only) returns a checkpoint folder with one ResNet-18 built by the
  release's own ``get_network`` (fresh weights: the cost of a step does not depend on them); the
  release still re-reads it from disk at every iteration, as it does with its trained proxies;
- module names the release imports but does not ship or does not need for DM (``pretrain.networks``
  is its own ``networks.py``; ``tsne`` needs scikit-learn and is never called in the loop; scipy's
  ``rotate`` is only used by DC's evaluation augmentation) are filled in where missing.

The time of an iteration is the interval between two consecutive steps of the release's own image
optimiser (the SGD over the synthetic images), so it covers everything the release does per iteration.
Prints ``RESULT {json}`` and exits after ``--warmup + --iterations`` intervals.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import sys
import tempfile
import time
import types


def _shim_modules(release_dir: str) -> None:
    try:
        import scipy.ndimage.interpolation  # noqa: F401
    except ImportError:
        def rotate(*a, **k):
            raise RuntimeError("scipy is not installed; rotate is not used by the DM loop")
        for name in ("scipy", "scipy.ndimage", "scipy.ndimage.interpolation"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["scipy.ndimage.interpolation"].rotate = rotate
    tsne = types.ModuleType("tsne")
    tsne.vis_tsne = tsne.vis_tsne_syn = lambda *a, **k: None
    sys.modules["tsne"] = tsne
    if not os.path.isdir(os.path.join(release_dir, "pretrain")):
        import networks  # the release's own
        pkg = types.ModuleType("pretrain")
        pkg.networks = networks
        sys.modules["pretrain"], sys.modules["pretrain.networks"] = pkg, networks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--release-dir", required=True, help="the folder holding the release's main_DM.py and utils.py")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()

    import torch
    import ddcmi  # only to read the local data copy (run with DDCMI_MALLOC=default: the release's allocator)

    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    x_train, y_train = ds.normalize(ds.train.images), ds.train.labels.tolist()
    x_test, y_test = ds.normalize(ds.test.images), ds.test.labels.tolist()

    class Split(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    release = os.path.abspath(args.release_dir)
    sys.path.insert(0, release)
    _shim_modules(args.release_dir)
    import utils  # the release's own

    tmp = tempfile.mkdtemp(prefix="release-bench-")

    def get_dataset(dataset, data_path):
        train, test = Split(x_train, y_train), Split(x_test, y_test)
        return (ds.channels, ds.image_size, ds.num_classes, list(ds.classes), list(ds.mean), list(ds.std), train, test,
                torch.utils.data.DataLoader(test, batch_size=256, shuffle=False))

    utils.get_dataset = get_dataset
    if hasattr(utils, "get_premodel"):
        proxies = os.path.join(tmp, "proxies")
        os.makedirs(proxies)
        torch.save(utils.get_network("ResNet18", ds.channels, ds.num_classes, ds.image_size).state_dict(),
                   os.path.join(proxies, "resnet18_0.pt"))
        utils.get_premodel = lambda model_path=None: os.path.join(proxies, "resnet18_0.pt")

    n_syn = ds.num_classes * args.ipc
    stamps: list[float] = []
    original_step = torch.optim.SGD.step
    wanted = args.warmup + args.iterations + 1

    def timed_step(self, *a, **k):
        out = original_step(self, *a, **k)
        p = self.param_groups[0]["params"][0]
        if p.dim() == 4 and p.shape[0] == n_syn:  # the synthetic images' optimiser
            stamps.append(time.perf_counter())
            if len(stamps) >= wanted:
                intervals = [b - a for a, b in zip(stamps, stamps[1:])][args.warmup:]
                print("RESULT " + json.dumps({"loop": "release", "script": release,
                                              "ipc": args.ipc, "s_per_iter": statistics.median(intervals),
                                              "intervals": intervals, "threads": torch.get_num_threads()}),
                      file=sys.__stdout__, flush=True)
                os._exit(0)
        return out

    torch.optim.SGD.step = timed_step
    sys.argv = ["main_DM.py", "--dataset", "CIFAR10", "--ipc", str(args.ipc), "--Iteration", "100000",
                "--num_eval", "0", "--save_path", os.path.join(tmp, "result"), "--data_path", os.path.join(tmp, "data")]
    with open(os.path.join(release, "main_DM.py")) as f:
        if "'--interval'" in f.read():  # CMIDD's script has it: no evaluation points before the end
            sys.argv += ["--interval", "1000000"]
    os.chdir(tmp)
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # the release prints a lot; RESULT goes to the real stdout
        runpy.run_path(os.path.join(release, "main_DM.py"), run_name="__main__")


if __name__ == "__main__":
    main()
