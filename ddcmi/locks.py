"""A run folder is worked in by one process at a time (``filelock``: released when the process ends,
even by ``kill -9``). The holder writes who it is beside the lock, so a second process can say so."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import RunLockedError

LOCK = ".lock"
HOLDER = ".lock.json"


@contextlib.contextmanager
def locked(folder: str | Path, wait: bool = False, what: str = "run folder"):
    """Hold ``folder``'s lock for the block; without ``wait`` a held lock raises RunLockedError that
    names the holder (pid, host, since when) and the fix."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(d / LOCK))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        holder = _holder(d)
        raise RunLockedError(f"{what} {d.resolve()} is in use by {holder}; wait for it to finish, run the same "
                             f"command with --wait to queue behind it, or use another output folder") from None
    try:
        (d / HOLDER).write_text(json.dumps({"pid": os.getpid(), "host": platform.node(),
                                            "since_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        yield d
    finally:
        with contextlib.suppress(OSError):
            (d / HOLDER).unlink()
        lock.release()


def holder(folder: str | Path) -> str | None:
    """Who works in ``folder`` now ("process N on host (since ...)"), or None when nobody holds its lock
    (or the folder does not exist: nothing is created). Checked by taking the lock for an instant."""
    d = Path(folder)
    if not (d / LOCK).exists():
        return None
    lock = FileLock(str(d / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _holder(d)
    lock.release()
    return None


def _holder(d: Path) -> str:
    try:
        h = json.loads((d / HOLDER).read_text())
        return f"process {h['pid']} on {h['host']} (since {h['since_utc']})"
    except (OSError, ValueError, KeyError):
        return "another process"
