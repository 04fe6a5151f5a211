"""Stable cache identities: a config's key holds only the values that differ from their defaults.

A field added to a config later, with a default, therefore never changes the key of anything
computed before it: runs, proxy pools, evaluation caches and main-table cells stay found.
``tests/test_keys.py`` pins the keys of today's configs to fixed strings, so a refactor cannot
move them silently.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

_MISSING = dataclasses.MISSING


def _plain(v: Any) -> Any:
    """JSON-shaped value: tuples become lists, nested dataclasses their full dicts."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _default_of(f: dataclasses.Field):
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _MISSING


def non_default(obj: Any) -> dict:
    """The fields of a dataclass instance that differ from the field defaults, recursively: a nested
    dataclass enters as its own non-default fields (and not at all when it has none, unless its
    default is another kind of value, e.g. ``None``). Fields without a default always enter."""
    return _diff(obj, {f.name: _default_of(f) for f in dataclasses.fields(obj)})


def _diff(obj: Any, defaults: dict) -> dict:
    """The fields of ``obj`` whose value differs from ``defaults[name]`` (``_MISSING``: always enters);
    a nested dataclass whose default is one of its type is compared field by field."""
    out = {}
    for f in dataclasses.fields(obj):
        value, default = getattr(obj, f.name), defaults[f.name]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if dataclasses.is_dataclass(default) and type(default) is type(value):
                sub = _diff(value, {g.name: getattr(default, g.name) for g in dataclasses.fields(default)})
                if sub:
                    out[f.name] = sub
            else:
                out[f.name] = non_default(value)
        elif default is _MISSING or _plain(value) != _plain(default):
            out[f.name] = _plain(value)
    return out


def digest(d: Any, length: int = 10) -> str:
    """Short SHA-1 of a JSON-shaped value (keys sorted)."""
    return hashlib.sha1(json.dumps(_plain(d), sort_keys=True).encode()).hexdigest()[:length]


def config_key(obj: Any, length: int = 10) -> str:
    """``digest(non_default(obj))``: the stable key of a config."""
    return digest(non_default(obj), length)


def from_dict(cls: type, d: dict):
    """Rebuild a (nested) config dataclass from its dict (as saved in JSON or a checkpoint). Fields the
    dict lacks take their defaults (a file written before they existed); unknown keys raise KeyError."""
    import typing

    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {unknown}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value, hint = d[f.name], hints[f.name]
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list) and _is_tuple(hint):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _dataclass_in(hint):
    import typing
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):  # Optional[X], X | None
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _is_tuple(hint) -> bool:
    import typing
    return hint is tuple or typing.get_origin(hint) is tuple


def same_config(saved: dict, config) -> bool:
    """Whether a saved config dict describes ``config``, tolerating fields added since at their defaults."""
    try:
        return non_default(from_dict(type(config), saved)) == non_default(config)
    except (KeyError, TypeError):
        return False
