"""One place where configs are checked: types and ranges, for the command line and the Python API alike.

:func:`validate` walks a (nested) config dataclass, checks every simple field against its annotation
(an ``int`` field holds an int, a ``float`` field a number, ...) and against the ranges in ``RULES``,
and raises one :class:`~ddcmi.errors.ConfigError` that lists every problem with the key to fix.
"""
from __future__ import annotations

import dataclasses
import typing

from .errors import ConfigError

# (dataclass name, field) -> (lowest allowed, highest allowed or None, inclusive low?)
RULES: dict[tuple[str, str], tuple[float, float | None, bool]] = {
    ("DistillConfig", "ipc"): (1, None, True),
    ("DistillConfig", "seed"): (0, None, True),
    ("DistillConfig", "iterations"): (1, None, True),
    ("DistillConfig", "lr_img"): (0, None, False),
    ("DistillConfig", "momentum"): (0, 1, True),
    ("DistillConfig", "real_per_class"): (1, None, True),
    ("DistillConfig", "lr_net"): (0, None, False),
    ("DistillConfig", "outer_loop"): (0, None, True),
    ("DistillConfig", "inner_loop"): (0, None, True),
    ("DistillConfig", "track_every"): (0, None, True),
    ("DistillConfig", "checkpoint_every"): (0, None, True),
    ("EvalConfig", "epochs"): (1, None, True),
    ("EvalConfig", "lr"): (0, None, False),
    ("EvalConfig", "momentum"): (0, 1, True),
    ("EvalConfig", "weight_decay"): (0, None, True),
    ("EvalConfig", "batch_size"): (1, None, True),
    ("EvalConfig", "num_models"): (1, None, True),
    ("EvalConfig", "test_limit"): (0, None, True),
    ("EvalConfig", "lr_gamma"): (0, None, False),
    ("EvalConfig", "cutmix_prob"): (0, 1, True),
    ("PoolConfig", "count"): (1, None, True),
    ("PoolConfig", "epochs"): (1, None, True),
    ("PoolConfig", "seed"): (0, None, True),
    ("PoolConfig", "lr"): (0, None, False),
    ("PoolConfig", "momentum"): (0, 1, True),
    ("PoolConfig", "weight_decay"): (0, None, True),
    ("PoolConfig", "batch_size"): (1, None, True),
    ("PoolConfig", "train_per_class"): (0, None, True),
    ("PoolConfig", "stacked"): (1, None, True),
    ("ExpertConfig", "count"): (1, None, True),
    ("ExpertConfig", "epochs"): (1, None, True),
    ("ExpertConfig", "seed"): (0, None, True),
    ("ExpertConfig", "lr"): (0, None, False),
    ("ExpertConfig", "momentum"): (0, 1, True),
    ("ExpertConfig", "weight_decay"): (0, None, True),
    ("ExpertConfig", "batch_size"): (1, None, True),
    ("ExpertConfig", "train_per_class"): (0, None, True),
    ("ExpertConfig", "stacked"): (1, None, True),
    ("CMIConfig", "temperature"): (0, None, False),  # weight and interval: CMIConfig checks them itself
    ("CMIConfig", "real_centroid_samples"): (1, None, True),
    ("CMIConfig", "max_batch"): (1, None, True),
}
# (dataclass name, field) -> the values a string field may take
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("DistillConfig", "autocast"): ("none", "real", "cmi", "real+cmi"),
    ("EvalConfig", "autocast"): ("none", "test", "train+test"),
    ("PoolConfig", "autocast"): ("none", "train"),
}
# dataclass name -> pairs of switches that cannot both be on (two routes to the same end)
EXCLUSIVE: dict[str, tuple[tuple[str, str], ...]] = {
    "EvalConfig": (("stacked", "compile"),),  # the stacked trainer (torch.func) is not compiled
    "PoolConfig": (("stacked", "compile"),),
    "ExpertConfig": (("stacked", "compile"),),
}
WIDTH_KEYS = ("net_kwargs", "arch_kwargs")  # {"width": n} must be a positive int
# annotation -> (what it must be, the check); bool is an int to Python, so it is kept apart
TYPES = {int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
         float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
         bool: ("true or false", lambda v: isinstance(v, bool)),
         str: ("a string", lambda v: isinstance(v, str))}


def _on(value) -> bool:
    """Whether a switch is on: true, or a group size above one (``pool.stacked=4``)."""
    return value is True or (type(value) is int and value > 1)


def _problems(obj, prefix: str) -> list[str]:
    out = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value, hint = f"{prefix}{f.name}", getattr(obj, f.name), hints.get(f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += _problems(value, f"{key}.")
            continue
        want, ok = TYPES.get(hint, (None, None))
        if ok is not None and not ok(value):
            out.append(f"{key} must be {want}, got {value!r} ({type(value).__name__})")
            continue
        choices = CHOICES.get((type(obj).__name__, f.name))
        if choices is not None and value not in choices:
            out.append(f"{key} must be one of {', '.join(choices)}, got {value!r}")
        rule = RULES.get((type(obj).__name__, f.name))
        if rule is not None and isinstance(value, (int, float)):
            lo, hi, inclusive = rule
            if (value < lo if inclusive else value <= lo) or (hi is not None and value > hi):
                span = f"{'>=' if inclusive else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
                out.append(f"{key} must be {span}, got {value!r}")
        if f.name in WIDTH_KEYS and isinstance(value, dict) and "width" in value:
            w = value["width"]
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                out.append(f"{key}.width must be a positive integer, got {w!r}")
    for a, b in EXCLUSIVE.get(type(obj).__name__, ()):
        if _on(getattr(obj, a)) and _on(getattr(obj, b)):
            out.append(f"{prefix}{a} and {prefix}{b} are both on, but they are two ways to the same speed-up; "
                       f"turn one of them off ({prefix}{b}=false)")
    return out


def validate(config, what: str = "config") -> None:
    """Raise a ConfigError listing every invalid value of ``config`` (nothing if all is well)."""
    problems = _problems(config, "")
    if problems:
        raise ConfigError(f"invalid {what}: " + "; ".join(problems)
                          + ". Fix the value(s) with --set KEY=VALUE (or in the config you pass)")
