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

import torch

from .cmi import measure_cmi
from .data import Dataset, load_dataset
from .distill import Distiller
from .errors import ArtefactError
from .evaluate import CROSS_ARCH, recipe_key
from .profiles import make_config
from .proxy import ProxyPool
from .utils import atomic_write_json, atomic_write_text, pick_device, provenance, slug


def runs_dir() -> Path:
    return Path(os.environ.get("DDCMI_RUNS", "runs"))


def run_dir_for(config) -> Path:
    blob = json.dumps(config.identity(), sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    name = f"{slug(config.dataset)}-{config.method.replace('+', '_')}-ipc{config.ipc}-{config.profile}-s{config.seed}-{digest}"
    return runs_dir() / name


def run_or_resume(config, dataset: Dataset, device, pool: ProxyPool | None = None, progress: bool = True,
                  sampler=None):
    """Distill (or resume, or reuse a finished run of) ``config`` in its runs folder."""
    return Distiller(config, dataset, device=device, out_dir=run_dir_for(config), pool=pool,
                     progress=progress, sampler=sampler).run()


def evaluated(images, labels, dataset: Dataset, eval_config, seed: int, device, progress: bool = True) -> dict:
    """``evaluate_synset``, cached under ``<runs>/evals`` by the content of the set (pixels and labels),
    the dataset, the evaluation config and the seed: the same set is never trained on twice, whichever
    notebook asks (the initialisation shared by two methods, a run's last snapshot and its result)."""
    from .evaluate import evaluate_synset
    h = hashlib.sha1()
    h.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    key = json.dumps({"dataset": dataset.name, "eval": recipe_key(eval_config), "seed": seed}, sort_keys=True)
    h.update(key.encode())
    path = runs_dir() / "evals" / f"{slug(dataset.name)}-{eval_config.arch}-{h.hexdigest()[:16]}.json"
    if path.exists():
        return json.loads(path.read_text())["result"]
    result = evaluate_synset(images, labels, dataset, eval_config, seed=seed, device=device, progress=progress)
    atomic_write_json({"key": key, "images": list(images.shape), "result": result}, path)
    return result


def setup(profile: str, dataset: str, ipc: int, seed: int = 0, base: str = "dm", data_root=None, device=None,
          progress: bool = True, overrides: list[str] | None = None):
    """What every experiment on one dataset shares: the device, the dataset, one real-image sampler on
    the device and the profile's proxy pool (built once, cached). Returns (device, dataset, sampler, pool)."""
    device = pick_device(device)
    ds = load_dataset(dataset, root=data_root)
    pool_cfg = _pool_config(profile, dataset, base, ipc, seed, overrides)
    return device, ds, ds.real_sampler(device), ProxyPool.build(pool_cfg, ds, device, progress=progress)


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
        out[arch] = evaluated(res.synset.images, res.synset.labels, dataset, dataclasses.replace(ec, **changes),
                              config.seed, device, progress)
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
    complete, results = _reusable(out_dir, dataset, ipc, profile, methods, seed, overrides) if reuse else (None, {})
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

    for method in methods:
        if method in results:
            continue
        if not shared:
            shared.update(zip(("device", "ds", "sampler", "pool"),
                              setup(profile, dataset, ipc, seed, base, data_root, device, progress, overrides)))
        dev, ds, pool = shared["device"], shared["ds"], shared["pool"]
        m0 = time.time()
        cfg = make_config(profile, dataset, method, ipc, seed, overrides=overrides)
        res = run_or_resume(cfg, ds, dev, pool, progress, shared["sampler"])
        acc = evaluated(res.synset.images, res.synset.labels, ds, cfg.eval, cfg.seed, dev, progress)
        images, labels = res.synset.images.to(dev), res.synset.labels.to(dev)
        results[method] = {"accuracy": acc, "cmi_feature": measure_cmi(images, labels, pool, space="feature"),
                           "cmi_logit": measure_cmi(images, labels, pool, space="logit"),
                           "distill_seconds": res.synset.provenance.get("wall_time_s"),
                           "run_dir": str(run_dir_for(cfg)), "config": cfg.to_dict(),
                           "provenance": provenance(dev, m0), "synset": res.synset}
        if out_dir is not None:
            atomic_write_json(metrics_now(complete=False), Path(out_dir) / "partial.json")
    results = {m: results[m] for m in methods}
    metrics = metrics_now(complete=True)
    if out_dir is not None:
        out = Path(out_dir)
        rows = [_row(m, r) for m, r in metrics["methods"].items()]
        atomic_write_json(metrics, out / "metrics.json")
        atomic_write_text(_markdown_table(rows, metrics), out / "table.md")
        atomic_write_text(rows_to_csv(rows), out / "table.csv")
        (out / "partial.json").unlink(missing_ok=True)
        from .plots import save_synset_grid
        for method, r in (results.items() if grids else ()):
            if "synset" in r:  # a reused method's grid is the one its own run wrote
                save_synset_grid(r["synset"], out / f"synset_{method.replace('+', '_')}.png",
                                 title=f"{method} on {metrics['dataset_label']}, IPC {ipc}, profile {profile}")
    return metrics


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
    return {"method": method, "acc_mean_%": round(100 * acc["mean"], 2), "acc_std_%": round(100 * acc["std"], 2),
            "cmi_feature_nats": round(feature["mean"], 6), "cmi_logit_nats": round(logit["mean"], 4),
            "distill_s": r.get("distill_seconds"), "models": acc["num_models"]}


def _reusable(out_dir, dataset, ipc, profile, methods, seed, overrides) -> tuple[dict | None, dict]:
    """What ``out_dir`` already holds of this comparison: its metrics.json if that is exactly this
    comparison (same methods, configs and pool), else None; and each method whose result there
    (metrics.json first, then partial.json) has exactly its config and this pool, with the file's
    provenance where the method has none of its own, its dataset label and pool description."""
    as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731  (tuples become lists, as in the file)
    base = methods[0].split("+")[0]
    pool_key = _pool_config(profile, dataset, base, ipc, seed, overrides).key()
    configs = {m: as_json(make_config(profile, dataset, m, ipc, seed, overrides=overrides).to_dict()) for m in methods}
    found, complete = {}, None
    for name in ("metrics.json", "partial.json"):
        path = None if out_dir is None else Path(out_dir) / name
        if path is None or not path.exists():
            continue
        old = json.loads(path.read_text())
        if old.get("proxy_pool", {}).get("key") != pool_key:
            continue
        for method, r in old.get("methods", {}).items():
            if method in configs and method not in found and r.get("config") == configs[method]:
                found[method] = {"provenance": old["provenance"], **r, "dataset_label": old["dataset_label"],
                                 "proxy_pool": old["proxy_pool"]}
        if name == "metrics.json" and list(old.get("methods", {})) == list(methods) and len(found) == len(methods):
            complete = old
    return complete, found


def _pool_config(profile, dataset, base, ipc, seed, overrides):
    """The proxy pool of a comparison: the +CMI config's pool (it measures the baseline too), changed
    only by ``pool.*`` overrides."""
    return make_config(profile, dataset, f"{base}+cmi", ipc, seed, overrides=_pool_overrides(overrides)).pool


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


__all__ = ["compare_methods", "cell_provenance", "run_or_resume", "run_dir_for", "runs_dir", "evaluated", "setup", "main_table",
           "cross_architecture", "curve_runs", "run_curve"]


def main_table(profile: str, datasets, ipcs, methods=("dm", "dm+cmi"), seed: int = 0, data_root=None,
               device=None, overrides: list[str] | None = None, progress: bool = True,
               cells_dir: str | Path | None = None) -> tuple[list[dict], dict]:
    """Base versus base+CMI over datasets x IPC: one row per (dataset, IPC) with each method's accuracy
    (mean +- std, %), the +CMI difference, and the published number where dataset and protocol match.
    With ``cells_dir`` each (dataset, IPC) cell is written as its own comparison report as soon as it
    is done (``cells_dir/<dataset>_ipc<IPC>/``), so a long table that is stopped keeps its finished cells,
    and a cell whose report there has exactly these configs is reused instead of recomputed."""
    from .reference import reference
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
CURVE_EVALS = {"smoke": 3, "cpu": 4, "paper": 5}


def eval_points(available: list[int], count: int) -> list[int]:
    """``count`` of the ``available`` snapshot iterations, evenly spaced, first and last included."""
    if count >= len(available):
        return list(available)
    picks = {available[round(i * (len(available) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def run_curve(result, dataset: Dataset, pool: ProxyPool, eval_config, seed: int, device, evals: int,
              progress: bool = True) -> dict:
    """CMI (feature and logit space, mean over the pool) at every snapshot of a finished run, and test
    accuracy at ``evals`` of them, each with the distillation wall time at that iteration.
    Returns {"tracks": [{iteration, seconds, cmi_feature, cmi_logit}], "evals": [{iteration, seconds,
    acc_mean, acc_std, accs}]}; CMI is cached in the run folder per pool, accuracy by `evaluated`."""
    from .distill import snapshots
    snaps = snapshots(result.out_dir)
    if not snaps:
        raise ArtefactError(f"run {result.out_dir} has no snapshots (made by an older ddcmi?); delete it and run again")
    seconds = {0: 0.0, **{s["iteration"]: s["seconds"] for s in result.history["steps"]}}
    labels = result.synset.labels.to(device)
    cache = result.out_dir / f"tracks-{pool.config.key()}.json"
    tracks = {t["iteration"]: t for t in (json.loads(cache.read_text()) if cache.exists() else [])}
    for it, path in snaps.items():
        if it not in tracks:
            x = torch.load(path, weights_only=True).to(device)
            tracks[it] = {"iteration": it, "seconds": seconds.get(it, 0.0),
                          **{f"cmi_{sp}": measure_cmi(x, labels, pool, space=sp)["mean"] for sp in ("feature", "logit")}}
    atomic_write_json([tracks[i] for i in sorted(tracks)], cache)
    out_evals = []
    for it in eval_points(sorted(snaps), evals):
        x = torch.load(snaps[it], weights_only=True)
        acc = evaluated(x, result.synset.labels, dataset, eval_config, seed, device, progress)
        out_evals.append({"iteration": it, "seconds": seconds.get(it, 0.0), "acc_mean": acc["mean"],
                          "acc_std": acc["std"], "accs": acc["accs"]})
    return {"tracks": [tracks[i] for i in sorted(tracks)], "evals": out_evals}


def curve_runs(profile: str, dataset: str, ipc: int, methods=("dm", "dm+cmi"), seed: int = 0,
               lambdas=(), data_root=None, device=None, progress: bool = True):
    """The profile's runs of ``methods`` (the same runs the tables use) with their curves (`run_curve`),
    plus a lambda sweep of the first +CMI method (final numbers only). Returns (runs, dataset, pool);
    runs maps a label to {"result", "config", "method", "weight", "final_acc", "cmi_feature",
    "cmi_logit"} and, for ``methods``, "tracks" and "evals"."""
    plus = next((m for m in methods if m.endswith("+cmi")), methods[0].split("+")[0] + "+cmi")
    device, ds, sampler, pool = setup(profile, dataset, ipc, seed, plus.split("+")[0], data_root, device, progress)
    wanted = [(m, m, {}) for m in methods] + [(f"{plus} lambda={lam:g}", plus, {"cmi.weight": lam}) for lam in lambdas]
    out = {}
    for label, method, extra in wanted:
        cfg = make_config(profile, dataset, method, ipc, seed, overrides=extra)
        res = run_or_resume(cfg, ds, device, pool, progress, sampler)
        x, y = res.synset.images.to(device), res.synset.labels.to(device)
        out[label] = {"result": res, "config": cfg, "method": method, "weight": cfg.cmi.weight,
                      "final_acc": evaluated(res.synset.images, res.synset.labels, ds, cfg.eval, cfg.seed, device, progress),
                      "cmi_feature": measure_cmi(x, y, pool, space="feature")["mean"],
                      "cmi_logit": measure_cmi(x, y, pool, space="logit")["mean"]}
        if label in methods:
            out[label].update(run_curve(res, ds, pool, cfg.eval, cfg.seed, device, CURVE_EVALS[profile], progress))
    return out, ds, pool
