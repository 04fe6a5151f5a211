"""The same code on a GPU: skipped where there is no CUDA device (as on CI); on a machine with one,
``pytest tests/test_cuda.py`` checks that the estimator, the regulariser and every method family give
on CUDA what they give on the CPU. All randomness comes from CPU ``torch.Generator``s, so a run on
CUDA starts from the same draws as on the CPU and differs only by floating-point rounding (cuDNN
may use TF32 convolutions)."""
import copy

import pytest
import torch

from ddcmi import Distiller, empirical_cmi, make_config
from ddcmi.cmi import CMIConfig, CMIRegularizer
from ddcmi.evaluate import evaluate_synset
from ddcmi.proxy import ProxyPool

from test_cmi import random_probs, tiny_pool

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


def pool_on(pool: ProxyPool, device) -> ProxyPool:
    return ProxyPool(pool.config, [copy.deepcopy(m).to(device) for m in pool.members], pool.mean, pool.std)


def test_estimator_gives_the_same_value_on_cuda():
    probs = random_probs(40, 7, seed=3)
    labels = torch.arange(40) % 5
    cpu = empirical_cmi(probs, labels)
    assert float(empirical_cmi(probs.to(CUDA), labels.to(CUDA))) == pytest.approx(float(cpu), rel=1e-9)


@pytest.mark.parametrize("space", ["feature", "logit"])
def test_regulariser_value_and_gradient_match_the_cpu(space):
    pool = tiny_pool()
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    x0 = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = {}
    for device, p in (("cpu", pool), ("cuda", pool_on(pool, CUDA))):
        x = x0.to(device, copy=True).requires_grad_(True)  # a leaf of its own on each device
        value = CMIRegularizer(p, CMIConfig(weight=3.0, space=space)).backward(x, labels.to(device), 1)
        out[device] = (value, x.grad.cpu())
    assert out["cuda"][0] == pytest.approx(out["cpu"][0], rel=1e-3)
    assert torch.allclose(out["cuda"][1], out["cpu"][1], rtol=1e-2, atol=1e-6 * out["cpu"][1].abs().max())


@pytest.mark.parametrize("method,ipc", [("dm+cmi", 10), ("dsa+cmi", 10), ("idc+cmi", 2), ("idm+cmi", 2),
                                        ("mtt+cmi", 2)])
def test_each_method_family_runs_on_cuda_and_beats_chance(mnist, method, ipc):
    cfg = make_config("smoke", "mnist", method, ipc)
    distiller = Distiller(cfg, mnist, device=CUDA, progress=False)
    res = distiller.run()
    assert all(next(m.parameters()).is_cuda for m in distiller.pool.members)
    steps = res.history["steps"]
    assert len(steps) == cfg.iterations and all(s["cmi"] >= 0 for s in steps)
    assert torch.isfinite(res.synset.images).all()
    acc = evaluate_synset(res.synset.images, res.synset.labels, mnist, res.synset.recipe(cfg.eval), device=CUDA,
                          progress=False)
    assert acc["mean"] > 0.3  # chance is 0.1


def test_a_cuda_run_starts_from_the_cpu_draws_and_ends_close_to_the_cpu_result(mnist, tmp_path):
    cfg = make_config("smoke", "mnist", "dm+cmi", 10, overrides=["iterations=3"])
    runs = {d: Distiller(cfg, mnist, device=d, out_dir=tmp_path / d, progress=False).run().synset.images.cpu()
            for d in ("cpu", "cuda")}
    init = {d: torch.load(tmp_path / d / "initial_images.pt") for d in runs}
    # the same real images (the same CPU draws), normalised on each device: equal up to rounding
    assert torch.allclose(init["cpu"], init["cuda"], atol=1e-6)
    moved = (runs["cpu"] - init["cpu"]).abs().max()
    assert moved > 0
    assert (runs["cuda"] - runs["cpu"]).abs().max() < 0.1 * moved  # rounding, far below the update itself


def test_a_cuda_run_repeats(mnist):
    cfg = make_config("smoke", "mnist", "dm+cmi", 10, overrides=["iterations=3"])
    a, b = (Distiller(cfg, mnist, device=CUDA, progress=False).run().synset.images for _ in range(2))
    assert torch.allclose(a, b, atol=1e-5)


def test_the_gpu_fast_paths_give_the_plain_paths_results_on_cuda(mnist):
    """batch_classes (DM) and eval.stacked on CUDA against their one-by-one paths on CUDA."""
    import dataclasses
    s = Distiller(make_config("smoke", "mnist", "dm+cmi", 10, overrides=["iterations=4"]), mnist, device=CUDA,
                  progress=False).run().synset
    a = s.images
    b = Distiller(make_config("smoke", "mnist", "dm+cmi", 10, overrides=["iterations=4", "batch_classes=true"]), mnist,
                  device=CUDA, progress=False).run().synset.images
    assert float((a - b).abs().max()) < 1e-2  # TF32 convolutions round more than the CPU's float32
    cfg = make_config("smoke", "mnist", "dm", 10).eval
    plain = evaluate_synset(a, s.labels, mnist, cfg, device=CUDA, progress=False)
    fast = evaluate_synset(a, s.labels, mnist, dataclasses.replace(cfg, stacked=True),
                           device=CUDA, progress=False)
    assert fast["mean"] == pytest.approx(plain["mean"], abs=0.03)
