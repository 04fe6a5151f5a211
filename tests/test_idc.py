"""IDC: the multi-formation layout, the MSE distance, pixels in [0,1], CMI on decoded images, its own
evaluation recipe, and smoke runs that beat chance."""
import dataclasses

import pytest
import torch

from ddcmi import Distiller, make_config
from ddcmi.data import denormalize
from ddcmi.evaluate import EvalConfig, cutmix, evaluate_synset, idc_recipe, recipe_key
from ddcmi.methods._formation import decode, decoded_labels, encode, tile, untile
from ddcmi.methods.idc import mse_distance


def test_untile_inverts_tile_exactly_and_keeps_the_order():
    small = torch.arange(8 * 3 * 5 * 7, dtype=torch.float32).reshape(8, 3, 5, 7)
    storage = tile(small, 2)
    assert storage.shape == (2, 3, 10, 14)
    assert torch.equal(untile(storage, 2), small)
    # image k*4 + i*2 + j is tile (row i, column j) of storage image k
    assert torch.equal(storage[1, :, 5:, :7], small[1 * 4 + 2])
    assert torch.equal(storage[0, :, :5, 7:], small[1])


def test_decode_inverts_encode_on_images_it_can_represent():
    # constant images survive downsampling and bilinear upsampling exactly
    values = torch.rand(8, 3, 1, 1)
    full = values.expand(8, 3, 32, 32).contiguous()
    storage = encode(full, 2)
    assert storage.shape == (2, 3, 32, 32)
    assert torch.allclose(decode(storage, 2), full, atol=1e-6)
    # and decoding puts each storage tile into its own full-size image, in tile order
    s = torch.zeros(1, 1, 4, 4)
    s[0, 0, :2, :2], s[0, 0, :2, 2:], s[0, 0, 2:, :2], s[0, 0, 2:, 2:] = 1, 2, 3, 4
    d = decode(s, 2)
    assert d.shape == (4, 1, 4, 4) and [float(x.mean()) for x in d] == pytest.approx([1, 2, 3, 4])
    assert torch.equal(decoded_labels(torch.tensor([0, 1])), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))


def test_mse_distance_on_hand_made_gradients():
    a = [torch.tensor([[1.0, 2.0]]), torch.tensor([[[[3.0]]]])]
    b = [torch.tensor([[1.0, 0.0]]), torch.tensor([[[[1.0]]]])]
    assert float(mse_distance(a, a)) == 0.0
    assert float(mse_distance(a, b)) == pytest.approx(4.0 + 4.0)


@pytest.mark.parametrize("method", ["idc", "idc+cmi"])
def test_idc_smoke_runs_beat_chance_and_keep_pixels_in_unit_range(mnist, method, tmp_path):
    cfg = make_config("smoke", "mnist", method, 2)
    res = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    s = res.synset
    assert s.images.shape == (2 * 4 * 10, 1, 28, 28)  # decoded: 4 images per storage image
    assert torch.equal(s.labels, torch.arange(10).repeat_interleave(8))
    unit = denormalize(s.images, s.mean, s.std)
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    steps = res.history["steps"]
    assert len(steps) == cfg.iterations
    if method == "idc+cmi":  # 4 decoded images per class even at IPC 1 storage: CMI is not trivially zero
        assert all(st["cmi"] > 0 for st in steps)
    else:
        assert all("cmi" not in st for st in steps)
    acc = evaluate_synset(s.images, s.labels, mnist, cfg.eval, progress=False)
    assert acc["mean"] > 0.3  # chance is 0.1


def test_idc_cmi_at_ipc1_is_measured_on_decoded_images(mnist):
    cfg = make_config("smoke", "mnist", "idc+cmi", 1, overrides={"iterations": 1, "outer_loop": 1})
    steps = Distiller(cfg, mnist, progress=False).run().history["steps"]
    assert steps[0]["cmi"] > 0


def test_idc_paper_profile_and_lambda():
    cfg = make_config("paper", "cifar10", "idc+cmi", 10)
    assert (cfg.iterations, cfg.lr_img, cfg.momentum) == (2000, pytest.approx(5e-3), 0.5)
    assert make_config("paper", "cifar10", "idc", 50).lr_img == pytest.approx(2.5e-2)  # 5e-3 x IPC/10
    assert cfg.cmi.weight == 100 and make_config("paper", "cifar100", "idc+cmi", 50).cmi.weight == 50


def test_idc_evaluation_recipe_runs_and_is_keyed_apart(mnist):
    x, y = mnist.real_sampler().initial_images(2, torch.Generator().manual_seed(0))
    standard = EvalConfig(epochs=2, num_models=1, test_limit=200)
    idc = idc_recipe(standard)
    assert (idc.batch_size, idc.cutmix_prob, idc.lr_gamma) == (64, 0.5, 0.2)
    assert recipe_key(standard) != recipe_key(idc) and recipe_key(EvalConfig()) == {}
    acc = evaluate_synset(x, y, mnist, dataclasses.replace(idc, cutmix_prob=1.0), progress=False)
    assert 0 <= acc["mean"] <= 1


def test_cutmix_pastes_a_box_and_reports_the_kept_area():
    g = torch.Generator().manual_seed(3)
    x = torch.stack([torch.full((1, 8, 8), float(i)) for i in range(4)])
    mixed, ya, yb, keep = cutmix(x, torch.arange(4), g)
    for i in range(4):
        own = float((mixed[i] == i).float().mean())
        assert own == pytest.approx(keep) or int(yb[i]) == i  # the kept fraction is the image's own pixels
