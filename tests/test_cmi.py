"""The CMI estimator's properties (method.md section 2) and the regulariser built on it."""
import math
import pytest
import torch

import ddcmi
from ddcmi import empirical_cmi
from ddcmi.cmi import CMIConfig, CMIRegularizer, measure_cmi
from ddcmi.models import create_model, init_weights_
from ddcmi.proxy import PoolConfig, ProxyPool



def random_probs(n, k, seed=0, sharp=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharp * torch.randn(n, k, generator=g, dtype=torch.float64), dim=1)


def double_loop_cmi(probs, labels):
    """The definition, written as plainly as possible."""
    total = 0.0
    n = len(labels)
    for i in range(n):
        members = [j for j in range(n) if labels[j] == labels[i]]
        q = [sum(float(probs[j, k]) for j in members) / len(members) for k in range(probs.shape[1])]
        total += sum(float(probs[i, k]) * (math.log(float(probs[i, k])) - math.log(q[k]))
                     for k in range(probs.shape[1]) if probs[i, k] > 0)
    return total / n


def test_importable_from_package():
    assert ddcmi.empirical_cmi is empirical_cmi


def test_matches_direct_double_loop_with_unequal_classes():
    probs = random_probs(23, 7, seed=1)
    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 1 + [4] * 8)
    value = empirical_cmi(probs, labels)
    assert value.dim() == 0
    assert value.item() == pytest.approx(double_loop_cmi(probs, labels), rel=1e-10, abs=1e-12)
    assert value.item() > 0.01  # a real, non-trivial value


def test_non_negative_on_many_random_inputs():
    for seed in range(20):
        probs = random_probs(30, 5, seed=seed, sharp=float(seed % 5))
        labels = torch.randint(0, 4, (30,), generator=torch.Generator().manual_seed(seed))
        assert empirical_cmi(probs, labels).item() >= -1e-12


def test_zero_when_members_of_each_class_are_identical():
    base = random_probs(3, 6, seed=2)
    probs = base.repeat_interleave(4, dim=0)
    labels = torch.arange(3).repeat_interleave(4)
    assert abs(empirical_cmi(probs, labels).item()) < 1e-12
    # and strictly positive once one member differs
    probs2 = probs.clone()
    probs2[0] = random_probs(1, 6, seed=99)[0]
    assert empirical_cmi(probs2, labels).item() > 1e-4


def test_exactly_zero_value_and_gradient_at_one_sample_per_class():
    logits = torch.randn(10, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    labels = torch.arange(10)
    value = empirical_cmi(torch.softmax(logits, 1), labels)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_centroid_gradient_is_zero_and_detaching_changes_nothing():
    logits = torch.randn(12, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    probs = torch.softmax(logits, 1)
    # at Q_c = mean of its p_i, the gradient with respect to Q_c is orthogonal to the probability
    # simplex (the same number in every coordinate): no admissible change of Q_c changes CMI
    q = torch.stack([probs[labels == c].mean(0) for c in range(3)]).detach().requires_grad_(True)
    empirical_cmi(probs.detach(), labels, centroids=q).backward()
    tangential = q.grad - q.grad.mean(dim=1, keepdim=True)
    assert tangential.abs().max().item() < 1e-12
    # and the full gradient equals the one with the centroids detached
    g_full, = torch.autograd.grad(empirical_cmi(probs, labels), logits)
    probs = torch.softmax(logits, 1)
    q_det = torch.stack([probs[labels == c].mean(0) for c in range(3)]).detach()
    g_det, = torch.autograd.grad(empirical_cmi(probs, labels, centroids=q_det), logits)
    assert torch.allclose(g_full, g_det, atol=1e-12)
    assert g_full.abs().max().item() > 1e-4  # the path through each p_i is kept


def test_decomposes_over_classes():
    probs = random_probs(20, 6, seed=5)
    labels = torch.tensor([0] * 3 + [1] * 7 + [2] * 10)
    total = empirical_cmi(probs, labels)
    parts = sum((labels == c).sum() * empirical_cmi(probs[labels == c], labels[labels == c]) for c in range(3))
    assert total.item() == pytest.approx((parts / 20).item(), rel=1e-12)


def test_invariant_to_permutation_and_class_renaming():
    probs = random_probs(15, 4, seed=6)
    labels = torch.tensor([0] * 5 + [1] * 4 + [2] * 6)
    ref = empirical_cmi(probs, labels).item()
    perm = torch.randperm(15, generator=torch.Generator().manual_seed(7))
    assert empirical_cmi(probs[perm], labels[perm]).item() == pytest.approx(ref, rel=1e-12)
    renamed = torch.tensor([7, 3, 0])[labels]
    assert empirical_cmi(probs, renamed).item() == pytest.approx(ref, rel=1e-12)


def test_fixed_real_centroids():
    probs = random_probs(8, 3, seed=8)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    q = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]], dtype=torch.float64)
    expected = sum(float((probs[i] * (probs[i].log() - q[labels[i]].log())).sum()) for i in range(8)) / 8
    assert empirical_cmi(probs, labels, centroids=q).item() == pytest.approx(expected, rel=1e-12)
    # with real centroids a single sample per class is informative (not zero)
    assert empirical_cmi(probs[[0, 4]], labels[[0, 4]], centroids=q).item() > 0


@pytest.mark.parametrize("probs,labels", [(torch.ones(3, 2) / 2, torch.zeros(4, dtype=torch.long)),
                                          (torch.ones(3), torch.zeros(3, dtype=torch.long))])
def test_wrong_shapes_raise_clear_error(probs, labels):
    with pytest.raises(ddcmi.ConfigError, match="N x K"):
        empirical_cmi(probs, labels)


# ----------------------------------------------------------------------------- regulariser
def tiny_pool(k=2, arch="convnet3", channels=3, size=16, classes=4):
    g = torch.Generator().manual_seed(0)
    members = [init_weights_(create_model(arch, channels, classes, size, width=8), g) for _ in range(k)]
    cfg = PoolConfig("toy", arch=arch, count=k, epochs=0, arch_kwargs={"width": 8})
    return ProxyPool(cfg, members, (0.5,) * channels, (0.25,) * channels)


@pytest.mark.parametrize("space", ["feature", "logit"])
def test_regularizer_classwise_gradient_equals_whole_set_gradient(space):
    pool = tiny_pool()
    x = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    reg = CMIRegularizer(pool, CMIConfig(weight=3.0, space=space))
    value = reg.backward(x, labels, proxy_index=1)
    proxy = pool.members[1]
    x2 = x.detach().clone().requires_grad_(True)
    z = proxy.embed(x2) if space == "feature" else proxy(x2)
    direct = empirical_cmi(torch.softmax(z, 1), labels)
    (3.0 * direct).backward()
    assert value == pytest.approx(direct.item(), rel=1e-5)
    assert torch.allclose(x.grad, x2.grad, atol=1e-6, rtol=1e-4)
    assert all(not p.requires_grad for p in proxy.parameters())  # the proxy stays frozen
    assert not proxy.training


def test_regularizer_skips_work_at_ipc1_and_normalises_unit_inputs():
    pool = tiny_pool()
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    labels = torch.arange(4)
    reg = CMIRegularizer(pool, CMIConfig(weight=1.0))
    assert reg.known_zero(labels) and reg.backward(x, labels, 0) == 0.0 and x.grad is None
    # unit-space inputs are normalised with the pool's statistics before the proxy sees them
    labels = torch.tensor([0, 0, 1, 1])
    unit = CMIRegularizer(pool, CMIConfig(weight=0.0), input_space="unit").backward(x, labels, 0, weight=0)
    normed = CMIRegularizer(pool, CMIConfig(weight=0.0)).backward((x - 0.5) / 0.25, labels, 0, weight=0)
    assert unit == pytest.approx(normed, rel=1e-5)


def test_measure_cmi_reports_every_member():
    pool = tiny_pool(k=3)
    x = torch.randn(8, 3, 16, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    r = measure_cmi(x, labels, pool, space="logit")
    assert len(r["per_member"]) == 3 and r["mean"] > 0 and r["space"] == "logit"


def test_cmi_config_rejects_bad_values():
    with pytest.raises(ddcmi.ConfigError, match="space"):
        CMIConfig(space="pixels")
    with pytest.raises(ddcmi.ConfigError, match="interval"):
        CMIConfig(interval=0)


def test_compiled_regularizer_matches_eager_across_members():
    """compile=True copies each drawn member into one compiled network: values and gradients match."""
    pool = tiny_pool(k=2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    x0 = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    results = {}
    for compiled in (False, True):
        reg = CMIRegularizer(pool, CMIConfig(weight=2.0, space="logit"), compile=compiled)
        out = []
        for index in (0, 1, 0):
            x = x0.clone().requires_grad_(True)
            out.append((reg.backward(x, labels, index), x.grad.clone()))
        results[compiled] = out
    assert results[False][0][0] != pytest.approx(results[False][1][0])  # the members differ
    for (v_e, g_e), (v_c, g_c) in zip(results[False], results[True]):
        assert v_c == pytest.approx(v_e, rel=1e-4)
        assert torch.allclose(g_c, g_e, atol=1e-6, rtol=1e-3)


@pytest.mark.parametrize("max_batch", [1, 5, 1000])
def test_chunks_of_whole_classes_give_the_same_value_and_gradient(max_batch):
    pool = tiny_pool()
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    x0 = torch.randn(10, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    out = {}
    for mb in (max_batch, 10_000):
        x = x0.clone().requires_grad_(True)
        value = CMIRegularizer(pool, CMIConfig(weight=1.5, max_batch=mb)).backward(x, labels, 0)
        out[mb] = (value, x.grad)
    assert out[max_batch][0] == pytest.approx(out[10_000][0], rel=1e-5)
    assert torch.allclose(out[max_batch][1], out[10_000][1], atol=1e-7, rtol=1e-4)
    reg = CMIRegularizer(pool, CMIConfig(max_batch=max_batch))
    chunks = reg._class_chunks(labels, skip_singletons=True)
    assert sorted(torch.cat(chunks).tolist()) == [0, 1, 2, 3, 4, 6, 7, 8, 9]  # class 2 (one sample) skipped
    assert all(len(c) <= max(max_batch, 4) for c in chunks)
