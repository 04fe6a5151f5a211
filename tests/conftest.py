"""Shared fixtures. Tests use the offline copies in ../shared/data when present (as on CI) and
otherwise generated files; nothing is downloaded (DDCMI_OFFLINE=1)."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    cache = os.environ.get("DDCMI_TEST_CACHE") or str(tmp_path_factory.mktemp("ddcmi-cache"))
    old = {k: os.environ.get(k) for k in ("DDCMI_CACHE", "DDCMI_OFFLINE", "DDCMI_RUNS", "DDCMI_DATA")}
    os.environ.update(DDCMI_CACHE=cache, DDCMI_OFFLINE="1", DDCMI_RUNS=str(tmp_path_factory.mktemp("runs")))
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
        pytest.skip(f"offline dataset {path} is not available")
    return path


@pytest.fixture(scope="session")
def mnist():
    need_shared("mnist")
    import ddcmi
    return ddcmi.load_dataset("mnist", root=SHARED)
