"""Shared fixtures. Tests use the offline copies in ../shared/data when present (as on CI) and
otherwise generated files; nothing is downloaded (DDCMI_OFFLINE=1)."""
import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (as on CI); DDCMI_TEST_SHARED points elsewhere (a missing folder
# runs the suite as a machine without the real data would: only the tests that need it are skipped)
SHARED = Path(os.environ.get("DDCMI_TEST_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    cache = os.environ.get("DDCMI_TEST_CACHE") or str(tmp_path_factory.mktemp("ddcmi-cache"))
    old = {k: os.environ.get(k) for k in ("DDCMI_CACHE", "DDCMI_OFFLINE", "DDCMI_RUNS", "DDCMI_DATA", "DDCMI_STORE")}
    os.environ.update(DDCMI_CACHE=cache, DDCMI_OFFLINE="1", DDCMI_STORE=str(tmp_path_factory.mktemp("store")))
    os.environ.pop("DDCMI_RUNS", None)
    if SHARED.is_dir():
        os.environ["DDCMI_DATA"] = str(SHARED)
    else:
        os.environ.pop("DDCMI_DATA", None)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def need_shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"needs the real {name} data: offline dataset {path} is not available")
    return path


@pytest.fixture(scope="session")
def mnist():
    need_shared("mnist")
    import ddcmi
    return ddcmi.load_dataset("mnist", root=SHARED)


def write_toy(folder, per_class=40, test_per_class=10, classes=10, size=28, seed=0):
    """A generated 10-class dataset (uint8 npz pair): class c is a bright bar at a place of its own on
    noise, so a few iterations of any method learn it. Needs nothing from ../shared."""
    import numpy as np
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", per_class), ("test", test_per_class)):
        labels = np.repeat(np.arange(classes), n)
        images = rng.integers(0, 60, size=(len(labels), size, size, 1)).astype(np.uint8)
        for i, c in enumerate(labels):
            r = 2 + (c % 5) * 5
            if c < 5:
                images[i, r:r + 3, 3:-3, 0] = 230
            else:
                images[i, 3:-3, r:r + 3, 0] = 230
        np.savez(folder / f"{split}.npz", images=images, labels=labels.astype(np.int64),
                 classes=np.array([f"c{c}" for c in range(classes)]))
    return folder


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """The generated dataset, loaded by path (its name is the path)."""
    import ddcmi
    return ddcmi.load_dataset(str(write_toy(tmp_path_factory.mktemp("data") / "toy")))


def interrupt_at_call(monkeypatch, owner, name: str, n: int):
    """Make the ``n``-th call of ``owner.name`` raise KeyboardInterrupt (as Ctrl-C would land there);
    returns the original, to put back with ``monkeypatch.setattr(owner, name, original)``."""
    original, calls = getattr(owner, name), {"n": 0}

    def wrapped(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(owner, name, wrapped)
    return original
