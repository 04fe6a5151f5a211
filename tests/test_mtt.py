"""MTT and MTT+CMI: the matching loss, the learned step size, both gradient modes, ZCA, the expert buffer."""
import dataclasses
import json

import pytest
import torch

import ddcmi
from conftest import interrupt_at_call
from ddcmi.distill import Distiller, snapshot_fields, snapshots
from ddcmi.evaluate import TestSet as _TestSet, evaluate_synset
from ddcmi.experts import ExpertBuffer, ExpertConfig, experts_dir, flat_parameters
from ddcmi.methods.mtt import MTTMatching, trajectory_loss, unflatten
from ddcmi.profiles import make_config
from ddcmi.rng import Draws
from ddcmi.synset import SyntheticSet
from ddcmi.transforms import ZCA, zca_for
from ddcmi.utils import SavedTensorMeter


def mtt_config(ds, method="mtt", ipc=2, **overrides):
    return make_config("smoke", ds.name, method, ipc, overrides=overrides)


def test_matching_loss_on_hand_made_parameter_vectors():
    start, target = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([2.0, 0.0, 0.0])
    assert float(trajectory_loss(start, start, target)) == 1.0  # no progress
    assert float(trajectory_loss(target, start, target)) == 0.0  # reached the expert
    assert float(trajectory_loss(torch.tensor([1.0, 0.0, 0.0]), start, target)) == pytest.approx(0.25)
    # normalised by the expert's own displacement: scaling the problem changes nothing
    assert float(trajectory_loss(torch.tensor([3.0, 1.0, 0.0]), start, target)) == pytest.approx(
        float(trajectory_loss(torch.tensor([30.0, 10.0, 0.0]), start * 10, target * 10)))


def test_unflatten_gives_the_network_its_own_parameters(toy):
    net = ddcmi.create_model("convnet3", 1, 10, 28, width=8)
    x = torch.randn(3, 1, 28, 28)
    from torch.func import functional_call
    from ddcmi.experts import parameter_layout
    same = functional_call(net, unflatten(flat_parameters(net), parameter_layout(net)), (x,))
    assert torch.allclose(same, net(x), atol=1e-6)
    with pytest.raises(ddcmi.ConfigError, match="does not fit"):
        unflatten(torch.zeros(5), parameter_layout(net))


def _method_and_problem(toy, gradient: str, syn_steps: int = 3, batch_syn: int = 0, zca: bool = False):
    cfg = mtt_config(toy, ipc=3)
    opts = dataclasses.replace(cfg.options, gradient=gradient, syn_steps=syn_steps, batch_syn=batch_syn,
                               experts=dataclasses.replace(cfg.options.experts, zca=zca))
    cfg = dataclasses.replace(cfg, options=opts)
    m = MTTMatching(cfg, toy, toy.real_sampler("cpu"), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    images, labels = toy.real_sampler("cpu").initial_images(3, g)
    start = flat_parameters(ddcmi.models.init_weights_(m.net, g))
    target = start + 0.01 * torch.randn(start.shape, generator=g)
    return m, images.clone().requires_grad_(True), labels, start, target


@pytest.mark.parametrize("batch_syn", [0, 7])
def test_constant_memory_gradient_equals_the_unrolled_one(toy, batch_syn):
    grads = {}
    for mode in ("unrolled", "recompute"):
        m, images, labels, start, target = _method_and_problem(toy, mode, syn_steps=4, batch_syn=batch_syn)
        loss = m.loss_and_backward(images, labels, start, target, Draws(0, 1))["match"]
        grads[mode] = (loss, images.grad.clone(), m.syn_lr.grad.clone())
    (l1, gx1, glr1), (l2, gx2, glr2) = grads["unrolled"], grads["recompute"]
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert gx1.abs().max() > 0 and glr1.abs() > 0
    assert torch.allclose(gx1, gx2, rtol=1e-3, atol=1e-4 * float(gx1.abs().max()))
    assert torch.allclose(glr1, glr2, rtol=1e-3)


def test_constant_memory_mode_does_not_grow_with_the_unrolled_steps(toy):
    peak = {}
    for mode in ("unrolled", "recompute"):
        for steps in (2, 6):
            m, images, labels, start, target = _method_and_problem(toy, mode, syn_steps=steps)
            with SavedTensorMeter() as meter:
                m.loss_and_backward(images, labels, start, target, Draws(0, 1))
            peak[mode, steps] = meter.peak
    assert peak["unrolled", 6] > 2.5 * peak["unrolled", 2]  # grows with the steps
    assert peak["recompute", 6] == peak["recompute", 2]  # one step's graph at a time
    assert peak["recompute", 6] < peak["unrolled", 6] / 3


def test_the_learned_step_size_moves_and_travels_with_the_set(toy, tmp_path):
    cfg = mtt_config(toy, iterations=4, checkpoint_every=2)
    res = Distiller(cfg, toy, out_dir=tmp_path / "run", progress=False).run()
    s = res.synset
    lrs = [step["syn_lr"] for step in res.history["steps"]]
    assert s.learned_lr is not None and s.learned_lr != cfg.options.lr_teacher and len(set(lrs)) > 1
    loaded = SyntheticSet.load(tmp_path / "run" / "synset.pt")
    assert loaded.learned_lr == s.learned_lr and loaded.zca == s.zca
    assert loaded.recipe(cfg.eval).lr == s.learned_lr
    fixed = dataclasses.replace(cfg.eval, learned_lr=False)
    assert loaded.recipe(fixed).lr == cfg.eval.lr  # the switch: the protocol's fixed lr
    snaps = snapshots(tmp_path / "run")
    assert snapshot_fields(snaps[0])["learned_lr"] == pytest.approx(cfg.options.lr_teacher, rel=1e-6)
    assert snapshot_fields(snaps[4])["learned_lr"] == s.learned_lr
    acc = evaluate_synset(s.images, s.labels, toy, loaded.recipe(cfg.eval), progress=False)
    assert acc["lr"] == s.learned_lr and acc["zca"] == bool(s.zca)


def test_zca_round_trip_and_whitening(toy):
    zca = zca_for(toy)
    x = toy.normalize(toy.train.images)
    w = zca.whiten(x)
    assert torch.allclose(zca.unwhiten(w), x, atol=1e-4)
    flat = w.reshape(len(w), -1).double()
    cov = torch.cov(flat.T)
    # eigenvalues of the whitened covariance are S / (S + eps): at most 1, near 1 where the data vary
    ev = torch.linalg.eigvalsh(cov)
    assert float(ev.max()) <= 1.0 + 1e-4 and float(ev.max()) > 0.9
    assert zca_for(toy) is zca  # fitted once per process, and cached in the store
    again = ZCA.from_dict(torch.load(next((ddcmi.store.transforms_dir()).glob("*.pt")), weights_only=True))
    assert torch.allclose(again.whiten(x), w, atol=1e-5)


def test_a_zca_set_keeps_zca_through_save_load_export_and_evaluation(toy, tmp_path):
    cfg = mtt_config(toy, iterations=2, **{"options.experts.zca": True})
    res = Distiller(cfg, toy, out_dir=tmp_path / "run", progress=False).run()
    s = SyntheticSet.load(tmp_path / "run" / "synset.pt")
    assert s.zca == res.synset.zca and s.zca["eps"] == 0.1
    # stored unwhitened (the dataset's normalised space), like every set: the proxies, plots and exports
    # see what they expect; evaluation whitens set and test set again
    assert s.images.abs().mean() < 5
    ec = s.recipe(cfg.eval)
    assert ec.zca and _TestSet(toy, torch.device("cpu"), zca=True).zca
    meta = json.loads((s.export(tmp_path / "export") / "meta.json").read_text())
    assert meta["zca"] == s.zca and "ZCA" in meta["note"] and meta["learned_lr"] == s.learned_lr
    acc_zca = evaluate_synset(s.images, s.labels, toy, ec, progress=False)
    acc_plain = evaluate_synset(s.images, s.labels, toy, dataclasses.replace(ec, zca=False), progress=False)
    assert acc_zca["zca"] and not acc_plain["zca"] and acc_zca["accs"] != acc_plain["accs"]
    with pytest.raises(ddcmi.ConfigError, match="whitened"):
        evaluate_synset(s.images, s.labels, toy, ec, test_set=_TestSet(toy, torch.device("cpu")), progress=False)


def test_the_student_works_in_whitened_space_and_cmi_sees_the_unwhitened_set(toy):
    # real-data centroids: the one CMI variant that reads real images, which must be unwhitened
    cfg = mtt_config(toy, "mtt+cmi", iterations=1, **{"options.experts.zca": True, "cmi.centroids": "real"})
    d = Distiller(cfg, toy, progress=False)
    zca = zca_for(toy)
    assert d.sampler.transform is not None and d.regularizer.real.transform is None
    x = d.sampler.sample(0, 4, torch.Generator().manual_seed(0))
    assert torch.allclose(zca.unwhiten(x), d.regularizer.real.sample(0, 4, torch.Generator().manual_seed(0)), atol=1e-4)
    res = d.run()
    assert res.history["steps"][0]["cmi"] > 0
    synthetic = Distiller(mtt_config(toy, "mtt+cmi", iterations=1, **{"options.experts.zca": True}), toy, progress=False)
    assert synthetic.regularizer.real is None  # synthetic centroids: no plain copy of the training set is built


def test_the_expert_buffer_resumes_after_a_kill_mid_expert(toy, tmp_path, monkeypatch):
    import ddcmi.train
    cfg = ExpertConfig(toy.name, count=2, epochs=3, arch_kwargs={"width": 8}, train_per_class=20)
    whole = ExpertBuffer.build(cfg, toy, root=tmp_path / "a", progress=False)
    original = interrupt_at_call(monkeypatch, ddcmi.train, "sgd_steps", 3 + 2)  # expert 1, in its 2nd epoch
    with pytest.raises(KeyboardInterrupt, match="1 of 2 experts kept, expert 1 kept after 1 of 3 epochs"):
        ExpertBuffer.build(cfg, toy, root=tmp_path / "b", progress=False)
    monkeypatch.setattr(ddcmi.train, "sgd_steps", original)
    resumed = ExpertBuffer.build(cfg, toy, root=tmp_path / "b", progress=False)
    for i in range(2):
        a = whole.epochs(i, [0, 1, 2, 3])
        b = resumed.epochs(i, [0, 1, 2, 3])
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert not torch.equal(a[0], a[3])  # the expert moved
    assert not list((tmp_path / "b").rglob("*.partial.pt"))


def test_experts_trained_together_match_one_by_one_and_resume_bitwise(toy, tmp_path, monkeypatch):
    """options.experts.stacked: trajectories equal the one-by-one buffer's within float rounding (DSA draws
    and all); a group killed mid-epoch resumes, trajectory and all, bitwise."""
    import ddcmi.train
    cfg = ExpertConfig(toy.name, count=2, epochs=3, arch_kwargs={"width": 8}, train_per_class=20)
    fast = dataclasses.replace(cfg, stacked=2)
    plain = ExpertBuffer.build(cfg, toy, root=tmp_path / "a", progress=False)
    whole = ExpertBuffer.build(fast, toy, root=tmp_path / "b", progress=False)
    for i in range(2):
        for a, b in zip(plain.epochs(i, [0, 1, 2, 3]), whole.epochs(i, [0, 1, 2, 3])):
            assert float((a - b).norm() / a.norm()) < 1e-5  # float rounding only
    assert not torch.equal(whole.epochs(0, [3])[0], whole.epochs(1, [3])[0])
    original = interrupt_at_call(monkeypatch, ddcmi.train, "stacked_gradients", 2)  # 1 step an epoch: in epoch 2
    with pytest.raises(KeyboardInterrupt, match="expert 0 kept after 1 of 3 epochs, expert 1 kept after 1 of 3"):
        ExpertBuffer.build(fast, toy, root=tmp_path / "c", progress=False)
    monkeypatch.setattr(ddcmi.train, "stacked_gradients", original)
    resumed = ExpertBuffer.build(fast, toy, root=tmp_path / "c", progress=False)
    for i in range(2):
        assert all(torch.equal(a, b) for a, b in zip(whole.epochs(i, [0, 1, 2, 3]), resumed.epochs(i, [0, 1, 2, 3])))
    with pytest.raises(ddcmi.ConfigError, match="stacked and compile are both on"):
        ExpertBuffer.build(dataclasses.replace(fast, compile=True), toy, root=tmp_path / "d", progress=False)


def test_a_mismatched_or_damaged_buffer_is_refused_with_the_fix(toy, tmp_path):
    cfg = ExpertConfig(toy.name, count=1, epochs=2, arch_kwargs={"width": 8}, train_per_class=10)
    buf = ExpertBuffer.build(cfg, toy, root=tmp_path, progress=False)
    with pytest.raises(ddcmi.ConfigError, match="outside 0..2"):
        buf.epochs(0, [3])
    other = dataclasses.replace(cfg, epochs=5)
    d = experts_dir(other, tmp_path)
    d.mkdir(parents=True)
    (d / "expert_0000.pt").write_bytes(buf.path(0).read_bytes())  # another config's file under this key
    with pytest.raises(ddcmi.ArtefactError, match="another config"):
        ExpertBuffer.open(other, toy, root=tmp_path).epochs(0, [0])
    data = bytearray(buf.path(0).read_bytes())
    data[len(data) // 2] ^= 0xFF
    buf.path(0).write_bytes(bytes(data))
    with pytest.raises(ddcmi.ArtefactError, match="build the buffer again"):
        ExpertBuffer.open(cfg, toy, root=tmp_path).epochs(0, [0])
    with pytest.raises(ddcmi.ArtefactError, match="lacks 1 of 1 experts"):
        ExpertBuffer.open(dataclasses.replace(cfg, seed=3), toy, root=tmp_path)


def test_mtt_killed_and_resumed_equals_an_uninterrupted_run(toy, tmp_path, monkeypatch):
    cfg = mtt_config(toy, iterations=5, checkpoint_every=2)
    full = Distiller(cfg, toy, progress=False).run()
    original = interrupt_at_call(monkeypatch, MTTMatching, "loss_and_backward", 4)
    with pytest.raises(KeyboardInterrupt, match="stopped after 3 of 5"):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    monkeypatch.setattr(MTTMatching, "loss_and_backward", original)
    resumed = Distiller(cfg, toy, out_dir=tmp_path, progress=False).run()
    assert torch.equal(resumed.synset.images, full.synset.images)
    assert resumed.synset.learned_lr == full.synset.learned_lr


def test_paper_profile_is_the_authors_table():
    c = {ipc: make_config("paper", "cifar10", "mtt", ipc) for ipc in (1, 10, 50)}
    o = {ipc: cfg.options for ipc, cfg in c.items()}
    assert all(cfg.iterations == 5000 and cfg.momentum == 0.5 for cfg in c.values())
    assert (o[1].syn_steps, o[1].expert_epochs, o[1].max_start_epoch, c[1].lr_img, o[1].lr_lr, o[1].lr_teacher,
            o[1].experts.zca) == (50, 2, 2, 100.0, 1e-7, 0.01, True)
    assert (o[10].syn_steps, o[10].max_start_epoch, o[10].lr_teacher, o[10].experts.zca) == (30, 20, 0.001, True)
    assert (o[50].max_start_epoch, c[50].lr_img, o[50].experts.zca) == (40, 1000.0, False)
    assert o[10].experts == ExpertConfig("cifar10", count=100, epochs=50, zca=True)
    c100 = make_config("paper", "cifar100", "mtt", 50).options
    assert (c100.syn_steps, c100.batch_syn, c100.experts.zca) == (80, 125, True)
    note = make_config("paper", "cifar10", "mtt+cmi", 10).cmi.weight_note
    assert "not published for MTT" in note
    cpu = make_config("cpu", "mnist", "mtt", 10).options
    assert cpu.experts.epochs >= cpu.max_start_epoch + cpu.expert_epochs
    assert not make_config("smoke", "mnist", "mtt", 1).options.experts.zca


def test_bad_mtt_options_are_refused_with_the_name(toy):
    with pytest.raises(ddcmi.ConfigError, match="options.gradient"):
        make_config("smoke", "mnist", "mtt", 1, overrides={"options.gradient": "magic"})
    with pytest.raises(ddcmi.ConfigError, match="raise options.experts.epochs"):
        make_config("smoke", "mnist", "mtt", 1, overrides={"options.max_start_epoch": "9"})
    with pytest.raises(ddcmi.ConfigError, match="must be the experts"):
        Distiller(mtt_config(toy, net_kwargs={"width": 16}), toy, progress=False)
    with pytest.raises(ddcmi.ConfigError, match="cannot be split by class"):
        MTTMatching(mtt_config(toy), toy, toy.real_sampler("cpu"), torch.device("cpu"), classes=[0, 1])


@pytest.mark.parametrize("method", ["mtt", "mtt+cmi"])
def test_mtt_smoke_runs_beat_chance_on_mnist(mnist, method, tmp_path):
    cfg = make_config("smoke", "mnist", method, 2)
    res = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    s = res.synset
    acc = evaluate_synset(s.images, s.labels, mnist, s.recipe(cfg.eval), progress=False)
    assert acc["mean"] > 0.3, acc
