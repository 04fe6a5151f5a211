"""The ``ddcmi`` command line. Every run is a profile plus optional ``--set key=value`` overrides.

    ddcmi datasets                                    what is registered and where data is looked for
    ddcmi distill --dataset mnist --method dm+cmi --ipc 10 --profile smoke
    ddcmi evaluate runs/<run>/synset.pt --arch alexnet
    ddcmi config --dataset mnist --method idc+cmi --ipc 10 --profile cpu   the resolved config and its sources
    ddcmi store                                       where runs, pools and reports are kept
    ddcmi cmi runs/<run>/synset.pt                    CMI of a saved set under the profile's proxy pool
    ddcmi cmi --dataset mnist --ipc 10                CMI of a random real subset
    ddcmi pool --dataset cifar10_jpeg --profile cpu   build (or finish) a proxy pool
    ddcmi experts --dataset mnist --ipc 10 --profile cpu   build (or finish) MTT's expert buffer
    ddcmi compare --dataset cifar10 --profile cpu     the main job: DM vs DM+CMI, written under reports/
    ddcmi reproduce quickstart --profile smoke        execute a notebook into reports/smoke/quickstart/
    ddcmi sweep grid.yaml --runner ray                a grid of cells (distill + evaluate + CMI) on Ray
    ddcmi sweep main_table --profile cpu              the runs of a notebook, as a grid
    ddcmi distill ... --nproc 2                       classes split over 2 processes (torchrun)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__, profiles
from .errors import DDCMIError

EPILOG = ("Data: --data-root DIR, else $DDCMI_DATA, else ~/.cache/ddcmi/data; standard datasets download "
          "through torchvision when missing (DDCMI_OFFLINE=1 turns that off). Ctrl-C stops cleanly and keeps "
          "the last checkpoint; the same command resumes.")


def _common(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    p.add_argument("--dataset", required=dataset_required, help="registered name (see `ddcmi datasets`) or a local path")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"],
                   help="named defaults: smoke (seconds), cpu (2-core laptop), paper (published, GPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset (overrides $DDCMI_DATA)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set iterations=200 --set cmi.weight=100 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ddcmi", description="Dataset distillation with class-aware CMI (ICLR 2025).",
                                 epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"ddcmi {__version__}")
    ap.add_argument("--store", default=None, metavar="DIR",
                    help="root of the run store (runs, pools, evaluations, reports); default $DDCMI_STORE, else the "
                         "project root of a checkout, else ~/.local/share/ddcmi (see `ddcmi store`)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list registered datasets and where they are looked for", epilog=EPILOG)
    p.add_argument("--data-root", default=None)
    p.add_argument("--check", action="store_true", help="also load each dataset found locally (slow)")

    p = sub.add_parser("distill", help="distill a synthetic set (checkpoints, resumes)", epilog=EPILOG)
    _common(p)
    p.add_argument("--method", required=True, help="dm or dm+cmi (see --list-methods)")
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--out", default=None, help="output folder (default: runs/<config key>)")
    p.add_argument("--fresh", action="store_true",
                   help="start again: delete the run's own files in the output folder (nothing else)")
    p.add_argument("--evaluate", action="store_true", help="evaluate the result with the profile's protocol")
    p.add_argument("--wait", action="store_true", help="if another process works in the run folder, wait for it")
    p.add_argument("--allow-thread-change", action="store_true",
                   help="resume a checkpoint written at another CPU thread count (recorded in the history)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="split the classes over N processes (starts torchrun; gloo on CPU, NCCL on GPUs); "
                        "each runs on $OMP_NUM_THREADS threads (default 1)")

    p = sub.add_parser("evaluate", help="train fresh networks on a saved synthetic set and test them", epilog=EPILOG)
    p.add_argument("synset", help="path to a synset.pt")
    p.add_argument("--arch", action="append", default=None,
                   help="architecture(s) to evaluate (repeatable; default: the run's); 'cross' = ConvNet-3, AlexNet, VGG11, ResNet-18")
    p.add_argument("--profile", default=None, help="evaluation recipe of this profile (default: the run's)")
    p.add_argument("--models", type=int, default=None, help="number of networks (default: the profile's)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="write the result as JSON here (default: beside the synset)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("cmi", help="CMI of a saved synthetic set or of a random real subset under a proxy pool",
                       epilog=EPILOG)
    p.add_argument("synset", nargs="?", default=None, help="path to a synset.pt (or use --dataset/--ipc)")
    _common(p, dataset_required=False)
    p.add_argument("--ipc", type=int, default=10, help="with --dataset: images per class of the random real subset")
    p.add_argument("--space", choices=["feature", "logit", "both"], default="both")
    p.add_argument("--centroids", choices=["synthetic", "real"], default="synthetic")

    p = sub.add_parser("config", help="print the fully resolved config of a run, with where each value comes from",
                       epilog=EPILOG)
    _common(p)
    p.add_argument("--method", required=True, help="a method (see `ddcmi config --help`): " + _method_names())
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--json", action="store_true", help="print the config as JSON (no sources)")

    p = sub.add_parser("store", help="where runs, proxy pools, evaluation caches and reports are kept", epilog=EPILOG)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("pool", help="train (or finish training) a proxy pool and cache it", epilog=EPILOG)
    _common(p)
    p.add_argument("--snapshots", default="", metavar="E1,E2,...",
                   help="also keep each member after these epochs, as the pools with that many epochs "
                        "(the weaker pools of a proxy-strength study, at no extra training)")

    p = sub.add_parser("experts", help="train (or finish training) MTT's expert buffer and cache it", epilog=EPILOG)
    _common(p)
    p.add_argument("--ipc", type=int, default=10, help="the IPC whose MTT settings choose the buffer (ZCA, epochs)")

    p = sub.add_parser("reproduce", help="execute notebooks with papermill into reports/<profile>/<name>/",
                       epilog=EPILOG)
    p.add_argument("name", help="a notebook of notebooks/ (its name, without .py or .ipynb), or all")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("-p", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the notebook's parameters cell (JSON value or plain string), "
                        "repeatable; with all, each notebook takes those it has")
    p.add_argument("--reports", default=None, help="reports folder (default: the run store's reports/, see `ddcmi store`)")
    p.add_argument("--force", action="store_true", help="run again even if the report exists with these parameters")
    p.add_argument("--tag", default=None, help="write to reports/<profile>/<name>_<tag>/ (a variant beside the default report)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run of the notebooks (their `overrides` parameter), as for "
                        "`ddcmi distill --set`, repeatable; all leaves out the notebooks that only read recorded cells")
    p.add_argument("--fast", action="store_true",
                   help="every measured speed switch (" + " ".join(profiles.FAST_SWITCHES) + "; bf16 where accuracy was "
                        "unchanged within noise, docs/performance.md), into reports/<profile>/<name>_fast/ "
                        "unless --tag says otherwise")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("sweep", help="run a grid of cells (distill + evaluate + CMI) serially or on Ray, via the run store",
                       epilog=EPILOG)
    p.add_argument("grid", help="a grid YAML file, or a named grid: main_table, cmi_vs_accuracy (that notebook's runs)")
    p.add_argument("--profile", default=None, choices=["smoke", "cpu", "paper"],
                   help="profile of a named grid (default smoke); with a file, replaces the file's")
    p.add_argument("--runner", default="serial", choices=["serial", "ray"],
                   help="serial (this process) or ray (pip install 'ddcmi[ray]')")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default $RAY_ADDRESS, else a local Ray started here)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--device", default=None, help="device of every cell (default: CUDA when present)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and what the store holds; run nothing")
    p.add_argument("--table", action="store_true",
                   help="write the summary and table of the cells already recorded (the rest marked not run); run nothing")
    p.add_argument("--cells", default=None, metavar="DIR",
                   help="a folder of kept cell records (beside a report, committed with it): cells recorded there are "
                        "not run again, finished cells are recorded there too (default: the grid's cells_dir; "
                        "cmi_study: <reports>/<profile>/cmi_study/cells)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("compare", help="the main job: base method vs base+CMI, evaluated, written under reports/",
                       epilog=EPILOG)
    _common(p, dataset_required=False)
    p.set_defaults(dataset="cifar10")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--methods", default="dm,dm+cmi", help="comma-separated (default dm,dm+cmi)")
    p.add_argument("--out", default=None, help="report folder (default reports/<profile>/compare_<dataset>_ipc<ipc>)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ._startup import INTERRUPTED_AT_START
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        _sigterm_as_interrupt()
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED_AT_START}", file=sys.stderr)
        return 130
    if args.store:
        from . import store
        store.use(args.store)
    try:
        rc = {"datasets": cmd_datasets, "distill": cmd_distill, "evaluate": cmd_evaluate, "cmi": cmd_cmi,
              "pool": cmd_pool, "experts": cmd_experts, "compare": cmd_compare, "reproduce": cmd_reproduce, "config": cmd_config,
              "store": cmd_store, "sweep": cmd_sweep}[args.command](args)
        sys.stdout.flush()  # here, so that a reader that has gone is handled below, not at interpreter exit
        return rc
    except DDCMIError as exc:
        print(f"ddcmi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ddcmi ... | head`: the reader has gone; stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 141
    except OSError as exc:  # disk full, read-only folder, missing permission: say where and what to do
        print(f"ddcmi {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"\nddcmi {args.command}: interrupted. {_interrupted_detail(str(exc), args.argv)}", file=sys.stderr)
        return 130


def _interrupted_detail(said: str, argv: list[str]) -> str:
    """What a stage said it kept; a stage that said nothing (loading data, measuring CMI) gets the
    general rule and the command that continues (never with ``--fresh``, which would start over)."""
    if said and said != SIGTERM_SAID:
        return said
    import shlex
    again = " ".join(shlex.quote(a) for a in ["ddcmi", *argv] if a != "--fresh")
    return (f"{said + ' ' if said else ''}Everything that had finished is kept (runs, proxy pools, evaluations "
            f"and cells are written as they finish); to continue, run: {again}")


def _method_names() -> str:
    from .methods import list_methods
    return ", ".join(list_methods())


def cmd_config(args) -> int:
    from .profiles import describe_config, resolve_config

    cfg, sources = resolve_config(args.profile, args.dataset, args.method, args.ipc, args.seed, args.overrides)
    if args.json:
        print(json.dumps(cfg.to_dict(), indent=2, default=str))
        return 0
    rows = describe_config(cfg, sources)
    width = max(len(k) for k, _, _ in rows)
    print(f"# {args.method} on {args.dataset}, IPC {args.ipc}, profile {args.profile}, seed {args.seed} "
          f"(run key {cfg.key()})")
    for key, value, source in rows:
        print(f"{key:<{width}}  {json.dumps(value, default=str):<40}  {source}")
    return 0


def cmd_store(args) -> int:
    from . import store
    info = store.describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"run store: {info['root']} (chosen by: {info['chosen_by']}; set DDCMI_STORE to move it)")
    for k in ("runs", "pools", "experts", "reports"):
        print(f"  {k:8s} {info[k]}")
    return 0


def os_error_message(exc: OSError) -> str:
    """What happened, which path, and the fix, for an OSError from writing or reading the kit's files."""
    import errno
    path = exc.filename or "?"
    what = exc.strerror or str(exc)
    fix = {errno.ENOSPC: "free some space there, or put the run store elsewhere (ddcmi --store DIR / $DDCMI_STORE)",
           errno.EDQUOT: "free some space there, or put the run store elsewhere (ddcmi --store DIR / $DDCMI_STORE)",
           errno.EROFS: "that file system is read-only: choose a writable folder (--out, ddcmi --store DIR)",
           errno.EACCES: "no permission: choose a folder you can write (--out, ddcmi --store DIR) or fix its mode",
           errno.EPERM: "no permission: choose a folder you can write (--out, ddcmi --store DIR) or fix its mode",
           errno.ENOENT: "the path does not exist: check it"}.get(exc.errno, "check the path and the disk")
    kept = " Files already finished (checkpoints, finished runs and pool members) are kept; the same command " \
           "resumes from them once the problem is fixed." if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{what} at {path}: {fix}.{kept}"


SIGTERM_SAID = "(SIGTERM)"  # what a SIGTERM's KeyboardInterrupt carries: not a stage's account of what it kept


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a scheduler, `kill`) stops like Ctrl-C: the last checkpoint is kept and the message says so."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(SIGTERM_SAID)
    signal.signal(signal.SIGTERM, handler)


def cmd_datasets(args) -> int:
    from .data import DATASETS, data_roots
    print("Registered datasets:")
    for name in DATASETS.names():
        info = DATASETS.get(name)
        print(f"  {name:14s} {info.label:22s} {info.num_classes:4d} classes  {info.channels}x{info.size}x{info.size}  "
              f"mean {info.mean} std {info.std}  {'download' if info.download else 'local only'}")
    print("Looked for in (first hit wins):")
    for origin, root in data_roots(args.data_root):
        print(f"  {origin:14s} {root}{'' if root.exists() else '  (does not exist)'}")
    if not os.environ.get("DDCMI_DATA"):
        print(f"  {'DDCMI_DATA':14s} (not set: export DDCMI_DATA=DIR to add a data folder)")
    print("A local dataset can also be given by path: a folder with train.npz + test.npz, an ImageFolder with "
          "train/ + test/, or a .tar.gz of one.")
    if args.check:
        from .data import load_dataset
        for name in DATASETS.names():
            try:
                d = load_dataset(name, root=args.data_root, download=False)
                print(f"  found {name}: {len(d.train)} train / {len(d.test)} test at {d.source}")
            except DDCMIError as exc:
                print(f"  {name}: not found locally ({str(exc).splitlines()[0]})")
    return 0


def _config(args, method: str, ipc: int):
    from .profiles import make_config
    return make_config(args.profile, args.dataset, method, ipc, args.seed, overrides=args.overrides)


def cmd_distill(args) -> int:
    from .methods import METHODS, parse_method
    from .parallel import ClassParallel, world_size_from_env

    cfg = _config(args, args.method, args.ipc)  # validates names and values before any data is read
    world = world_size_from_env()
    if args.nproc is not None or world > 1:
        refusal = METHODS.get(parse_method(cfg.method)[0]).no_class_split
        if refusal:
            print(f"ddcmi distill: error: {cfg.method} cannot run class-parallel: {refusal}; run it in one "
                  f"process (drop --nproc)", file=sys.stderr)
            return 2
    if args.nproc is not None and world <= 1:
        if args.nproc < 1:
            print(f"ddcmi distill: error: --nproc must be >= 1, got {args.nproc}", file=sys.stderr)
            return 2
        if args.nproc > 1:
            return _torchrun(args.argv, args.nproc)
    par = ClassParallel.from_env(args.device)
    try:
        return _distill(args, cfg, par)
    finally:
        if par is not None:
            par.close()


def _torchrun(argv: list[str], nproc: int) -> int:
    """Run this same command in ``nproc`` processes under torchrun (one machine)."""
    import subprocess
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "ddcmi", *rest]
    print(f"class-parallel over {nproc} processes: {' '.join(cmd[1:])}", flush=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # the processes got Ctrl-C too: rank 0 kept its checkpoint
        raise KeyboardInterrupt("the processes were stopped; rank 0 kept the last checkpoint; the same command "
                                "resumes") from None


def _distill(args, cfg, par) -> int:
    """One process's part of ``ddcmi distill`` (the whole run, or one rank of a class-parallel one)."""
    from .data import load_dataset
    from .distill import Distiller, discard_run
    from .evaluate import evaluate_synset
    from .experiments import run_dir_for
    from .utils import atomic_write_json, pick_device

    writer = par is None or par.writes
    device = par.device if par is not None else pick_device(args.device)
    dataset = load_dataset(args.dataset, root=args.data_root)
    out = Path(args.out) if args.out else run_dir_for(cfg)
    if args.fresh and writer:
        removed = discard_run(out)
        if removed:
            print(f"--fresh: removed {len(removed)} file(s) this run had written in {out.resolve()}")
    result = Distiller(cfg, dataset, device=device, out_dir=out, progress=not args.quiet, wait=args.wait,
                       allow_thread_change=args.allow_thread_change, parallel=par).run()
    if not writer:
        return 0
    print(f"synthetic set: {out / 'synset.pt'} ({result.synset.images.shape[0]} images, "
          f"{result.synset.provenance.get('wall_time_s')} s)")
    if args.evaluate:
        acc = evaluate_synset(result.synset.images, result.synset.labels, dataset, result.synset.recipe(cfg.eval),
                              seed=cfg.seed, device=device, progress=not args.quiet)
        atomic_write_json(acc, out / "eval.json")
        print(f"accuracy ({cfg.eval.arch}, {acc['num_models']} networks, {acc['test_images']} test images): "
              f"{100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} %")
    return 0


def cmd_evaluate(args) -> int:
    import dataclasses

    from .data import load_dataset
    from .evaluate import CROSS_ARCH, EvalConfig, evaluate_synset
    from .profiles import make_config
    from .synset import SyntheticSet
    from .utils import atomic_write_json, pick_device

    synset = SyntheticSet.load(args.synset)
    dataset = load_dataset(synset.dataset, root=args.data_root)
    profile = args.profile or synset.profile
    base = make_config(profile, synset.dataset, synset.config.get("method", "dm"), synset.ipc).eval
    archs = args.arch or [base.arch]
    if "cross" in archs:
        archs = list(CROSS_ARCH)
    device = pick_device(args.device)
    results = {}
    for arch in archs:
        ec: EvalConfig = dataclasses.replace(base, arch=arch, arch_kwargs={} if arch != base.arch else base.arch_kwargs)
        if args.models:
            ec = dataclasses.replace(ec, num_models=args.models)
        if args.epochs:
            ec = dataclasses.replace(ec, epochs=args.epochs)
        r = evaluate_synset(synset.images, synset.labels, dataset, synset.recipe(ec), seed=args.seed, device=device,
                            progress=not args.quiet)
        results[arch] = r
        print(f"{arch:10s} {100 * r['mean']:.2f} +- {100 * r['std']:.2f} %  ({r['num_models']} networks, "
              f"{r['epochs']} epochs, {r['test_images']} test images, {dataset.label})")
    out = Path(args.out) if args.out else Path(args.synset).with_name("evaluate.json")
    atomic_write_json({"synset": str(args.synset), "profile": profile, "results": results}, out)
    return 0


def cmd_cmi(args) -> int:
    from .cmi import measure_cmi
    from .data import load_dataset, random_subset
    from .profiles import make_config
    from .proxy import ProxyPool
    from .synset import SyntheticSet
    from .utils import pick_device

    device = pick_device(args.device)
    if args.synset:
        s = SyntheticSet.load(args.synset)
        name, images, labels, what = s.dataset, s.images, s.labels, f"synthetic set {args.synset}"
        dataset = load_dataset(name, root=args.data_root)
    elif args.dataset:
        dataset = load_dataset(args.dataset, root=args.data_root)
        name = dataset.name
        images, labels = random_subset(dataset, args.ipc, args.seed)
        what = f"random real subset of {dataset.label}, IPC {args.ipc}, seed {args.seed}"
    else:
        print("ddcmi cmi: give a synset.pt or --dataset", file=sys.stderr)
        return 2
    pool_cfg = make_config(args.profile, name, "dm+cmi", 10, overrides=args.overrides).pool
    pool = ProxyPool.build(pool_cfg, dataset, device, progress=not args.quiet)
    sampler = dataset.real_sampler(device) if args.centroids == "real" else None
    out = {}
    for space in (["feature", "logit"] if args.space == "both" else [args.space]):
        r = measure_cmi(images.to(device), labels.to(device), pool, space=space, centroids=args.centroids, real=sampler)
        out[space] = r
        print(f"CMI ({space} space, {args.centroids} centroids) of {what}: {r['mean']:.6g} +- {r['std']:.2g} nats "
              f"over {len(r['per_member'])} proxies ({pool_cfg.describe()})")
    print(json.dumps({k: {"mean": v["mean"], "std": v["std"]} for k, v in out.items()}))
    return 0


def cmd_pool(args) -> int:
    from .data import load_dataset
    from .errors import ConfigError
    from .proxy import ProxyPool, check_snapshots
    from .utils import pick_device

    cfg = _config(args, "dm+cmi", 10).pool
    try:
        snapshots = [int(e) for e in args.snapshots.split(",") if e.strip()]
    except ValueError:
        raise ConfigError(f"--snapshots {args.snapshots!r} must be epoch counts separated by commas, e.g. 1,2,4") from None
    snapshots = check_snapshots(cfg, snapshots)  # before the dataset loads
    dataset = load_dataset(args.dataset, root=args.data_root)
    pool = ProxyPool.build(cfg, dataset, pick_device(args.device), progress=not args.quiet, snapshots=snapshots)
    accs = [a for a in pool.info.get("test_acc", []) if a is not None]
    print(f"proxy pool {cfg.describe()}: {len(pool)} networks at {pool.info['dir']}; "
          f"test accuracy mean {100 * sum(accs) / max(len(accs), 1):.2f} %")
    return 0


def cmd_experts(args) -> int:
    from .data import load_dataset
    from .experts import ExpertBuffer
    from .utils import pick_device

    cfg = _config(args, "mtt", args.ipc).options.experts
    dataset = load_dataset(args.dataset, root=args.data_root)
    buf = ExpertBuffer.build(cfg, dataset, pick_device(args.device), progress=not args.quiet)
    acc = buf.info.get("test_acc_mean")
    print(f"expert buffer {cfg.describe()}: {len(buf)} experts at {buf.directory}"
          + (f"; final test accuracy mean {100 * acc:.2f} %" if acc is not None else ""))
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import RECORDED, cost_seconds, notebook_names, notebook_parameters, reproduce

    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"ddcmi reproduce: -p {item!r} must look like key=value", file=sys.stderr)
            return 2
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    names = notebook_names() if args.name == "all" else [args.name]
    takes = {name: set(notebook_parameters(name, args.profile)) for name in names}
    overrides = args.overrides + (profiles.FAST_SWITCHES if args.fast else [])
    tag = args.tag or ("fast" if args.fast else None)
    if overrides:
        if "overrides" in params:
            print("ddcmi reproduce: give config overrides with --set (or --fast) or with -p overrides=[...], "
                  "not both", file=sys.stderr)
            return 2
        if args.name != "all" and "overrides" not in takes[args.name]:
            print(f"ddcmi reproduce: notebook {args.name} takes no config overrides (--set, --fast); "
                  "it reads what its grids recorded", file=sys.stderr)
            return 2
        profiles.check_overrides(args.profile, overrides)  # a misspelt key or a bad value: refused before anything runs
        params["overrides"] = overrides
        if args.name == "all":  # leave out the notebooks whose reports would be the default ones again
            left_out = [n for n in names if "overrides" not in takes[n] or n in RECORDED.get(args.profile, ())]
            names = [n for n in names if n not in left_out]
            if left_out:
                print(f"ddcmi reproduce: not {', '.join(left_out)}: they take no overrides or, at {args.profile}, only "
                      "read recorded cells (named alone, a notebook that takes overrides runs with them)", file=sys.stderr)
    if args.name == "all":  # each notebook gets the parameters it has; one that none has is a mistake
        unknown = sorted(set(params) - set().union(*takes.values()))
        if unknown:
            print(f"ddcmi reproduce: no notebook has parameter {', '.join(map(repr, unknown))}", file=sys.stderr)
            return 2
    costs = []
    for name in names:
        mine = {k: v for k, v in params.items() if k in takes[name]} if args.name == "all" else params
        out = reproduce(name, args.profile, mine, args.reports,
                        force=args.force, progress=not args.quiet, tag=tag)
        print(f"{name}: {out}")
        costs.append(cost_seconds(out))
    if args.name == "all":  # the reproduction's end-to-end cost, however many sessions it took
        print(f"reproduce all --profile {args.profile}: {len(names)} notebooks, "
              f"{sum(c or 0 for c in costs) / 3600:.2f} h of machine time in all (each report's reproduce.json: "
              "its last run and any interrupted attempts; a report made earlier counts what it cost then)")
    return 0


def cmd_sweep(args) -> int:
    from .experiments.grid import load_grid
    from .experiments.sweep import sweep

    grid = load_grid(args.grid, args.profile)
    if args.cells:
        import dataclasses
        grid = dataclasses.replace(grid, cells_dir=args.cells)
    summary = sweep(grid, args.runner, args.address, args.device, progress=not args.quiet, num_cpus=args.cpus,
                    dry_run=args.dry_run, table_only=args.table)
    if summary.get("failed"):
        for row in summary["cells"]:
            if row["status"] == "failed":
                print(f"failed: {row['cell']}: {row['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args) -> int:
    from .experiments import compare_methods
    from .utils import slug

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    from . import store
    out = Path(args.out) if args.out else store.reports_dir() / args.profile / f"compare_{slug(args.dataset)}_ipc{args.ipc}"
    metrics = compare_methods(args.dataset, args.ipc, args.profile, methods, args.seed, args.data_root,
                              args.device, out, args.overrides, progress=not args.quiet)
    from .report import write_index
    if out.parent.parent.name == "reports":
        write_index(out.parent.parent)
    print((out / "table.md").read_text())
    print(f"written: {out}/metrics.json, table.md, table.csv, synset_*.png "
          f"({metrics['provenance'].get('wall_time_s')} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
