"""Published reference accuracies (ConvNet-3 test accuracy, %, method.md section 7).

They hold for the genuine datasets under the standard protocol (1000 evaluation epochs, the
published distillation settings). ``reference(method, dataset, ipc, profile)`` returns a number only
when all of that matches, so a table never sets a reduced run or the JPEG copy of CIFAR-10 beside a
published number as if they were comparable.
"""
from __future__ import annotations

REFERENCE: dict[tuple[str, str, int], float] = {}
_TABLE = {
    "random": ((15.4, 31.0, 50.6), (4.2, 14.6, 33.4)),
    "dc": ((28.3, 44.9, 53.9), (12.8, 25.2, None)),
    "dsa": ((28.8, 52.1, 60.6), (13.9, 32.3, 42.8)),
    "dm": ((26.0, 48.9, 63.0), (11.4, 29.7, 43.6)),
    "idm": ((45.6, 58.6, 67.5), (20.1, 45.1, 50.0)),
    "mtt": ((46.3, 65.3, 71.6), (24.3, 40.1, 47.7)),
    "idc": ((50.6, 67.5, 74.5), (None, 45.1, None)),
}
for _method, (_c10, _c100) in _TABLE.items():
    for _ds, _row in (("cifar10", _c10), ("cifar100", _c100)):
        for _ipc, _acc in zip((1, 10, 50), _row):
            if _acc is not None:
                REFERENCE[(_method, _ds, _ipc)] = _acc
WHOLE_DATASET = {"cifar10": 84.8, "cifar100": 56.2}


def reference(method: str, dataset: str, ipc: int, profile: str) -> float | None:
    """The published accuracy (%) of a base method, or None where it would not be comparable."""
    if profile != "paper":
        return None
    return REFERENCE.get((method.lower(), dataset, ipc))
