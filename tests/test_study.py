"""The CMI study: grids with variants (one axis at a time), paired gains, shared base runs and pools."""
import pytest

import ddcmi
from ddcmi.experiments import study
from ddcmi.experiments.grid import Grid, named_grid
from ddcmi.proxy import pool_dir


def test_variants_vary_one_axis_at_a_time_and_share_the_profile_point(toy):
    g = Grid.from_dict({"name": "v", "profile": "smoke", "methods": ["dm", "dm+cmi"], "datasets": [toy.name],
                        "ipcs": [1], "overrides": ["iterations=3"],
                        "variants": [{"overrides": ["pool.epochs=1"]}, {"overrides": "pool.epochs=2"},
                                     {"lambdas": [10.0]}, {"overrides": ["iterations=4"]}]})
    cells = g.cells()
    # smoke's pool has 1 epoch, so variant 1 is the profile point: dm, dm+cmi; pool 2: dm (measured under
    # another pool: its own cell, the same run) and dm+cmi; lambda 10: dm+cmi only; iterations 4: both
    assert len(cells) == 2 + 2 + 1 + 2
    assert len({c.record_path() for c in cells}) == len(cells)  # one record each, even for a shared run
    dms = [c for c in cells if c.method == "dm" and "iterations=4" not in c.overrides]
    assert len(dms) == 2 and dms[0].config().key() == dms[1].config().key()
    assert dms[0].pool_config() != dms[1].pool_config()
    assert next(c for c in cells if c.weight == 10.0).config().iterations == 3
    assert len({c.name for c in cells}) == len(cells)  # the runners key jobs on the name
    with pytest.raises(ddcmi.ConfigError, match="variant may set"):
        Grid.from_dict({"name": "v", "variants": [{"profile": "cpu"}]})
    with pytest.raises(ddcmi.ConfigError, match="variant 1"):
        Grid.from_dict({"name": "v", "variants": [{"ipcs": [0]}]})


def test_paired_gain_is_the_mean_difference_with_its_standard_error():
    g = study.paired_gain([0.5, 0.6, 0.7], [0.55, 0.62, 0.78])
    assert g["mean"] == pytest.approx(0.05) and g["n"] == 3
    assert g["se"] == pytest.approx(((0.0 ** 2 + 0.03 ** 2 + 0.03 ** 2) / 2 / 3) ** 0.5)
    assert study.paired_gain([0.5], [0.6])["se"] is None
    with pytest.raises(ValueError, match="same number"):
        study.paired_gain([0.5], [0.6, 0.7])


def test_a_study_grid_names_its_axes_and_refuses_careless_input():
    g = study.study_grid("smoke", "mnist", 2, "dm", {"lambda_scale": [0.5, 2], "real_per_class": [8]})
    lam = ddcmi.make_config("smoke", "mnist", "dm+cmi", 2).cmi.weight
    assert sorted(c.weight for c in g.cells() if c.weight) == [0.5 * lam, 2 * lam]
    assert any("real_per_class=8" in c.overrides for c in g.cells())
    for bad, match in [({"lambda_scale": [0]}, "positive multiples"), ({"iterations": []}, "non-empty list"),
                       ({"no_such_key": [1]}, "unknown config key"), (None, "axes must map")]:
        with pytest.raises(ddcmi.ConfigError, match=match):
            study.study_grid("smoke", "mnist", 2, "dm", bad).cells()
    with pytest.raises(ddcmi.ConfigError, match="base"):
        study.study_grid("smoke", "mnist", 2, "dm+cmi", {"iterations": [3]})
    named = named_grid("cmi_study", "cpu")
    assert named.datasets == ["cifar10_jpeg"] and named.methods == ["dm", "dm+cmi"]


def test_a_study_runs_through_the_store_with_one_base_run_and_snapshot_pools(toy, tmp_path, monkeypatch):
    import ddcmi.proxy
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path))
    trained, original = [], ddcmi.proxy._train_members
    monkeypatch.setattr(ddcmi.proxy, "_train_members", lambda config, dataset, x, y, indices, *a, **k:
                        trained.extend([config.epochs] * len(indices)) or original(config, dataset, x, y, indices, *a, **k))
    axes = {"pool.epochs": [1, 2], "lambda_scale": [4.0]}
    over = ["iterations=3", "eval.num_models=2", "eval.epochs=10"]
    grid, points, summary = study.run_study("smoke", toy.name, 1, "dm", axes, overrides=over, threads=1, progress=False)
    assert summary["failed"] == 0 and all(p["finished"] for p in points)
    assert len(list((tmp_path / "runs").glob("*-dm-*"))) == 1  # the base run is shared by both pools
    one, two = (p for p in points if p["axis"] == "pool.epochs")
    assert one["pool_acc"] is not None and two["pool_acc"] is not None and one["pool_acc"] != two["pool_acc"]
    # the 1-epoch pool was left on the way by the 2-epoch build: its members were never trained on their own
    assert trained == [2, 2]
    assert pool_dir(study.point_cells(grid, "pool.epochs", 1, 0)[1].pool_config()).is_dir()
    for p in points:
        assert p["gain"]["n"] == 2 and p["gain"]["se"] is not None
        assert p["gain"]["mean"] == pytest.approx(p["cmi_acc"] - p["base_acc"])
    lam = [p for p in points if p["axis"] == "lambda_scale"][0]
    assert lam["cmi_weight"] == pytest.approx(4 * ddcmi.make_config("smoke", toy.name, "dm+cmi", 1).cmi.weight)
    again = study.study_points(grid, axes)  # read back from the store alone
    assert [p["gain"] for p in again] == [p["gain"] for p in points]


def test_cells_kept_beside_the_report_finish_the_study_in_a_new_store(toy, tmp_path, monkeypatch):
    """What a later session sees: the store is gone, the cell records committed with the report are not."""
    import json
    from ddcmi.experiments.grid import load_grid
    kept = tmp_path / "report" / "cells"
    axes = {"pool.epochs": [1], "lambda_scale": [4.0]}
    over = ["iterations=2", "eval.num_models=2", "eval.epochs=5"]
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path / "store1"))
    grid, points, summary = study.run_study("smoke", toy.name, 1, "dm", axes, overrides=over, threads=1, progress=False,
                                            cells_dir=str(kept))
    assert summary["failed"] == 0 and all(p["finished"] for p in points)
    records = sorted(kept.glob("*--cell-*.json"))
    assert len(records) == len(grid.cells()) == 3  # dm, dm+cmi at the profile point (smoke's pool: 1 epoch), +CMI at 4x lambda
    assert all(json.loads(r.read_text())["result"]["pool_test_acc"] is not None for r in records)
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path / "store2"))  # a new machine: an empty store
    grid2, again, summary2 = study.run_study("smoke", toy.name, 1, "dm", axes, overrides=over, threads=1, progress=False,
                                             cells_dir=str(kept))
    assert not (tmp_path / "store2" / "runs").exists() and not (tmp_path / "store2" / "pools").exists()  # nothing ran
    assert [p["gain"] for p in again] == [p["gain"] for p in points]
    assert [p["pool_acc"] for p in again] == [p["pool_acc"] for p in points]  # from the records: the pools are elsewhere
    assert study.study_points(grid2, axes)[0]["finished"]
    without = study.study_grid("smoke", toy.name, 1, "dm", axes, overrides=over)
    assert not study.study_points(without, axes)[0]["finished"]  # the new store alone holds none of them
    for r in records[:2]:
        r.unlink()
    monkeypatch.setenv("DDCMI_STORE", str(tmp_path / "store1"))  # a store that finished them before they were kept
    study.run_study("smoke", toy.name, 1, "dm", axes, overrides=over, threads=1, progress=False, cells_dir=str(kept))
    assert sorted(kept.glob("*--cell-*.json")) == records  # kept again, not recomputed
    named = load_grid("cmi_study", "smoke")
    assert named.cells_dir.endswith("smoke/cmi_study/cells")  # where the notebook keeps them by default
