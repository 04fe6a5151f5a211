import json

import pytest

import ddcmi
from ddcmi.cli import main
from ddcmi.methods import DMMatching
from ddcmi.profiles import make_config, paper_lambda


def test_paper_profile_is_the_published_setting():
    cfg = make_config("paper", "cifar10", "dm+cmi", 10)
    assert (cfg.iterations, cfg.lr_img, cfg.momentum, cfg.real_per_class) == (20000, 1.0, 0.5, 256)
    assert cfg.cmi.weight == 8000 and cfg.cmi.space == "feature" and cfg.cmi.centroids == "synthetic"
    assert (cfg.pool.arch, cfg.pool.epochs, cfg.pool.lr, cfg.pool.weight_decay) == ("resnet18", 40, 0.01, 1e-3)
    assert (cfg.eval.epochs, cfg.eval.lr, cfg.eval.weight_decay, cfg.eval.num_models) == (1000, 0.01, 5e-4, 5)
    assert make_config("paper", "cifar100", "dm+cmi", 50).cmi.weight == 500
    assert make_config("paper", "svhn", "dm+cmi", 10).cmi.weight == 18000
    assert make_config("paper", "cifar10_jpeg", "dm+cmi", 50).cmi.weight == 2000
    assert make_config("paper", "tinyimagenet", "dm", 10).net == "convnet4"
    assert make_config("paper", "cifar10", "dm", 10).cmi.weight == 0


def test_unpublished_lambda_is_borrowed_and_says_so():
    w, note = paper_lambda("dm", "cifar10", 1)
    assert w == DMMatching.paper_lambda[("cifar10", 10)] and "not published" in note
    assert "not published" in make_config("paper", "mnist", "dm+cmi", 10).cmi.weight_note


def test_every_profile_records_its_name():
    for p in ddcmi.PROFILES:
        assert make_config(p, "mnist", "dm", 10).profile == p


def test_help_reads(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("distill", "evaluate", "cmi", "pool", "datasets", "compare"):
        assert cmd in out


def test_cli_distill_evaluate_cmi_round_trip(tmp_path, capsys, mnist):
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "mnist", "--method", "dm+cmi", "--ipc", "10", "--profile", "smoke",
                 "--out", str(out), "--evaluate", "--quiet"]) == 0
    acc = json.loads((out / "eval.json").read_text())
    assert acc["mean"] > 0.3
    assert main(["evaluate", str(out / "synset.pt"), "--models", "1", "--epochs", "5", "--quiet"]) == 0
    assert "convnet3" in capsys.readouterr().out
    assert main(["cmi", str(out / "synset.pt"), "--profile", "smoke", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "feature space" in text and "logit space" in text


def test_cli_errors_are_clear_and_exit_2(capsys, tmp_path, monkeypatch):
    assert main(["distill", "--dataset", "cifar11", "--method", "dm", "--ipc", "1", "--profile", "smoke"]) == 2
    assert "unknown dataset 'cifar11'" in capsys.readouterr().err
    assert main(["distill", "--dataset", "mnist", "--method", "dmx", "--ipc", "1", "--profile", "smoke"]) == 2
    assert "unknown method 'dmx'" in capsys.readouterr().err
    monkeypatch.delenv("DDCMI_DATA", raising=False)
    monkeypatch.setenv("DDCMI_CACHE", str(tmp_path / "cache"))
    args = ["distill", "--dataset", "mnist", "--method", "dm", "--ipc", "1", "--profile", "smoke", "--data-root"]
    assert main(args + [str(tmp_path / "nowhere")]) == 2  # a mistyped root does not fall back to DDCMI_DATA
    assert "data root" in (err := capsys.readouterr().err) and "nowhere" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert main(args + [str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "dataset 'mnist' not found" in err and "empty" in err and "DDCMI_DATA" in err
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "no synthetic set" in capsys.readouterr().err


def test_cli_datasets_lists_registry(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "cifar10_jpeg" in out and "CIFAR-10 (JPEG q75)" in out and "DDCMI_DATA" in out


def test_reference_numbers_only_where_comparable():
    from ddcmi.reference import reference
    assert reference("dm", "cifar10", 10, "paper") == 48.9
    assert reference("dm", "cifar10_jpeg", 10, "paper") is None  # the JPEG copy is not CIFAR-10
    assert reference("dm", "cifar10", 10, "cpu") is None  # a reduced run is not the published protocol
    assert reference("dm+cmi", "cifar10", 10, "paper") is None


def test_cli_distills_a_local_imagefolder_dataset_given_by_path(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for split, n in (("train", 12), ("test", 4)):
        for c in range(3):
            (root / split / f"k{c}").mkdir(parents=True)
            for i in range(n):
                img = np.full((16, 16, 3), 60 * c, dtype=np.uint8) + rng.integers(0, 40, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / f"k{c}" / f"{i}.png")
    monkeypatch.setenv("DDCMI_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "run"
    assert main(["distill", "--dataset", str(root), "--method", "dm+cmi", "--ipc", "2", "--profile", "smoke",
                 "--set", "iterations=3", "--out", str(out), "--evaluate", "--quiet"]) == 0
    s = ddcmi.SyntheticSet.load(out / "synset.pt")
    assert s.images.shape == (6, 3, 16, 16) and s.dataset == str(root) and s.dataset_label == "shapes"
    assert json.loads((out / "eval.json").read_text())["mean"] > 0.5  # three easy classes
