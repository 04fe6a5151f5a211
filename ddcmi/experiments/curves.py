"""Curves along a run: CMI at every snapshot, accuracy at a few, and lambda sweeps."""
from __future__ import annotations

import json

import torch

from ..cmi import measure_cmi
from ..config import override_dict
from ..data import Dataset
from ..errors import ArtefactError
from ..profiles import make_config
from ..proxy import ProxyPool
from ..utils import atomic_write_json
from .runs import evaluated, run_or_resume, setup


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
    from ..distill import snapshot_fields, snapshots
    from ..evaluate import recipe_for
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
        fields = snapshot_fields(snaps[it])  # MTT: the step size learned by that iteration, ZCA
        acc = evaluated(x, result.synset.labels, dataset, recipe_for(eval_config, fields.get("zca"),
                                                                     fields.get("learned_lr")), seed, device, progress)
        out_evals.append({"iteration": it, "seconds": seconds.get(it, 0.0), "acc_mean": acc["mean"],
                          "acc_std": acc["std"], "accs": acc["accs"]})
    return {"tracks": [tracks[i] for i in sorted(tracks)], "evals": out_evals}


def curve_runs(profile: str, dataset: str, ipc: int, methods=("dm", "dm+cmi"), seed: int = 0,
               lambdas=(), data_root=None, device=None, progress: bool = True, overrides: list[str] | None = None):
    """The profile's runs of ``methods`` (the same runs the tables use) with their curves (`run_curve`),
    plus a lambda sweep of the first +CMI method (final numbers only). Returns (runs, dataset, pool);
    runs maps a label to {"result", "config", "method", "weight", "final_acc", "cmi_feature",
    "cmi_logit"} and, for ``methods``, "tracks" and "evals". ``overrides`` (``key=value`` strings, as for
    ``--set``) go into every run's config and the pool's."""
    plus = next((m for m in methods if m.endswith("+cmi")), methods[0].split("+")[0] + "+cmi")
    device, ds, sampler, pool = setup(profile, dataset, ipc, seed, plus.split("+")[0], data_root, device, progress,
                                     overrides)
    given = override_dict(overrides)
    wanted = [(m, m, {}) for m in methods] + [(f"{plus} lambda={lam:g}", plus, {"cmi.weight": lam}) for lam in lambdas]
    out = {}
    for label, method, extra in wanted:
        cfg = make_config(profile, dataset, method, ipc, seed, overrides={**given, **extra})
        res = run_or_resume(cfg, ds, device, pool, progress, sampler)
        x, y = res.synset.images.to(device), res.synset.labels.to(device)
        out[label] = {"result": res, "config": cfg, "method": method, "weight": cfg.cmi.weight,
                      "final_acc": evaluated(res.synset.images, res.synset.labels, ds, res.synset.recipe(cfg.eval), cfg.seed,
                                             device, progress),
                      "cmi_feature": measure_cmi(x, y, pool, space="feature")["mean"],
                      "cmi_logit": measure_cmi(x, y, pool, space="logit")["mean"]}
        if label in methods:
            out[label].update(run_curve(res, ds, pool, cfg.eval, cfg.seed, device, CURVE_EVALS[profile], progress))
    return out, ds, pool
