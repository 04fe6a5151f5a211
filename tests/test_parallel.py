"""Class-parallel distillation: torchrun processes (gloo on CPU) equal the single-process run."""
import json
import os
import subprocess
import sys

import pytest
import torch

import ddcmi
from ddcmi.distill import Distiller
from ddcmi.parallel import class_blocks
from ddcmi.profiles import make_config

from conftest import interrupt_at_call


def test_class_blocks_are_contiguous_balanced_and_cover_every_class():
    assert class_blocks(10, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sum(class_blocks(100, 8), []) == list(range(100))
    with pytest.raises(ddcmi.ConfigError, match="at least one class"):
        class_blocks(4, 5)


def _distill(toy, store, method, nproc, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DDCMI_STORE": str(store)}
    cmd = [sys.executable, "-m", "ddcmi", "distill", "--dataset", toy.name, "--method", method, "--ipc", "2",
           "--profile", "smoke", "--set", "iterations=3", "--quiet", *extra] + (["--nproc", str(nproc)] if nproc else [])
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _run_folder(store):
    (run,) = [d for d in (store / "runs").iterdir() if d.is_dir() and d.name != "evals"]
    return run


@pytest.mark.parametrize("method", ["dm+cmi", "dsa+cmi", "idc+cmi", "idm+cmi"])
def test_two_process_torchrun_equals_the_single_process_run(toy, tmp_path, method):
    one = _distill(toy, tmp_path / "one", method, None)
    two = _distill(toy, tmp_path / "two", method, 2)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    assert "class-parallel over 2 processes" in two.stdout and two.stdout.count("synthetic set:") == 1  # rank 0 alone
    a, b = _run_folder(tmp_path / "one"), _run_folder(tmp_path / "two")
    assert a.name == b.name  # the same config, the same run
    sa, sb = (ddcmi.SyntheticSet.load(d / "synset.pt") for d in (a, b))
    assert torch.equal(sa.images, sb.images)  # bitwise, at one thread per process
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (a, b))
    for x, y in zip(ha["steps"], hb["steps"], strict=True):  # the terms summed in another order: last bits only
        assert set(x) == set(y) and "cmi" in x
        for k in x:
            if k != "seconds":
                assert y[k] == pytest.approx(x[k], rel=1e-9, abs=1e-12), (k, x, y)
    assert hb["segments"][0]["processes"] == 2


def test_a_run_stopped_in_one_process_is_finished_by_two_and_equals_the_uninterrupted_run(toy, tmp_path, monkeypatch):
    method = "dm+cmi"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = make_config("smoke", toy.name, method, 2, overrides={"iterations": 3, "checkpoint_every": 1})
        store = tmp_path / "store"
        monkeypatch.setenv("DDCMI_STORE", str(store))
        from ddcmi.experiments import run_dir_for
        out = run_dir_for(cfg)
        interrupt_at_call(monkeypatch, Distiller, "_step", 3)  # Ctrl-C inside iteration 3
        with pytest.raises(KeyboardInterrupt):
            Distiller(cfg, toy, out_dir=out, progress=False).run()
    finally:
        torch.set_num_threads(threads)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 2
    resumed = _distill(toy, store, method, 2, "--set", "checkpoint_every=1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = _distill(toy, tmp_path / "whole", method, None, "--set", "checkpoint_every=1")
    assert whole.returncode == 0, whole.stderr[-3000:]
    a = ddcmi.SyntheticSet.load(_run_folder(tmp_path / "whole") / "synset.pt")
    b = ddcmi.SyntheticSet.load(out / "synset.pt")
    assert torch.equal(a.images, b.images)
    segments = json.loads((out / "history.json").read_text())["segments"]
    assert [s.get("processes", 1) for s in segments] == [1, 2]


def test_mtt_refuses_to_run_class_parallel(toy, tmp_path):
    r = _distill(toy, tmp_path, "mtt", 2)
    assert r.returncode == 2 and "cannot run class-parallel" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()
