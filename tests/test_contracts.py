"""The contracts the next methods and scale-out build on: method state, per-class randomness, stable
keys, method-owned configuration, one run store. Runs on the generated dataset (no ../shared needed)."""
import dataclasses
import threading

import pytest
import torch

import ddcmi
from conftest import interrupt_at_call
from ddcmi import Distiller, make_config
from ddcmi.methods import METHODS, register
from ddcmi.methods.base import MatchingMethod
from ddcmi.rng import Draws, seed_for


def toy_config(toy, method, ipc=3, **over):
    over = {"iterations": 4, "checkpoint_every": 100, **over}
    return make_config("smoke", toy.name, method, ipc, overrides=over)


# ---------------------------------------------------------------------------------------------- rng
def test_draws_are_keyed_not_sequential():
    a, b = Draws(0, 3), Draws(0, 3)
    x = torch.rand(4, generator=a("real", 2))
    torch.rand(100, generator=b("real", 1))  # other draws in between change nothing
    assert torch.equal(x, torch.rand(4, generator=b("real", 2)))
    assert not torch.equal(x, torch.rand(4, generator=a("real", 3)))
    assert not torch.equal(x, torch.rand(4, generator=Draws(1, 3)("real", 2)))
    assert not torch.equal(x, torch.rand(4, generator=a("dsa", 2)))
    assert seed_for(0, 3, 2, "real") == seed_for(0, 3, 2, "real") < 2 ** 63


# ----------------------------------------------------------------------------------- method state
@dataclasses.dataclass(frozen=True)
class ToyOptions:
    decay: float = 0.5


class StatefulToy(MatchingMethod):
    """A throw-away method with state across iterations (a running mean of the pixels, a step counter)
    and a learnable tensor besides the pixels (a scale), as IDM's queue and MTT's step size will have."""

    options = ToyOptions
    cpu_lambda = 1.0

    def __init__(self, config, dataset, sampler, device, classes=None):
        super().__init__(config, dataset, sampler, device, classes)
        self.running = None
        self.steps = 0
        self.scale = torch.ones((), requires_grad=True)

    def param_groups(self):
        return [{"params": [self.scale], "lr": 0.01}]

    def state_dict(self):
        return {"running": self.running, "steps": self.steps, "scale": self.scale.detach().clone()}

    def load_state_dict(self, state):
        if state:
            self.running, self.steps = state["running"], state["steps"]
            with torch.no_grad():
                self.scale.copy_(state["scale"])

    def iteration(self, images, labels, draws, update):
        g = draws("class", 0)
        target = self.sampler.sample(0, 8, g).mean(0)
        d = self.config.options.decay
        current = images.detach().mean(0)
        self.running = current if self.running is None else d * self.running + (1 - d) * current
        loss = ((self.scale * images.mean(0) - target - 0.1 * self.running) ** 2).sum()
        loss.backward()
        self.steps += 1
        return [update({"match": float(loss.detach())})]


@pytest.fixture
def stateful_method():
    register("toystate")(StatefulToy)
    yield "toystate"
    METHODS.unregister("toystate")


def test_a_method_with_state_resumes_bitwise(toy, stateful_method, tmp_path, monkeypatch):
    cfg = toy_config(toy, stateful_method, iterations=8, checkpoint_every=3)
    assert cfg.options == ToyOptions()
    full = Distiller(cfg, toy, progress=False)
    full_set = full.run().synset.images
    original = interrupt_at_call(monkeypatch, StatefulToy, "iteration", 6)
    with pytest.raises(KeyboardInterrupt, match="stopped after 5 of 8"):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["method_state"]["steps"] == 5 and ckpt["rng"] == ddcmi.rng.RNG_VERSION
    monkeypatch.setattr(StatefulToy, "iteration", original)
    resumed = Distiller(cfg, toy, out_dir=tmp_path, progress=False)
    res = resumed.run()
    assert torch.equal(res.synset.images, full_set)
    assert torch.equal(resumed.method.scale, full.method.scale) and resumed.method.scale.item() != 1.0
    assert torch.equal(resumed.method.running, full.method.running) and resumed.method.steps == 8  # restored 5, then 3 more


def test_a_checkpoint_of_another_rng_version_is_refused(toy, tmp_path):
    cfg = toy_config(toy, "dm", iterations=2, checkpoint_every=1)
    Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["rng"] = 1
    (tmp_path / "synset.pt").unlink()
    ddcmi.utils.atomic_torch_save(ckpt, tmp_path / "checkpoint.pt")  # as written by that version (checksum anew)
    with pytest.raises(ddcmi.ArtefactError, match="random-draw scheme 1.*--fresh"):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()


# ------------------------------------------------------------------------------ class subsets
def test_dm_on_two_class_subsets_computed_separately_equals_a_full_run(toy):
    cfg = toy_config(toy, "dm", iterations=3)
    full = Distiller(cfg, toy, progress=False).run().synset
    for classes in ([0, 2, 4, 6, 8], [9, 7, 5, 3, 1]):  # any order, one after the other
        part = Distiller(cfg, toy, progress=False, classes=classes).run().synset
        mine = torch.isin(full.labels, torch.tensor(classes))
        assert torch.equal(part.images[mine], full.images[mine])
        assert not torch.equal(part.images[~mine], full.images[~mine])  # the others were not computed


class ThreadExchange:
    """Workers in threads of one process, each owning some classes, exchanging their pixels after every
    update (what an all-gather does between processes)."""

    def __init__(self, labels, subsets):
        self.masks = [torch.isin(labels, torch.tensor(s)) for s in subsets]
        self.barrier = threading.Barrier(len(subsets))
        self.latest = [None] * len(subsets)

    def for_worker(self, rank):
        def exchange(images):
            self.latest[rank] = images.detach().clone()
            self.barrier.wait()
            for r, other in enumerate(self.latest):
                if r != rank:
                    images[self.masks[r]] = other[self.masks[r]]
            self.barrier.wait()
        return exchange


@pytest.mark.parametrize("method", ["dm+cmi", "dsa+cmi", "idc+cmi", "idm+cmi"])
def test_two_class_parallel_workers_equal_a_full_run(toy, method):
    """Two workers, each computing its own classes, exchanging pixels after every update: CMI passes
    whole groups of classes through the proxy (their batches as in a full run), DSA trains its network
    on the whole set between updates, IDC steps through every class's update in every worker
    (momentum moves all pixels at every step), IDM trains its queue identically in every worker."""
    cfg = toy_config(toy, method, ipc=2, iterations=2, outer_loop=2, inner_loop=1)
    pool = ddcmi.ProxyPool.build(cfg.pool, toy, progress=False)
    full = Distiller(cfg, toy, progress=False, pool=pool).run().synset
    subsets = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    storage_labels = torch.arange(10).repeat_interleave(cfg.ipc)
    exchange = ThreadExchange(storage_labels, subsets)
    results, errors = [None, None], []

    def work(rank):
        try:
            d = Distiller(cfg, toy, progress=False, pool=pool, classes=subsets[rank], exchange=exchange.for_worker(rank))
            results[rank] = d.run().synset
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
            exchange.barrier.abort()

    with pytest.raises(ddcmi.ConfigError, match="exchange"):
        Distiller(cfg, toy, progress=False, pool=pool, classes=subsets[0])
    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for rank, classes in enumerate(subsets):
        mine = torch.isin(full.labels, torch.tensor(classes))
        assert torch.equal(results[rank].images[mine], full.images[mine])


# ----------------------------------------------------------------------------- every method
def _methods():
    return [m for m in ddcmi.list_methods() if m.split("+")[0] in METHODS]


@pytest.mark.parametrize("method", _methods())
def test_every_registered_method_runs_and_learns_the_toy_data(toy, method):
    """Each registered method, with and without +cmi, at smoke on the generated data: a set of the
    right shape whose networks beat chance (10 %) clearly."""
    cfg = toy_config(toy, method, ipc=2, iterations=3,
                     **{"eval.num_models": 1, "eval.epochs": 15, "eval.arch_kwargs": {"width": 16}})
    res = Distiller(cfg, toy, progress=False).run()
    s = res.synset
    assert s.images.shape[1:] == (1, 28, 28) and torch.isfinite(s.images).all()
    assert torch.bincount(s.labels).tolist() == [s.images.shape[0] // 10] * 10
    assert all(("cmi" in r) == method.endswith("+cmi") for r in res.history["steps"])
    acc = ddcmi.evaluate_synset(s.images, s.labels, toy, s.recipe(cfg.eval), progress=False)
    assert acc["mean"] > 0.5


@pytest.mark.parametrize("method", _methods())
@pytest.mark.parametrize("profile", ddcmi.PROFILES)
def test_every_method_resolves_at_every_profile_with_sources(method, profile):
    cfg, sources = ddcmi.resolve_config(profile, "cifar10", method, 10)
    assert cfg.method == method and cfg.rng == ddcmi.rng.RNG_VERSION
    assert sources["iterations"].startswith("method ") and sources["pool.count"] == f"profile {profile}"
    assert (cfg.cmi.weight > 0) == method.endswith("+cmi")
    cfg2, sources2 = ddcmi.resolve_config(profile, "cifar10", method, 10, overrides=["iterations=7"])
    assert cfg2.iterations == 7 and sources2["iterations"] == "override"


def test_idc_is_evaluated_with_its_own_recipe_by_default():
    from ddcmi.evaluate import IDC_RECIPE
    ev = make_config("cpu", "cifar10", "idc+cmi", 10).eval
    assert ev.batch_size == IDC_RECIPE["batch_size"] and ev.cutmix_prob == IDC_RECIPE["cutmix_prob"]
    assert make_config("cpu", "cifar10", "dm", 10).eval.cutmix_prob == 0.0


def test_no_method_branches_outside_the_methods():
    import pathlib
    import re
    root = pathlib.Path(ddcmi.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "methods" not in p.parts
                 and re.search(r"base(_method)?\s*==\s*[\"'](dm|dc|dsa|idc)[\"']", p.read_text())]
    assert not offenders, offenders
