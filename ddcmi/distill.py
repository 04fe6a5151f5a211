"""The distiller: a matching method + the CMI regulariser + an optimiser over the synthetic pixels.

``Distiller(config, dataset).run()`` returns a :class:`DistillResult` (the synthetic set and its
history). With an ``out_dir`` it checkpoints every ``checkpoint_every`` iterations and on Ctrl-C,
and resumes from the last checkpoint when started again with the same config. Each regular checkpoint
also leaves the pixels of that iteration in ``snapshots/`` (the initialisation is iteration 0), so
curves along the run (CMI, accuracy) are measured afterwards from the same run that every table uses.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from tqdm.auto import tqdm

from .cmi import CMIRegularizer, measure_cmi
from .config import DistillConfig
from .data import Dataset, RealSampler
from .errors import ArtefactError, ConfigError, DDCMIError, NonFiniteLossError
from .evaluate import TestSet, evaluate_synset, recipe_for
from .methods import METHODS, parse_method
from .keys import non_default
from .locks import locked
from .proxy import ProxyPool
from .rng import RNG_VERSION, Draws
from .synset import SyntheticSet
from .utils import atomic_torch_save, atomic_write_json, device_name, load_artefact, pick_device, provenance
from .validate import validate

if TYPE_CHECKING:
    from .parallel import ClassParallel

CHECKPOINT_FORMAT = "ddcmi-checkpoint-v1"


@dataclass
class DistillResult:
    synset: SyntheticSet
    history: dict  # {"steps": [per-iteration terms], "evals": [accuracy at eval iterations]}
    out_dir: Path | None = None


class Distiller:
    def __init__(self, config: DistillConfig, dataset: Dataset, device: torch.device | str | None = None,
                 out_dir: str | Path | None = None, pool: ProxyPool | None = None, progress: bool = True,
                 sampler: RealSampler | None = None, classes: Sequence[int] | None = None,
                 exchange: Callable[[torch.Tensor], None] | None = None, wait: bool = False,
                 allow_thread_change: bool = False, parallel: "ClassParallel | None" = None):
        """``classes``: compute only these classes (a class-parallel worker); the others' pixels stay as
        they are unless ``exchange(images)`` fills them in (called after every image update of a split
        run, e.g. an all-gather): what methods that train on the whole set between updates need.
        ``wait``: queue behind another process working in ``out_dir`` instead of refusing.
        ``allow_thread_change``: resume a checkpoint written at another CPU thread count (the results of
        methods other than DM then depend on where the run was split).
        ``parallel``: this process is one rank of a class-parallel run (:mod:`ddcmi.parallel`): it computes
        its block of classes, gradients are summed over the ranks before every step, only rank 0 uses
        ``out_dir``."""
        base, with_cmi = parse_method(config.method)
        validate(config)
        if dataset.name != config.dataset:
            raise ConfigError(f"config is for dataset {config.dataset!r} but {dataset.name!r} was given")
        if with_cmi and config.cmi.weight <= 0:
            raise ConfigError(f"{config.method} needs cmi.weight (lambda) > 0; got {config.cmi.weight}")
        if not with_cmi and config.cmi.weight > 0:
            raise ConfigError(f"{config.method} is run without CMI but cmi.weight = {config.cmi.weight}; "
                              f"use method {base}+cmi or cmi.weight=0")
        self.config, self.dataset = config, dataset
        self.wait, self.allow_thread_change = wait, allow_thread_change
        self.parallel = parallel
        if parallel is not None:
            if classes is not None or exchange is not None:
                raise ConfigError("a class-parallel rank chooses its own classes: pass parallel=... or classes=..., not both")
            classes = parallel.classes(dataset.num_classes)
            device = parallel.device
            if not parallel.writes:
                out_dir, progress = None, False
        self.device = pick_device(device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        method_cls = METHODS.get(base)
        transform = method_cls.input_transform(config, dataset)  # MTT with ZCA: the pixels live whitened
        if transform is None:
            self.sampler = plain = sampler or dataset.real_sampler(self.device)
        else:  # the plain one only where real-data CMI centroids need it (the proxies' space)
            self.sampler = dataset.real_sampler(self.device, transform)
            plain = sampler or (dataset.real_sampler(self.device) if with_cmi and config.cmi.centroids == "real" else None)
        self.sampler.check_ipc(config.ipc)
        if config.rng != RNG_VERSION:
            raise ConfigError(f"config uses random-draw scheme {config.rng}, this ddcmi draws with {RNG_VERSION}; "
                              f"remove rng from the config (or --set rng={RNG_VERSION})")
        self.method = method_cls(config, dataset, self.sampler, self.device, classes)
        self.method.progress = progress
        self.classes = self.method.classes
        self.split = len(self.classes) < dataset.num_classes
        self.exchange = exchange
        if self.split and exchange is None and parallel is None and (with_cmi or getattr(self.method, "trains_on_whole_set", False)):
            raise ConfigError(f"{config.method} computed for some classes needs the other classes' current pixels "
                              f"after every update (CMI batches whole groups of classes; DC/DSA train on the whole "
                              f"set): pass exchange=..., e.g. an all-gather between the workers")
        self.regularizer = None
        if with_cmi or config.track_every:
            if pool is None:
                if config.pool is None:
                    raise ConfigError(f"{config.method} needs a proxy pool config (config.pool)")
                pool = ProxyPool.build(config.pool, dataset, self.device, progress=progress)
            if pool.config.dataset != dataset.name:
                raise ArtefactError(f"the proxy pool was trained on {pool.config.dataset}, not {dataset.name}")
        if with_cmi:
            self.regularizer = CMIRegularizer(pool, config.cmi, input_space="normalized", real=plain,
                                              compile=config.compile, bf16="cmi" in config.autocast)
        self.pool = pool
        self._test_set: TestSet | None = None

    # ------------------------------------------------------------------ state
    def _fresh_state(self) -> dict:
        images, labels = self.method.initial(self.config.ipc, Draws(self.config.seed, 0))
        return {"iteration": 0, "images": images, "labels": labels, "rng": RNG_VERSION,
                "optimizer": None, "method_state": self.method.state_dict(), "history": {"steps": [], "evals": []},
                "elapsed": 0.0, "initial_images": self.method.synthetic(images, labels)[0].detach().cpu().clone(),
                "initial_fields": self.method.artefact_fields()}

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoint.pt"

    def _load_checkpoint(self) -> dict | None:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return None
        ckpt = load_artefact(path, CHECKPOINT_FORMAT, "checkpoint", "delete it or run with --fresh")
        if ckpt.get("rng", 1) != RNG_VERSION:
            raise ArtefactError(f"checkpoint {path} was written with random-draw scheme {ckpt.get('rng', 1)} "
                                f"(ddcmi.rng); this ddcmi draws with scheme {RNG_VERSION}, so resuming would mix two "
                                f"random streams. Run with --fresh to start it again, or use another output folder")
        try:
            theirs = DistillConfig.from_dict(ckpt.get("config") or {})
        except (KeyError, TypeError, DDCMIError) as exc:
            raise ArtefactError(f"checkpoint {path} holds a config this ddcmi cannot read ({exc}); "
                                f"use another output folder or --fresh to discard it") from exc
        if theirs.key() != self.config.key():
            mine, old = non_default(self.config), non_default(theirs)
            diff = sorted(k for k in set(mine) | set(old) if k != "eval" and mine.get(k) != old.get(k))
            raise ArtefactError(f"checkpoint {path} belongs to another config (differs in: {', '.join(diff)}); "
                                f"use another output folder or --fresh to discard it")
        threads, now = ckpt.get("threads"), torch.get_num_threads()
        if threads is not None and threads != now and not getattr(self.method, "thread_invariant", False) \
                and not self.allow_thread_change:
            raise ArtefactError(f"checkpoint {path} was written with {threads} CPU threads, this process has {now}: "
                                f"{self.config.method} results depend on the thread count, so resuming here would "
                                f"continue on another trajectory. Run with {threads} threads (torch.set_num_threads / "
                                f"OMP_NUM_THREADS={threads}), or pass --allow-thread-change (recorded in the history)")
        ckpt["images"] = ckpt["images"].to(self.device)
        ckpt["labels"] = ckpt["labels"].to(self.device)
        return ckpt

    def _save_checkpoint(self, state: dict) -> None:
        if self.checkpoint_path is None:
            return
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), **_to_cpu(state)},
                          self.checkpoint_path)
        atomic_write_json(state["history"], self.out_dir / "history.json")  # readable while the run goes on
        every = self.config.checkpoint_every
        for it in (0, state["iteration"]):  # the set as networks see it (decoded, for IDC)
            path = snapshot_path(self.out_dir, it)
            if (it == 0 or (every and it % every == 0) or it == self.config.iterations) and not path.exists():
                pixels = state["initial_images"] if it == 0 else self.method.synthetic(state["images"], state["labels"])[0]
                fields = state.get("initial_fields", {}) if it == 0 else self.method.artefact_fields()
                if fields:  # what a network needs to train on the snapshot as the method meant (MTT's lr)
                    atomic_write_json(fields, path.with_suffix(".json"))
                atomic_torch_save(pixels.detach().cpu(), path)

    # ------------------------------------------------------------------ run
    def run(self) -> DistillResult:
        """Distill, resume or return the finished run of ``out_dir`` (held locked meanwhile)."""
        if self.out_dir is None:
            return self._run()
        with locked(self.out_dir, wait=self.wait):
            return self._run()

    def finished(self) -> DistillResult | None:
        """The finished run in ``out_dir`` (``synset.pt`` and ``config.json`` of this config), else None:
        recognised without its checkpoint too."""
        return None if self.out_dir is None else finished_run(self.out_dir, self.config)

    def _run(self) -> DistillResult:
        cfg = self.config
        par = self.parallel
        writer = par is None or par.writes
        done = self.finished()
        if par is not None:  # rank 0 alone reads the run folder; the others take what it found
            done = par.broadcast(done)
        if done is not None:  # return it as it was made (its own provenance), do no work
            return done
        state = (self._load_checkpoint() or self._fresh_state()) if writer else None
        if par is not None:
            state = par.broadcast(None if state is None else _to_cpu(state))
            state["images"], state["labels"] = state["images"].to(self.device), state["labels"].to(self.device)
            self._rows = par.row_mask(state["labels"], self.classes)
        history = state["history"]
        history.setdefault("segments", []).append(
            {"from_iteration": state["iteration"], "threads": torch.get_num_threads(), "device": device_name(self.device),
             "host": platform.node(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             **({"processes": par.world} if par is not None else {})})
        images = state["images"].detach().clone().requires_grad_(True)
        labels = state["labels"]
        self.method.load_state_dict(state.get("method_state") or {})
        opt = torch.optim.SGD([{"params": [images]}, *self.method.param_groups()], lr=cfg.lr_img, momentum=cfg.momentum)
        if state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        start_it, t0 = state["iteration"], time.time() - state["elapsed"]

        def snapshot(iteration: int, method_state: dict | None = None) -> dict:
            return {"iteration": iteration, "images": images.detach(), "labels": labels, "rng": RNG_VERSION,
                    "threads": torch.get_num_threads(),
                    "optimizer": opt.state_dict(), "method_state": method_state or self.method.state_dict(),
                    "history": history, "elapsed": time.time() - t0, "initial_images": state["initial_images"],
                    "initial_fields": state.get("initial_fields", {})}

        if start_it == 0 and writer:  # the initialisation itself, when asked for
            if cfg.track_every and not history.get("tracks"):
                history["tracks"] = [{"iteration": 0, "seconds": 0.0, **self.track(*self._trained_on(images, labels))}]
            if 0 in cfg.eval_at and not history["evals"]:
                acc = self.evaluate(*self._trained_on(images, labels))
                history["evals"].append({"iteration": 0, "seconds": 0.0, "acc_mean": acc["mean"],
                                         "acc_std": acc["std"], "accs": acc["accs"]})
        bar = tqdm(range(start_it, cfg.iterations), initial=start_it, total=cfg.iterations,
                   desc=f"{cfg.method} {cfg.dataset} ipc{cfg.ipc}", disable=not self.progress)
        completed = start_it
        it, rollback = start_it, self._rollback_point(images, opt)
        try:
            for it in bar:
                # what to roll back to if Ctrl-C lands inside this iteration (a method may update the
                # pixels several times per iteration, and carry state)
                rollback = self._rollback_point(images, opt)
                terms = self._step(images, labels, opt, it)
                completed = it + 1
                history["steps"].append({"iteration": it + 1, **terms, "seconds": round(time.time() - t0, 3)})
                bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()})
                done = it + 1
                if writer and cfg.track_every and (done % cfg.track_every == 0 or done == cfg.iterations):
                    history.setdefault("tracks", []).append({"iteration": done, "seconds": round(time.time() - t0, 3),
                                                              **self.track(*self._trained_on(images, labels))})
                if writer and done in cfg.eval_at:
                    acc = self.evaluate(*self._trained_on(images, labels))
                    history["evals"].append({"iteration": done, "seconds": round(time.time() - t0, 3),
                                             "acc_mean": acc["mean"], "acc_std": acc["std"], "accs": acc["accs"]})
                if cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
                    self._save_checkpoint(snapshot(done))
        except KeyboardInterrupt:
            # pixels, optimiser and generator go back to the end of the last completed iteration, so a
            # resumed run continues exactly; a second Ctrl-C while that is saved is held back (the
            # message below still comes)
            held = _hold_interrupts()
            method_state = None
            if completed == it:
                with torch.no_grad():
                    for p, saved in zip(_opt_params(opt), rollback[0]):
                        p.copy_(saved)
                opt.load_state_dict(rollback[1])
                method_state = rollback[2]
            try:
                self._save_checkpoint(snapshot(completed, method_state))
            finally:
                held()
            bar.close()
            where = f" at {self.checkpoint_path}" if self.checkpoint_path else ""
            raise KeyboardInterrupt(f"stopped after {completed} of {cfg.iterations} iterations; checkpoint kept{where}; "
                                    f"run the same command again to resume") from None
        bar.close()
        synset = self._synset(*self._trained_on(images, labels), time.time() - t0)
        if self.out_dir is not None:  # config.json last: it marks the run finished
            atomic_torch_save(state["initial_images"], self.out_dir / "initial_images.pt")
            atomic_write_json(history, self.out_dir / "history.json")
            synset.save(self.out_dir / "synset.pt")
            atomic_write_json({"config": cfg.to_dict(), "provenance": synset.provenance}, self.out_dir / "config.json")
        return DistillResult(synset, history, self.out_dir)

    def _rollback_point(self, images, opt) -> tuple:
        return ([p.detach().clone() for p in _opt_params(opt)], copy.deepcopy(opt.state_dict()),
                copy.deepcopy(self.method.state_dict()))

    def _step(self, images, labels, opt, it: int) -> dict:
        """One iteration of the method. It calls ``update`` after each matching backward: the CMI
        gradient is added there (one proxy per iteration, drawn at the first update), then the pixels
        move. The history records the mean of each term over the iteration's updates."""
        reg = self.regularizer
        due = reg is not None and reg.is_due(it)
        draws = Draws(self.config.seed, it + 1)  # iteration t >= 1; 0 is the initialisation
        proxy: list[int] = []  # the proxy of the current round
        drawn = [0]  # proxies drawn in this iteration: the step of the next draw

        def update(terms: dict | None, cmi_images=None, cmi_labels=None, new_proxy: bool = False,
                   cmi_scale: float = 1.0) -> dict | None:
            x, y = (images, labels) if cmi_images is None else (cmi_images, cmi_labels)
            if new_proxy or not proxy:  # one proxy per iteration, or per round where the method asks
                proxy[:] = [reg.pool.draw(draws("proxy", step=drawn[0]))] if due else [None]
                drawn[0] += 1
            if terms is None:  # an update of the global schedule with no work here (another class's)
                self._apply_update(images, opt)
                return None
            if due and not reg.known_zero(y):
                terms["cmi"] = reg.backward(x, y, proxy[0], weight=self.config.cmi.weight * cmi_scale,
                                            classes=self.classes if self.split else None)
            terms["loss"] = terms["match"] + (self.config.cmi.weight * cmi_scale * terms["cmi"] if "cmi" in terms else 0.0)
            grad_ok = images.grad is None or bool(torch.isfinite(images.grad).all())
            if not math.isfinite(terms["loss"]) or not grad_ok:
                where = f"; the last checkpoint ({self.checkpoint_path}) is kept" if self.checkpoint_path else ""
                raise NonFiniteLossError(
                    f"non-finite loss or gradient at iteration {it + 1} ({terms}){where}. Lower lr_img (now "
                    f"{self.config.lr_img}) or the CMI weight (now {self.config.cmi.weight}), or check the input data")
            self._apply_update(images, opt)
            return terms

        opt.zero_grad(set_to_none=True)
        updates = self.method.iteration(images, labels, draws, update)
        if self.parallel is not None:
            return self.parallel.combine_terms(updates)
        per_update = [t for t in updates if t is not None]
        keys = dict.fromkeys(k for t in per_update for k in t)
        return {k: sum(t[k] for t in per_update if k in t) / sum(k in t for t in per_update) for k in keys}

    def _apply_update(self, images, opt) -> None:
        """Step the optimiser (a zero gradient where no backward ran: momentum still moves), keep the
        pixels in their domain, and in a split run bring in the other classes' pixels."""
        if images.grad is None:
            images.grad = torch.zeros_like(images)
        if self.parallel is not None:  # every rank then steps with the whole set's gradient
            self.parallel.combine_grad_(images.grad, self._rows)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.method.project_(images)
            if self.split and self.exchange is not None:
                self.exchange(images)

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
        """Evaluate the current set (``images`` as :meth:`_trained_on` gives them) as its artefact will be
        (``recipe_for``: the method's learned lr, ZCA)."""
        fields = self.method.artefact_fields()
        eval_config = recipe_for(eval_config or self.config.eval, fields.get("zca"), fields.get("learned_lr"))
        if self._test_set is None or self._test_set.zca != eval_config.zca or \
                self._test_set.x.shape[0] != (eval_config.test_limit or len(self.dataset.test)):
            self._test_set = TestSet(self.dataset, self.device, eval_config.test_limit, zca=eval_config.zca)
        return evaluate_synset(images, labels, self.dataset, eval_config, seed=self.config.seed if seed is None else seed,
                               device=self.device, test_set=self._test_set, progress=self.progress)

    def _synset(self, images, labels, seconds: float) -> SyntheticSet:
        d = self.dataset
        prov = provenance(self.device)
        prov["wall_time_s"] = round(seconds, 2)
        if self.pool is not None:
            prov["proxy_pool"] = self.pool.config.describe()
        return SyntheticSet(images.cpu(), labels.cpu(), list(d.classes), d.mean, d.std, d.name, d.label,
                            self.config.method, self.config.profile, self.config.seed, self.config.to_dict(), prov,
                            **self.method.artefact_fields())


def finished_run(out_dir: str | Path, config: DistillConfig) -> DistillResult | None:
    """The finished run of ``config`` in ``out_dir`` (its ``synset.pt``, and ``config.json`` with this
    config's key), else None."""
    out_dir = Path(out_dir)
    done, conf = out_dir / "synset.pt", out_dir / "config.json"
    if not (done.exists() and conf.exists()):
        return None
    try:
        saved = DistillConfig.from_dict(json.loads(conf.read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError, DDCMIError):
        return None
    if saved.key() != config.key():
        return None
    hist = out_dir / "history.json"
    history = json.loads(hist.read_text()) if hist.exists() else {"steps": [], "evals": []}
    return DistillResult(SyntheticSet.load(done, expect_dataset=config.dataset), history, out_dir)


def cmi_free_twin(config: DistillConfig) -> DistillConfig | None:
    """The config without CMI whose run makes this +CMI config's set bit for bit, or None.

    With synthetic centroids each class's centroid is the mean of its own images' probabilities, so
    with one image per class every image is its centroid: the CMI and its gradient are identically zero
    (``CMIRegularizer.known_zero`` then skips the term). Where the CMI term sees the stored images
    themselves (``cmi_sees_stored_set``: DM, DC, DSA, MTT; not IDC or IDM, which decode several images
    per class), a +CMI run at IPC 1 therefore does its base method's arithmetic and draws (proxy draws
    have their own stream) and makes its set (tests/test_twin.py). The twin is the config the profile
    builds for the base method with the same overrides."""
    if not config.uses_cmi or config.cmi.centroids != "synthetic" or config.ipc > 1:
        return None
    if not METHODS.get(config.base_method).cmi_sees_stored_set:
        return None
    return dataclasses.replace(config, method=config.base_method,
                               cmi=dataclasses.replace(config.cmi, weight=0.0, weight_note=""))


RUN_FILES = ("checkpoint.pt", "synset.pt", "history.json", "config.json", "initial_images.pt", "eval.json",
             "evaluate.json")


def discard_run(run_dir: str | Path) -> list[Path]:
    """Delete what a run wrote in ``run_dir`` (``--fresh``) and nothing else: the files above, its
    snapshots and CMI tracks. A non-empty folder that holds none of them is not a run and is refused."""
    d = Path(run_dir)
    if not d.exists():
        return []
    mine = [d / n for n in RUN_FILES if (d / n).is_file()] + sorted(d.glob("tracks-*.json"))
    snaps = sorted(p for pattern in ("it*.pt", "it*.json") for p in (d / "snapshots").glob(pattern)) \
        if (d / "snapshots").is_dir() else []
    if not mine and not snaps and any(d.iterdir()):
        raise ConfigError(f"{d.resolve()} is not a ddcmi run folder (no checkpoint.pt, synset.pt or config.json); "
                          f"--fresh deletes only a run's own files, so nothing was removed. Pick another --out")
    for p in mine + snaps:
        p.unlink()
    if (d / "snapshots").is_dir() and not any((d / "snapshots").iterdir()):
        (d / "snapshots").rmdir()
    return mine + snaps


def _to_cpu(state: dict) -> dict:
    return {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in state.items()}


def _hold_interrupts():
    """Ignore SIGINT and SIGTERM until the returned function is called (in the main thread only: a
    worker thread cannot install handlers and needs none)."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return restore


def _opt_params(opt) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def snapshot_path(run_dir: str | Path, iteration: int) -> Path:
    return Path(run_dir) / "snapshots" / f"it{iteration:07d}.pt"


def snapshot_fields(path: str | Path) -> dict:
    """What a snapshot's set carries besides its pixels (``learned_lr``, ``zca``: see SyntheticSet), or {}."""
    meta = Path(path).with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else {}


def snapshots(run_dir: str | Path) -> dict[int, Path]:
    """The pixel snapshots a run left, by iteration (0 = the initialisation)."""
    return {int(p.stem[2:]): p for p in sorted((Path(run_dir) / "snapshots").glob("it*.pt"))}


def distill(config: DistillConfig, dataset: Dataset, **kwargs) -> DistillResult:
    """Shorthand for ``Distiller(config, dataset, **kwargs).run()``."""
    return Distiller(config, dataset, **kwargs).run()


__all__ = ["Distiller", "DistillResult", "distill", "discard_run", "snapshots", "snapshot_path", "snapshot_fields"]
