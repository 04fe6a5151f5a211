"""Ctrl-C while the ``ddcmi`` command is still starting (importing torch takes a second or two): one
line and exit code 130 instead of a Python traceback. ``import ddcmi`` from a notebook or a script keeps
Python's own behaviour (the KeyboardInterrupt propagates)."""
from __future__ import annotations

import contextlib
import os
import sys

INTERRUPTED_AT_START = "ddcmi: interrupted while starting; nothing was read or written."


def launched_as_cli() -> bool:
    """True in the ``ddcmi`` console script and in ``python -m ddcmi`` (what torchrun starts)."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    orig = list(getattr(sys, "orig_argv", []))
    as_module = any(a == "-m" and b == "ddcmi" for a, b in zip(orig, orig[1:])) or "-mddcmi" in orig
    return argv0 == "ddcmi" or as_module


@contextlib.contextmanager
def interrupt_guard():
    try:
        yield
    except KeyboardInterrupt:
        if not launched_as_cli():
            raise
        print(f"\n{INTERRUPTED_AT_START}", file=sys.stderr)
        raise SystemExit(130) from None
