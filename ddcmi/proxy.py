"""A pool of frozen pretrained proxy networks, trained once, cached on disk, held in memory.

The cache key is derived from the pool's full config (dataset, architecture, count, epochs, seed,
optimiser, subset), so two configs never share files. Members are trained one by one (or a few together,
``stacked``) and each is saved atomically as soon as it is done: an interrupted build resumes with the next
member, and a member in training from its last epoch.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import Dataset
from .errors import ArtefactError, ConfigError
from .models import DDNet, create_model
from .train import (Recipe, build_missing, fresh_networks, group_name, has_buffers, member_checkpoint,
                    resumable_training_stacked)
from . import store
from .keys import config_key, same_config
from .utils import atomic_torch_save, atomic_write_json, bf16_autocast, load_artefact, provenance, slug

FORMAT = "ddcmi-proxy-v1"
PARTIAL_FORMAT = "ddcmi-proxy-partial-v1"  # a member in training, after some epochs


@dataclass(frozen=True)
class PoolConfig:
    """The release's recipe (SGD 0.01, momentum 0.9, wd 1e-3, batch 256, no augmentation, constant lr)."""

    dataset: str
    arch: str = "resnet18"
    count: int = 200
    epochs: int = 40
    seed: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3
    batch_size: int = 256
    train_per_class: int = 0  # 0 = the whole train split; n > 0 = n random images per class (approximation)
    arch_kwargs: dict = field(default_factory=dict)
    compile: bool = False  # torch.compile each member's training step (a speed switch: equal within float rounding)
    # train this many members together (stacked parameters, one vmapped step for all: a GPU's fast path; each
    # member takes the same draws as alone and ends equal within float rounding); networks with buffers (batch
    # norm) train one by one. A speed switch: its own key entry, off (1) by default
    stacked: int = 1
    # "train": the members' forward passes and loss under bf16 autocast (weights, gradients and SGD stay fp32;
    # the recorded test accuracy is measured in fp32). Off ("none") by default: fp32 wherever accuracy is in doubt
    autocast: str = "none"

    def key(self) -> str:
        """Stable: only the values that differ from the defaults enter the digest (ddcmi.keys)."""
        return f"{slug(self.dataset)}-{self.arch}-n{self.count}-e{self.epochs}-s{self.seed}-{config_key(self)}"

    def recipe(self) -> Recipe:
        """Each member's training recipe for the shared trainer."""
        return Recipe(epochs=self.epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, compile=self.compile, bf16=self.autocast == "train")

    def describe(self) -> str:
        subset = "all" if not self.train_per_class else f"{self.train_per_class}/class"
        return f"{self.count} x {self.arch} {self.arch_kwargs or ''}, {self.epochs} epochs on {subset} ({self.key()})"

    def title(self) -> str:
        """The pool in words, for figure titles: "4 ResNet-18 proxies (width 16), 2 epochs on 2,000 images per class"."""
        names = {"resnet18": "ResNet-18", "convnet3": "ConvNet-3", "convnet4": "ConvNet-4", "vgg11": "VGG11",
                 "alexnet": "AlexNet"}
        extra = ", ".join(f"{k} {v}" for k, v in sorted(self.arch_kwargs.items()))
        data = "the full training split" if not self.train_per_class else f"{self.train_per_class:,} images per class"
        return (f"{self.count} {names.get(self.arch, self.arch)} prox{'y' if self.count == 1 else 'ies'}"
                f"{f' ({extra})' if extra else ''}, {self.epochs} epoch{'s' * (self.epochs != 1)} on {data}")

    def __hash__(self):
        return hash(self.key())


def pool_dir(config: PoolConfig, root: str | Path | None = None) -> Path:
    """``<root>/<key>``; by default under the run store's ``pools/`` (ddcmi.store)."""
    return Path(root or store.pools_dir()) / config.key()


class ProxyPool:
    """K frozen networks in eval mode, all in memory; :meth:`draw` picks one uniformly."""

    def __init__(self, config: PoolConfig, members: list[DDNet], mean, std, info: dict | None = None):
        self.config, self.members, self.mean, self.std = config, members, tuple(mean), tuple(std)
        self.info = info or {}
        for m in members:
            m.eval().requires_grad_(False)

    def __len__(self) -> int:
        return len(self.members)

    def draw(self, generator: torch.Generator) -> int:
        """Index of a member drawn uniformly at random."""
        return int(torch.randint(len(self.members), (1,), generator=generator))

    @classmethod
    def build(cls, config: PoolConfig, dataset: Dataset, device: torch.device | str = "cpu",
              root: str | Path | None = None, progress: bool = True, snapshots=()) -> "ProxyPool":
        """Train the members that are not cached yet (resumable), then load the whole pool.

        ``snapshots`` (epoch counts below ``config.epochs``): while a member trains, its state after
        each of those epochs is saved as the same member of the pool with that many epochs (the recipe
        has a constant learning rate, so it is bitwise that pool's member), e.g. the weaker pools of a
        proxy-strength study, at no extra training."""
        from .validate import validate
        validate(config, "proxy pool config")
        if dataset.name != config.dataset:
            raise ConfigError(f"pool config is for {config.dataset!r} but the dataset given is {dataset.name!r}")
        snapshots = check_snapshots(config, snapshots)
        device = torch.device(device)
        d = pool_dir(config, root)
        data: dict = {}

        def save(cfg: PoolConfig, i: int, model, seconds: float) -> float:
            acc = accuracy(model, data["xt"], data["yt"])
            atomic_torch_save({"format": FORMAT, "config": dataclasses.asdict(cfg), "index": i,
                               "state_dict": model.state_dict(), "test_acc": acc,
                               "train_seconds": round(seconds, 1)}, pool_dir(cfg, root) / f"member_{i:04d}.pt")
            return acc

        def train(indices: list[int]) -> list[float]:
            if not data:  # prepared once, only when a member is missing
                data["x"], data["y"] = _training_split(dataset, config, device)
                data["xt"], data["yt"] = dataset.normalize(dataset.test.images, device), dataset.test.labels.to(device)
            t0 = time.time()

            def seconds() -> float:  # this session's training, shared evenly by the members trained together
                return (time.time() - t0) / len(indices)

            def on_epoch(i: int, epoch: int, model) -> None:
                snap = dataclasses.replace(config, epochs=epoch)
                if epoch in snapshots and not (pool_dir(snap, root) / f"member_{i:04d}.pt").exists():
                    save(snap, i, model, seconds())

            models = _train_members(config, dataset, data["x"], data["y"], indices, device, progress, d, on_epoch)
            spent = seconds()  # before the test passes
            accs = [save(config, i, model, spent) for i, model in zip(indices, models)]
            for i in indices:
                _partial(d, i).unlink(missing_ok=True)
            return accs

        group = config.stacked if not has_buffers(_new_member(config, dataset)) else 1
        build_missing(d, "member", "proxy pool", config.count, config.epochs, PARTIAL_FORMAT, train, progress,
                      f"proxy pool {config.key()}", group)
        return cls.load(config, dataset, device, root)

    @classmethod
    def load(cls, config: PoolConfig, dataset: Dataset, device: torch.device | str = "cpu",
             root: str | Path | None = None) -> "ProxyPool":
        d = pool_dir(config, root)
        members, accs, secs = [], [], []
        for i in range(config.count):
            path = d / f"member_{i:04d}.pt"
            if not path.exists():
                raise ArtefactError(f"proxy pool member {path} is missing; build the pool with "
                                    f"`ddcmi pool` or ProxyPool.build(...)")
            ckpt = load_artefact(path, FORMAT, "proxy checkpoint", "delete it and rebuild the pool "
                                 "(`ddcmi pool ...` retrains only missing members)")
            if not same_config(ckpt.get("config") or {}, config) or ckpt.get("index") != i:
                raise ArtefactError(f"{path} was trained for another config ({ckpt.get('config')}, member "
                                    f"{ckpt.get('index')}), not {dataclasses.asdict(config)} member {i}; "
                                    f"delete {d} and rebuild")
            model = _new_member(config, dataset)
            try:
                model.load_state_dict(ckpt["state_dict"])
            except RuntimeError as exc:
                raise ArtefactError(f"{path} does not fit {config.arch}: {exc}") from exc
            members.append(model.to(device))
            accs.append(ckpt.get("test_acc"))
            secs.append(ckpt.get("train_seconds"))
        info = {"config": dataclasses.asdict(config), "key": config.key(), "test_acc": accs,
                "train_seconds": secs, "dir": str(d)}
        if accs and all(a is not None for a in accs):
            info["test_acc_mean"] = sum(accs) / len(accs)
        if not (d / "pool.json").exists():
            atomic_write_json({**info, "provenance": provenance(torch.device(device))}, d / "pool.json")
        return cls(config, members, dataset.mean, dataset.std, info)


def _new_member(config: PoolConfig, dataset: Dataset) -> DDNet:
    return create_model(config.arch, dataset.channels, dataset.num_classes, dataset.image_size,
                        **config.arch_kwargs)


def _training_split(dataset: Dataset, config, device, transform=None):
    """The split a pool member or an expert trains on: all of it, or ``config.train_per_class`` random
    images per class (drawn from ``config.seed``); ``transform`` (ZCA) applied after normalisation."""
    if config.train_per_class:
        g = torch.Generator().manual_seed(config.seed)
        sampler = dataset.real_sampler(device, transform)
        smallest = min(dataset.class_counts())
        return sampler.initial_images(min(config.train_per_class, smallest), g)  # all of a smaller class
    x = dataset.normalize(dataset.train.images, device)
    return (x if transform is None else transform(x)), dataset.train.labels.to(device)


def check_snapshots(config: PoolConfig, snapshots) -> list[int]:
    """The snapshot epochs of a build of ``config``, sorted, each between 1 and ``config.epochs - 1``."""
    epochs = sorted({int(e) for e in snapshots})
    if any(not 0 < e < config.epochs for e in epochs):
        raise ConfigError(f"pool snapshots {epochs} must be epoch counts between 1 and {config.epochs - 1} "
                          f"(the pool's epochs, pool.epochs={config.epochs})")
    return epochs


def _partial(d: Path, index: int) -> Path:
    return d / f"member_{index:04d}.partial.pt"


def _train_members(config: PoolConfig, dataset: Dataset, x, y, indices: list[int], device, progress: bool,
                   directory: Path | None = None, on_epoch=None) -> list[DDNet]:
    """The members ``indices`` with the release's recipe, trained together when there are several
    (``pool.stacked``); with ``directory``, each checkpointed after every epoch (model, optimiser,
    generator) and resumed from there, so an interrupted member loses at most an epoch. ``on_epoch(i,
    epoch, network)`` runs after each epoch for member i."""
    models, gens = fresh_networks(lambda: _new_member(config, dataset), config.seed, indices, device)
    checkpoints = [member_checkpoint(None if directory is None else _partial(directory, i), config, i) for i in indices]
    each = None if on_epoch is None else (lambda k, epoch: on_epoch(indices[k], epoch, models[k]))
    trained = resumable_training_stacked(models, x, y, config.recipe(), gens, checkpoints, PARTIAL_FORMAT,
                                         progress=progress, desc=group_name("member", indices), on_epoch=each)
    return [m.eval() for m in trained]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500, bf16: bool = False) -> float:
    """Top-1 accuracy of ``model`` on (x, y); ``bf16``: the forward passes under bf16 autocast."""
    was_training = model.training
    model.eval()
    with bf16_autocast(x.device, bf16):
        correct = sum(int((model(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum()) for s in range(0, len(y), batch))
    model.train(was_training)
    return correct / len(y)
