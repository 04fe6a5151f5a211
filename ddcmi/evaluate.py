"""The evaluation protocol: train fresh networks on a synthetic set, test on the full test set.

Standard recipe (method.md section 6): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256,
lr x 0.1 halfway (epoch 501 of 1000), DSA augmentation drawn independently per image, mean +- std
over several freshly initialised networks. Nothing is selected on the test set: each network is
tested once, after its last epoch.

IDC's own recipe (``IDC_RECIPE``, ``idc_recipe(config)``) differs in batch size (64), CutMix (with
probability 0.5, Beta(1, 1) area) and a multi-step schedule (lr x 0.2 at 2/3 and 5/6 of the epochs).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .augment import DSAConfig
from .data import Dataset
from .models import create_model, init_weights_
from .proxy import accuracy
from .train import Recipe, cutmix, train_epochs  # noqa: F401  (cutmix: re-exported)
from .utils import atomic_torch_save, load_artefact

EVAL_CHECKPOINT_FORMAT = "ddcmi-eval-checkpoint-v1"

CROSS_ARCH = ("convnet3", "alexnet", "vgg11", "resnet18")


@dataclass(frozen=True)
class EvalConfig:
    arch: str = "convnet3"
    arch_kwargs: dict = field(default_factory=dict)  # e.g. {"width": 32} (a reduction, recorded with results)
    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    num_models: int = 5
    dsa: DSAConfig = field(default_factory=DSAConfig)
    test_limit: int = 0  # 0 = the full test set; n > 0 = the first n test images (named in the output)
    lr_milestones: tuple[float, ...] = (0.5,)  # fractions of the epochs at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    cutmix_prob: float = 0.0  # probability of CutMix per batch (IDC's recipe: 0.5)
    zca: bool = False  # train and test on ZCA-whitened images (a set distilled in ZCA space: MTT)
    learned_lr: bool = True  # train at the set's learned step size where it has one (MTT), else at ``lr``
    # train the networks together (stacked parameters, one vmapped step for all: the GPU's fast path); the
    # same draws as one after another, equal within float rounding; networks with batch norm train one by one
    stacked: bool = False
    # bf16 autocast (CPUs with native bf16, GPUs): "test" = the test-set forward passes only, "train+test" =
    # the networks' training too (parameters and SGD stay fp32). Off by default: fp32 wherever accuracy is in
    # doubt (docs/performance.md has the measurement)
    autocast: str = "none"
    # torch.compile the networks' training step (the memory-bound layers fused; equal within float rounding,
    # 1.18-1.21x per epoch for ConvNet-3 on a 2-core CPU, docs/performance.md). Off by default, as every speed switch
    compile: bool = False

    @property
    def bf16_train(self) -> bool:
        """Whether the networks train under bf16 autocast (``autocast="train+test"``)."""
        return self.autocast == "train+test"

    @property
    def bf16_test(self) -> bool:
        """Whether the test-set forward passes run under bf16 autocast ("test" and "train+test" both)."""
        return self.autocast != "none"


# IDC's evaluation recipe (method.md section 6: batch 64, CutMix, multi-step lr), beside the standard one.
IDC_RECIPE = {"batch_size": 64, "cutmix_prob": 0.5, "lr_milestones": (2 / 3, 5 / 6), "lr_gamma": 0.2}


def idc_recipe(config: EvalConfig) -> EvalConfig:
    """``config`` with IDC's own training recipe (same architecture, epochs and number of networks)."""
    return dataclasses.replace(config, **IDC_RECIPE)


def standard_recipe(config: EvalConfig) -> EvalConfig:
    """``config`` with the standard protocol's training recipe (same architecture, epochs, networks,
    augmentation and test set): what every method is compared with, beside a method's own recipe."""
    return dataclasses.replace(config, **{k: getattr(EvalConfig(), k) for k in IDC_RECIPE})


def recipe_key(config: EvalConfig) -> dict:
    """The fields of ``config`` that differ from the defaults: a stable key for cached results (a field
    added later with a default never changes the key of what was computed before)."""
    default = dataclasses.asdict(EvalConfig())
    # learned_lr only chooses ``lr`` (recipe_for), which enters the key itself
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "learned_lr" and v != default[k] and not
            (isinstance(v, (list, tuple)) and list(v) == list(default[k]))}


def recipe_of(config: EvalConfig) -> Recipe:
    """The protocol's training recipe as the shared trainer's :class:`~ddcmi.train.Recipe`."""
    return Recipe(epochs=config.epochs, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                  batch_size=config.batch_size, lr_milestones=tuple(config.lr_milestones), lr_gamma=config.lr_gamma,
                  cutmix_prob=config.cutmix_prob, dsa=config.dsa, bf16=config.bf16_train, compile=config.compile)


def train_on_synset(images: torch.Tensor, labels: torch.Tensor, dataset: Dataset, config: EvalConfig,
                    generator: torch.Generator, device: torch.device) -> torch.nn.Module:
    """One freshly initialised network trained on (images, labels) with the protocol's recipe."""
    model = _fresh_network(dataset, config, generator, device)
    x, y = _training_tensors(images, labels, dataset, config, device)
    return train_epochs(model, x, y, recipe_of(config), generator).eval()


def train_stacked_on_synset(images: torch.Tensor, labels: torch.Tensor, dataset: Dataset, config: EvalConfig,
                            generator: torch.Generator, device: torch.device, count: int) -> list[torch.nn.Module]:
    """``count`` networks as ``count`` calls of :func:`train_on_synset` on one generator would give them
    (each one's initialisation and training draws, ``generator`` left where the last call would leave
    it), trained together by :func:`~ddcmi.train.train_epochs_stacked`."""
    from .train import skip_training_draws, train_epochs_stacked
    x, y = _training_tensors(images, labels, dataset, config, device)
    recipe, models, gens = recipe_of(config), [], []
    for _ in range(count):
        models.append(_fresh_network(dataset, config, generator, device))
        gens.append(torch.Generator().set_state(generator.get_state()))
        skip_training_draws(x, y, recipe, generator)  # where the next network's draws start
    return [m.eval() for m in train_epochs_stacked(models, x, y, recipe, gens)]


def _fresh_network(dataset: Dataset, config: EvalConfig, generator: torch.Generator, device) -> torch.nn.Module:
    return init_weights_(create_model(config.arch, dataset.channels, dataset.num_classes, dataset.image_size,
                                      **config.arch_kwargs), generator).to(device)


def _training_tensors(images, labels, dataset: Dataset, config: EvalConfig, device):
    x, y = images.detach().to(device), labels.to(device)
    if config.zca:
        from .transforms import zca_for
        x = zca_for(dataset).whiten(x)
    return x, y


def _has_buffers(dataset: Dataset, config: EvalConfig) -> bool:
    from .train import has_buffers
    return has_buffers(create_model(config.arch, dataset.channels, dataset.num_classes, dataset.image_size,
                                    **config.arch_kwargs))


class TestSet:
    """The normalised test split on the device (ZCA-whitened with ``zca``), prepared once and reused by
    every evaluation."""

    def __init__(self, dataset: Dataset, device: torch.device, limit: int = 0, zca: bool = False):
        n = len(dataset.test) if not limit else min(limit, len(dataset.test))
        self.x = dataset.normalize(dataset.test.images[:n], device)
        if zca:
            from .transforms import zca_for
            self.x = zca_for(dataset).whiten(self.x)
        self.y = dataset.test.labels[:n].to(device)
        self.full = n == len(dataset.test)
        self.zca = zca


def recipe_for(config: EvalConfig, zca: dict | bool | None = None, learned_lr: float | None = None) -> EvalConfig:
    """``config`` as a set needs it: ZCA on where the set was distilled in ZCA space (its artefact
    records ``zca``, so evaluation cannot lose it), and the set's learned step size as ``lr`` where it
    has one and ``config.learned_lr`` is on (``eval.learned_lr=false``: the protocol's fixed lr).
    ``SyntheticSet.recipe(config)`` passes a saved set's fields."""
    changes = {}
    if zca:
        changes["zca"] = True
    if learned_lr is not None and config.learned_lr:
        changes["lr"] = float(learned_lr)
    return dataclasses.replace(config, **changes) if changes else config


def evaluate_synset(images: torch.Tensor, labels: torch.Tensor, dataset: Dataset, config: EvalConfig,
                    seed: int = 0, device: torch.device | str = "cpu", test_set: TestSet | None = None,
                    progress: bool = True, checkpoint: str | Path | None = None) -> dict:
    """Train ``config.num_models`` fresh networks of ``config.arch``; accuracy mean/std in [0, 1].

    With ``checkpoint`` (a file path) the accuracies so far and the generator's state are saved after
    every network, so an evaluation that is stopped resumes at the next network with the same draws (the
    result equals an uninterrupted one); the file is removed when the evaluation is complete. The
    caller keys the path on what is evaluated (:func:`ddcmi.experiments.evaluated` does)."""
    from .errors import ConfigError
    from .validate import validate
    validate(config, "evaluation config")
    want = (dataset.channels, *dataset.image_size)
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        raise ConfigError(f"the set's images are {tuple(images.shape[1:])}, but {dataset.label} ({dataset.name}) images "
                          f"are {want}: evaluate a set on the dataset it was distilled from")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= dataset.num_classes):
        raise ConfigError(f"the set's labels span {int(labels.min())}..{int(labels.max())}, but {dataset.name} has "
                          f"{dataset.num_classes} classes")
    device = torch.device(device)
    if test_set is not None and getattr(test_set, "zca", False) != config.zca:
        raise ConfigError(f"the test set given is {'whitened' if test_set.zca else 'not whitened'} but the "
                          f"evaluation config has zca={config.zca}")
    test_set = test_set or TestSet(dataset, device, config.test_limit, zca=config.zca)
    g = torch.Generator().manual_seed(seed)
    accs, t0, before = [], time.time(), 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        from .errors import ArtefactError
        try:
            saved = load_artefact(checkpoint, EVAL_CHECKPOINT_FORMAT, "evaluation checkpoint", "it is started again")
        except ArtefactError:  # damaged: this function wrote it, so it simply starts again
            saved = {"num_models": None}
        if saved["num_models"] == config.num_models:
            accs, before = list(saved["accs"]), float(saved["seconds"])
            g.set_state(saved["generator"])
    if config.stacked and len(accs) < config.num_models and not _has_buffers(dataset, config):
        try:
            models = train_stacked_on_synset(images, labels, dataset, config, g, device, config.num_models - len(accs))
        except KeyboardInterrupt:
            kept = f"the {len(accs)} network(s) finished before are kept in {checkpoint}" if accs else "nothing was kept"
            raise KeyboardInterrupt(f"evaluation stopped while {config.num_models - len(accs)} networks trained "
                                    f"together; {kept}") from None
        accs += [accuracy(m, test_set.x, test_set.y, bf16=config.bf16_test) for m in models]
    bar = tqdm(range(config.num_models), initial=len(accs), desc=f"evaluate {config.arch}", disable=not progress,
               leave=False)
    for _ in range(len(accs), config.num_models):
        try:
            model = train_on_synset(images, labels, dataset, config, g, device)
        except KeyboardInterrupt:
            bar.close()
            kept = (f"the {len(accs)} finished network(s) are kept in {checkpoint}; the same command continues with "
                    f"the next one" if checkpoint is not None and accs else "nothing was kept")
            raise KeyboardInterrupt(f"evaluation stopped after {len(accs)} of {config.num_models} networks; {kept}") from None
        accs.append(accuracy(model, test_set.x, test_set.y, bf16=config.bf16_test))
        bar.update()
        bar.set_postfix(acc=f"{accs[-1]:.3f}")
        if checkpoint is not None and len(accs) < config.num_models:
            atomic_torch_save({"format": EVAL_CHECKPOINT_FORMAT, "accs": accs, "generator": g.get_state(),
                               "num_models": config.num_models, "seconds": before + time.time() - t0}, checkpoint)
    bar.close()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # written by this function; the result replaces it
    t = torch.tensor(accs, dtype=torch.float64)
    return {"arch": config.arch, "mean": float(t.mean()), "std": float(t.std(unbiased=False)), "accs": accs,
            "num_models": config.num_models, "epochs": config.epochs, "test_images": len(test_set.y),
            "full_test_set": test_set.full, "lr": config.lr, "zca": config.zca, "seconds": round(before + time.time() - t0, 1),
            **({"autocast": config.autocast} if config.autocast != "none" else {}),
            **({"compile": True} if config.compile else {})}
