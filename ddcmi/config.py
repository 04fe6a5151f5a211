"""Typed run configuration and the ``key.sub=value`` overrides applied to it."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .augment import DSAConfig
from .cmi import CMIConfig
from .errors import ConfigError
from .evaluate import EvalConfig
from .keys import digest, non_default
from .proxy import PoolConfig
from .rng import RNG_VERSION
from .utils import slug


@dataclass(frozen=True)
class DistillConfig:
    """Everything that determines a distillation run. Defaults come from a profile (ddcmi.profiles)."""

    dataset: str
    method: str  # a base matching method, optionally with "+cmi": "dm", "dm+cmi"
    ipc: int
    profile: str
    seed: int = 0
    iterations: int = 20_000
    lr_img: float = 1.0
    momentum: float = 0.5
    real_per_class: int = 256
    lr_net: float = 0.01  # gradient matching: the inner network's SGD learning rate
    outer_loop: int = 0  # DC/DSA: image updates per iteration (0 = the published schedule by IPC); IDC: rounds of class updates
    inner_loop: int = 0  # DC/DSA: network epochs on the synthetic set between updates (0 = published); IDC: network steps on real data
    net: str = "convnet3"
    net_kwargs: dict = field(default_factory=dict)
    dsa: DSAConfig = field(default_factory=DSAConfig)
    cmi: CMIConfig = field(default_factory=CMIConfig)
    pool: PoolConfig | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    eval_at: tuple[int, ...] = ()  # iterations at which to evaluate during the run (the end is always evaluated by reports)
    track_every: int = 0  # every k iterations measure CMI (feature and logit) of the set under the pool; 0 = off
    checkpoint_every: int = 100
    compile: bool = False  # torch.compile the matching network and proxies (pays off on long runs)
    # DM: embed every class's real images in one forward and every class's synthetic images in another
    # (instance norm has no batch coupling, so it is the same method; equal to the per-class path within
    # float rounding, tests/test_distill.py). More memory; the fast path on a GPU.
    batch_classes: bool = False
    # bf16 autocast (CPUs with native bf16, GPUs) for parts whose result is used only through a mean or a
    # gradient: "real" = DM's no-grad real-image embeddings, "cmi" = the proxy passes of the CMI term,
    # "real+cmi" = both; "none" (the default) keeps fp32 everywhere (docs/performance.md: what each costs)
    autocast: str = "none"
    options: Any = None  # the method's own config section (a frozen dataclass the method registers), or None
    rng: int = RNG_VERSION  # the scheme of random draws (ddcmi.rng); a checkpoint of another one is not resumed

    @property
    def base_method(self) -> str:
        return self.method.split("+")[0]

    @property
    def uses_cmi(self) -> bool:
        return self.method.endswith("+cmi")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        """The config a saved dict describes (fields added since take their defaults; a dict saved
        before the RNG version was recorded is version 1). The method's section becomes its type."""
        from .keys import from_dict
        from .methods import METHODS, parse_method
        d = dict(d)
        opts = d.pop("options", None)
        d.setdefault("rng", 1)
        cfg = from_dict(cls, d)
        otype = METHODS.get(parse_method(cfg.method)[0]).options
        if isinstance(opts, dict) and otype is not None:
            opts = from_dict(otype, opts)
        return dataclasses.replace(cfg, options=opts)

    def key(self) -> str:
        """The stable identity of the run: the values that differ from the defaults (ddcmi.keys) of
        what determines the distilled pixels (everything but how the result is evaluated afterwards,
        ``eval``, unless ``eval_at`` evaluates during the run: evaluating a run another way never
        distills it again; and the proxy pool only where the run reads it, +CMI or CMI tracking), plus the RNG version, which always enters (a new scheme never finds old runs)."""
        ident = non_default(self)
        if not self.eval_at:
            ident.pop("eval", None)
        ident.get("cmi", {}).pop("weight_note", None)  # a description of lambda, not part of the run
        if not self.uses_cmi and not self.track_every:  # the run never reads its proxy pool: one base run
            ident.pop("pool", None)                     # serves every pool that measures its CMI
        ident["rng"] = self.rng
        return digest(ident)

    def run_name(self) -> str:
        """The run folder's name: readable fields, then :meth:`key`."""
        return f"{slug(self.dataset)}-{self.method.replace('+', '_')}-ipc{self.ipc}-{self.profile}-s{self.seed}-{self.key()}"

    def with_overrides(self, overrides: list[str] | dict | None) -> "DistillConfig":
        return apply_overrides(self, overrides)


def apply_overrides(config, overrides: list[str] | dict | None):
    """Return a copy of a (nested, frozen) dataclass with ``a.b=value`` overrides, type-checked."""
    if not overrides:
        return config
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    for key, value in items:
        config = _set(config, key.split("."), value, key)
    return config


def override_dict(overrides: list[str] | dict | None) -> dict:
    """``key=value`` strings (as for ``--set``) or a dict, as one dict: to merge with overrides of one's own."""
    return dict(overrides) if isinstance(overrides, dict) else dict(map(_split, overrides or []))


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. cmi.weight=100)")
    k, v = item.split("=", 1)
    return k.strip(), v.strip()


def _set(obj, path: list[str], value, full_key: str):
    names = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ConfigError(f"unknown config key {full_key!r}; {type(obj).__name__} has: {', '.join(sorted(names))}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{full_key!r}: {path[0]} is not a section")
        return dataclasses.replace(obj, **{path[0]: _set(current, path[1:], value, full_key)})
    return dataclasses.replace(obj, **{path[0]: _coerce(value, current, full_key)})


def _coerce(value: Any, current: Any, key: str):
    if not isinstance(value, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, str):
            return value
        if isinstance(current, (tuple, list)):
            parsed = json.loads(value) if value.startswith("[") else [v for v in value.split(",") if v]
            return tuple(type(current[0])(v) if current else int(v) for v in parsed)
        if isinstance(current, dict):
            return json.loads(value)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{key}={value!r}: expected a {type(current).__name__} ({exc})") from exc
    raise ConfigError(f"{key} cannot be set from the command line (type {type(current).__name__})")
