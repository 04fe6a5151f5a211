"""The compiled training step (``compile`` on evaluation, proxy pools and experts) equals the eager one."""
import dataclasses

import pytest
import torch

from ddcmi.errors import ConfigError
from ddcmi.evaluate import EvalConfig, evaluate_synset, recipe_of, train_on_synset


def _set(toy, ipc=4):
    return toy.real_sampler(torch.device("cpu")).initial_images(ipc, torch.Generator().manual_seed(0))


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_compiled_network_ends_where_eager_training_leaves_it(toy):
    """The same draws (the generator ends in the same state) and the same arithmetic fused: the parameters
    agree within float rounding; a second network reuses the compiled graph and agrees too."""
    x, y = _set(toy)
    cfg = EvalConfig(arch_kwargs={"width": 16}, epochs=6, num_models=1)
    fast = dataclasses.replace(cfg, compile=True)
    assert recipe_of(fast).compile and not recipe_of(cfg).compile
    from torch._dynamo.utils import counters
    calls = counters["stats"]["calls_captured"]
    for seed in (3, 4):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        eager = train_on_synset(x, y, toy, cfg, g1, torch.device("cpu"))
        compiled = train_on_synset(x, y, toy, fast, g2, torch.device("cpu"))
        assert torch.equal(g1.get_state(), g2.get_state())
        a, b = _flat(eager), _flat(compiled)
        assert not a.requires_grad and float((a - b).norm() / a.norm()) < 1e-4  # rounding only (measured 1.6e-7)
    assert counters["stats"]["calls_captured"] > calls  # the compiled path did run
    assert type(compiled).__name__ != "OptimizedModule"  # the caller gets its own module back


def test_a_compiled_evaluation_reports_what_the_eager_one_does_and_says_so(toy):
    x, y = _set(toy)
    cfg = EvalConfig(arch_kwargs={"width": 16}, epochs=6, num_models=2)
    plain = evaluate_synset(x, y, toy, cfg, seed=1, progress=False)
    fast = evaluate_synset(x, y, toy, dataclasses.replace(cfg, compile=True), seed=1, progress=False)
    assert "compile" not in plain and fast["compile"] is True  # named in the result
    assert fast["accs"] == pytest.approx(plain["accs"], abs=0.02)  # rounding may flip a test image or two


def test_stacked_and_compiled_evaluation_is_refused_early(toy):
    x, y = _set(toy)
    with pytest.raises(ConfigError, match="stacked and compile are both on"):
        evaluate_synset(x, y, toy, EvalConfig(stacked=True, compile=True), progress=False)


def test_a_compiled_pool_build_equals_the_eager_one_and_is_its_own_pool(toy, tmp_path):
    """Through ProxyPool.build (per-epoch checkpoints, a snapshot epoch): members within float rounding of the eager
    build's, stored under their own key; experts pass the switch to the trainer and key it too."""
    from ddcmi.experts import ExpertConfig
    from ddcmi.proxy import PoolConfig, ProxyPool

    pools = {}
    for compiled in (False, True):
        cfg = PoolConfig(toy.name, arch="convnet3", count=1, epochs=2, arch_kwargs={"width": 8}, compile=compiled)
        pools[compiled] = ProxyPool.build(cfg, toy, "cpu", root=tmp_path, progress=False, snapshots=[1])
    assert pools[False].config.key() != pools[True].config.key()
    assert len(list(tmp_path.iterdir())) == 4  # two pools and their 1-epoch snapshots, none shared
    a, b = (_flat(p.members[0]) for p in (pools[False], pools[True]))
    assert float((a - b).norm() / a.norm()) < 1e-3  # rounding only (measured 8e-6)
    assert ExpertConfig("toy", compile=True).recipe().compile and not ExpertConfig("toy").recipe().compile
    assert ExpertConfig("mnist").key() != ExpertConfig("mnist", compile=True).key()
