"""Distillation: DM and DM+CMI run, beat chance, checkpoint, resume exactly, and fail loudly."""
import pytest
import torch

import ddcmi
from conftest import interrupt_at_call
from ddcmi import Distiller, make_config
from ddcmi.evaluate import evaluate_synset
from ddcmi.methods import DMMatching


def smoke(method="dm+cmi", ipc=10, **over):
    return make_config("smoke", "mnist", method, ipc, overrides=over or None)


@pytest.mark.parametrize("method", ["dm", "dm+cmi"])
def test_smoke_run_beats_chance(mnist, method, tmp_path):
    cfg = smoke(method)
    result = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    s = result.synset
    assert s.images.shape == (100, 1, 28, 28) and s.method == method and s.profile == "smoke"
    steps = result.history["steps"]
    assert len(steps) == cfg.iterations and all("match" in r for r in steps)
    assert all(("cmi" in r) == (method == "dm+cmi") for r in steps)
    acc = evaluate_synset(s.images, s.labels, mnist, cfg.eval, progress=False)
    assert acc["mean"] > 0.3  # chance is 0.1
    assert (tmp_path / "synset.pt").exists() and (tmp_path / "history.json").exists()
    init = torch.load(tmp_path / "initial_images.pt")
    assert not torch.equal(init, s.images)  # the pixels moved


def test_cmi_changes_the_result_and_lowers_cmi(mnist):
    """Same seed, same real draws: DM+CMI ends with lower CMI under its own pool than DM."""
    plain = Distiller(smoke("dm", iterations=20), mnist, progress=False).run().synset
    reg = Distiller(smoke("dm+cmi", iterations=20), mnist, progress=False)
    withcmi = reg.run().synset
    assert not torch.equal(plain.images, withcmi.images)
    a = ddcmi.measure_cmi(plain.images, plain.labels, reg.pool, space="feature")["mean"]
    b = ddcmi.measure_cmi(withcmi.images, withcmi.labels, reg.pool, space="feature")["mean"]
    assert b < a


def test_same_seed_same_result_other_seed_other_result(mnist):
    a = Distiller(smoke("dm", iterations=3), mnist, progress=False).run().synset.images
    b = Distiller(smoke("dm", iterations=3), mnist, progress=False).run().synset.images
    c = Distiller(make_config("smoke", "mnist", "dm", 10, seed=1, overrides=["iterations=3"]), mnist,
                  progress=False).run().synset.images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_interrupted_run_resumes_to_the_same_result(mnist, tmp_path, monkeypatch):
    cfg = smoke("dm+cmi", iterations=8, checkpoint_every=100)
    full = Distiller(cfg, mnist, progress=False).run().synset.images

    original = interrupt_at_call(monkeypatch, DMMatching, "loss_and_backward", 5)
    with pytest.raises(KeyboardInterrupt, match="stopped after 4 of 8"):
        Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["iteration"] == 4
    monkeypatch.setattr(DMMatching, "loss_and_backward", original)
    resumed = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    assert torch.equal(resumed.synset.images, full)  # bitwise, not merely close
    assert [r["iteration"] for r in resumed.history["steps"]] == list(range(1, 9))


def test_checkpoint_from_another_config_is_refused(mnist, tmp_path):
    Distiller(smoke("dm", iterations=2, checkpoint_every=1), mnist, out_dir=tmp_path, progress=False).run()
    with pytest.raises(ddcmi.ArtefactError, match="another config.*lr_img"):
        Distiller(smoke("dm", iterations=2, lr_img=0.5), mnist, out_dir=tmp_path, progress=False).run()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ddcmi.ArtefactError, match="unreadable"):
        Distiller(smoke("dm", iterations=2), mnist, out_dir=tmp_path, progress=False).run()


def test_nan_loss_stops_with_a_clear_error(mnist, tmp_path):
    d = Distiller(smoke("dm", iterations=5, checkpoint_every=1), mnist, out_dir=tmp_path, progress=False)
    original = d.method.loss_and_backward
    calls = {"n": 0}

    def nan_on_third(images, labels, draws):
        calls["n"] += 1
        out = original(images, labels, draws)
        return {"match": float("nan")} if calls["n"] == 3 else out

    d.method.loss_and_backward = nan_on_third
    with pytest.raises(ddcmi.NonFiniteLossError, match="iteration 3.*lr_img"):
        d.run()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["iteration"] == 2


def test_cmi_interval_and_no_work_at_ipc1(mnist):
    steps = Distiller(smoke("dm+cmi", iterations=6, **{"cmi.interval": 3}), mnist, progress=False).run().history["steps"]
    assert [("cmi" in r) for r in steps] == [True, False, False, True, False, False]
    steps1 = Distiller(smoke("dm+cmi", ipc=1, iterations=2), mnist, progress=False).run().history["steps"]
    assert all("cmi" not in r for r in steps1)  # identically zero: not computed


def test_bad_input_errors(mnist):
    with pytest.raises(ddcmi.UnknownNameError, match="unknown method 'dmm'.*dm\\+cmi"):
        make_config("smoke", "mnist", "dmm", 10)
    with pytest.raises(ddcmi.UnknownNameError, match="unknown profile"):
        make_config("laptop", "mnist", "dm", 10)
    with pytest.raises(ddcmi.ConfigError, match="IPC 6000 is larger than the smallest class"):
        Distiller(smoke("dm", ipc=6000), mnist, progress=False)
    with pytest.raises(ddcmi.ConfigError, match="needs cmi.weight"):
        Distiller(smoke("dm+cmi", **{"cmi.weight": 0.0}), mnist, progress=False)
    with pytest.raises(ddcmi.ConfigError, match="unknown config key 'iters'"):
        smoke("dm", iters=3)
    with pytest.raises(ddcmi.ConfigError, match="expected a int"):
        smoke("dm", iterations="many")


def test_finished_run_is_reused_with_its_own_provenance(mnist, tmp_path):
    cfg = smoke("dm", iterations=2)
    first = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    again = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    assert torch.equal(first.synset.images, again.synset.images)
    assert again.synset.provenance == first.synset.provenance
    assert len(again.history["steps"]) == 2


def test_real_data_centroids_stay_informative_at_ipc1(mnist):
    steps = Distiller(smoke("dm+cmi", ipc=1, iterations=2, **{"cmi.centroids": "real", "cmi.real_centroid_samples": 20}),
                      mnist, progress=False).run().history["steps"]
    assert all(r["cmi"] > 0 for r in steps)


def test_tracking_and_eval_checkpoints_fill_the_history(mnist):
    cfg = smoke("dm", iterations=4, track_every=2, eval_at=(0, 4), **{"eval.num_models": 1, "eval.epochs": 3})
    h = Distiller(cfg, mnist, progress=False).run().history
    assert [t["iteration"] for t in h["tracks"]] == [0, 2, 4]
    assert all(t["cmi_feature"] > 0 and t["cmi_logit"] > 0 for t in h["tracks"])
    assert [e["iteration"] for e in h["evals"]] == [0, 4] and all(0 <= e["acc_mean"] <= 1 for e in h["evals"])


def test_a_resume_at_another_thread_count_is_refused_unless_allowed(toy, tmp_path, monkeypatch):
    cfg = make_config("smoke", toy.name, "dsa", 2, overrides={"iterations": 2, "checkpoint_every": 1,
                                                             "outer_loop": 2, "inner_loop": 1})
    orig = interrupt_at_call(monkeypatch, ddcmi.methods.DSAMatching, "iteration", 2)
    with pytest.raises(KeyboardInterrupt):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    monkeypatch.setattr(ddcmi.methods.DSAMatching, "iteration", orig)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(ddcmi.ArtefactError, match=f"written with {threads} CPU threads.*--allow-thread-change"):
            Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
        h = Distiller(cfg, toy, out_dir=tmp_path, progress=False, allow_thread_change=True).run().history
    finally:
        torch.set_num_threads(threads)
    assert [(s["from_iteration"], s["threads"]) for s in h["segments"]] == [(0, threads), (1, threads + 1)]


def test_a_finished_run_is_recognised_without_its_checkpoint(toy, tmp_path):
    cfg = make_config("smoke", toy.name, "dm", 2, overrides={"iterations": 2, "checkpoint_every": 0})
    first = Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    assert not (tmp_path / "checkpoint.pt").exists() and (tmp_path / "config.json").exists()
    stamp = (tmp_path / "synset.pt").stat().st_mtime_ns
    again = Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    assert (tmp_path / "synset.pt").stat().st_mtime_ns == stamp  # not redone, not rewritten
    assert torch.equal(again.synset.images, first.synset.images)


def test_a_second_ctrl_c_while_the_checkpoint_is_saved_keeps_the_message_and_the_checkpoint(toy, tmp_path, monkeypatch):
    import os
    import signal
    before = signal.getsignal(signal.SIGINT)  # the default one, or SIG_IGN where the suite runs as a background job
    cfg = make_config("smoke", toy.name, "dm", 2, overrides={"iterations": 6, "checkpoint_every": 100})
    interrupt_at_call(monkeypatch, DMMatching, "iteration", 4)
    save = Distiller._save_checkpoint

    def impatient(self, state):  # the user presses Ctrl-C again while the checkpoint is written
        os.kill(os.getpid(), signal.SIGINT)
        return save(self, state)

    monkeypatch.setattr(Distiller, "_save_checkpoint", impatient)
    with pytest.raises(KeyboardInterrupt, match="stopped after 3 of 6 iterations; checkpoint kept"):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    assert (tmp_path / "checkpoint.pt").exists()
    assert signal.getsignal(signal.SIGINT) is before  # put back afterwards


@pytest.mark.parametrize("method", ["dm", "dm+cmi"])
def test_all_classes_in_one_forward_equal_the_per_class_path(mnist, method):
    """batch_classes (the GPU fast path): the same draws, the same loss and gradient within float rounding."""
    import copy
    from ddcmi.rng import Draws
    cfg = smoke(method, iterations=1)
    plain = Distiller(cfg, mnist, progress=False)
    batched = Distiller(smoke(method, iterations=1, batch_classes=True), mnist, progress=False)
    state = plain._fresh_state()
    grads, losses = [], []
    for d in (plain, batched):
        images = copy.deepcopy(state["images"]).detach().requires_grad_(True)
        out = d.method.loss_and_backward(images, state["labels"], Draws(cfg.seed, 1))
        grads.append(images.grad.clone())
        losses.append(out["match"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-4  # measured about 3e-6 (float32 rounding)
    a = Distiller(smoke(method, iterations=4), mnist, progress=False).run().synset.images
    b = Distiller(smoke(method, iterations=4, batch_classes=True), mnist, progress=False).run().synset.images
    diff = (a - b).abs()  # four steps later still the same set (measured: at most 1.4e-4, mean 7e-8, pixels ~0.7)
    assert float(diff.max()) < 1e-3 and float(diff.mean()) < 1e-6


def test_batch_classes_is_refused_where_a_method_does_not_have_it(mnist):
    with pytest.raises(ddcmi.ConfigError, match="batch_classes is implemented for dm"):
        Distiller(make_config("smoke", "mnist", "dsa", 10, overrides={"batch_classes": True}), mnist, progress=False)


def test_bf16_autocast_is_close_to_fp32_and_named_in_the_key(mnist):
    """autocast: bf16 for DM's real embeddings and the CMI term's proxy passes; a switch of its own in the
    run's key, close to fp32 (bf16 keeps 8 bits of mantissa), and refused where a method has no such part."""
    from ddcmi.rng import Draws
    base = smoke("dm+cmi", iterations=1)
    grads = {}
    for mode in ("none", "real", "cmi", "real+cmi"):
        d = Distiller(smoke("dm+cmi", iterations=1, autocast=mode), mnist, progress=False)
        state = d._fresh_state()
        images = state["images"].detach().clone().requires_grad_(True)
        d.method.loss_and_backward(images, state["labels"], Draws(base.seed, 1))
        match = images.grad.clone()
        images.grad = None
        cmi = d.regularizer.backward(images, state["labels"], 0)
        grads[mode] = (match, images.grad.clone(), cmi)
    ref = grads["none"]
    for mode in ("real", "real+cmi"):
        assert 0 < float((grads[mode][0] - ref[0]).norm() / ref[0].norm()) < 0.05
    for mode in ("cmi", "real+cmi"):
        assert 0 < float((grads[mode][1] - ref[1]).norm() / ref[1].norm()) < 0.1
        assert grads[mode][2] == pytest.approx(ref[2], rel=0.1)
    assert torch.equal(grads["cmi"][0], ref[0]) and torch.equal(grads["real"][1], ref[1])  # each switch is its part only
    from ddcmi.experiments.runs import run_dir_for
    assert run_dir_for(smoke("dm+cmi", autocast="cmi")) != run_dir_for(smoke("dm+cmi"))
    with pytest.raises(ddcmi.ConfigError, match="autocast must be one of"):
        smoke("dm", autocast="fp16")
    with pytest.raises(ddcmi.ConfigError, match="bf16 real-image embeddings are implemented for dm"):
        Distiller(make_config("smoke", "mnist", "dsa", 10, overrides={"autocast": "real"}), mnist, progress=False)


def test_provenance_names_the_cpu_model(monkeypatch):
    """Results name the machine they ran on (machines differ between sessions): the CPU's model, not only
    its architecture; without /proc/cpuinfo the name falls back to what ``platform`` knows."""
    import builtins
    import platform

    from ddcmi import utils
    cpu = torch.device("cpu")
    assert utils.cpu_model() in utils.device_name(cpu) and f"{torch.get_num_threads()} threads" in utils.device_name(cpu)
    assert utils.provenance(cpu)["device"] == utils.device_name(cpu)
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise OSError("no procfs here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert utils.cpu_model() == (platform.machine() or "unknown CPU")
    assert utils.device_name(cpu).count(platform.machine()) == 1  # the architecture named once, not twice
