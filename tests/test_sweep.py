"""ddcmi sweep: grids expanded and de-duplicated, cells through the run store, serial and a real local Ray."""
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import ddcmi
from ddcmi.distill import Distiller
from ddcmi.experiments import grid as gridmod
from ddcmi.experiments import sweep as sweepmod
from ddcmi.experiments.grid import Grid, load_grid, named_grid


def toy_grid(toy, **over):
    d = {"name": "toy", "profile": "smoke", "methods": ["dm", "dm+cmi"], "datasets": [toy.name], "ipcs": [1, 2],
         "overrides": ["iterations=3", "eval.num_models=1", "eval.epochs=20"], **over}
    return Grid.from_dict(d)


def test_a_grid_expands_to_validated_cells_without_duplicates(toy):
    g = toy_grid(toy, lambdas=[None, 100.0, "1e3"], seeds=[0, 1])
    cells = g.cells()
    # per (ipc, seed): dm once (lambda does not apply), dm+cmi at three lambdas
    assert len(cells) == 2 * 2 * (1 + 3)
    assert len({tuple(c.identity()) for c in cells}) == len(cells)
    assert {c.weight for c in cells if c.method == "dm"} == {None}
    assert sorted({c.weight for c in cells if c.method == "dm+cmi"}, key=str) == [100.0, 1000.0, None]
    cfg = next(c for c in cells if c.weight == 100.0).config()
    assert cfg.cmi.weight == 100.0 and cfg.iterations == 3
    # every cell of one dataset shares one proxy pool (the +CMI config's)
    assert len({c.pool_config().key() for c in cells}) == 1


@pytest.mark.parametrize("bad, match", [
    ({"methods": ["dm", "nope"]}, "nope"),
    ({"ipcs": [0]}, "ipcs must be positive"),
    ({"lambdas": [0]}, "lambda 0 is the base method"),
    ({"overrides": ["cmi.weight=3"]}, "lambdas axis"),
    ({"resources": {"cpus": 0}}, "resources.cpus"),
    ({"colour": "red"}, "unknown field"),
    ({"methods": []}, "is empty"),
])
def test_a_bad_grid_is_refused_before_anything_runs(toy, bad, match):
    with pytest.raises(ddcmi.DDCMIError, match=match):
        toy_grid(toy, **bad).cells()


def test_named_grids_are_the_notebooks_runs(tmp_path):
    g = named_grid("main_table", "cpu")
    assert g.datasets == ["mnist", "fashion_mnist", "cifar10_jpeg"] and g.ipcs == [1, 10] and g.methods == ["dm", "dm+cmi"]
    c = named_grid("cmi_vs_accuracy", "smoke")
    assert c.lambdas == [None, 1000.0, 20000.0]
    with pytest.raises(ddcmi.ConfigError, match="named grid"):
        load_grid("no_such_grid")
    (tmp_path / "g.yaml").write_text("name: x\nmethods: dm\nipcs: [2]\n")
    assert load_grid(tmp_path / "g.yaml", profile="cpu").profile == "cpu"
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ddcmi.ConfigError, match="not valid YAML"):
        load_grid(tmp_path / "bad.yaml")


def test_a_serial_sweep_records_cells_resumes_and_feeds_the_main_table(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    g = toy_grid(toy)
    summary = sweepmod.sweep(g, "serial", progress=False)
    assert summary["finished"] == 4 and summary["failed"] == 0
    out = capsys.readouterr().out  # the shared pool and each cell are announced when they start, not only when done
    assert out.index("[building or opening] pool") < out.index("[built] pool")
    assert out.index(f"[start] {toy.name} dm ipc1 seed0") < out.index(f"[done] {toy.name} dm ipc1 seed0")
    rows = {r["cell"]: r for r in summary["cells"]}
    assert all(0 <= r["acc_mean"] <= 1 for r in rows.values())
    assert json.loads((tmp_path / "sweeps" / "toy" / "summary.json").read_text())["finished"] == 4
    assert "| finished |" in (tmp_path / "sweeps" / "toy" / "table.md").read_text()
    # a +CMI cell carries its paired gain over the base cell of the same dataset, IPC and seed
    from ddcmi.experiments.study import paired_gain
    base, cmi = rows[f"{toy.name} dm ipc2 seed0"], rows[f"{toy.name} dm+cmi ipc2 seed0"]
    assert "gain" not in base and cmi["gain_vs"] == base["cell"]
    assert cmi["gain"] == paired_gain(base["accs"], cmi["accs"])
    # nothing is computed again: a second sweep finds every cell in the store
    monkeypatch.setattr(Distiller, "_step", lambda *a, **k: pytest.fail("recomputed"))
    capsys.readouterr()
    again = sweepmod.sweep(g, "serial", progress=False)
    assert "4 already in the store" in capsys.readouterr().out and again["finished"] == 4
    # the main table renders from the same runs and evaluations (no distillation, no training)
    monkeypatch.setattr(importlib.import_module("ddcmi.evaluate"), "evaluate_synset", lambda *a, **k: pytest.fail("re-evaluated"))
    from ddcmi.experiments import main_table
    table, raw = main_table("smoke", [toy.name], [1, 2], ("dm", "dm+cmi"), overrides=g.overrides, progress=False)
    cell = raw[f"{toy.name}/ipc2"]["methods"]["dm+cmi"]
    assert cell["accuracy"]["mean"] == rows[f"{toy.name} dm+cmi ipc2 seed0"]["acc_mean"]


def test_a_failing_cell_is_retried_then_the_flaky_one_succeeds(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    real, calls = sweepmod.execute_cell, {}

    def flaky(cell, *args):
        calls[cell.name] = calls.get(cell.name, 0) + 1
        if cell.method == "dm" and calls[cell.name] == 1:
            raise OSError("node lost its mount (once)")
        return real(cell, *args)

    monkeypatch.setattr(sweepmod, "execute_cell", flaky)
    g = toy_grid(toy, ipcs=[2], lambdas=[1e30], retries=2)  # lambda 1e30 diverges: fails every time
    summary = sweepmod.sweep(g, "serial", progress=False)
    out = capsys.readouterr().out
    bad = next(r for r in summary["cells"] if r["method"] == "dm+cmi")
    assert summary["finished"] == 1 and summary["failed"] == 1
    assert bad["status"] == "failed" and "NonFiniteLossError" in bad["error"]
    assert calls == {f"{toy.name} dm ipc2 seed0": 2, f"{toy.name} dm+cmi lambda=1e+30 ipc2 seed0": 3}
    assert "[retry 1/2]" in out and "after 3 attempt(s)" in out and "(attempt 2)" in out


def test_a_stopped_sweep_writes_the_table_of_what_finished_and_table_only_runs_nothing(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    real = sweepmod.execute_cell

    def interrupted(cell, *args):  # Ctrl-C while the second cell runs
        if cell.method == "dm+cmi":
            raise KeyboardInterrupt
        return real(cell, *args)

    monkeypatch.setattr(sweepmod, "execute_cell", interrupted)
    g = toy_grid(toy, ipcs=[2])
    with pytest.raises(KeyboardInterrupt, match="1 of 2 cells are recorded.*their table is in"):
        sweepmod.sweep(g, "serial", progress=False)
    summary = json.loads((tmp_path / "sweeps" / "toy" / "summary.json").read_text())
    assert summary["stopped"] is True and summary["finished"] == 1 and summary["failed"] == 0
    assert [r["status"] for r in summary["cells"]] == ["finished", "not run"]
    table = (tmp_path / "sweeps" / "toy" / "table.md").read_text()
    assert "| finished |" in table and "not run yet" in table and "failed" not in table
    # --table: the same summary from the store, nothing run
    monkeypatch.setattr(sweepmod, "execute_cell", lambda *a, **k: pytest.fail("ran a cell"))
    again = sweepmod.sweep(g, "serial", progress=False, table_only=True)
    assert again["stopped"] is False and [r["status"] for r in again["cells"]] == ["finished", "not run"]


def test_the_ray_runner_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ddcmi.ConfigError, match=r"ddcmi\[ray\]"):
        sweepmod.make_runner("ray", gridmod.Resources())


def test_a_ray_that_does_not_start_is_a_clear_error_naming_the_serial_runner(monkeypatch):
    import types

    def init(**kw):
        raise RuntimeError("The current node timed out during startup.\nThis could happen because ...")

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=init))
    with pytest.raises(ddcmi.DDCMIError, match="a local Ray did not start: The current node timed out during "
                                               "startup.*--runner serial") as exc:
        sweepmod.make_runner("ray", gridmod.Resources())
    assert "This could happen" not in str(exc.value)  # the first line, not the whole start-up log


# ------------------------------------------------------------------------------ a real local Ray
def _sweep_cli(grid_file, store, *extra):
    env = {**os.environ, "DDCMI_STORE": str(store), "RAY_USAGE_STATS_ENABLED": "0"}
    return [sys.executable, "-m", "ddcmi", "sweep", str(grid_file), "--runner", "ray", "--cpus", "2", "--quiet",
            *extra], env


def _write(path, grid: dict):
    import yaml
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.fixture
def ray_installed():
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ddcmi[ray]')")


def test_ray_runs_a_2x2_grid_resumes_after_the_driver_is_killed_and_equals_serial(toy, tmp_path, ray_installed):
    g = {"name": "ray2x2", "profile": "smoke", "methods": ["dm", "dm+cmi"], "datasets": [toy.name], "ipcs": [1, 2],
         "overrides": ["iterations=3", "eval.num_models=1", "eval.epochs=20"]}
    grid_file = _write(tmp_path / "grid.yaml", g)
    store = tmp_path / "store"
    cmd, env = _sweep_cli(grid_file, store)
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(store.glob("runs/*/cell-*.json")):
        time.sleep(0.2)
    assert list(store.glob("runs/*/cell-*.json")), "no cell finished within 4 minutes"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started, mid-sweep
    driver.wait()
    kept = len(list(store.glob("runs/*/cell-*.json")))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # what was recorded before the kill is not run again (a worker may finish its cell as the driver dies)
    found = int(re.search(r"(\d+) already in the store", r.stdout).group(1))
    assert kept <= found < 4 and "runner: ray at local Ray (2 CPUs" in r.stdout
    summary = json.loads((store / "sweeps" / "ray2x2" / "summary.json").read_text())
    assert summary["finished"] == 4 and summary["runner"] == "ray"
    # the serial runner makes the same cells to the bit (both pin each cell to one thread)
    env2 = {**env, "DDCMI_STORE": str(tmp_path / "serial")}
    s = subprocess.run([sys.executable, "-m", "ddcmi", "sweep", str(grid_file), "--quiet"], env=env2,
                       capture_output=True, text=True, timeout=600)
    assert s.returncode == 0, s.stderr[-3000:]
    other = json.loads((tmp_path / "serial" / "sweeps" / "ray2x2" / "summary.json").read_text())
    key = lambda rows: {r["cell"]: (r["acc_mean"], r["cmi_feature"]) for r in rows}  # noqa: E731
    assert key(other["cells"]) == key(summary["cells"])


def test_ray_retries_a_failing_cell_and_reports_it(toy, tmp_path, ray_installed):
    grid_file = _write(tmp_path / "grid.yaml", {
        "name": "rayfail", "profile": "smoke", "methods": ["dm", "dm+cmi"], "datasets": [toy.name], "ipcs": [2],
        "lambdas": [1e30], "retries": 1, "overrides": ["iterations=3", "eval.num_models=1", "eval.epochs=20"]})
    cmd, env = _sweep_cli(grid_file, tmp_path / "store")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[retry 1/1]" in r.stdout and "after 2 attempt(s)" in r.stdout and "NonFiniteLossError" in r.stderr
    summary = json.loads((tmp_path / "store" / "sweeps" / "rayfail" / "summary.json").read_text())
    assert summary["finished"] == 1 and summary["failed"] == 1


def test_gains_over_seeds_average_the_per_seed_gains_with_their_spread():
    row = lambda seed, gain, weight=None, method="dm+cmi": {"method": method, "dataset": "d", "ipc": 10, "seed": seed,
                                                            "weight": weight, "variant": [], "gain": {"mean": gain}}
    rows = [row(0, 0.010), row(1, 0.020), row(2, 0.030), row(0, 0.05, weight=2.0),  # one seed: no group
            {"method": "dm", "dataset": "d", "ipc": 10, "seed": 0, "weight": None, "variant": []}]
    (g,) = sweepmod.gains_over_seeds(rows)
    assert g["seeds"] == [0, 1, 2] and g["per_seed"] == [0.010, 0.020, 0.030]
    assert g["mean"] == pytest.approx(0.02) and g["se"] == pytest.approx(0.01 / 3 ** 0.5)
    table = sweepmod._table({"grid": {"name": "g", "profile": "cpu"}, "runner": "serial", "cells": [],
                             "gains_over_seeds": [g], "provenance": {"git_commit": "x", "device": "cpu"}, "seconds": 1})
    assert "| dm+cmi | d | 10 | profile | - | 0, 1, 2 | +1.00 / +2.00 / +3.00 | +2.00 +- 0.58 |" in table


def test_a_dry_run_lists_done_todo_and_cells_another_process_is_distilling(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    g = toy_grid(toy, ipcs=[2])
    cmi = g.cells()[1]
    sweepmod.sweep(toy_grid(toy, ipcs=[2], methods=["dm"]), "serial", progress=False)
    capsys.readouterr()
    # another process holds the +CMI cell's run folder (a child, so the lock is really someone else's)
    folder = cmi.record_path().parent
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; from ddcmi.locks import locked\n"
                              "with locked(sys.argv[1]):\n print('held', flush=True); time.sleep(60)", str(folder)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        summary = sweepmod.sweep(g, "serial", progress=False, dry_run=True)
        out = capsys.readouterr().out
    finally:
        child.kill()
        child.wait()
    assert summary["todo"] == 1
    assert re.search(rf"done  {toy.name} dm ipc2 seed0\n", out)
    assert re.search(rf"busy  {toy.name} dm\+cmi ipc2 seed0  \(being distilled by process {child.pid} on ", out)
    sweepmod.sweep(g, "serial", progress=False, dry_run=True)  # the holder gone: todo again
    assert f"todo  {toy.name} dm+cmi ipc2 seed0" in capsys.readouterr().out


def test_the_overview_pairs_each_recorded_cell_once_and_groups_seeds(toy, tmp_path, monkeypatch):
    """notebooks/cmi_across_methods: a pair that two grids share counts once; seeds group into one row whose
    error is the spread across seeds; a grid read with run=False runs nothing."""
    from ddcmi.experiments.overview import gain_rows, recorded_pairs, rows_markdown
    from ddcmi.experiments.study import mean_and_se
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    g = toy_grid(toy, ipcs=[2], seeds=[0, 1])
    sweepmod.sweep(g, "serial", progress=False)
    twin = toy_grid(toy, name="toy-twin", ipcs=[2], seeds=[0])  # the seed-0 pair again, under another grid
    monkeypatch.setattr(Distiller, "_step", lambda *a, **k: pytest.fail("recomputed"))
    pairs, missing = recorded_pairs([g, twin], progress=False)
    assert missing == 0
    assert sorted(p["seed"] for p in pairs) == [0, 1] and all(p["method"] == "dm" for p in pairs)
    assert all(p["lambda"] == ddcmi.make_config("smoke", toy.name, "dm+cmi", 2).cmi.weight for p in pairs)
    (row,) = gain_rows(pairs)
    gains = [p["gain"]["mean"] for p in pairs]
    assert row["seeds"] == [0, 1] and row["se_over"] == "seeds"
    assert row["gain"] == pytest.approx(sum(gains) / 2) and row["se"] == pytest.approx(mean_and_se(gains)["se"])
    assert row["cmi_removed"] == pytest.approx(1 - row["cmi_cmi"] / row["base_cmi"])
    (single,) = gain_rows(pairs[:1])
    assert single["se_over"] == "networks" and single["se"] == pairs[0]["gain"]["se"]
    assert f"{100 * row['gain']:+.2f}" in rows_markdown([row])
    # a grid with nothing recorded gives no pairs, counts its cells as missing (and runs nothing)
    assert recorded_pairs([toy_grid(toy, name="toy-empty", ipcs=[1], seeds=[5])], progress=False) == ([], 2)


def test_a_grid_file_and_its_cells_dir_resolve_from_the_project_root_in_a_notebook_kernel(monkeypatch):
    """A JupyterLab kernel runs in notebooks/; the committed grids name their paths from the project root."""
    from pathlib import Path
    from ddcmi import store
    root = store.project_root()
    if root is None or not (root / "reports/cpu/main_table_pool8/grid.yaml").is_file():
        pytest.skip("needs the source checkout and its committed reports")
    monkeypatch.chdir(root / "notebooks")
    g = load_grid("reports/cpu/main_table_pool8/grid.yaml")
    assert Path(g.cells_dir) == root / "reports/cpu/main_table_pool8/sweep_cells"
    assert all(c.finished(g.cells_dir) is not None for c in g.cells())  # its kept records are found from there
    with pytest.raises(ddcmi.ConfigError, match="does not exist"):
        load_grid("reports/cpu/no_such_grid.yaml")


def test_every_committed_cpu_grid_loads_names_its_own_sweep_and_keeps_cells_beside_its_report():
    """`cmi_across_methods` reads CPU_GRIDS: each must parse, and no two may share a sweep name (their
    sweeps/<name>/ folders would mix)."""
    from pathlib import Path
    from ddcmi import store
    from ddcmi.reproduce import CPU_GRIDS
    root = store.project_root()
    if root is None or not (root / CPU_GRIDS[0]).is_file():
        pytest.skip("needs the source checkout and its committed reports")
    grids = [load_grid(str(root / g)) for g in CPU_GRIDS]
    assert len({g.name for g in grids}) == len(grids)
    for path, g in zip(CPU_GRIDS, grids):
        assert g.profile == "cpu" and g.cells(), path
        assert Path(g.cells_dir).parent == (root / path).parent, path  # kept records travel with the report
