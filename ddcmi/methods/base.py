"""The method contract: what a distillation method provides and what the distiller gives it.

A method is a class registered with ``@register(name)`` (ddcmi.methods). It owns, beside its code:

- its **defaults per profile** (:meth:`MatchingMethod.defaults`): the values of ``DistillConfig``
  fields that the published release (``paper``) or the measured reduction (``cpu``, ``smoke``) set,
  for a dataset and IPC;
- its **config section** (``options``: a frozen dataclass type, or None) for settings no other
  method has, held in ``DistillConfig.options`` and set with ``--set options.NAME=VALUE``;
- its **lambda table** (``paper_lambda``: (dataset, ipc) -> published lambda; ``cpu_lambda`` for the
  reduced profiles) and its **evaluation recipe** (:meth:`MatchingMethod.eval_recipe`).

At run time the distiller calls :meth:`initial` once, then :meth:`iteration` once per outer
iteration with a :class:`~ddcmi.rng.Draws` (every random draw comes from it, keyed by class and
purpose) and ``update``. The method adds its matching-loss gradient to ``images.grad`` and calls
``update(terms)`` for every image update of the iteration (``terms`` holds ``"match"`` at least):
``update`` adds the CMI gradient (optionally of other images, e.g. IDC's decoded ones, and scaled by
``cmi_scale``: IDM adds each class's share n_c/N at that class's update), checks for NaN and steps the
optimiser. ``update(None)`` is an image update of the global schedule in which
this process has no work (a class it does not compute): the optimiser still steps, with zero
gradient, so momentum moves exactly as in a run over all classes.

A method computes only ``self.classes`` (all classes unless the run is split by class) and draws
everything class-specific from ``draws(purpose, cls=c)``, so a subset of classes computed alone
equals those classes of a full run. A method that trains on the whole synthetic set between
updates (DC/DSA) sees the other classes' current pixels: the distiller exchanges them after every
update of a split run.

Methods with state across iterations (a network queue, a learned step size) return it from
:meth:`state_dict` (saved in every checkpoint, restored by :meth:`load_state_dict` on resume) and add
learnable tensors besides the pixels through :meth:`param_groups`.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import torch

from ..errors import ConfigError

Update = Callable[..., "dict | None"]


class MatchingMethod:
    """Defaults for every hook; DM/DC/DSA keep most of them (the pixels are the set itself)."""

    name: ClassVar[str] = ""
    options: ClassVar[type | None] = None  # the method's own config section (frozen dataclass)
    paper_lambda: ClassVar[dict[tuple[str, int], float]] = {}  # (dataset, ipc) -> published lambda
    cpu_lambda: ClassVar[float] = 0.0
    cpu_lambda_note: ClassVar[str] = ""
    lambda_fallback_dataset: ClassVar[str] = "cifar10"
    # why the method cannot be computed class by class (a class-parallel run refuses it), or None
    no_class_split: ClassVar[str | None] = None
    batches_classes: ClassVar[bool] = False  # honours DistillConfig.batch_classes (all classes in one forward)
    autocasts_real: ClassVar[bool] = False  # honours DistillConfig.autocast "real" (no-grad real embeddings in bf16)
    # the CMI term sees the stored images themselves (DM, DC, DSA, MTT), not several decoded from each (IDC, IDM):
    # then at IPC 1 with synthetic centroids it is identically zero (ddcmi.distill.cmi_free_twin)
    cmi_sees_stored_set: ClassVar[bool] = True

    def __init__(self, config, dataset, sampler, device, classes: Sequence[int] | None = None):
        self.config, self.dataset, self.sampler, self.device = config, dataset, sampler, device
        self.num_classes = dataset.num_classes
        self.classes = list(range(self.num_classes)) if classes is None else sorted(int(c) for c in classes)
        if getattr(config, "batch_classes", False) and not self.batches_classes:
            raise ConfigError(f"batch_classes is implemented for dm (and dm+cmi), not {config.method}; "
                              f"drop --set batch_classes=true")
        if "real" in getattr(config, "autocast", "none") and not self.autocasts_real:
            raise ConfigError(f"autocast={config.autocast!r}: bf16 real-image embeddings are implemented for dm, not "
                              f"{config.method}; use autocast=cmi (the CMI term only) or none")
        if self.no_class_split and len(self.classes) < self.num_classes:
            raise ConfigError(f"{self.name or type(self).__name__} cannot be split by class: {self.no_class_split}")
        bad = [c for c in self.classes if not 0 <= c < self.num_classes]
        if bad or not self.classes:
            raise ConfigError(f"classes {list(classes or [])} are not a non-empty subset of 0..{self.num_classes - 1}")

    # ------------------------------------------------------------------ configuration (class level)
    @classmethod
    def defaults(cls, profile: str, dataset: str, ipc: int) -> dict[str, Any]:
        """``DistillConfig`` values (dotted keys) this method sets at ``profile`` for dataset/IPC."""
        return {}

    @classmethod
    def eval_recipe(cls, eval_config, profile: str):
        """The evaluation config a set of this method is evaluated with by default."""
        return eval_config

    @classmethod
    def cmi_weight(cls, profile: str, dataset: str, ipc: int) -> tuple[float, str]:
        """lambda and where it comes from: the published table at ``paper`` (the nearest published
        IPC, of the same dataset or CIFAR-10, where none is published), ``cpu_lambda`` otherwise."""
        if profile != "paper":
            if cls.cpu_lambda <= 0:
                raise ConfigError(f"no CMI weight is known for {cls.name} at {profile}; pass cmi.weight=...")
            return cls.cpu_lambda, cls.cpu_lambda_note
        ds = "cifar10" if dataset == "cifar10_jpeg" else dataset
        if (ds, ipc) in cls.paper_lambda:
            return cls.paper_lambda[(ds, ipc)], f"published ({cls.name}, {ds}, IPC {ipc})"
        for source in (ds, cls.lambda_fallback_dataset):
            ipcs = [i for (d, i) in cls.paper_lambda if d == source]
            if ipcs:
                nearest = min(ipcs, key=lambda i: abs(i - ipc))
                return (cls.paper_lambda[(source, nearest)],
                        f"not published; borrowed from {cls.name} {source} IPC {nearest}")
        raise ConfigError(f"no CMI weight is known for {cls.name}; pass cmi.weight=... explicitly")

    # ------------------------------------------------------------------ parameterisation
    def initial(self, ipc: int, draws):
        """The optimised tensor and its labels at the start: ``ipc`` real images per class, each
        class from its own generator."""
        self.sampler.check_ipc(ipc)
        images = torch.cat([self.sampler.sample(c, ipc, draws("init", c)) for c in range(self.num_classes)])
        labels = torch.arange(self.num_classes, device=images.device).repeat_interleave(ipc)
        return images, labels

    def synthetic(self, images, labels):
        """The synthetic set a network is trained on (normalised space), from the optimised tensor."""
        return images, labels

    @classmethod
    def input_transform(cls, config, dataset):
        """A map applied to every normalised real image before the method sees it (the pixels then live
        in that space: MTT's ZCA whitening), or None."""
        return None

    def artefact_fields(self) -> dict:
        """What the synthetic set must carry besides its images for a network to train on it as the
        method meant (MTT: ``learned_lr``, ``zca``); {} for most methods."""
        return {}

    def project_(self, images) -> None:
        """Called after every pixel update (no grad): keep the pixels in their domain."""

    def iteration(self, images, labels, draws, update: Update) -> list[dict]:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ state across iterations
    def state_dict(self) -> dict:
        """What the method carries from one iteration to the next (tensors, numbers); {} if nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ConfigError(f"method {self.name} keeps no state but the checkpoint holds {sorted(state)}")

    def param_groups(self) -> list[dict]:
        """Learnable tensors besides the pixels, as optimiser parameter groups ({"params": [...], "lr": ...})."""
        return []

