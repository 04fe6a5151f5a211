"""DC / DSA: the gradient distance, BN handling, the loop schedule, and smoke runs that beat chance."""
import pytest
import torch

from ddcmi.rng import Draws

import ddcmi
from ddcmi import Distiller, make_config
from ddcmi.evaluate import evaluate_synset
from ddcmi.methods.gradient_matching import DCMatching, gradient_distance, loops_for


def test_distance_on_hand_made_gradients():
    same = [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]
    assert gradient_distance(same, same).item() == pytest.approx(0.0, abs=1e-5)
    opposite = [-same[0]]
    assert gradient_distance(same, opposite).item() == pytest.approx(4.0, abs=1e-5)  # 2 channels x (1 - (-1))
    orthogonal = [torch.tensor([[0.0, 1.0], [3.0, 0.0]])]
    assert gradient_distance(same, orthogonal).item() == pytest.approx(2.0, abs=1e-5)
    # per output channel of a conv weight: channel 0 equal, channel 1 opposite -> 2
    w = torch.randn(2, 3, 3, 3)
    w2 = torch.stack([w[0], -w[1]])
    assert gradient_distance([w], [w2]).item() == pytest.approx(2.0, abs=1e-5)
    # 1-d tensors (biases, norm parameters) are left out
    assert gradient_distance([torch.ones(5)], [-torch.ones(5)]).item() == 0.0
    # scale does not matter (cosine)
    assert gradient_distance(same, [7 * same[0]]).item() == pytest.approx(0.0, abs=1e-5)


def test_published_loop_schedule():
    assert loops_for(1) == (1, 1) and loops_for(10) == (10, 50) and loops_for(50) == (50, 10)
    with pytest.raises(ddcmi.ConfigError, match="IPC 7"):
        loops_for(7)


def test_paper_profiles_of_dc_and_dsa():
    dc = make_config("paper", "cifar10", "dc+cmi", 10)
    assert (dc.iterations, dc.lr_img, dc.lr_net, dc.cmi.weight) == (1000, 0.1, 0.01, 50000)
    assert dc.eval.dsa.strategy == "none" and dc.eval.epochs == 300
    dsa = make_config("paper", "cifar100", "dsa+cmi", 10)
    assert dsa.cmi.weight == 80000 and dsa.eval.epochs == 1000 and dsa.eval.dsa.strategy != "none"


def test_cpu_profile_records_the_published_schedule_with_a_capped_inner_loop():
    for ipc, loops in ((1, (1, 1)), (10, (10, 10)), (50, (50, 10))):
        cfg = make_config("cpu", "mnist", "dsa", ipc)
        assert (cfg.outer_loop, cfg.inner_loop) == loops and cfg.cmi.weight == 0
    assert make_config("cpu", "mnist", "dsa+cmi", 10).cmi.weight > 0
    with pytest.raises(ddcmi.ConfigError, match="IPC 7"):  # no schedule published: say so at run time
        from ddcmi.methods.gradient_matching import DCMatching
        DCMatching(make_config("cpu", "mnist", "dc", 7), *_mnist_like())


def _mnist_like():
    """A dataset stand-in with what DCMatching's constructor reads (no data needed)."""
    from types import SimpleNamespace
    ds = SimpleNamespace(channels=1, num_classes=10, image_size=28)
    return ds, None, torch.device("cpu")


def test_dsa_refuses_to_run_without_augmentation(mnist):
    with pytest.raises(ddcmi.ConfigError, match="DSA needs an augmentation strategy"):
        Distiller(make_config("smoke", "mnist", "dsa", 2, overrides={"dsa.strategy": "none"}), mnist, progress=False)


def test_batchnorm_statistics_come_from_real_images_and_stay_frozen(mnist):
    cfg = make_config("smoke", "mnist", "dc", 2, overrides={"net": "convnet3_bn"})
    m = DCMatching(cfg, mnist, mnist.real_sampler(), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    m._freeze_bn_from_real(g)
    bns = [x for x in m.net.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(not b.training for b in bns)
    assert all(b.num_batches_tracked.item() == 1 for b in bns)
    # each update recomputes the statistics from real images first, then matches with them frozen
    frozen = []
    original = m._freeze_bn_from_real

    def record(generator):
        original(generator)
        frozen.append([b.running_mean.clone() for b in bns])

    m._freeze_bn_from_real = record
    images = mnist.real_sampler().initial_images(2, g)[0].requires_grad_(True)
    m.loss_and_backward(images, torch.arange(10).repeat_interleave(2), Draws(0, 1), 0)
    assert len(frozen) == 1
    assert all(torch.equal(a, b.running_mean) for a, b in zip(frozen[0], bns))  # unchanged while matching
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["dc", "dsa", "dsa+cmi"])
def test_smoke_runs_beat_chance(mnist, method):
    cfg = make_config("smoke", "mnist", method, 10)
    res = Distiller(cfg, mnist, progress=False).run()
    steps = res.history["steps"]
    assert len(steps) == cfg.iterations and all(torch.isfinite(torch.tensor(s["match"])) for s in steps)
    assert all(("cmi" in s) == method.endswith("+cmi") for s in steps)
    acc = evaluate_synset(res.synset.images, res.synset.labels, mnist, cfg.eval, progress=False)
    assert acc["mean"] > 0.3


def test_interrupt_inside_an_iteration_rolls_back_and_resumes_exactly(mnist, tmp_path, monkeypatch):
    """DC updates the pixels several times per iteration: Ctrl-C in the middle keeps the last whole one."""
    cfg = make_config("smoke", "mnist", "dc", 2, overrides={"iterations": 3, "checkpoint_every": 100})
    full = Distiller(cfg, mnist, progress=False).run().synset.images
    original = DCMatching.train_inner
    calls = {"n": 0}

    def interrupt_on_second_inner(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # inside iteration 2, after its first image update
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(DCMatching, "train_inner", interrupt_on_second_inner)
    with pytest.raises(KeyboardInterrupt, match="stopped after 1 of 3"):
        Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    monkeypatch.setattr(DCMatching, "train_inner", original)
    resumed = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run().synset.images
    assert torch.allclose(resumed, full, atol=1e-6)
