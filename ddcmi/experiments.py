"""Experiments built from the library: the base-versus-+CMI comparison that is the kit's main job.

Distillation runs live under a runs folder (``$DDCMI_RUNS`` or ``./runs``), one folder per full
config, so a repeated or interrupted comparison reuses or resumes them. The report folder receives
only small files: ``metrics.json`` (every number, configs, provenance), ``table.md``/``table.csv``
and PNG figures.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import time
from pathlib import Path

from .cmi import measure_cmi
from .data import Dataset, load_dataset
from .distill import Distiller
from .evaluate import CROSS_ARCH
from .profiles import make_config
from .proxy import ProxyPool
from .synset import SyntheticSet
from .utils import atomic_write_json, atomic_write_text, pick_device, provenance, slug


def runs_dir() -> Path:
    return Path(os.environ.get("DDCMI_RUNS", "runs"))


def run_dir_for(config) -> Path:
    blob = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    name = f"{slug(config.dataset)}-{config.method.replace('+', '_')}-ipc{config.ipc}-{config.profile}-s{config.seed}-{digest}"
    return runs_dir() / name


def run_or_resume(config, dataset: Dataset, device, pool: ProxyPool | None = None, progress: bool = True,
                  sampler=None):
    """Distill (or resume, or reuse a finished run of) ``config`` in its runs folder."""
    return Distiller(config, dataset, device=device, out_dir=run_dir_for(config), pool=pool,
                     progress=progress, sampler=sampler).run()


def evaluated(synset: SyntheticSet, dataset: Dataset, run_dir: Path, device, config, progress=True,
              eval_config=None) -> dict:
    """Evaluate a synthetic set once with ``eval_config`` (default ``config.eval``); the result is cached
    in the run folder under a key of the evaluation config and seed."""
    from .evaluate import evaluate_synset
    eval_config = eval_config or config.eval
    key = json.dumps({"eval": dataclasses.asdict(eval_config), "seed": config.seed}, sort_keys=True)
    path = run_dir / f"eval-{eval_config.arch}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.json"
    if path.exists():
        return json.loads(path.read_text())["result"]
    result = evaluate_synset(synset.images, synset.labels, dataset, eval_config, seed=config.seed, device=device,
                             progress=progress)
    atomic_write_json({"key": key, "result": result}, path)
    return result


def cross_architecture(config, dataset: Dataset, device, archs=CROSS_ARCH, epochs: int | None = None,
                       models: int | None = None, test_limit: int | None = None, progress=True) -> dict:
    """Evaluate the finished run of ``config`` on each architecture with the profile's recipe
    (optionally fewer epochs / networks / test images, recorded in each result)."""
    res = run_or_resume(config, dataset, device, progress=progress)
    out = {}
    for arch in archs:
        ec = dataclasses.replace(config.eval, arch=arch,
                                 arch_kwargs=config.eval.arch_kwargs if arch == config.eval.arch else {})
        changes = {k: v for k, v in (("epochs", epochs), ("num_models", models), ("test_limit", test_limit)) if v}
        if config.profile == "smoke":  # full-width AlexNet/VGG/ResNet are slow on a CPU: seconds, not minutes
            changes = {"epochs": 5, "num_models": 1, "test_limit": 500, **changes}
        out[arch] = evaluated(res.synset, dataset, res.out_dir, device, config, progress,
                              dataclasses.replace(ec, **changes))
    return out


def compare_methods(dataset: str = "cifar10", ipc: int = 10, profile: str = "cpu",
                    methods: tuple[str, ...] = ("dm", "dm+cmi"), seed: int = 0, data_root=None,
                    device=None, out_dir: str | Path | None = None, overrides: list[str] | None = None,
                    progress: bool = True) -> dict:
    """Distill with each method, evaluate, measure the final CMI of each set under one proxy pool,
    and write metrics.json, table.md, table.csv and an image grid into ``out_dir``."""
    t0 = time.time()
    device = pick_device(device)
    ds = load_dataset(dataset, root=data_root)
    sampler = ds.real_sampler(device)
    # One proxy pool for every method: the +CMI config's pool measures the baseline too.
    base = methods[0].split("+")[0]
    pool_cfg = make_config(profile, dataset, f"{base}+cmi", ipc, seed, overrides=_pool_overrides(overrides)).pool
    pool = ProxyPool.build(pool_cfg, ds, device, progress=progress)
    rows, results = [], {}
    for method in methods:
        cfg = make_config(profile, dataset, method, ipc, seed, overrides=overrides)
        res = run_or_resume(cfg, ds, device, pool, progress, sampler)
        acc = evaluated(res.synset, ds, run_dir_for(cfg), device, cfg, progress)
        images, labels = res.synset.images.to(device), res.synset.labels.to(device)
        cmi_feature = measure_cmi(images, labels, pool, space="feature")
        cmi_logit = measure_cmi(images, labels, pool, space="logit")
        results[method] = {"accuracy": acc, "cmi_feature": cmi_feature, "cmi_logit": cmi_logit,
                           "distill_seconds": res.synset.provenance.get("wall_time_s"),
                           "run_dir": str(run_dir_for(cfg)), "config": cfg.to_dict()}
        rows.append({"method": method, "acc_mean_%": round(100 * acc["mean"], 2), "acc_std_%": round(100 * acc["std"], 2),
                     "cmi_feature_nats": round(cmi_feature["mean"], 6), "cmi_logit_nats": round(cmi_logit["mean"], 4),
                     "distill_s": res.synset.provenance.get("wall_time_s"), "models": acc["num_models"]})
        results[method]["synset"] = res.synset
    metrics = {"experiment": "compare_methods", "dataset": ds.name, "dataset_label": ds.label, "ipc": ipc,
               "profile": profile, "seed": seed, "proxy_pool": pool.info | {"describe": pool_cfg.describe()},
               "methods": {m: {k: v for k, v in r.items() if k != "synset"} for m, r in results.items()},
               "provenance": provenance(device, t0)}
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(metrics, out / "metrics.json")
        atomic_write_text(_markdown_table(rows, metrics), out / "table.md")
        atomic_write_text(rows_to_csv(rows), out / "table.csv")
        from .plots import save_synset_grid
        for method, r in results.items():
            save_synset_grid(r["synset"], out / f"synset_{method.replace('+', '_')}.png",
                             title=f"{method} on {ds.label}, IPC {ipc}, profile {profile}")
    return metrics


def _pool_overrides(overrides):
    return [o for o in (overrides or []) if o.startswith("pool.")]


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _markdown_table(rows: list[dict], metrics: dict) -> str:
    lines = [f"# {metrics['dataset_label']} (`{metrics['dataset']}`), IPC {metrics['ipc']}, profile `{metrics['profile']}`",
             "", rows_to_markdown(rows).rstrip("\n")]
    p = metrics["provenance"]
    lines += ["", f"Accuracy: mean +- std over {rows[0]['models']} freshly trained networks on the "
              f"{'full' if next(iter(metrics['methods'].values()))['accuracy']['full_test_set'] else 'partial'} test set. "
              f"CMI: mean over the proxy pool ({metrics['proxy_pool']['describe']}), feature space "
              "(softmax over penultimate features) and logit space (softmax over logits), in nats.",
              f"Commit {p['git_commit']}, {p['device']}, torch {p['torch_version']}, total {p.get('wall_time_s')} s.", ""]
    return "\n".join(lines)


__all__ = ["compare_methods", "run_or_resume", "run_dir_for", "runs_dir", "evaluated"]


def main_table(profile: str, datasets, ipcs, methods=("dm", "dm+cmi"), seed: int = 0, data_root=None,
               device=None, overrides: list[str] | None = None, progress: bool = True) -> tuple[list[dict], dict]:
    """Base versus base+CMI over datasets x IPC: one row per (dataset, IPC) with each method's accuracy
    (mean +- std, %), the +CMI difference, and the published number where dataset and protocol match."""
    from .reference import reference
    rows, raw = [], {}
    for dataset in datasets:
        for ipc in ipcs:
            m = compare_methods(dataset, ipc, profile, tuple(methods), seed, data_root, device, None, overrides,
                                progress)
            raw[f"{dataset}/ipc{ipc}"] = m
            row = {"dataset": m["dataset_label"], "ipc": ipc}
            for method in methods:
                a = m["methods"][method]["accuracy"]
                row[f"{method} acc %"] = f"{100 * a['mean']:.2f} +- {100 * a['std']:.2f}"
                base = method.split("+")[0]
                if method.endswith("+cmi") and base in m["methods"]:
                    row[f"{method} - {base}"] = round(100 * (a["mean"] - m["methods"][base]["accuracy"]["mean"]), 2)
                ref = reference(method, m["dataset"], ipc, profile)
                if not method.endswith("+cmi"):
                    row[f"{method} published %"] = "-" if ref is None else ref
            rows.append(row)
    return rows, raw


def rows_to_markdown(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]) + "\n"


# Checkpoint schedules for the curve notebooks (CMI versus accuracy, training efficiency). They are
# part of the run's config, so both notebooks share the same cached runs.
CURVE_SCHEDULE = {"smoke": {"track_every": 5, "eval_at": (0, 5, 10)},
                  "cpu": {"track_every": 50, "eval_at": (0, 150, 300, 450, 600)},
                  "paper": {"track_every": 500, "eval_at": (0, 2000, 5000, 10000, 20000)}}


def curve_runs(profile: str, dataset: str, ipc: int, methods=("dm", "dm+cmi"), seed: int = 0,
               lambdas=(), data_root=None, device=None, progress: bool = True):
    """Runs with CMI tracked along the way and evaluated at checkpoints, plus a lambda sweep of the
    first +CMI method. Returns (runs, dataset, pool); runs maps a label to
    {"result", "config", "method", "weight", "final_acc", "cmi_feature", "cmi_logit"}."""
    device = pick_device(device)
    ds = load_dataset(dataset, root=data_root)
    sampler = ds.real_sampler(device)
    schedule = CURVE_SCHEDULE[profile]
    plus = next((m for m in methods if m.endswith("+cmi")), methods[0].split("+")[0] + "+cmi")
    pool = ProxyPool.build(make_config(profile, dataset, plus, ipc, seed).pool, ds, device, progress=progress)
    wanted = [(m, m, {}) for m in methods] + [(f"{plus} lambda={lam:g}", plus, {"cmi.weight": lam}) for lam in lambdas]
    out = {}
    for label, method, extra in wanted:
        cfg = make_config(profile, dataset, method, ipc, seed, overrides={**schedule, **extra})
        res = run_or_resume(cfg, ds, device, pool, progress, sampler)
        x, y = res.synset.images.to(device), res.synset.labels.to(device)
        out[label] = {"result": res, "config": cfg, "method": method, "weight": cfg.cmi.weight,
                      "final_acc": evaluated(res.synset, ds, run_dir_for(cfg), device, cfg, progress),
                      "cmi_feature": measure_cmi(x, y, pool, space="feature")["mean"],
                      "cmi_logit": measure_cmi(x, y, pool, space="logit")["mean"]}
    return out, ds, pool
