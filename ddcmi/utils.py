"""Small shared helpers: atomic writes, cache location, devices, provenance."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def cache_dir() -> Path:
    """Per-user cache: ``$DDCMI_CACHE``, else ``$XDG_CACHE_HOME/ddcmi``, else ``~/.cache/ddcmi``."""
    if os.environ.get("DDCMI_CACHE"):
        return Path(os.environ["DDCMI_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ddcmi"


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the result normal permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def payload_digest(obj: Any) -> str:
    """SHA-256 over an artefact's content (tensors by dtype, shape and bytes; other values as JSON),
    independent of how torch lays the file out: what ``checksum`` holds and ``load_artefact`` checks."""
    import hashlib
    h = hashlib.sha256()

    def walk(v):
        if torch.is_tensor(v):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v, key=str):
                if k == "checksum":
                    continue
                h.update(json.dumps(str(k)).encode())
                walk(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                walk(x)
            h.update(b"]")
        else:
            h.update(json.dumps(v, default=str, sort_keys=True).encode())
    walk(obj)
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary file and a rename: a killed run never leaves half a file. A
    ddcmi artefact (a dict with a ``format``) gets a ``checksum`` of its content, verified on load."""
    if isinstance(obj, dict) and "format" in obj:
        obj = {**obj, "checksum": payload_digest(obj)}
    return _atomic(Path(path), lambda f: torch.save(obj, f))


def load_artefact(path: str | os.PathLike, fmt: str, what: str, fix: str) -> dict:
    """``torch.load`` (weights only) of a ddcmi file whose dict carries ``format == fmt``;
    anything else raises an ArtefactError that names the file, the problem and ``fix``."""
    from .errors import ArtefactError

    try:
        # TorchVersion (a str) is allowed for files written before provenance stored plain strings
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtefactError(f"{what} {path} is unreadable ({type(exc).__name__}: {exc}); {fix}") from exc
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise ArtefactError(f"{path} is not a ddcmi {what} (expected format {fmt!r}); {fix}")
    if "checksum" in d and payload_digest(d) != d["checksum"]:  # files from before checksums have none
        raise ArtefactError(f"{what} {path} is damaged: its content does not match the checksum written with it; {fix}")
    return d


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (a reader sees the old file or the whole new one)."""
    return _atomic(Path(dst), lambda f: f.write(Path(src).read_bytes()))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", path)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU. Chosen once and passed down."""
    from .errors import ConfigError
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} ({exc}); use auto, cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was asked for, but torch sees no CUDA GPU here; use --device cpu "
                              f"(or auto, which picks CUDA only when present)")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif d.type not in ("cpu", "mps"):
        raise ConfigError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return d


# What produces the numbers: a checkout is "dirty" when these differ from its commit. Generated
# outputs (reports/, whose index every reproduction rewrites) do not count.
CODE_PATHS = ("ddcmi", "notebooks", "benchmarks", "pyproject.toml")


def git_commit(root: str | Path | None = None) -> str:
    """The commit of the ddcmi checkout (with ``-dirty`` if its code has uncommitted changes). A copy of
    the source without git metadata (an exported tree sent to a GPU machine, a cluster node) is named by
    ``DDCMI_GIT_COMMIT`` with ``-exported`` appended, since it cannot be checked; else ``unknown``."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    exported = os.environ.get("DDCMI_GIT_COMMIT")
    unknown = f"{exported[:12]}-exported" if exported else "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return unknown
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return sha[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return unknown


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 7B13", "Intel(R) Xeon(R) ..."): Linux's /proc/cpuinfo, else what
    ``platform`` knows, else the architecture. Results and benchmarks name it, as machines differ."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model, arch = cpu_model(), platform.machine()
    name = model if not arch or arch in model else f"{model}, {arch}"  # the fallback model is the architecture
    return f"cpu ({name}, {torch.get_num_threads()} threads)"


_LOADED: dict[str, str] = {}


def loaded_commit() -> str:
    """The commit of the code this process imported (``import ddcmi`` records it): what a result was
    computed by, even when the checkout moves on while a long run is under way."""
    if "commit" not in _LOADED:
        _LOADED["commit"] = git_commit()
    return _LOADED["commit"]


def provenance(device: torch.device, started: float | None = None) -> dict:
    from . import __version__, _malloc

    loaded, now = loaded_commit(), git_commit()
    out = {"ddcmi_version": __version__, "git_commit": loaded, "torch_version": str(torch.__version__),
           "python": platform.python_version(), "device": device_name(device), "host": platform.node(),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "threads": torch.get_num_threads(), "cpu_allocator": _malloc.status().get("reason")}
    if now != loaded:  # the checkout changed under this process: the result is the loaded code's
        out["git_commit_at_end"] = now
    if started is not None:
        out["wall_time_s"] = round(time.time() - started, 2)
    return out


def slug(name: str) -> str:
    """A file-name-safe form of a dataset name (local datasets are named by their path)."""
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/")).strip("_")[-60:] or "dataset"


class SavedTensorMeter:
    """``with SavedTensorMeter() as m: ...``: the peak bytes of the tensors autograd graphs hold for
    backward inside the block (activation memory, counted the same on any device and independent of the
    allocator; a tensor saved twice counts twice). How MTT's two gradient modes are compared."""

    def __init__(self):
        self.now = self.peak = 0

    def __enter__(self) -> "SavedTensorMeter":
        import weakref

        def pack(t: torch.Tensor):
            n = t.numel() * t.element_size()
            self.now += n
            self.peak = max(self.peak, self.now)
            holder = _Saved(t)
            weakref.finalize(holder, self._free, n)  # runs when the graph that saved it is freed
            return holder

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor)
        self._hooks.__enter__()
        return self

    def _free(self, n: int) -> None:
        self.now -= n

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Saved:
    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def bf16_autocast(device: torch.device, enabled: bool):
    """``torch.autocast`` to bfloat16 on ``device``'s type when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
