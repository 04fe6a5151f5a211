"""A careless user's inputs through the command line: exit code 2, a message that names the problem
(and, where there is one, the fix), no traceback, and nothing written outside what the case may write."""
import os
from pathlib import Path

import pytest
import torch

from ddcmi.cli import main


@pytest.fixture(scope="module")
def finished_run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["distill", "--dataset", toy.name, "--method", "dm", "--ipc", "2", "--profile", "smoke",
                 "--set", "iterations=2", "--out", str(out), "--quiet"]) == 0
    return out


def D(toy):
    return ["distill", "--dataset", toy.name, "--ipc", "2", "--profile", "smoke", "--quiet", "--method"]


CASES = [  # (id, argv builder, expected message fragment)
    ("unknown dataset", lambda t, r, x: ["distill", "--dataset", "cifar11", "--method", "dm", "--ipc", "1"], "unknown dataset 'cifar11'"),
    ("unknown method", lambda t, r, x: D(t) + ["dmx"], "unknown method 'dmx'"),
    ("method suffix", lambda t, r, x: D(t) + ["dm+kl"], "unknown method 'dm+kl'"),
    ("ipc zero", lambda t, r, x: D(t)[:-1] + ["--ipc", "0", "--method", "dm"], "ipc must be >= 1"),
    ("ipc too large", lambda t, r, x: D(t)[:-1] + ["--ipc", "5000", "--method", "dm"], "larger than the smallest class"),
    ("iterations zero", lambda t, r, x: D(t) + ["dm", "--set", "iterations=0"], "iterations must be >= 1"),
    ("iterations text", lambda t, r, x: D(t) + ["dm", "--set", "iterations=many"], "expected a int"),
    ("negative lr", lambda t, r, x: D(t) + ["dm", "--set", "lr_img=-1"], "lr_img must be > 0"),
    ("momentum > 1", lambda t, r, x: D(t) + ["dm", "--set", "momentum=1.5"], "momentum must be >= 0 and <= 1"),
    ("zero real per class", lambda t, r, x: D(t) + ["dm", "--set", "real_per_class=0"], "real_per_class must be >= 1"),
    ("zero width", lambda t, r, x: D(t) + ["dm", "--set", 'net_kwargs={"width": 0}'], "net_kwargs.width must be a positive"),
    ("eval models zero", lambda t, r, x: D(t) + ["dm", "--set", "eval.num_models=0"], "eval.num_models must be >= 1"),
    ("eval epochs zero", lambda t, r, x: D(t) + ["dm", "--set", "eval.epochs=0"], "eval.epochs must be >= 1"),
    ("cutmix above 1", lambda t, r, x: D(t) + ["dm", "--set", "eval.cutmix_prob=2"], "eval.cutmix_prob must be"),
    ("pool count zero", lambda t, r, x: D(t) + ["dm+cmi", "--set", "pool.count=0"], "pool.count must be >= 1"),
    ("pool epochs zero", lambda t, r, x: D(t) + ["dm+cmi", "--set", "pool.epochs=0"], "pool.epochs must be >= 1"),
    ("negative lambda", lambda t, r, x: D(t) + ["dm+cmi", "--set", "cmi.weight=-3"], "must be >= 0"),
    ("lambda without cmi", lambda t, r, x: D(t) + ["dm", "--set", "cmi.weight=5"], "run without CMI"),
    ("cmi without lambda", lambda t, r, x: D(t) + ["dm+cmi", "--set", "cmi.weight=0"], "needs cmi.weight"),
    ("unknown space", lambda t, r, x: D(t) + ["dm+cmi", "--set", "cmi.space=pixels"], "unknown CMI space"),
    ("unknown centroids", lambda t, r, x: D(t) + ["dm+cmi", "--set", "cmi.centroids=mean"], "unknown CMI centroids"),
    ("interval zero", lambda t, r, x: D(t) + ["dm+cmi", "--set", "cmi.interval=0"], "interval must be >= 1"),
    ("unknown key", lambda t, r, x: D(t) + ["dm", "--set", "iters=3"], "unknown config key 'iters'"),
    ("unknown section key", lambda t, r, x: D(t) + ["dm", "--set", "eval.epoch=3"], "unknown config key 'eval.epoch'"),
    ("not a section", lambda t, r, x: D(t) + ["dm", "--set", "iterations.x=3"], "is not a section"),
    ("override without =", lambda t, r, x: D(t) + ["dm", "--set", "iterations"], "must look like key=value"),
    ("unknown dsa op", lambda t, r, x: D(t) + ["dm", "--set", "dsa.strategy=color_blur"], "unknown DSA operation"),
    ("dsa without strategy", lambda t, r, x: D(t) + ["dsa", "--set", "dsa.strategy=none"], "DSA needs an augmentation"),
    ("unknown net", lambda t, r, x: D(t) + ["dm", "--set", "net=convnet9"], "unknown model"),
    ("autocast typo", lambda t, r, x: D(t) + ["dm", "--set", "autocast=fp16"], "autocast must be one of none, real"),
    ("batch classes on dsa", lambda t, r, x: D(t) + ["dsa", "--set", "batch_classes=true"], "batch_classes is implemented for dm"),
    ("bf16 real on idc", lambda t, r, x: D(t) + ["idc", "--set", "autocast=real"], "bf16 real-image embeddings are implemented for dm"),
    ("idc without rounds", lambda t, r, x: D(t) + ["idc", "--set", "outer_loop=0"], "IDC needs outer_loop >= 1"),
    ("rng version", lambda t, r, x: D(t) + ["dm", "--set", "rng=1"], "random-draw scheme 1"),
    ("device cuda without gpu", lambda t, r, x: D(t) + ["dm", "--device", "cuda"], "no CUDA GPU"),
    ("device typo", lambda t, r, x: D(t) + ["dm", "--device", "gpu0"], "unknown device 'gpu0'"),
    ("mistyped data root", lambda t, r, x: D(t)[:2] + ["mnist"] + D(t)[3:] + ["dm", "--data-root", str(x / "nowhere")], "does not exist"),
    ("fresh on a foreign folder", lambda t, r, x: D(t) + ["dm", "--out", str(x / "foreign"), "--fresh"], "not a ddcmi run folder"),
    ("evaluate missing file", lambda t, r, x: ["evaluate", str(x / "missing.pt")], "no synthetic set"),
    ("evaluate a non-synset", lambda t, r, x: ["evaluate", str(x / "foreign" / "data.csv")], "unreadable"),
    ("cmi without input", lambda t, r, x: ["cmi", "--profile", "smoke"], "give a synset.pt or --dataset"),
    ("compare with a bad method", lambda t, r, x: ["compare", "--dataset", t.name, "--profile", "smoke", "--methods", "dm,foo",
                                                    "--out", str(x / "cmp")], "unknown method 'foo'"),
    ("compare device typo", lambda t, r, x: ["compare", "--dataset", t.name, "--profile", "smoke", "--device", "tpu",
                                              "--out", str(x / "cmp")], "unknown device 'tpu'"),
    ("config with a bad value", lambda t, r, x: ["config", "--dataset", t.name, "--method", "dm", "--ipc", "2",
                                                  "--set", "seed=-1"], "seed must be >= 0"),
    ("reproduce unknown notebook", lambda t, r, x: ["reproduce", "nosuch", "--profile", "smoke"], "unknown notebook 'nosuch'"),
    ("reproduce bad tag", lambda t, r, x: ["reproduce", "quickstart", "--profile", "smoke", "--tag", "a/b"], "must be letters"),
    ("reproduce bad param", lambda t, r, x: ["reproduce", "quickstart", "--profile", "smoke", "-p", "ipc"], "must look like key=value"),
    # a misspelt parameter would otherwise be injected, ignored by the notebook, and the default run silently
    ("reproduce unknown param", lambda t, r, x: ["reproduce", "quickstart", "--profile", "smoke", "-p", "datset=mnist"],
     "notebook quickstart has no parameter 'datset'; it takes: data_root, dataset,"),
    ("reproduce reserved param", lambda t, r, x: ["reproduce", "quickstart", "--profile", "smoke", "-p", f"out_dir={x}"],
     "out_dir of a reproduction is set by --reports and --tag"),
    ("reproduce all, a param no notebook has", lambda t, r, x: ["reproduce", "all", "--profile", "smoke", "-p", "ipcs_=[1]"],
     "no notebook has parameter 'ipcs_'"),
    # the kit's own error raised inside the notebook's kernel: its message, not papermill's traceback
    ("reproduce, bad input met in the kernel", lambda t, r, x: ["reproduce", "quickstart", "--profile", "smoke", "--quiet",
                                                                "-p", "dataset=cifar11", "--reports", str(x / "reports")],
     "notebook quickstart (profile smoke) stopped: unknown dataset 'cifar11'"),
]


def _snapshot(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(case, toy, tmp_path, capsys, finished_run):
    name, argv, fragment = case
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data.csv").write_text("1,2")
    store = Path(os.environ["DDCMI_STORE"])
    before_store, before_run = _snapshot(store), _snapshot(finished_run)
    before_tmp = _snapshot(tmp_path)
    assert main(argv(toy, finished_run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert "Traceback" not in err
    assert _snapshot(finished_run) == before_run and _snapshot(tmp_path) == before_tmp
    new = set(_snapshot(store)) - set(before_store)
    assert not [p for p in new if "runs" in p.parts and p.suffix == ".pt"], new  # no run was started


def test_a_second_process_in_a_run_folder_is_refused_with_its_holder(toy, tmp_path, capsys):
    from ddcmi.locks import locked
    out = tmp_path / "run"
    with locked(out):
        assert main(D(toy) + ["dm", "--set", "iterations=2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is in use by process" in err and str(os.getpid()) in err and "--wait" in err
    assert not (out / "synset.pt").exists()
    assert main(D(toy) + ["dm", "--set", "iterations=2", "--out", str(out)]) == 0  # released


def test_a_set_scored_against_another_dataset_is_refused(toy, mnist, finished_run, capsys):
    from ddcmi import SyntheticSet, evaluate_synset, make_config
    import ddcmi
    s = SyntheticSet.load(finished_run / "synset.pt")
    bad = torch.zeros(4, 3, 32, 32)
    with pytest.raises(ddcmi.ConfigError, match="images are \\(3, 32, 32\\)"):
        evaluate_synset(bad, torch.zeros(4, dtype=torch.long), mnist, make_config("smoke", "mnist", "dm", 2).eval)
    assert s.images.shape[1:] == (1, 28, 28)


def test_negative_labels_in_an_npz_are_named(tmp_path):
    import numpy as np
    import ddcmi
    d = tmp_path / "neg"
    d.mkdir()
    for split in ("train", "test"):
        np.savez(d / f"{split}.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.array([-1, 0, 1, 1]))
    with pytest.raises(ddcmi.ConfigError, match="labels must be integers 0..C-1"):
        ddcmi.load_dataset(str(d))


@pytest.mark.parametrize("errno_name,fragment", [("ENOSPC", "No space left on device"), ("EROFS", "read-only"),
                                                  ("EACCES", "no permission")])
def test_os_errors_become_messages_that_name_the_path_and_the_fix(toy, tmp_path, capsys, monkeypatch,
                                                                  errno_name, fragment):
    import errno
    import ddcmi.utils
    code = getattr(errno, errno_name)

    def failing(path, write):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(ddcmi.utils, "_atomic", failing)
    out = tmp_path / "run"
    assert main(D(toy) + ["dm", "--set", "iterations=2", "--set", "checkpoint_every=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(out) in err and "Traceback" not in err
    assert ("--store" in err) or ("--out" in err)


_INTERRUPT_WHILE_IMPORTING = """
import sys
class Stop:  # Ctrl-C arriving while torch is being imported (the first second or two of a command)
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Stop())
sys.argv = [{argv0!r}]
import ddcmi
"""


@pytest.mark.parametrize("argv0, cli", [("/venv/bin/ddcmi", True), ("my_script.py", False)])
def test_ctrl_c_while_the_command_starts_is_one_line_a_library_import_keeps_python_s_behaviour(argv0, cli):
    import subprocess
    import sys

    from ddcmi._startup import INTERRUPTED_AT_START
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_WHILE_IMPORTING.format(argv0=argv0)],
                          capture_output=True, text=True, timeout=120)
    if cli:
        assert proc.returncode == 130 and INTERRUPTED_AT_START in proc.stderr
        assert "Traceback" not in proc.stderr
    else:  # a notebook or script that imports ddcmi sees the KeyboardInterrupt itself
        assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr


def test_ctrl_c_while_the_arguments_are_read_is_one_line(monkeypatch, capsys):
    from ddcmi import cli

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["store"]) == 130
    err = capsys.readouterr().err
    assert "interrupted while starting" in err and "Traceback" not in err


@pytest.mark.parametrize("said", ["", "(SIGTERM)"])
def test_a_stage_that_says_nothing_when_interrupted_gets_the_rule_and_the_command_that_continues(said, monkeypatch,
                                                                                                  capsys):
    from ddcmi import cli

    def stopped(args):
        raise KeyboardInterrupt(said)
    monkeypatch.setattr(cli, "cmd_store", stopped)
    assert cli.main(["store"]) == 130
    err = capsys.readouterr().err
    assert "Everything that had finished is kept" in err and "to continue, run: ddcmi store" in err
    assert said in err


def test_the_command_that_continues_never_repeats_fresh():
    from ddcmi.cli import _interrupted_detail
    said = _interrupted_detail("", ["distill", "--dataset", "my data", "--fresh", "--ipc", "2"])
    assert said.endswith("run: ddcmi distill --dataset 'my data' --ipc 2")
    assert _interrupted_detail("stopped after 3 of 6 iterations", []) == "stopped after 3 of 6 iterations"


def test_output_into_a_closed_pipe_stops_quietly_as_other_tools_do(tmp_path):
    """`ddcmi ... | head`: the reader has gone before ddcmi writes; no error message, no traceback, 141."""
    import os
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "ddcmi", "store"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "DDCMI_STORE": str(tmp_path)})
    proc.stdout.close()  # before the child has imported torch, let alone printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
