"""Comparisons and tables: base method versus +CMI on one dataset and IPC (a cell), and the main table.

A cell writes ``metrics.json`` (every number, configs, provenance), ``table.md``/``table.csv`` and PNG
grids into its report folder; while it runs, ``partial.json`` holds the methods finished so far. A
method found there with the same config key (ddcmi.keys: fields added later at their defaults do not
count) and proxy pool is reused, not recomputed.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..cmi import measure_cmi
from ..config import DistillConfig
from ..data import Dataset
from ..evaluate import CROSS_ARCH, standard_recipe
from ..profiles import make_config
from ..proxy import ProxyPool
from ..utils import atomic_write_json, atomic_write_text, pick_device, provenance, slug
from .runs import _pool_config, evaluated, run_dir_for, run_or_resume, setup


def cross_architecture(config, dataset: Dataset, device, archs=CROSS_ARCH, epochs: int | None = None,
                       models: int | None = None, test_limit: int | None = None, progress=True,
                       pool: ProxyPool | None = None, sampler=None) -> dict:
    """Evaluate the finished run of ``config`` on each architecture with the profile's recipe
    (optionally fewer epochs / networks / test images, recorded in each result)."""
    res = run_or_resume(config, dataset, device, pool, progress, sampler)
    out = {}
    for arch in archs:
        ec = dataclasses.replace(config.eval, arch=arch,
                                 arch_kwargs=config.eval.arch_kwargs if arch == config.eval.arch else {})
        changes = {k: v for k, v in (("epochs", epochs), ("num_models", models), ("test_limit", test_limit)) if v}
        if config.profile == "smoke":  # full-width AlexNet/VGG/ResNet are slow on a CPU: seconds, not minutes
            changes = {"epochs": 5, "num_models": 1, "test_limit": 500, **changes}
        out[arch] = evaluated(res.synset.images, res.synset.labels, dataset,
                              res.synset.recipe(dataclasses.replace(ec, **changes)), config.seed, device, progress)
    return out



def compare_methods(dataset: str = "cifar10", ipc: int = 10, profile: str = "cpu",
                    methods: tuple[str, ...] = ("dm", "dm+cmi"), seed: int = 0, data_root=None,
                    device=None, out_dir: str | Path | None = None, overrides: list[str] | None = None,
                    progress: bool = True, grids: bool = True, reuse: bool = False) -> dict:
    """Distill with each method, evaluate, measure the final CMI of each set under one proxy pool,
    and write metrics.json, table.md, table.csv and (``grids``) an image grid per method into ``out_dir``.
    While the comparison runs, ``partial.json`` in ``out_dir`` holds every method finished so far.

    With ``reuse``, a method whose result is already in ``out_dir`` (its ``metrics.json``, or the
    ``partial.json`` of a comparison that was stopped) with exactly this config and proxy pool is taken
    from there instead of recomputed; each method keeps the provenance of the commit that produced it
    and ``reused_methods`` lists them. If the report there is exactly this comparison it is returned as
    it is (``reused`` is set). So the main table's committed cells, and the finished methods of a cell
    that a session's end cut short, are not recomputed by a later session that lost the runs folder."""
    # every name and value checked before any work; each method's config built once
    configs = {m: make_config(profile, dataset, m, ipc, seed, overrides=overrides) for m in methods}
    pick_device(device)
    complete, results = _reusable(out_dir, dataset, ipc, profile, configs, seed, overrides) if reuse else (None, {})
    if complete is not None:
        return {**complete, "reused": True}
    reused = list(results)
    t0 = time.time()
    base = methods[0].split("+")[0]
    shared: dict = {}  # device, dataset, sampler, pool: built only when a method has to be computed

    def metrics_now(complete: bool) -> dict:
        ds_name, label = (shared["ds"].name, shared["ds"].label) if shared else (dataset, results[reused[0]]["dataset_label"])
        pool_info = shared["pool"].info | {"describe": shared["pool"].config.describe()} if shared \
            else results[reused[0]]["proxy_pool"]
        return {"experiment": "compare_methods", "dataset": ds_name, "dataset_label": label, "ipc": ipc,
                "profile": profile, "seed": seed, "proxy_pool": pool_info,
                "methods": {m: {k: v for k, v in r.items() if k not in ("synset", "dataset_label", "proxy_pool")}
                            for m, r in results.items()},
                "reused_methods": reused, "complete": complete, "provenance": provenance(pick_device(device), t0)}

    todo = [m for m in methods if m not in results]
    # one overall line above the per-stage bars: the stage it is in, stages done, time left at the mean
    # stage time so far (a rough estimate: stages differ in cost)
    overall = tqdm(total=(1 if todo else 0) + 3 * len(todo), desc=f"compare {dataset} IPC {ipc}", position=0,
                   disable=not progress, bar_format="{desc}: {n}/{total} stages, {elapsed} elapsed, about {remaining} left{postfix}")

    def stage(name: str) -> None:
        overall.set_postfix_str(name, refresh=True)

    for method in todo:
        if not shared:
            stage(f"loading {dataset} and the proxy pool ({configs[method].pool.title() if configs[method].pool else '-'})")
            shared.update(zip(("device", "ds", "sampler", "pool"),
                              setup(profile, dataset, ipc, seed, base, data_root, device, progress, overrides)))
            overall.update()
        dev, ds, pool = shared["device"], shared["ds"], shared["pool"]
        results[method] = run_cell(configs[method], ds, dev, pool, shared["sampler"], progress, stage, overall.update)
        if out_dir is not None:
            atomic_write_json(metrics_now(complete=False), Path(out_dir) / "partial.json")
    overall.close()
    results = {m: results[m] for m in methods}
    metrics = metrics_now(complete=True)
    if out_dir is not None:
        out = Path(out_dir)
        rows = _same_columns([_row(m, r) for m, r in metrics["methods"].items()])
        atomic_write_json(metrics, out / "metrics.json")
        atomic_write_text(_markdown_table(rows, metrics), out / "table.md")
        atomic_write_text(rows_to_csv(rows), out / "table.csv")
        (out / "partial.json").unlink(missing_ok=True)
        from ..plots import save_synset_grid
        for method, r in (results.items() if grids else ()):
            if "synset" in r:  # a reused method's grid is the one its own run wrote
                save_synset_grid(r["synset"], out / f"synset_{method.replace('+', '_')}.png",
                                 title=f"{method} on {metrics['dataset_label']}, IPC {ipc}, profile {profile}")
    return metrics


def run_cell(cfg: DistillConfig, ds: Dataset, device, pool: ProxyPool, sampler=None, progress: bool = True,
             stage=lambda name: None, stage_done=lambda: None, wait: bool = False) -> dict:
    """One method's result in a comparison, the unit of work of a table and of ``ddcmi sweep``: distill
    (or resume, or reuse the finished run in the store), evaluate with the method's recipe (cached by the
    set's content; IDC also under the standard protocol), and measure the set's CMI in both spaces under
    ``pool``. ``stage(name)`` / ``stage_done()`` report the three stages as they start and end; ``wait``
    queues behind another process working in the run folder (a sweep's stale worker) instead of refusing."""
    m0 = time.time()
    stage(f"distilling {cfg.method} ({cfg.iterations} iterations)")
    res = run_or_resume(cfg, ds, device, pool, progress, sampler, wait)
    stage_done()
    stage(f"evaluating {cfg.method} ({cfg.eval.num_models} x {cfg.eval.arch}, {cfg.eval.epochs} epochs)")
    acc = evaluated(res.synset.images, res.synset.labels, ds, res.synset.recipe(cfg.eval), cfg.seed, device, progress)
    stage_done()
    stage(f"measuring the CMI of {cfg.method}'s set")
    images, labels = res.synset.images.to(device), res.synset.labels.to(device)
    result = {"accuracy": acc, "cmi_feature": measure_cmi(images, labels, pool, space="feature"),
              "cmi_logit": measure_cmi(images, labels, pool, space="logit"),
              "pool_test_acc": pool.info.get("test_acc_mean"),  # what the proxies that measured CMI reach
              "distill_seconds": res.synset.provenance.get("wall_time_s"),
              "run_dir": str(run_dir_for(cfg)), "config": cfg.to_dict(),
              "provenance": provenance(device, m0), "synset": res.synset}
    standard = standard_recipe(cfg.eval)
    if standard != cfg.eval:  # a method with its own recipe (IDC): the standard protocol beside it
        result["accuracy_standard"] = evaluated(res.synset.images, res.synset.labels, ds,
                                                res.synset.recipe(standard), cfg.seed, device, progress)
    stage_done()
    return result


def cell_provenance(cells: dict, field: str = "git_commit") -> dict[str, str]:
    """One provenance ``field`` (``git_commit``, ``device``, ...) of each comparison in ``cells``
    ({name: compare_methods result}): one value, or one per method where its methods differ (some reused
    from an earlier run, on another commit or machine)."""
    out = {}
    for name, m in cells.items():
        per = {method: r.get("provenance", m["provenance"])[field] for method, r in m["methods"].items()}
        out[name] = next(iter(per.values())) if len(set(per.values())) == 1 else \
            ", ".join(f"{method} {value}" for method, value in per.items())
    return out


def _row(method: str, r: dict) -> dict:
    acc, feature, logit = r["accuracy"], r["cmi_feature"], r["cmi_logit"]
    row = {"method": method, "acc_mean_%": round(100 * acc["mean"], 2), "acc_std_%": round(100 * acc["std"], 2)}
    if "accuracy_standard" in r:
        s = r["accuracy_standard"]
        row["standard_protocol_acc_%"] = f"{100 * s['mean']:.2f} +- {100 * s['std']:.2f}"
    return {**row, "cmi_feature_nats": round(feature["mean"], 6), "cmi_logit_nats": round(logit["mean"], 4),
            "distill_s": r.get("distill_seconds"), "models": acc["num_models"]}


def _same_columns(rows: list[dict]) -> list[dict]:
    """Every row with every column (empty where a method has no such number), in first-seen order."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in cols} for r in rows]


def _reusable(out_dir, dataset, ipc, profile, configs: dict, seed, overrides) -> tuple[dict | None, dict]:
    """What ``out_dir`` already holds of this comparison: its metrics.json if that is exactly this
    comparison (same methods, configs and pool), else None; and each method whose result there
    (metrics.json first, then partial.json) has exactly its config and this pool, with the file's
    provenance where the method has none of its own, its dataset label and pool description."""
    methods = list(configs)
    base = methods[0].split("+")[0]
    pool_key = _pool_config(profile, dataset, base, ipc, seed, overrides).key()
    identities = {m: result_identity(cfg) for m, cfg in configs.items()}
    found, complete = {}, None
    for name in ("metrics.json", "partial.json"):
        path = None if out_dir is None else Path(out_dir) / name
        if path is None or not path.exists():
            continue
        old = json.loads(path.read_text())
        if old.get("proxy_pool", {}).get("key") != pool_key:
            continue
        for method, r in old.get("methods", {}).items():
            if method in identities and method not in found and _saved_identity(r.get("config")) == identities[method]:
                found[method] = {"provenance": old["provenance"], **r, "dataset_label": old["dataset_label"],
                                 "proxy_pool": old["proxy_pool"]}
        if name == "metrics.json" and list(old.get("methods", {})) == list(methods) and len(found) == len(methods):
            complete = old
    return complete, found


def result_identity(config: DistillConfig) -> tuple[str, str]:
    """What a method's result in a cell depends on: the run's stable key and the evaluation recipe's."""
    from ..evaluate import recipe_key
    from ..keys import digest
    return config.key(), digest(recipe_key(config.eval))


def _saved_identity(saved: dict | None) -> tuple[str, str] | None:
    try:
        return result_identity(DistillConfig.from_dict(saved or {}))
    except Exception:  # an unreadable or foreign config is simply not reusable
        return None


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


def main_table(profile: str, datasets, ipcs, methods=("dm", "dm+cmi"), seed: int = 0, data_root=None,
               device=None, overrides: list[str] | None = None, progress: bool = True,
               cells_dir: str | Path | None = None) -> tuple[list[dict], dict]:
    """Base versus base+CMI over datasets x IPC: one row per (dataset, IPC) with each method's accuracy
    (mean +- std, %), the +CMI difference, and the published number where dataset and protocol match.
    With ``cells_dir`` each (dataset, IPC) cell is written as its own comparison report as soon as it
    is done (``cells_dir/<dataset>_ipc<IPC>/``), so a long table that is stopped keeps its finished cells,
    and a cell whose report there has exactly these configs is reused instead of recomputed."""
    from ..reference import reference
    rows, raw = [], {}
    for dataset in datasets:
        for ipc in ipcs:
            cell_dir = None if cells_dir is None else Path(cells_dir) / f"{slug(dataset)}_ipc{ipc}"
            m = compare_methods(dataset, ipc, profile, tuple(methods), seed, data_root, device, cell_dir, overrides,
                                progress, grids=False, reuse=True)
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


# Points along a run at which the curve notebooks (CMI versus accuracy, training efficiency) evaluate:
# this many snapshots, evenly spaced from the initialisation to the end. CMI is measured at every
# snapshot. Both come from the run's snapshots, so the curves belong to the same runs as the tables.
