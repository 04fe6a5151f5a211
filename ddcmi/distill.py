"""The distiller: a matching method + the CMI regulariser + an optimiser over the synthetic pixels.

``Distiller(config, dataset).run()`` returns a :class:`DistillResult` (the synthetic set and its
history). With an ``out_dir`` it checkpoints every ``checkpoint_every`` iterations and on Ctrl-C,
and resumes from the last checkpoint when started again with the same config. Each regular checkpoint
also leaves the pixels of that iteration in ``snapshots/`` (the initialisation is iteration 0), so
curves along the run (CMI, accuracy) are measured afterwards from the same run that every table uses.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .cmi import CMIRegularizer, measure_cmi
from .config import DistillConfig
from .data import Dataset, RealSampler
from .errors import ArtefactError, ConfigError, NonFiniteLossError
from .evaluate import TestSet, evaluate_synset
from .methods import METHODS, parse_method
from .proxy import ProxyPool
from .synset import SyntheticSet
from .utils import atomic_torch_save, atomic_write_json, load_artefact, pick_device, provenance

CHECKPOINT_FORMAT = "ddcmi-checkpoint-v1"


@dataclass
class DistillResult:
    synset: SyntheticSet
    history: dict  # {"steps": [per-iteration terms], "evals": [accuracy at eval iterations]}
    out_dir: Path | None = None


class Distiller:
    def __init__(self, config: DistillConfig, dataset: Dataset, device: torch.device | str | None = None,
                 out_dir: str | Path | None = None, pool: ProxyPool | None = None, progress: bool = True,
                 sampler: RealSampler | None = None):
        base, with_cmi = parse_method(config.method)
        if dataset.name != config.dataset:
            raise ConfigError(f"config is for dataset {config.dataset!r} but {dataset.name!r} was given")
        if config.ipc < 1:
            raise ConfigError(f"ipc must be >= 1, got {config.ipc}")
        if with_cmi and config.cmi.weight <= 0:
            raise ConfigError(f"{config.method} needs cmi.weight (lambda) > 0; got {config.cmi.weight}")
        if not with_cmi and config.cmi.weight > 0:
            raise ConfigError(f"{config.method} is run without CMI but cmi.weight = {config.cmi.weight}; "
                              f"use method {base}+cmi or cmi.weight=0")
        self.config, self.dataset = config, dataset
        self.device = pick_device(device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.sampler = sampler or dataset.real_sampler(self.device)
        self.sampler.check_ipc(config.ipc)
        self.method = METHODS.get(base)(config, dataset, self.sampler, self.device)
        self.regularizer = None
        if with_cmi or config.track_every:
            if pool is None:
                if config.pool is None:
                    raise ConfigError(f"{config.method} needs a proxy pool config (config.pool)")
                pool = ProxyPool.build(config.pool, dataset, self.device, progress=progress)
            if pool.config.dataset != dataset.name:
                raise ArtefactError(f"the proxy pool was trained on {pool.config.dataset}, not {dataset.name}")
        if with_cmi:
            self.regularizer = CMIRegularizer(pool, config.cmi, input_space="normalized", real=self.sampler,
                                              compile=config.compile)
        self.pool = pool
        self._test_set: TestSet | None = None

    # ------------------------------------------------------------------ state
    def _fresh_state(self) -> dict:
        g = torch.Generator().manual_seed(self.config.seed)
        images, labels = self.method.initial(self.config.ipc, g)
        return {"iteration": 0, "images": images, "labels": labels, "generator": g.get_state(),
                "optimizer": None, "history": {"steps": [], "evals": []}, "elapsed": 0.0,
                "initial_images": self.method.synthetic(images, labels)[0].detach().cpu().clone()}

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoint.pt"

    def _load_checkpoint(self) -> dict | None:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return None
        ckpt = load_artefact(path, CHECKPOINT_FORMAT, "checkpoint", "delete it or run with --fresh")
        mine = self.config.identity()
        theirs = {k: v for k, v in (ckpt.get("config") or {}).items() if k in mine}
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ArtefactError(f"checkpoint {path} belongs to another config (differs in: {', '.join(diff)}); "
                                f"use another output folder or --fresh to discard it")
        ckpt["images"] = ckpt["images"].to(self.device)
        ckpt["labels"] = ckpt["labels"].to(self.device)
        return ckpt

    def _save_checkpoint(self, state: dict) -> None:
        if self.checkpoint_path is None:
            return
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
                           **{k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in state.items()}},
                          self.checkpoint_path)
        atomic_write_json(state["history"], self.out_dir / "history.json")  # readable while the run goes on
        every = self.config.checkpoint_every
        for it in (0, state["iteration"]):  # the set as networks see it (decoded, for IDC)
            path = snapshot_path(self.out_dir, it)
            if (it == 0 or (every and it % every == 0) or it == self.config.iterations) and not path.exists():
                pixels = state["initial_images"] if it == 0 else self.method.synthetic(state["images"], state["labels"])[0]
                atomic_torch_save(pixels.detach().cpu(), path)

    # ------------------------------------------------------------------ run
    def run(self) -> DistillResult:
        cfg = self.config
        state = self._load_checkpoint() or self._fresh_state()
        finished = self.out_dir / "synset.pt" if self.out_dir is not None else None
        if state["iteration"] >= cfg.iterations and finished is not None and finished.exists():
            # a finished run: return it as it was made (its own provenance), do no work
            return DistillResult(SyntheticSet.load(finished, expect_dataset=cfg.dataset), state["history"],
                                 self.out_dir)
        images = state["images"].detach().clone().requires_grad_(True)
        labels = state["labels"]
        g = torch.Generator()
        g.set_state(state["generator"])
        opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        if state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        history = state["history"]
        start_it, t0 = state["iteration"], time.time() - state["elapsed"]

        def snapshot(iteration: int, generator_state: torch.Tensor) -> dict:
            return {"iteration": iteration, "images": images.detach(), "labels": labels,
                    "generator": generator_state, "optimizer": opt.state_dict(), "history": history,
                    "elapsed": time.time() - t0, "initial_images": state["initial_images"]}

        if start_it == 0:  # the initialisation itself, when asked for
            if cfg.track_every and not history.get("tracks"):
                history["tracks"] = [{"iteration": 0, "seconds": 0.0, **self.track(*self._trained_on(images, labels))}]
            if 0 in cfg.eval_at and not history["evals"]:
                acc = self.evaluate(*self._trained_on(images, labels))
                history["evals"].append({"iteration": 0, "seconds": 0.0, "acc_mean": acc["mean"],
                                         "acc_std": acc["std"], "accs": acc["accs"]})
        bar = tqdm(range(start_it, cfg.iterations), initial=start_it, total=cfg.iterations,
                   desc=f"{cfg.method} {cfg.dataset} ipc{cfg.ipc}", disable=not self.progress)
        completed, completed_generator = start_it, g.get_state()
        it, rollback = start_it, (images.detach().clone(), copy.deepcopy(opt.state_dict()))
        try:
            for it in bar:
                # what to roll back to if Ctrl-C lands inside this iteration (a method may update the
                # pixels several times per iteration)
                rollback = images.detach().clone(), copy.deepcopy(opt.state_dict())
                terms = self._step(images, labels, g, opt, it)
                completed, completed_generator = it + 1, g.get_state()
                history["steps"].append({"iteration": it + 1, **terms, "seconds": round(time.time() - t0, 3)})
                bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()})
                done = it + 1
                if cfg.track_every and (done % cfg.track_every == 0 or done == cfg.iterations):
                    history.setdefault("tracks", []).append({"iteration": done, "seconds": round(time.time() - t0, 3),
                                                              **self.track(*self._trained_on(images, labels))})
                if done in cfg.eval_at:
                    acc = self.evaluate(*self._trained_on(images, labels))
                    history["evals"].append({"iteration": done, "seconds": round(time.time() - t0, 3),
                                             "acc_mean": acc["mean"], "acc_std": acc["std"], "accs": acc["accs"]})
                if cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
                    self._save_checkpoint(snapshot(done, completed_generator))
        except KeyboardInterrupt:
            # pixels, optimiser and generator go back to the end of the last completed iteration, so a
            # resumed run continues exactly
            if completed == it:
                with torch.no_grad():
                    images.copy_(rollback[0])
                opt.load_state_dict(rollback[1])
            self._save_checkpoint(snapshot(completed, completed_generator))
            bar.close()
            where = f" at {self.checkpoint_path}" if self.checkpoint_path else ""
            raise KeyboardInterrupt(f"stopped after {completed} of {cfg.iterations} iterations; checkpoint kept{where}; "
                                    f"run the same command again to resume") from None
        bar.close()
        synset = self._synset(*self._trained_on(images, labels), time.time() - t0)
        if self.out_dir is not None:
            synset.save(self.out_dir / "synset.pt")
            atomic_write_json(history, self.out_dir / "history.json")
            atomic_write_json({"config": cfg.to_dict(), "provenance": synset.provenance}, self.out_dir / "config.json")
            atomic_torch_save(state["initial_images"], self.out_dir / "initial_images.pt")
        return DistillResult(synset, history, self.out_dir)

    def _step(self, images, labels, g, opt, it: int) -> dict:
        """One iteration of the method. It calls ``update`` after each matching backward: the CMI
        gradient is added there (one proxy per iteration, drawn at the first update), then the pixels
        move. The history records the mean of each term over the iteration's updates."""
        reg = self.regularizer
        due = reg is not None and reg.is_due(it)
        proxy: list[int] = []

        def update(terms: dict, cmi_images=None, cmi_labels=None, new_proxy: bool = False) -> dict:
            x, y = (images, labels) if cmi_images is None else (cmi_images, cmi_labels)
            if due and not reg.known_zero(y):
                if new_proxy or not proxy:  # one proxy per iteration, or per round where the method asks
                    proxy[:] = [reg.pool.draw(g)]
                terms["cmi"] = reg.backward(x, y, proxy[0])
            terms["loss"] = terms["match"] + (self.config.cmi.weight * terms["cmi"] if "cmi" in terms else 0.0)
            grad_ok = images.grad is None or bool(torch.isfinite(images.grad).all())
            if not math.isfinite(terms["loss"]) or not grad_ok:
                where = f"; the last checkpoint ({self.checkpoint_path}) is kept" if self.checkpoint_path else ""
                raise NonFiniteLossError(
                    f"non-finite loss or gradient at iteration {it + 1} ({terms}){where}. Lower lr_img (now "
                    f"{self.config.lr_img}) or the CMI weight (now {self.config.cmi.weight}), or check the input data")
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                self.method.project_(images)
            return terms

        opt.zero_grad(set_to_none=True)
        per_update = self.method.iteration(images, labels, g, update)
        keys = dict.fromkeys(k for t in per_update for k in t)
        return {k: sum(t[k] for t in per_update if k in t) / sum(k in t for t in per_update) for k in keys}

    def _trained_on(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The synthetic set as networks see it (IDC decodes its storage images), detached."""
        with torch.no_grad():
            x, y = self.method.synthetic(images.detach(), labels)
        return x, y

    def track(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """CMI of the current set under every pool member, in both spaces (not part of the loss)."""
        return {f"cmi_{space}": measure_cmi(images, labels, self.pool, space=space)["mean"]
                for space in ("feature", "logit")}

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, eval_config=None, seed: int | None = None) -> dict:
        eval_config = eval_config or self.config.eval
        if self._test_set is None or self._test_set.x.shape[0] != (eval_config.test_limit or len(self.dataset.test)):
            self._test_set = TestSet(self.dataset, self.device, eval_config.test_limit)
        return evaluate_synset(images, labels, self.dataset, eval_config, seed=self.config.seed if seed is None else seed,
                               device=self.device, test_set=self._test_set, progress=self.progress)

    def _synset(self, images, labels, seconds: float) -> SyntheticSet:
        d = self.dataset
        prov = provenance(self.device)
        prov["wall_time_s"] = round(seconds, 2)
        if self.pool is not None:
            prov["proxy_pool"] = self.pool.config.describe()
        return SyntheticSet(images.cpu(), labels.cpu(), list(d.classes), d.mean, d.std, d.name, d.label,
                            self.config.method, self.config.profile, self.config.seed, self.config.to_dict(), prov)


def snapshot_path(run_dir: str | Path, iteration: int) -> Path:
    return Path(run_dir) / "snapshots" / f"it{iteration:07d}.pt"


def snapshots(run_dir: str | Path) -> dict[int, Path]:
    """The pixel snapshots a run left, by iteration (0 = the initialisation)."""
    return {int(p.stem[2:]): p for p in sorted((Path(run_dir) / "snapshots").glob("it*.pt"))}


def distill(config: DistillConfig, dataset: Dataset, **kwargs) -> DistillResult:
    """Shorthand for ``Distiller(config, dataset, **kwargs).run()``."""
    return Distiller(config, dataset, **kwargs).run()


__all__ = ["Distiller", "DistillResult", "distill", "snapshots", "snapshot_path"]
