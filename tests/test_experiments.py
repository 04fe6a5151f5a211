"""Experiments: runs shared between notebooks (snapshots, curves), content-cached evaluation, and the
per-profile parameters and order of `ddcmi reproduce`."""
import json
from pathlib import Path

import pytest
import torch

from ddcmi import Distiller, make_config
from ddcmi.distill import snapshots
from ddcmi.experiments import eval_points, evaluated, run_curve


def test_a_run_leaves_snapshots_at_init_checkpoints_and_end(mnist, tmp_path):
    cfg = make_config("smoke", "mnist", "dm", 10, overrides={"iterations": 7, "checkpoint_every": 3})
    res = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    snaps = snapshots(tmp_path)
    assert sorted(snaps) == [0, 3, 6, 7]
    assert torch.equal(torch.load(snaps[0]), torch.load(tmp_path / "initial_images.pt"))
    assert torch.equal(torch.load(snaps[7]), res.synset.images)


def test_eval_points_are_evenly_spaced_and_keep_both_ends():
    assert eval_points([0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600], 4) == [0, 200, 400, 600]
    assert eval_points([0, 5, 10], 5) == [0, 5, 10]
    assert eval_points([0, 2, 4, 6, 8, 10], 2) == [0, 10]


def test_evaluation_is_cached_by_content(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path))
    cfg = make_config("smoke", "mnist", "dm", 2, overrides={"eval.epochs": 2, "eval.num_models": 1})
    x, y = mnist.real_sampler().initial_images(2, torch.Generator().manual_seed(0))
    first = evaluated(x, y, mnist, cfg.eval, 0, "cpu", progress=False)
    assert len(list((tmp_path / "evals").glob("*.json"))) == 1
    assert evaluated(x.clone(), y.clone(), mnist, cfg.eval, 0, "cpu", progress=False) == first  # a hit
    assert len(list((tmp_path / "evals").glob("*.json"))) == 1
    evaluated(x + 0.01, y, mnist, cfg.eval, 0, "cpu", progress=False)  # other pixels: another entry
    evaluated(x, y, mnist, cfg.eval, 1, "cpu", progress=False)  # another seed: another entry
    assert len(list((tmp_path / "evals").glob("*.json"))) == 3


def test_curves_come_from_the_runs_snapshots_and_share_the_final_evaluation(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path / "runs"))
    cfg = make_config("smoke", "mnist", "dm+cmi", 10, overrides={"eval.epochs": 3, "eval.num_models": 1})
    d = Distiller(cfg, mnist, out_dir=tmp_path / "run", progress=False)
    res = d.run()
    final = evaluated(res.synset.images, res.synset.labels, mnist, cfg.eval, cfg.seed, "cpu", progress=False)
    curve = run_curve(res, mnist, d.pool, cfg.eval, cfg.seed, "cpu", evals=3, progress=False)
    assert [t["iteration"] for t in curve["tracks"]] == [0, 5, 10]
    assert all(t["cmi_feature"] > 0 and t["cmi_logit"] > 0 for t in curve["tracks"])
    assert curve["tracks"][-1]["cmi_feature"] < curve["tracks"][0]["cmi_feature"]  # the regulariser acted
    assert [e["iteration"] for e in curve["evals"]] == [0, 5, 10]
    assert curve["evals"][-1]["acc_mean"] == final["mean"]  # the last snapshot is the result: one evaluation
    assert curve["evals"][0]["seconds"] == 0 < curve["evals"][1]["seconds"] <= curve["evals"][2]["seconds"]
    assert len(list((tmp_path / "runs" / "evals").glob("*.json"))) == 3
    cached = json.loads(next((tmp_path / "run").glob("tracks-*.json")).read_text())
    assert [t["iteration"] for t in cached] == [0, 5, 10]


def test_reproduce_order_and_profile_parameters(monkeypatch, tmp_path):
    pytest.importorskip("papermill")
    from ddcmi import reproduce as rp
    names = rp.notebook_names()
    assert names[:4] == ["teaching_demo", "quickstart", "main_table", "synthetic_grids"]
    assert names[-1] == "cross_architecture" and sorted(names) == sorted(rp.ORDER)
    seen = {}

    def fake_execute(path, out, parameters, **kw):
        seen.update(parameters)
        raise RuntimeError("stop here")

    monkeypatch.setattr("papermill.execute_notebook", fake_execute)
    with pytest.raises(RuntimeError):
        rp.reproduce("main_table", "cpu", {"ipcs": [10]}, reports_root=tmp_path)
    assert seen["datasets"] == ["mnist", "fashion_mnist", "cifar10_jpeg"] and seen["ipcs"] == [10]
    assert seen["profile"] == "cpu"


def test_the_run_folder_ignores_the_evaluation_recipe_but_not_the_distillation():
    from ddcmi.experiments import run_dir_for
    cfg = make_config("smoke", "mnist", "dm", 10)
    assert run_dir_for(cfg) == run_dir_for(cfg.with_overrides({"eval.epochs": 7, "eval.arch": "alexnet"}))
    assert run_dir_for(cfg) != run_dir_for(cfg.with_overrides({"iterations": 11}))
    assert run_dir_for(cfg) != run_dir_for(cfg.with_overrides({"eval_at": (5,)}))  # evaluates during the run


def test_reproduce_tag_names_a_variant_folder_and_is_checked(tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    from ddcmi import reproduce as rp
    from ddcmi.errors import ConfigError
    seen = {}
    monkeypatch.setattr("papermill.execute_notebook", lambda path, out, parameters, **kw: seen.update(parameters) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        rp.reproduce("main_table", "smoke", {"methods": ["idc", "idc+cmi"]}, reports_root=tmp_path, tag="gm")
    assert seen["out_dir"].endswith("main_table_gm") and seen["methods"] == ["idc", "idc+cmi"]
    with pytest.raises(ConfigError, match="tag"):
        rp.reproduce("main_table", "smoke", {}, reports_root=tmp_path, tag="../x")


def test_the_comparison_takes_gradient_matching_methods(mnist, tmp_path, monkeypatch):
    """IDC (+CMI) through the same comparison the main table uses: decoded sets evaluated and measured."""
    from ddcmi.experiments import compare_methods
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path / "runs"))
    m = compare_methods("mnist", 1, "smoke", ("idc", "idc+cmi"), overrides=["iterations=1", "outer_loop=1",
                        "eval.num_models=1"], out_dir=tmp_path / "out", progress=False, grids=False)
    for method in ("idc", "idc+cmi"):
        r = m["methods"][method]
        assert 0.1 < r["accuracy"]["mean"] <= 1 and r["cmi_feature"]["mean"] > 0  # 4 decoded images per class
    assert (tmp_path / "out" / "table.md").exists() and not list((tmp_path / "out").glob("*.png"))
    # the same cell again (a later session, runs folder lost): the report is reused, nothing is recomputed
    monkeypatch.setattr("ddcmi.experiments.cells.setup", lambda *a, **k: 1 / 0)
    again = compare_methods("mnist", 1, "smoke", ("idc", "idc+cmi"), overrides=["iterations=1", "outer_loop=1",
                            "eval.num_models=1"], out_dir=tmp_path / "out", progress=False, grids=False, reuse=True)
    assert again["reused"] and again["methods"] == json.loads(json.dumps(m["methods"]))
    with pytest.raises(ZeroDivisionError):  # another config (or another pool) is computed afresh
        compare_methods("mnist", 1, "smoke", ("idc", "idc+cmi"), overrides=["iterations=2", "outer_loop=1",
                        "eval.num_models=1"], out_dir=tmp_path / "out", progress=False, grids=False, reuse=True)
    with pytest.raises(ZeroDivisionError):  # without reuse (the CLI's compare) it is always computed
        compare_methods("mnist", 1, "smoke", ("idc", "idc+cmi"), overrides=["iterations=1", "outer_loop=1",
                        "eval.num_models=1"], out_dir=tmp_path / "out", progress=False, grids=False)


def test_a_finished_report_is_recognised_from_another_checkout(tmp_path, monkeypatch):
    """The stamp of a report made elsewhere (another absolute path) still counts; other parameters do not."""
    pytest.importorskip("papermill")
    from ddcmi import reproduce as rp
    out = tmp_path / "reports" / "cpu" / "quickstart"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    stamped = {"profile": "cpu", "out_dir": "/elsewhere/reports/cpu/quickstart"}
    (out / "reproduce.json").write_text(json.dumps({"notebook": "quickstart", "parameters": stamped}))
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: 1 / 0)
    assert rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports") == out  # skipped: done
    with pytest.raises(ZeroDivisionError):  # other parameters: run again
        rp.reproduce("quickstart", "cpu", {"ipc": 1}, reports_root=tmp_path / "reports")


def test_a_stopped_comparison_keeps_its_finished_methods(mnist, tmp_path, monkeypatch):
    """partial.json after each method: a later session (runs folder lost) recomputes only what is missing,
    and a finished cell lends its methods to a comparison that adds another."""
    from ddcmi import experiments as ex
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path / "runs"))
    args = dict(overrides=["iterations=2", "eval.num_models=1"], out_dir=tmp_path / "cell", progress=False,
                grids=False, reuse=True)
    real_run, computed = ex.run_or_resume, []

    def stop_at_cmi(cfg, *a, **k):
        if cfg.method == "dm+cmi":
            raise KeyboardInterrupt
        computed.append(cfg.method)
        return real_run(cfg, *a, **k)
    monkeypatch.setattr(ex.cells, "run_or_resume", stop_at_cmi)
    with pytest.raises(KeyboardInterrupt):
        ex.compare_methods("mnist", 2, "smoke", ("dm", "dm+cmi"), **args)
    partial = json.loads((tmp_path / "cell" / "partial.json").read_text())
    assert list(partial["methods"]) == ["dm"] and not partial["complete"]
    assert not (tmp_path / "cell" / "metrics.json").exists()

    import shutil
    shutil.rmtree(tmp_path / "runs")  # the session ended
    computed.clear()
    monkeypatch.setattr(ex.cells, "run_or_resume", lambda cfg, *a, **k: computed.append(cfg.method) or real_run(cfg, *a, **k))
    m = ex.compare_methods("mnist", 2, "smoke", ("dm", "dm+cmi"), **args)
    assert computed == ["dm+cmi"] and m["reused_methods"] == ["dm"] and m["complete"]
    assert m["methods"]["dm"]["accuracy"] == partial["methods"]["dm"]["accuracy"]
    assert not (tmp_path / "cell" / "partial.json").exists()
    assert "dm" in (tmp_path / "cell" / "table.md").read_text()

    # the same comparison again: the whole report is reused; one more method: only that one is computed
    computed.clear()
    assert ex.compare_methods("mnist", 2, "smoke", ("dm", "dm+cmi"), **args)["reused"] and computed == []
    monkeypatch.setattr(ex.cells, "run_or_resume", lambda cfg, *a, **k: computed.append(cfg.method) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ex.compare_methods("mnist", 2, "smoke", ("dm", "dm+cmi", "dsa"), **args)
    assert computed == ["dsa"]
    with pytest.raises(ZeroDivisionError):  # another lambda: dm+cmi is another config, computed afresh
        ex.compare_methods("mnist", 2, "smoke", ("dm", "dm+cmi"), **{**args, "overrides": args["overrides"] + ["cmi.weight=7"]})
    commits = ex.cell_provenance({"cell": m})
    assert commits["cell"] and "," not in commits["cell"]  # both methods came from this checkout's commit
    m["methods"]["dm"]["provenance"] = {**m["methods"]["dm"]["provenance"], "git_commit": "abc1234"}
    assert ex.cell_provenance({"cell": m})["cell"].startswith("dm abc1234, dm+cmi ")
    assert ex.cell_provenance({"cell": m}, "device")["cell"].startswith("cpu")  # one machine: one value


def test_a_forced_rerun_keeps_what_the_earlier_run_cost(tmp_path, monkeypatch):
    """reproduce.json: seconds, commit and finish time of this run; a forced re-run (say a re-render from
    cached runs) lists the earlier runs' under "earlier" instead of losing them."""
    pytest.importorskip("papermill")
    import nbformat
    from ddcmi import reproduce as rp
    out = tmp_path / "reports" / "cpu" / "quickstart"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    (out / "reproduce.json").write_text(json.dumps({"notebook": "quickstart", "parameters": {"profile": "cpu"},
                                                    "seconds": 3600.0, "finished_utc": "2026-01-01T00:00:00Z"}))
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: nbformat.v4.new_notebook())
    monkeypatch.setattr("ddcmi.reproduce.write_index", lambda root: None)
    rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports", force=True)
    stamp = json.loads((out / "reproduce.json").read_text())
    assert stamp["seconds"] < 60 and stamp["commit"] and stamp["finished_utc"].endswith("Z")
    assert stamp["earlier"] == [{"seconds": 3600.0, "finished_utc": "2026-01-01T00:00:00Z"}]
    rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports", force=True)
    assert len(json.loads((out / "reproduce.json").read_text())["earlier"]) == 2
    rp.reproduce("quickstart", "cpu", {"ipc": 1}, reports_root=tmp_path / "reports")  # other parameters
    assert "earlier" not in json.loads((out / "reproduce.json").read_text())


def test_a_stopped_reproduction_keeps_what_it_cost_and_the_finished_report_sums_it(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM during a notebook: the stamp keeps the attempt's seconds under "interrupted" (and
    has no "seconds", so the report is not taken as done even where an older metrics.json lies); the run
    that finishes it records its own seconds, the attempts and "seconds_in_all"; the index shows both."""
    pytest.importorskip("papermill")
    import nbformat
    from ddcmi import reproduce as rp
    from ddcmi.report import _run_time
    out = tmp_path / "reports" / "cpu" / "quickstart"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")  # a report of the same parameters that is being made again

    def stopped(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr("ddcmi.reproduce.write_index", lambda root: None)
    for _ in range(2):
        monkeypatch.setattr("papermill.execute_notebook", stopped)
        with pytest.raises(KeyboardInterrupt):
            rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports")
    stamp = json.loads((out / "reproduce.json").read_text())
    assert "seconds" not in stamp and len(stamp["interrupted"]) == 2
    assert all(e["seconds"] >= 0 and e["stopped_utc"].endswith("Z") and e["commit"] for e in stamp["interrupted"])
    stamp["interrupted"][0]["seconds"] = 600.0  # as if the first attempt had run ten minutes
    (out / "reproduce.json").write_text(json.dumps(stamp))
    ran = []
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: ran.append(1) or nbformat.v4.new_notebook())
    rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports")  # not force: the stopped one is not done
    stamp = json.loads((out / "reproduce.json").read_text())
    assert ran and stamp["seconds"] < 60 and len(stamp["interrupted"]) == 2
    assert stamp["seconds_in_all"] == pytest.approx(600 + stamp["seconds"] + stamp["interrupted"][1]["seconds"], abs=0.2)
    assert "in all with 2 interrupted attempts" in _run_time(out, 30.0)
    assert rp.cost_seconds(out) == stamp["seconds_in_all"] and rp.cost_seconds(tmp_path) is None
    rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports")  # finished now: skipped
    assert len(ran) == 1
    rp.reproduce("quickstart", "cpu", reports_root=tmp_path / "reports", force=True)  # its attempts go with it
    stamp = json.loads((out / "reproduce.json").read_text())
    assert "interrupted" not in stamp and len(stamp["earlier"][0]["interrupted"]) == 2


_SLEEPY_NOTEBOOK = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "smoke"
out_dir = "."
marker = ""

# %%
import pathlib, time
pathlib.Path(marker).write_text("started")
time.sleep(120)
"""

_STOP_A_REPRODUCTION = """
import sys
from pathlib import Path
from ddcmi.cli import _sigterm_as_interrupt
from ddcmi import reproduce as rp
rp.write_index = lambda root: None
_sigterm_as_interrupt()
try:
    rp.reproduce("sleepy", "smoke", {{"marker": {marker!r}}}, reports_root=Path({reports!r}), directory=Path({nb!r}))
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_reproduction_stopped_mid_cell_leaves_the_kernel_s_complaints_in_its_log_not_on_the_terminal(tmp_path):
    """SIGTERM while a notebook's cell runs: the terminal gets no traceback from the kernel (it logged one for
    the reply it could no longer send, and warns at start-up); both are kept in the report's kernel.log."""
    pytest.importorskip("papermill")
    import signal
    import subprocess
    import sys
    import time
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "sleepy.py").write_text(_SLEEPY_NOTEBOOK)
    marker, reports = tmp_path / "started", tmp_path / "reports"
    code = _STOP_A_REPRODUCTION.format(marker=str(marker), reports=str(reports), nb=str(tmp_path / "nb"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[1]
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "ZMQError" not in err and "[IPKernelApp]" not in err, err
    assert "running notebook sleepy at smoke" in err  # papermill's bar does not name it
    log = (reports / "smoke" / "sleepy" / "kernel.log").read_text()
    assert "[IPKernelApp]" in log
    assert "interrupted" in json.loads((reports / "smoke" / "sleepy" / "reproduce.json").read_text())


def test_a_notebook_whose_kernel_dies_is_a_clear_error_that_keeps_the_attempt(tmp_path, monkeypatch):
    """A kernel killed from outside (the OOM killer, say) is not a traceback: the error names the notebook,
    the likely cause, the kernel's log and the command that continues; the attempt's seconds are kept."""
    pytest.importorskip("papermill")
    import ddcmi
    from ddcmi import reproduce as rp
    monkeypatch.setattr("ddcmi.reproduce.write_index", lambda root: None)
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "dying.py").write_text(_SLEEPY_NOTEBOOK.replace(
        "time.sleep(120)", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    with pytest.raises(ddcmi.DDCMIError, match="notebook dying .*kernel died.*memory.*kernel.log.*same command"):
        rp.reproduce("dying", "smoke", {"marker": str(tmp_path / "started")}, reports_root=tmp_path / "reports",
                     directory=tmp_path / "nb", progress=False)
    stamp = json.loads((tmp_path / "reports" / "smoke" / "dying" / "reproduce.json").read_text())
    assert "seconds" not in stamp and stamp["interrupted"][0]["kernel_died"] is True


def test_reproduce_set_and_fast_give_every_notebook_that_makes_runs_the_overrides(tmp_path, monkeypatch, capsys):
    """`ddcmi reproduce all --set K=V` hands the overrides to each notebook with an `overrides` parameter
    (the rest run as they are, and are named); --fast is every measured speed switch, under the tag "fast";
    a bad key, a notebook that takes none, or overrides given twice are refused early with exit 2."""
    pytest.importorskip("papermill")
    import nbformat
    from ddcmi import reproduce as rp
    from ddcmi.cli import main
    from ddcmi.profiles import FAST_SWITCHES
    seen = {}
    monkeypatch.setattr("papermill.execute_notebook",
                        lambda path, out, parameters, **k: seen.update({Path(parameters["out_dir"]).name: parameters})
                        or nbformat.v4.new_notebook())
    monkeypatch.setattr("ddcmi.reproduce.write_index", lambda root: None)
    reports = str(tmp_path / "reports")
    assert main(["reproduce", "all", "--profile", "smoke", "--reports", reports, "--quiet", "--tag", "t",
                 "--set", "eval.num_models=1", "--set", "pool.seed=7"]) == 0
    takers = {n for n in rp.notebook_names() if "overrides" in rp.notebook_parameters(n, "smoke")}
    assert takers == set(rp.notebook_names()) - {"cmi_across_methods"}  # it reads what its grids recorded
    assert set(seen) == {f"{n}_t" for n in takers}  # the notebook without overrides would be its default again
    assert all(seen[f"{n}_t"]["overrides"] == ["eval.num_models=1", "pool.seed=7"] for n in takers)
    assert "not cmi_across_methods:" in capsys.readouterr().err
    seen.clear()  # at cpu the study only reads its recorded sweep: left out of all, run when named
    assert main(["reproduce", "all", "--profile", "cpu", "--reports", reports, "--quiet", "--fast"]) == 0
    assert set(seen) == {f"{n}_fast" for n in takers - {"cmi_study"}}
    assert all(p["overrides"] == FAST_SWITCHES for p in seen.values())
    said = capsys.readouterr()
    assert "not cmi_study, cmi_across_methods:" in said.err
    assert f"reproduce all --profile cpu: {len(takers) - 1} notebooks, 0.00 h of machine time in all" in said.out
    seen.clear()
    assert main(["reproduce", "cmi_study", "--profile", "cpu", "--reports", reports, "--quiet", "--fast"]) == 0
    assert seen["cmi_study_fast"]["overrides"] == FAST_SWITCHES
    seen.clear()
    assert main(["reproduce", "quickstart", "--profile", "smoke", "--reports", reports, "--quiet", "--fast"]) == 0
    assert seen["quickstart_fast"]["overrides"] == FAST_SWITCHES
    for bad in (["quickstart", "--set", "pool.sede=7"], ["quickstart", "--set", "pool.autocast=yes"],
                ["cmi_across_methods", "--fast"], ["quickstart", "--fast", "-p", 'overrides=["eval.num_models=1"]']):
        seen.clear()
        assert main(["reproduce", *bad, "--profile", "smoke", "--reports", reports, "--quiet"]) == 2 and not seen
    err = capsys.readouterr().err
    assert "pool.sede" in err and "autocast" in err and "takes no config overrides" in err and "not both" in err


def test_the_main_job_says_what_it_does_from_the_start_with_one_overall_line(toy, tmp_path, monkeypatch, capsys):
    from ddcmi.experiments import compare_methods
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path / "runs"))
    compare_methods(toy.name, 1, "smoke", ("dm", "dm+cmi"), overrides=["iterations=2", "eval.num_models=1",
                    "eval.epochs=2"], out_dir=tmp_path / "out", progress=True, grids=False)
    lines = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if "stages" in ln]
    assert "0/7 stages" in lines[0]  # before any work
    first_named = next(ln for ln in lines if "loading" in ln or "distilling" in ln)
    assert "loading" in first_named and "proxy pool" in first_named  # what it does first, in words
    assert any("evaluating dm+cmi" in ln for ln in lines) and "7/7 stages" in lines[-1] and "left" in lines[-1]


def test_the_teaching_demo_shows_sliders_when_opened_and_the_static_path_when_reproduced():
    import jupytext
    from ddcmi import PROFILES
    from ddcmi.reproduce import PROFILE_PARAMETERS, _same_run, notebooks_dir
    nb = jupytext.read(notebooks_dir() / "teaching_demo.py")
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "interactive = True" in params.source  # opened in JupyterLab: sliders without editing anything
    assert all(PROFILE_PARAMETERS[p]["teaching_demo"]["interactive"] is False for p in PROFILES)
    # a report made before the switch existed is still the same run (it drew the static path too)
    assert _same_run({"profile": "cpu", "out_dir": "a"}, {"profile": "cpu", "interactive": False, "out_dir": "b"})
    assert not _same_run({"profile": "cpu"}, {"profile": "cpu", "dataset": "cifar10"})


def test_an_evaluation_stopped_between_networks_resumes_at_the_next_one(toy, tmp_path, monkeypatch):
    import ddcmi.evaluate as ev
    from ddcmi.evaluate import EvalConfig, evaluate_synset
    x = toy.normalize(toy.train.images[::4], "cpu")
    y = toy.train.labels[::4]
    cfg = EvalConfig(epochs=2, num_models=3, arch_kwargs={"width": 8}, test_limit=50)
    whole = evaluate_synset(x, y, toy, cfg, seed=3, progress=False)
    ckpt = tmp_path / "eval.partial.pt"
    trained, original = [], ev.train_on_synset

    def counting(*a, **k):
        trained.append(1)
        if len(trained) == 3:
            raise KeyboardInterrupt  # during the third network
        return original(*a, **k)

    monkeypatch.setattr(ev, "train_on_synset", counting)
    with pytest.raises(KeyboardInterrupt, match="stopped after 2 of 3 networks; the 2 finished network.s. are kept"):
        evaluate_synset(x, y, toy, cfg, seed=3, progress=False, checkpoint=ckpt)
    assert ckpt.exists()
    trained.clear()
    monkeypatch.setattr(ev, "train_on_synset", lambda *a, **k: (trained.append(1), original(*a, **k))[1])
    resumed = evaluate_synset(x, y, toy, cfg, seed=3, progress=False, checkpoint=ckpt)
    assert len(trained) == 1 and resumed["accs"] == whole["accs"]  # only the third network trained again
    assert not ckpt.exists()
    ckpt.write_bytes(b"garbage")  # a damaged checkpoint (its own file) is started again, not an error
    assert evaluate_synset(x, y, toy, cfg, seed=3, progress=False, checkpoint=ckpt)["accs"] == whole["accs"]


def test_compare_cells_pairs_a_variants_cmi_cells_with_the_plain_ones():
    """scripts/compare_cells.py on the committed pool_bf16 cells: the numbers reports/cpu/pool_bf16/NOTES.md quotes."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    cells = root / "reports" / "cpu" / "pool_bf16" / "sweep_cells"
    run = subprocess.run([sys.executable, str(root / "scripts" / "compare_cells.py"), str(cells),
                          "--variant", "pool.compile=true,pool.autocast=train"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    dsa = next(line for line in run.stdout.splitlines() if " dsa+cmi " in line)
    assert "paired -0.06 +- 0.04" in dsa and "CMI's gain +0.62 +- 0.13" in dsa and "+0.67 +- 0.12 (" in dsa
    none = subprocess.run([sys.executable, str(root / "scripts" / "compare_cells.py"), str(cells), "--variant", "x=1"],
                          capture_output=True, text=True)
    assert none.returncode != 0 and "no finished +CMI cell with overrides ['x=1']" in none.stderr
