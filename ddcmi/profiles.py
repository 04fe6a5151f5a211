"""Profiles compose the defaults of a run: ``make_config(profile, dataset, method, ipc)``.

- ``paper``: the published settings (method.md sections 3-6), meant for a GPU.
- ``cpu``: an honest reduction measured on a 2-core machine (see docs/profiles.md for the numbers
  behind each choice); every output records that it ran at ``cpu``.
- ``smoke``: seconds, for tests.

A config is built in layers, each recorded as the source of the values it sets
(:func:`resolve_config`, printed by ``ddcmi config``):

1. ``default``: the ``DistillConfig`` field defaults;
2. ``profile``: what the profile sets for every method (the proxy pool, the evaluation's size,
   smoke's narrow networks), below;
3. ``method``: what the method registers beside itself (``MatchingMethod.defaults``: iterations,
   learning rates, loop schedule, checkpoint cadence; its lambda table; its evaluation recipe);
4. ``override``: ``--set key=value``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .cmi import CMIConfig
from .config import DistillConfig, apply_overrides
from .data import DATASETS
from .errors import UnknownNameError
from .evaluate import EvalConfig
from .methods import METHODS, parse_method
from .proxy import PoolConfig
from .validate import validate

PROFILES = ("smoke", "cpu", "paper")

# The cpu profile's shared reductions, each chosen by measurement on a 2-core machine (docs/profiles.md).
# The pool since 2026-12-03: 4 quarter-width ResNet-18s, 8 epochs on the full training split (about 30
# minutes on 2 cores; the earlier 2 epochs on 2,000 images per class gave 30 % proxies on cifar10_jpeg);
# 5 evaluation networks, so that a 1-point difference is resolved.
CPU = {"pool_arch": "resnet18", "pool_width": 16, "pool_count": 4, "pool_epochs": 8, "pool_train_per_class": 0,
       "eval_epochs": 300, "eval_models": 5}


def _net_for(dataset: str) -> str:
    if dataset not in DATASETS:  # a local dataset given by path: ConvNet-3 unless overridden (--set net=...)
        return "convnet3"
    return "convnet4" if DATASETS.get(dataset).size >= 64 else "convnet3"


def profile_layer(profile: str, dataset: str) -> dict[str, Any]:
    """What ``profile`` sets for every method: the proxy pool and the evaluation's size."""
    net = _net_for(dataset)
    if profile == "paper":
        return {"net": net, "pool": PoolConfig(dataset, arch="resnet18", count=200, epochs=40, seed=0),
                "eval": EvalConfig(arch=net, epochs=1000, num_models=5)}
    if profile == "cpu":
        return {"net": net,
                "pool": PoolConfig(dataset, arch=CPU["pool_arch"], count=CPU["pool_count"], epochs=CPU["pool_epochs"],
                                   seed=0, train_per_class=CPU["pool_train_per_class"],
                                   arch_kwargs={"width": CPU["pool_width"]}),
                "eval": EvalConfig(arch=net, epochs=CPU["eval_epochs"], num_models=CPU["eval_models"])}
    return {"net": net, "net_kwargs": {"width": 32},
            "pool": PoolConfig(dataset, arch="convnet3", count=2, epochs=1, seed=0, train_per_class=50,
                               arch_kwargs={"width": 16}),
            "eval": EvalConfig(arch=net, arch_kwargs={"width": 32}, epochs=30, num_models=2, test_limit=2000)}


def _check(profile: str, dataset: str, method: str) -> tuple[str, bool]:
    if profile not in PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    base, with_cmi = parse_method(method)
    if dataset not in DATASETS and not Path(dataset).expanduser().exists():
        DATASETS.get(dataset)  # unknown name and no such path: the error lists the registered names
    return base, with_cmi


def _leaves(prefix: str, value) -> list[str]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [leaf for f in dataclasses.fields(value) for leaf in _leaves(f"{prefix}.{f.name}", getattr(value, f.name))]
    return [prefix]


def _override_keys(overrides) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides)
    return [o.split("=", 1)[0].strip() for o in overrides]


def resolve_config(profile: str, dataset: str, method: str, ipc: int, seed: int = 0,
                   overrides: list[str] | dict | None = None) -> tuple[DistillConfig, dict[str, str]]:
    """The full config of a run, and for every leaf key (``cmi.weight``, ``pool.count``...) the layer
    that set it: ``default``, ``profile <p>``, ``method <m>`` or ``override``."""
    base, with_cmi = _check(profile, dataset, method)
    cls = METHODS.get(base)
    cfg = DistillConfig(dataset=dataset, method=method, ipc=ipc, profile=profile, seed=seed)
    sources: dict[str, str] = {k: "argument" for k in ("dataset", "method", "ipc", "profile", "seed")}

    def layer(values: dict, source: str) -> None:
        nonlocal cfg
        cfg = apply_overrides(cfg, values)
        for key, value in values.items():
            for leaf in _leaves(key, value):
                sources[leaf] = source

    layer(profile_layer(profile, dataset), f"profile {profile}")
    method_values = dict(cls.defaults(profile, dataset, ipc))
    if cls.options is not None:
        method_values.setdefault("options", cls.options())
    weight, note = cls.cmi_weight(profile, dataset, ipc) if with_cmi else (0.0, "")
    method_values["cmi"] = CMIConfig(weight=weight, space="feature", weight_note=note)
    layer(method_values, f"method {base}")
    recipe = cls.eval_recipe(cfg.eval, profile)
    changed = {f"eval.{f.name}": getattr(recipe, f.name) for f in dataclasses.fields(recipe)
               if getattr(recipe, f.name) != getattr(cfg.eval, f.name)}
    layer(changed, f"method {base} (evaluation recipe)")
    cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    for key in _override_keys(overrides):
        for leaf in _leaves(key, _get(cfg, key)):
            sources[leaf] = "override"
    return cfg, sources


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def make_config(profile: str, dataset: str, method: str, ipc: int, seed: int = 0,
                overrides: list[str] | dict | None = None) -> DistillConfig:
    """The full config of a run at ``profile``, with optional ``key=value`` overrides on top."""
    return resolve_config(profile, dataset, method, ipc, seed, overrides)[0]


def describe_config(cfg: DistillConfig, sources: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(key, value, source) for every leaf of ``cfg``, in field order (``ddcmi config``)."""
    rows = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        for leaf in _leaves(f.name, value):
            rows.append((leaf, _get(cfg, leaf), sources.get(leaf, "default")))
    return rows


def paper_lambda(base: str, dataset: str, ipc: int) -> tuple[float, str]:
    """The published lambda of a base method and a note on where it comes from."""
    return METHODS.get(base).cmi_weight("paper", dataset, ipc)


# Every speed switch measured on a CPU with native bf16 (docs/performance.md): torch.compile of the DM step, the
# evaluation networks and the proxy pool's members (equal within float rounding), and bf16 autocast where the
# accuracy was unchanged within noise (DM's no-grad real embeddings and the CMI term, evaluation's training and
# test passes, the pool members' training). `ddcmi reproduce --fast` passes them to every notebook; off by
# default. "autocast=real+cmi" is DM's: a method without bf16 real embeddings refuses it by name.
FAST_SWITCHES = ["compile=true", "autocast=real+cmi", "eval.compile=true", "eval.autocast=train+test",
                 "pool.compile=true", "pool.autocast=train"]


def check_overrides(profile: str, overrides: list[str]) -> None:
    """Refuse, before anything runs, overrides that no run at ``profile`` takes (a misspelt key, a bad value):
    tried on a DM+CMI config; a method's own ``options.*`` keys are left to the runs of that method."""
    make_config(profile, "mnist", "dm+cmi", 10, 0, [o for o in overrides if not o.strip().startswith("options.")])
