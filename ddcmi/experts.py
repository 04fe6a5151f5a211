"""MTT's expert buffer: N networks trained on the real data, their parameters after every epoch.

Built like the proxy pool (trained once, cached under a key of its config in the run store's
``experts/``, one file per expert, resumable expert by expert and epoch by epoch) but loaded lazily:
:meth:`ExpertBuffer.epochs` memory-maps one expert's file and reads the epochs asked for, so a buffer
of 100 experts x 50 epochs (about 6.5 GB for CIFAR-10's ConvNet-3) never sits in memory.

An expert file holds ``trajectory``: a (epochs + 1) x P float32 tensor, row t = the flattened
parameters (``model.parameters()`` order) after t epochs (row 0 = the initialisation), and the
parameter names and shapes it flattens, checked against the network that uses it.

Recipe (method.md section 4): plain SGD lr 0.01, no momentum, no weight decay, batch 256, DSA
augmentation drawn independently per image, constant lr; optionally on ZCA-whitened data
(``zca``: :mod:`ddcmi.transforms`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import store
from .augment import DSAConfig
from .data import Dataset
from .errors import ArtefactError, ConfigError
from .keys import config_key, same_config
from .models import DDNet, create_model
from .proxy import _training_split, accuracy
from .train import (Checkpoint, Recipe, build_missing, fresh_networks, group_name, has_buffers, member_checkpoint,
                    resumable_training_stacked)
from .utils import atomic_torch_save, atomic_write_json, load_artefact, provenance, slug

FORMAT = "ddcmi-expert-v1"
PARTIAL_FORMAT = "ddcmi-expert-partial-v1"


@dataclass(frozen=True)
class ExpertConfig:
    """The expert buffer; defaults are MTT's release (100 ConvNet-3 experts x 50 epochs)."""

    dataset: str
    arch: str = "convnet3"
    count: int = 100
    epochs: int = 50
    seed: int = 0
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    zca: bool = False  # train on ZCA-whitened images (the student then works in that space too)
    train_per_class: int = 0  # 0 = the whole train split; n > 0 = n random images per class (approximation)
    dsa: DSAConfig = field(default_factory=DSAConfig)
    arch_kwargs: dict = field(default_factory=dict)
    compile: bool = False  # torch.compile each expert's training step (a speed switch: equal within float rounding)
    # train this many experts together (stacked parameters, one vmapped step for all: a GPU's fast path; each
    # takes the same draws as alone and ends, trajectory and all, equal within float rounding); networks with
    # buffers (batch norm) train one by one. A speed switch: its own key entry, off (1) by default
    stacked: int = 1

    def key(self) -> str:
        """Stable: only the values that differ from the defaults enter the digest (ddcmi.keys)."""
        return f"{slug(self.dataset)}-{self.arch}-n{self.count}-e{self.epochs}-s{self.seed}-{config_key(self)}"

    def describe(self) -> str:
        subset = "all" if not self.train_per_class else f"{self.train_per_class}/class"
        return (f"{self.count} x {self.arch} {self.arch_kwargs or ''}experts, {self.epochs} epochs on {subset}"
                f"{', ZCA' if self.zca else ''} ({self.key()})")

    def recipe(self) -> Recipe:
        return Recipe(epochs=self.epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, dsa=self.dsa, compile=self.compile)


def experts_dir(config: ExpertConfig, root: str | Path | None = None) -> Path:
    return Path(root or store.experts_dir()) / config.key()


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    """All parameters in ``model.parameters()`` order, flattened into one float32 vector (CPU)."""
    return torch.cat([p.detach().reshape(-1).to("cpu", torch.float32) for p in model.parameters()])


def parameter_layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


class ExpertBuffer:
    """The trained experts of a config, read lazily: :meth:`epochs` returns chosen epochs of one expert."""

    def __init__(self, config: ExpertConfig, directory: Path, layout: list, info: dict | None = None):
        self.config, self.directory, self.layout = config, directory, [(n, tuple(s)) for n, s in layout]
        self.info = info or {}
        self._verified: set[int] = set()

    def __len__(self) -> int:
        return self.config.count

    def path(self, index: int) -> Path:
        return self.directory / f"expert_{index:04d}.pt"

    def epochs(self, index: int, epochs: list[int], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """The flattened parameters of expert ``index`` after each of ``epochs``. The first access to an
        expert verifies its whole file (format, config, checksum); later ones memory-map it."""
        bad = [e for e in epochs if not 0 <= e <= self.config.epochs]
        if bad:
            raise ConfigError(f"expert epochs {bad} are outside 0..{self.config.epochs} of buffer {self.config.key()}; "
                              f"lower max_start_epoch / expert_epochs or build a buffer with more epochs")
        path = self.path(index)
        if index not in self._verified:
            _check_expert(path, self.config, index, self.layout)
            self._verified.add(index)
        d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return [d["trajectory"][e].clone().to(device) for e in epochs]

    @classmethod
    def build(cls, config: ExpertConfig, dataset: Dataset, device: torch.device | str = "cpu",
              root: str | Path | None = None, progress: bool = True) -> "ExpertBuffer":
        """Train the experts that are not cached yet (resumable), then open the buffer."""
        from .validate import validate
        validate(config, "expert buffer config")
        if dataset.name != config.dataset:
            raise ConfigError(f"expert config is for {config.dataset!r} but the dataset given is {dataset.name!r}")
        device = torch.device(device)
        d = experts_dir(config, root)
        data: dict = {}

        def train(indices: list[int]) -> list[float]:
            if not data:  # prepared once, only when an expert is missing
                from .evaluate import TestSet
                data["x"], data["y"] = _training_split(dataset, config, device, _transform(config, dataset))
                data["test"] = TestSet(dataset, device, zca=config.zca)
            t0 = time.time()
            trained = _train_experts(config, dataset, data["x"], data["y"], indices, device, progress, d)
            spent = (time.time() - t0) / len(indices)  # shared evenly by the experts trained together
            accs = []
            for i, (model, trajectory) in zip(indices, trained):
                accs.append(accuracy(model, data["test"].x, data["test"].y))
                atomic_torch_save({"format": FORMAT, "config": dataclasses.asdict(config), "index": i,
                                   "layout": [[n, list(s)] for n, s in parameter_layout(model)],
                                   "trajectory": trajectory, "test_acc": accs[-1],
                                   "train_seconds": round(spent, 1)}, d / f"expert_{i:04d}.pt")
                _partial(d, i).unlink(missing_ok=True)
            return accs

        group = config.stacked if not has_buffers(_new_expert(config, dataset)) else 1
        build_missing(d, "expert", "expert buffer", config.count, config.epochs, PARTIAL_FORMAT, train, progress,
                      f"expert buffer {config.key()}", group)
        return cls.open(config, dataset, root, device)

    @classmethod
    def open(cls, config: ExpertConfig, dataset: Dataset, root: str | Path | None = None,
             device: torch.device | str = "cpu") -> "ExpertBuffer":
        """The buffer of ``config`` (every expert file must exist); files are verified when first used."""
        d = experts_dir(config, root)
        missing = [i for i in range(config.count) if not (d / f"expert_{i:04d}.pt").exists()]
        if missing:
            raise ArtefactError(f"expert buffer {d} lacks {len(missing)} of {config.count} experts (first: {missing[0]}); "
                                f"build it with `ddcmi experts --dataset {config.dataset} ...` or ExpertBuffer.build(...)")
        layout = parameter_layout(_new_expert(config, dataset))
        info_path = d / "buffer.json"
        info = {"config": dataclasses.asdict(config), "key": config.key(), "dir": str(d)}
        if not info_path.exists():
            accs = [load_artefact(d / f"expert_{i:04d}.pt", FORMAT, "expert", _FIX).get("test_acc")
                    for i in range(config.count)]
            info.update(test_acc=accs, test_acc_mean=sum(accs) / len(accs) if all(a is not None for a in accs) else None)
            atomic_write_json({**info, "provenance": provenance(torch.device(device))}, info_path)
        return cls(config, d, layout, info)


_FIX = "delete it and build the buffer again (`ddcmi experts ...` retrains only missing experts)"


def _check_expert(path: Path, config: ExpertConfig, index: int, layout: list) -> None:
    d = load_artefact(path, FORMAT, "expert", _FIX)
    if not same_config(d.get("config") or {}, config) or d.get("index") != index:
        raise ArtefactError(f"{path} was trained for another config ({d.get('config')}, expert {d.get('index')}), "
                            f"not {dataclasses.asdict(config)} expert {index}; {_FIX}")
    theirs = [(n, tuple(s)) for n, s in d.get("layout", [])]
    traj = d.get("trajectory")
    if theirs != list(layout) or not torch.is_tensor(traj) or traj.dim() != 2 or traj.shape[0] != config.epochs + 1 \
            or traj.shape[1] != sum(int(torch.Size(s).numel()) for _, s in layout):
        raise ArtefactError(f"{path} does not fit {config.arch} for this dataset (parameter layout or trajectory "
                            f"shape {tuple(getattr(traj, 'shape', ()))} differs); {_FIX}")


def _transform(config: ExpertConfig, dataset: Dataset):
    if not config.zca:
        return None
    from .transforms import zca_for
    return zca_for(dataset).whiten


def _new_expert(config: ExpertConfig, dataset: Dataset) -> DDNet:
    return create_model(config.arch, dataset.channels, dataset.num_classes, dataset.image_size, **config.arch_kwargs)


def _partial(d: Path, index: int) -> Path:
    return d / f"expert_{index:04d}.partial.pt"


def _train_experts(config: ExpertConfig, dataset: Dataset, x, y, indices: list[int], device, progress: bool,
                   directory: Path | None) -> list[tuple[DDNet, torch.Tensor]]:
    """The experts ``indices`` through the shared trainer (together when there are several, ``stacked``), each
    with its parameters recorded after every epoch and checkpointed with them after every epoch (an
    interrupted expert loses at most one). Returns (network, trajectory) per expert."""
    models, gens = fresh_networks(lambda: _new_expert(config, dataset), config.seed, indices, device)
    rows = [[flat_parameters(m)] for m in models]

    def checkpoint(k: int, i: int) -> Checkpoint:
        def restore(saved: dict) -> None:
            rows[k][:] = list(saved["trajectory"].unbind(0))
        return member_checkpoint(None if directory is None else _partial(directory, i), config, i,
                                 lambda: {"trajectory": torch.stack(rows[k])}, restore)

    resumable_training_stacked(models, x, y, config.recipe(), gens, [checkpoint(k, i) for k, i in enumerate(indices)],
                               PARTIAL_FORMAT, progress=progress, desc=group_name("expert", indices),
                               on_epoch=lambda k, epoch: rows[k].append(flat_parameters(models[k])))
    return [(m.eval(), torch.stack(r)) for m, r in zip(models, rows)]
