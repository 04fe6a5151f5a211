import pytest
import torch

import ddcmi
from ddcmi.augment import DSA, DSAConfig, OPERATIONS


def batch(n=6, c=3, s=16, seed=0):
    return torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op", OPERATIONS)
def test_each_operation_is_differentiable_and_keeps_shape(op):
    dsa = DSA(DSAConfig(strategy=op))
    x = batch().requires_grad_(True)
    y = dsa(x, torch.Generator().manual_seed(0), siamese=False)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", OPERATIONS)
def test_siamese_draw_is_shared_by_real_and_synthetic_batches(op):
    dsa = DSA(DSAConfig(strategy=op))
    real, syn = batch(8), batch(3, seed=1)
    params = dsa.sample(real.shape, torch.Generator().manual_seed(5), siamese=True)
    both = dsa.apply(torch.cat([real, syn]), params)
    assert torch.allclose(dsa.apply(real, params), both[:8], atol=1e-6)
    assert torch.allclose(dsa.apply(syn, params), both[8:], atol=1e-6)
    # Siamese: every image of the call gets the same transformation
    same = batch(1).expand(4, -1, -1, -1)
    out = dsa.apply(same, params)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)


def test_independent_mode_differs_across_images_and_seed_reproduces():
    dsa = DSA(DSAConfig(strategy="rotate"))
    same = batch(1).expand(4, -1, -1, -1)
    out = dsa(same, torch.Generator().manual_seed(2), siamese=False)
    assert not torch.allclose(out[0], out[1])
    again = dsa(same, torch.Generator().manual_seed(2), siamese=False)
    assert torch.equal(out, again)


def test_strategy_picks_one_operation_per_call_from_the_generator():
    dsa = DSA()
    ops = {dsa.sample((2, 3, 16, 16), torch.Generator().manual_seed(s), True)["op"] for s in range(60)}
    assert ops == set(OPERATIONS)


def test_parameters_follow_the_spec():
    g = torch.Generator().manual_seed(0)
    scale = DSA(DSAConfig(strategy="scale")).sample((5000, 3, 32, 32), g, False)
    assert scale["sx"].min() >= 1 / 1.2 and scale["sx"].max() <= 1.2
    rot = DSA(DSAConfig(strategy="rotate")).sample((5000, 3, 32, 32), g, False)
    assert rot["angle"].abs().max() <= 15 / 180 * torch.pi + 1e-6
    crop = DSA(DSAConfig(strategy="crop")).sample((5000, 3, 32, 32), g, False)
    assert crop["dx"].abs().max() == 4  # 0.125 * 32
    flip = DSA(DSAConfig(strategy="flip")).sample((5000, 3, 32, 32), g, False)
    assert 0.45 < flip["flip"].float().mean() < 0.55
    cut = DSA(DSAConfig(strategy="cutout")).sample((4, 3, 32, 32), g, False)
    assert cut["size"] == (16, 16)
    x = torch.ones(4, 3, 32, 32)
    zeros = (DSA(DSAConfig(strategy="cutout")).apply(x, cut) == 0).float().mean(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 0.25 + 1e-6).all()


def test_flip_flips_and_none_is_identity():
    x = batch(2)
    p = {"op": "flip", "flip": torch.tensor([True, False])}
    y = DSA(DSAConfig(strategy="flip")).apply(x, p)
    assert torch.equal(y[0], x[0].flip(2)) and torch.equal(y[1], x[1])
    assert not DSA(DSAConfig(strategy="none")).enabled


def test_unknown_operation_is_an_error():
    with pytest.raises(ddcmi.ConfigError, match="unknown DSA operation"):
        DSA(DSAConfig(strategy="color_blur"))
