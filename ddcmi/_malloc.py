"""Keep large freed CPU buffers inside the process (glibc), so training loops stop page-faulting.

An activation of 256 CIFAR images x 128 channels x 32 x 32 (fp32) is 134 MB: above glibc's default
mmap threshold, so every such tensor is mapped fresh from the kernel, page-faulted on first touch
and unmapped when freed. Measured on a 2-core machine that costs about half of a DM step (and of
every other training loop: evaluation, proxy pools, DSA, IDC). Raising the mmap and trim thresholds
makes glibc reuse the freed blocks instead (what ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` do when set before a process starts; ``mallopt`` does it at run time).

:func:`tune` runs when ``ddcmi`` is imported (the CLI, papermill kernels, a JupyterLab kernel and
the tests all import it before any large tensor exists). It changes nothing but these two
allocator settings, does nothing outside glibc, and ``DDCMI_MALLOC=default`` turns it off
(to measure the difference: ``benchmarks/bench_allocator.py``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# 1 GiB: larger than any single activation of the paper's settings at IPC 50 (glibc caps the
# value at INT_MAX); freed memory above 2 GiB at the top of the heap is still handed back.
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1

_state: dict = {"applied": False, "reason": "not tried"}


def tune() -> dict:
    """Apply the settings once per process; returns what was done (recorded in provenance)."""
    if _state["reason"] != "not tried":
        return dict(_state)
    if os.environ.get("DDCMI_MALLOC", "").lower() in ("default", "off", "0"):
        _state.update(applied=False, reason="DDCMI_MALLOC=default")
        return dict(_state)
    if not sys.platform.startswith("linux"):
        _state.update(applied=False, reason=f"not glibc ({sys.platform})")
        return dict(_state)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError) as exc:  # musl and others have no mallopt
        _state.update(applied=False, reason=f"no mallopt ({exc})")
        return dict(_state)
    _state.update(applied=ok, reason="mallopt" if ok else "mallopt refused the values",
                  mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD)
    return dict(_state)


def status() -> dict:
    return dict(_state)
