"""Evaluation networks trained together (stacked parameters, torch.func) equal the one-by-one path."""
import dataclasses

import pytest
import torch

from ddcmi.evaluate import EvalConfig, evaluate_synset, train_on_synset, train_stacked_on_synset


def _set(toy, ipc=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return toy.real_sampler(torch.device("cpu")).initial_images(ipc, g)


@pytest.mark.parametrize("recipe", [{}, {"batch_size": 16, "cutmix_prob": 0.5, "lr_milestones": (0.5,)}])
def test_stacked_networks_end_where_one_by_one_training_leaves_them(toy, recipe):
    x, y = _set(toy)
    cfg = EvalConfig(arch_kwargs={"width": 16}, epochs=4, num_models=3, **recipe)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    one = [train_on_synset(x, y, toy, cfg, g1, torch.device("cpu")) for _ in range(3)]
    together = train_stacked_on_synset(x, y, toy, cfg, g2, torch.device("cpu"), 3)
    assert torch.equal(g1.get_state(), g2.get_state())  # the generator left where the third network leaves it
    for a, b in zip(one, together):
        pa, pb = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b))
        assert float((pa - pb).norm() / pa.norm()) < 1e-5  # float rounding only (measured about 1e-8)
    assert not torch.equal(next(together[0].parameters()), next(together[1].parameters()))  # three networks


def test_a_stacked_evaluation_reports_what_the_plain_one_does(toy):
    x, y = _set(toy)
    cfg = EvalConfig(arch_kwargs={"width": 16}, epochs=8, num_models=3)
    plain = evaluate_synset(x, y, toy, cfg, seed=1, progress=False)
    fast = evaluate_synset(x, y, toy, dataclasses.replace(cfg, stacked=True), seed=1, progress=False)
    assert fast["num_models"] == 3 and len(fast["accs"]) == 3
    assert fast["accs"] == pytest.approx(plain["accs"], abs=0.02)  # a rounding difference may flip a test image or two
    bn = evaluate_synset(x, y, toy, EvalConfig(arch="convnet3_bn", arch_kwargs={"width": 16}, epochs=2, num_models=2,
                                               stacked=True), seed=1, progress=False)
    assert len(bn["accs"]) == 2  # batch norm: trained one by one, the switch is ignored


def test_bf16_evaluation_is_close_to_fp32_and_changes_only_its_part(toy):
    """eval.autocast: "test" changes only the test-set forward passes (the trained networks are bitwise
    the fp32 ones), "train+test" trains under bf16 too (fp32 parameters, close to the fp32 ones)."""
    from ddcmi.proxy import accuracy
    x, y = _set(toy)
    cfg = EvalConfig(arch_kwargs={"width": 16}, epochs=4, num_models=1)
    nets = {mode: train_on_synset(x, y, toy, dataclasses.replace(cfg, autocast=mode), torch.Generator().manual_seed(3),
                                  torch.device("cpu")) for mode in ("none", "test", "train+test")}
    flat = {k: torch.cat([p.detach().flatten() for p in m.parameters()]) for k, m in nets.items()}
    assert torch.equal(flat["none"], flat["test"])  # "test" leaves training alone
    parts = {m: (dataclasses.replace(cfg, autocast=m).bf16_train, dataclasses.replace(cfg, autocast=m).bf16_test)
             for m in ("none", "test", "train+test")}
    assert parts == {"none": (False, False), "test": (False, True), "train+test": (True, True)}
    assert flat["train+test"].dtype == torch.float32 and not torch.equal(flat["none"], flat["train+test"])
    assert float((flat["none"] - flat["train+test"]).norm() / flat["none"].norm()) < 0.01  # measured about 2e-4
    tx, ty = toy.normalize(toy.test.images, torch.device("cpu")), toy.test.labels
    assert accuracy(nets["none"], tx, ty, bf16=True) == pytest.approx(accuracy(nets["none"], tx, ty), abs=0.05)
    fp32 = evaluate_synset(x, y, toy, cfg, seed=1, progress=False)
    bf16 = evaluate_synset(x, y, toy, dataclasses.replace(cfg, autocast="train+test"), seed=1, progress=False)
    assert "autocast" not in fp32 and bf16["autocast"] == "train+test"  # named in the result
    assert bf16["accs"] == pytest.approx(fp32["accs"], abs=0.1)
    with pytest.raises(Exception, match="autocast must be one of"):
        evaluate_synset(x, y, toy, dataclasses.replace(cfg, autocast="fp16"), progress=False)


def test_stacked_gradients_carry_no_graph_back_to_the_stacks(toy):
    """torch.func.grad of stacks that require grad (as stack_module_state gives them) returns gradients
    differentiable back to the stacks; stored as .grad they kept every step's activations alive in a
    reference cycle (about 2.5 GB a call for 5 ConvNet-3s on 100 MNIST images, until the process ran out of
    memory). The gradients must be plain tensors, and equal to each network's own autograd gradient."""
    import copy

    import torch.nn.functional as F
    from torch.func import stack_module_state

    from ddcmi.models import create_model
    from ddcmi.train import stacked_gradients
    x, y = _set(toy)
    models = [create_model("convnet3", toy.channels, toy.num_classes, toy.image_size, width=8) for _ in range(2)]
    stacks, _ = stack_module_state(models)
    assert all(t.requires_grad for t in stacks.values())
    xs, ys = torch.stack([x, x.flip(0)]), torch.stack([y, y.flip(0)])
    grads = stacked_gradients(copy.deepcopy(models[0]).to("meta"), stacks, xs, ys, ys, torch.ones(2))
    assert all(g.grad_fn is None and not g.requires_grad for g in grads.values())
    for k, m in enumerate(models):
        own = torch.autograd.grad(F.cross_entropy(m(xs[k]), ys[k]), list(m.parameters()))
        for (name, _), g in zip(m.named_parameters(), own):
            torch.testing.assert_close(grads[name][k], g, rtol=1e-4, atol=1e-6)
