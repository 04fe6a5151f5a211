"""Evaluation speed: one network trained on a synthetic set and tested, fp32 against bf16 autocast (and the
stacked trainer), paired in one process on this machine.

    python benchmarks/bench_eval.py                                   # cifar10_jpeg, IPC 10, 20 epochs
    python benchmarks/bench_eval.py --dataset mnist --ipc 50 --epochs 10 --repeats 3

For every mode (``eval.autocast`` = none / test / train+test, and ``eval.compile=true`` alone and with
``train+test``, whose graphs are compiled in a warm-up before the timed repeats; ``--stacked N`` adds N
networks trained together by the stacked trainer, fp32 and bf16) the script trains a fresh ConvNet-3 (the evaluation
protocol's recipe at the profile's config, only the epochs cut to ``--epochs``) on a random set of
``--ipc`` images per class, then tests it on ``--test-images`` test images, and prints the median seconds
of training (per epoch) and of the test pass, and each as a ratio to fp32. The modes are interleaved
repeat by repeat, so drift of the machine touches them alike. Accuracy is not measured here: a few epochs
on a random set say nothing about it (``reports/cpu/bf16_accuracy`` has the measured accuracies).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from bench_dm import _timed  # the same clock as bench_dm.py (CUDA synchronised)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10_jpeg")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--test-images", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stacked", type=int, default=0, help="also time N networks trained together (0: skip)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import ddcmi
    from ddcmi.evaluate import TestSet, train_on_synset, train_stacked_on_synset
    from ddcmi.proxy import accuracy

    device = ddcmi.utils.pick_device(args.device)
    ds = ddcmi.load_dataset(args.dataset, root=args.data_root)
    base = ddcmi.make_config(args.profile, ds.name, "dm", args.ipc).eval
    base = dataclasses.replace(base, epochs=args.epochs, test_limit=args.test_images)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.ipc * ds.num_classes, ds.channels, *ds.image_size, generator=g)
    labels = torch.arange(ds.num_classes).repeat_interleave(args.ipc)
    test = TestSet(ds, device, args.test_images)
    modes = {"none": {}, "test": {"autocast": "test"}, "train+test": {"autocast": "train+test"}, "compile": {"compile": True},
             "compile, train+test": {"compile": True, "autocast": "train+test"}}
    times = {m: ([], []) for m in modes}
    stacked = {m: [] for m in ("none", "train+test")} if args.stacked else {}
    print(f"{ds.name}, IPC {args.ipc}, ConvNet-3, {args.epochs} epochs, {len(test.y)} test images, "
          f"{torch.get_num_threads()} threads, {device}; {args.repeats} interleaved repeats", flush=True)
    t0 = time.perf_counter()  # the compiled graph built once, before the timed repeats
    for cast in ("none", "train+test"):
        train_on_synset(images, labels, ds, dataclasses.replace(base, epochs=1, compile=True, autocast=cast),
                        torch.Generator(), device)
    print(f"compile (one-off): {time.perf_counter() - t0:.1f} s", flush=True)
    for r in range(args.repeats):
        for mode, change in modes.items():
            cfg = dataclasses.replace(base, **change)
            box = {}
            train_s = _timed(lambda: box.update(m=train_on_synset(images, labels, ds, cfg, torch.Generator().manual_seed(r), device)), device)
            test_s = _timed(lambda: accuracy(box["m"], test.x, test.y, bf16=cfg.bf16_test), device)
            times[mode][0].append(train_s / args.epochs)
            times[mode][1].append(test_s)
        for mode in stacked:
            cfg = dataclasses.replace(base, autocast=mode, num_models=args.stacked)
            stacked[mode].append(_timed(lambda: train_stacked_on_synset(images, labels, ds, cfg, torch.Generator().manual_seed(r),
                                                                        device, args.stacked), device) / args.epochs / args.stacked)
        print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    ref_train, ref_test = (statistics.median(v) for v in times["none"])
    print("\n| eval mode | s / epoch (one network) | x fp32 | test pass s | x fp32 |\n|---|---|---|---|---|")
    for mode in modes:
        tr, te = (statistics.median(v) for v in times[mode])
        print(f"| {mode} | {tr:.3f} | {ref_train / tr:.2f} | {te:.2f} | {ref_test / te:.2f} |")
    for mode, v in stacked.items():
        s = statistics.median(v)
        print(f"| stacked x{args.stacked}, {mode} | {s:.3f} per network | {ref_train / s:.2f} | | |")


if __name__ == "__main__":
    main()
