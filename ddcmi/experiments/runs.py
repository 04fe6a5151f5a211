"""The run store's contents as experiments use them: distillation runs by config, evaluations by content.

A run lives in ``<store>/runs/<config.run_name()>`` (ddcmi.store: one root shared by the command line,
``ddcmi reproduce`` and JupyterLab), so a repeated or interrupted experiment reuses or resumes it.
Evaluations are cached under ``<store>/runs/evals`` by the content of the set they trained on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from .. import store
from ..data import Dataset, load_dataset
from ..distill import Distiller, cmi_free_twin, finished_run
from ..evaluate import recipe_key
from ..locks import locked
from ..profiles import make_config
from ..proxy import ProxyPool
from ..utils import atomic_copy, atomic_write_json, pick_device, slug


def runs_dir() -> Path:
    """``<store>/runs`` (or ``$DDCMI_RUNS``), absolute."""
    return store.runs_dir()


def run_dir_for(config) -> Path:
    """The run folder of a config: readable fields and its stable key (``DistillConfig.run_name``)."""
    return runs_dir() / config.run_name()


def run_or_resume(config, dataset: Dataset, device, pool: ProxyPool | None = None, progress: bool = True,
                  sampler=None, wait: bool = False):
    """Distill (or resume, or reuse a finished run of) ``config`` in its runs folder (``wait``: queue
    behind another process working there instead of refusing). A +CMI run whose set is its base
    method's bit for bit (``cmi_free_twin``: IPC 1) is taken from the base run when that has finished."""
    twin = cmi_free_twin(config)
    if twin is not None:
        adopt_twin(config, twin, wait)
    return Distiller(config, dataset, device=device, out_dir=run_dir_for(config), pool=pool,
                     progress=progress, sampler=sampler, wait=wait).run()


def adopt_twin(config, twin, wait: bool = False) -> bool:
    """Write ``config``'s run folder from the finished run of ``twin`` (its ``cmi_free_twin``): the same
    set, history, initial images and snapshots under ``config``, with ``same_set_as`` in the provenance naming the
    twin's run and why. Only when the twin has finished and ``config``'s run has not begun (no
    checkpoint, no result); returns whether it wrote the folder."""
    src, out = run_dir_for(twin), run_dir_for(config)

    def begun() -> bool:
        return any((out / n).exists() for n in ("config.json", "checkpoint.pt"))

    if not (src / "config.json").exists() or begun():  # the cheap look first, then again under the lock
        return False
    with locked(out, wait=wait):
        base = finished_run(src, twin)
        if base is None or begun():
            return False
        prov = {**base.synset.provenance,
                "same_set_as": {"run": src.name, "why": "with one image per class and synthetic centroids the CMI and "
                                "its gradient are identically zero: the base method's run makes this set bit for bit"}}
        synset = dataclasses.replace(base.synset, method=config.method, config=config.to_dict(), provenance=prov)
        # its pixel snapshots too (curves along the run read them) and the initialisation
        for path in [src / "initial_images.pt", *sorted((src / "snapshots").glob("it*"))]:
            if path.is_file():
                atomic_copy(path, out / path.relative_to(src))
        atomic_write_json(base.history, out / "history.json")
        synset.save(out / "synset.pt")
        atomic_write_json({"config": config.to_dict(), "provenance": prov}, out / "config.json")  # last: finished
    return True


def evaluated(images, labels, dataset: Dataset, eval_config, seed: int, device, progress: bool = True) -> dict:
    """``evaluate_synset``, cached under ``<runs>/evals`` by the content of the set (pixels and labels),
    the dataset, the evaluation config and the seed: the same set is never trained on twice, whichever
    notebook asks (the initialisation shared by two methods, a run's last snapshot and its result)."""
    from ..evaluate import evaluate_synset
    h = hashlib.sha1()
    h.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    key = json.dumps({"dataset": dataset.name, "eval": recipe_key(eval_config), "seed": seed}, sort_keys=True)
    h.update(key.encode())
    path = store.evals_dir() / f"{slug(dataset.name)}-{eval_config.arch}-{h.hexdigest()[:16]}.json"
    if path.exists():
        return json.loads(path.read_text())["result"]
    result = evaluate_synset(images, labels, dataset, eval_config, seed=seed, device=device, progress=progress,
                             checkpoint=path.with_suffix(".partial.pt"))  # resumes network by network
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


def _pool_config(profile, dataset, base, ipc, seed, overrides):
    """The proxy pool of a comparison: the +CMI config's pool (it measures the baseline too), changed
    only by ``pool.*`` overrides."""
    return make_config(profile, dataset, f"{base}+cmi", ipc, seed, overrides=_pool_overrides(overrides)).pool


def _pool_overrides(overrides):
    return [o for o in (overrides or []) if o.startswith("pool.")]
