"""The synthetic-set artefact: one file with the images and everything needed to use them.

Images are stored **normalised** with the dataset's mean/std (the space the distiller optimises and
the evaluation networks consume). ``SyntheticSet.load(path)`` needs nothing else;
``export(dir)`` writes the ``images.pt`` / ``labels.pt`` pair read by DD-Ranking and the other
public evaluators (normalised space by default, which is what DD-Ranking expects; ``space="unit"``
writes [0,1] pixels instead) plus a ``meta.json`` that says which.

A set that must be trained on in a particular way carries it: ``learned_lr`` (MTT's learned step
size, the evaluation's lr) and ``zca`` (distilled in ZCA space: its images are stored unwhitened, like
every set, and evaluation whitens them and the test set again). :meth:`recipe` applies both to an
evaluation config; ``meta.json`` of an export states them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .data import denormalize
from .errors import ArtefactError
from .utils import atomic_torch_save, atomic_write_json, load_artefact

FORMAT = "ddcmi-synset-v1"


@dataclass
class SyntheticSet:
    images: torch.Tensor  # N x C x H x W, float32, normalised with mean/std
    labels: torch.Tensor  # N, int64
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str
    dataset_label: str
    method: str
    profile: str
    seed: int
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    learned_lr: float | None = None  # MTT: the learned step size, the evaluation's lr (EvalConfig.learned_lr)
    zca: dict | None = None  # distilled in ZCA space ({"eps", "source"}): evaluation whitens again (EvalConfig.zca)

    def __post_init__(self):
        self.validate()

    @property
    def ipc(self) -> int:
        return int(torch.bincount(self.labels).max()) if self.labels.numel() else 0

    def validate(self) -> None:
        if not torch.is_tensor(self.images) or self.images.dim() != 4 or not self.images.is_floating_point():
            raise ArtefactError(f"synthetic images must be a float N x C x H x W tensor, got "
                                f"{getattr(self.images, 'shape', type(self.images))}")
        if not torch.is_tensor(self.labels) or self.labels.shape != (self.images.shape[0],):
            raise ArtefactError(f"labels must be a tensor of shape ({self.images.shape[0]},)")
        if self.labels.numel() and int(self.labels.max()) >= len(self.classes):
            raise ArtefactError(f"labels reach {int(self.labels.max())} but only {len(self.classes)} classes are named")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ArtefactError(f"mean/std have {len(self.mean)} channels, images have {self.images.shape[1]}")
        if not torch.isfinite(self.images).all():
            raise ArtefactError("synthetic images contain NaN or infinite values")

    def recipe(self, config):
        """The evaluation config ``config`` as this set needs it (ZCA, learned lr: ddcmi.evaluate.recipe_for)."""
        from .evaluate import recipe_for
        return recipe_for(config, self.zca, self.learned_lr)

    def to_unit(self) -> torch.Tensor:
        """Images in [0,1] pixel space (clamped), e.g. for plotting."""
        return denormalize(self.images, self.mean, self.std).clamp(0, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(format=FORMAT, images=self.images.detach().cpu().float().contiguous(),
                 labels=self.labels.detach().cpu().long(), mean=list(self.mean), std=list(self.std))
        return d

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path, expect_dataset: str | None = None) -> "SyntheticSet":
        path = Path(path)
        if not path.is_file():
            raise ArtefactError(f"no synthetic set at {path}")
        d = load_artefact(path, FORMAT, "synthetic set", "re-run `ddcmi distill` to recreate it")
        fields = list(dataclasses.fields(cls))
        # a field added later with a default may be absent from an older file; a required one may not
        missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ArtefactError(f"{path} lacks the fields {missing}; it is truncated or from another version")
        s = cls(**{f.name: d[f.name] for f in fields if f.name in d})
        s.mean, s.std = tuple(s.mean), tuple(s.std)
        if expect_dataset is not None and s.dataset != expect_dataset:
            raise ArtefactError(f"{path} holds a {s.dataset} synthetic set, not {expect_dataset}")
        return s

    def export(self, directory: str | Path, space: str = "normalized") -> Path:
        """Write ``images.pt`` (float N x C x H x W) and ``labels.pt`` (int64 N) for public evaluators."""
        if space not in ("normalized", "unit"):
            raise ArtefactError(f"space must be 'normalized' or 'unit', got {space!r}")
        directory = Path(directory)
        images = self.images if space == "normalized" else self.to_unit()
        atomic_torch_save(images.detach().cpu().contiguous(), directory / "images.pt")
        atomic_torch_save(self.labels.cpu(), directory / "labels.pt")
        atomic_write_json({"space": space, "mean": list(self.mean), "std": list(self.std),
                           "dataset": self.dataset, "dataset_label": self.dataset_label, "method": self.method,
                           "classes": self.classes, "ipc": self.ipc, "learned_lr": self.learned_lr, "zca": self.zca,
                           "note": "normalized = (pixel - mean) / std with pixels in [0,1]; unit = pixels in [0,1]"
                                   + ("; distilled in ZCA space: train and test on ZCA-whitened images (eps "
                                      f"{self.zca.get('eps')}, fitted on the normalised training split), as "
                                      "`ddcmi evaluate` does" if self.zca else "")
                                   + ("; train at lr = learned_lr (the step size learned with the set)"
                                      if self.learned_lr is not None else "")},
                          directory / "meta.json")
        return directory
