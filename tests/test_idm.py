"""IDM: partition and expansion, the model queue (grows, capped, trains), the CE weight following the
running accuracy, bitwise resume with the queue as method state, the release's command list as the
paper profile, and smoke runs that beat chance. Runs on the generated dataset except the last test."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import ddcmi
from conftest import interrupt_at_call
from ddcmi import Distiller, make_config
from ddcmi.methods import METHODS
from ddcmi.methods._formation import decode, encode
from ddcmi.methods.idm import IDMMatching, IDMOptions
from ddcmi.rng import Draws


def idm_config(toy, method="idm", ipc=2, **over):
    over = {"iterations": 4, "checkpoint_every": 100, **over}
    return make_config("smoke", toy.name, method, ipc, overrides=over)


def make_method(toy, cfg):
    return METHODS.get("idm")(cfg, toy, toy.real_sampler("cpu"), torch.device("cpu"))


def test_decode_of_a_partitioned_image_equals_the_expansion_of_its_quadrants():
    storage = torch.randn(3, 2, 16, 12)
    quadrants = [storage[:, :, :8, :6], storage[:, :, :8, 6:], storage[:, :, 8:, :6], storage[:, :, 8:, 6:]]
    expanded = [F.interpolate(q, scale_factor=2, mode="bilinear", align_corners=False) for q in quadrants]
    decoded = decode(storage, 2)
    assert decoded.shape == (12, 2, 16, 12)
    for k in range(3):  # stored image k -> decoded 4k .. 4k+3, quadrants in row order
        for i in range(4):
            assert torch.allclose(decoded[4 * k + i], expanded[i][k], atol=1e-6)


def test_initial_set_tiles_four_distinct_real_images_and_starts_the_queue(toy):
    cfg = idm_config(toy)
    m = make_method(toy, cfg)
    images, labels = m.initial(2, Draws(0, 0))
    assert images.shape == (20, 1, 28, 28) and torch.equal(labels, torch.arange(10).repeat_interleave(2))
    x, y = m.synthetic(images, labels)
    assert x.shape == (80, 1, 28, 28) and torch.bincount(y).tolist() == [8] * 10
    real = toy.real_sampler("cpu").sample(0, 8, Draws(0, 0)("init", 0))
    assert torch.allclose(images[:2], encode(real, 2))  # normalised pixels, no clamping
    assert len(m.queue) == cfg.options.initial_nets and all(q.born == 0 for q in m.queue)
    assert not torch.equal(m.queue[0].net.features[0].weight, m.queue[1].net.features[0].weight)


def test_the_queue_grows_is_capped_and_its_networks_learn_the_real_data(toy):
    opts = IDMOptions(initial_nets=2, net_generate_interval=2, net_num=4, fetch_net_num=4, model_train_steps=3,
                      train_batch=40, acc_reset_interval=1000)
    cfg = idm_config(toy, options=opts, lr_net=0.05)
    m = make_method(toy, cfg)
    images, labels = m.initial(2, Draws(0, 0))
    images.requires_grad_(True)
    sizes, births = [], []

    def update(terms, *a, **k):
        images.grad = None
        return terms

    for t in range(1, 10):
        m.iteration(images, labels, Draws(0, t), update)
        sizes.append(len(m.queue))
        births.append([q.born for q in m.queue])
    # a push at t = 1, 3, 5, ...; at most net_num networks, the oldest dropped first
    assert sizes == [3, 3, 4, 4, 4, 4, 4, 4, 4]
    assert births[-1] == [3, 5, 7, 9]
    oldest = m.queue[0]
    assert oldest.seen == 7 * 3 * 40  # trained at t = 3..9, 3 steps of 40 real images each
    with torch.no_grad():  # trained on real batches: clearly above chance on the test split
        test_x = toy.normalize(toy.test.images, "cpu")
        acc = float((oldest.net.eval()(test_x).argmax(1) == toy.test.labels).float().mean())
    assert acc > 0.5, acc
    assert 10 < oldest.accuracy_percent() < 100  # its running accuracy over those batches, in %


def test_the_ce_weight_follows_the_networks_running_accuracy(toy):
    cfg = idm_config(toy)
    m = make_method(toy, cfg)
    images, labels = m.initial(2, Draws(0, 0))
    images.requires_grad_(True)
    member = m.queue[0]
    for correct, seen in ((0, 0), (30, 40), (40, 40)):
        member.correct, member.seen = correct, seen
        images.grad = None
        t = m.class_loss_and_backward(member, images, labels, 3, Draws(0, 1)("class", 3))
        acc = 100.0 * correct / seen if seen else 0.0
        assert t["net_acc"] == acc
        assert t["match"] == pytest.approx(t["feature_match"] + cfg.options.ce_weight * acc * t["syn_ce"], rel=1e-6)
        assert images.grad[labels != 3].abs().sum() == 0  # one class's update touches that class only
    # the running accuracies restart every acc_reset_interval iterations (t - 1 a multiple of it)
    member.correct, member.seen = 5, 10
    m.opts = dataclasses.replace(m.opts, acc_reset_interval=3, model_train_steps=0)
    m.iteration(images, labels, Draws(0, 3), lambda terms, *a, **k: terms)
    assert (member.correct, member.seen) == (5, 10)
    m.iteration(images, labels, Draws(0, 4), lambda terms, *a, **k: terms)
    assert (member.correct, member.seen) == (0, 0)


@pytest.mark.parametrize("method", ["idm", "idm+cmi"])
def test_idm_killed_and_resumed_equals_an_uninterrupted_run(toy, method, tmp_path, monkeypatch):
    cfg = idm_config(toy, method, iterations=7, checkpoint_every=3)
    pool = ddcmi.ProxyPool.build(cfg.pool, toy, progress=False) if method.endswith("+cmi") else None
    full = Distiller(cfg, toy, progress=False, pool=pool)
    full_set = full.run().synset.images
    original = interrupt_at_call(monkeypatch, IDMMatching, "train_queue", 5)  # inside iteration 5
    with pytest.raises(KeyboardInterrupt, match="stopped after 4 of 7"):
        Distiller(cfg, toy, out_dir=tmp_path, progress=False, pool=pool).run()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    # the queue as it was after iteration 4 (smoke pushes at 1, 4, 7 onto 2): iteration 5 rolled back
    assert [q["born"] for q in ckpt["method_state"]["queue"]] == [0, 0, 1, 4]
    monkeypatch.setattr(IDMMatching, "train_queue", original)
    resumed = Distiller(cfg, toy, out_dir=tmp_path, progress=False, pool=pool)
    assert torch.equal(resumed.run().synset.images, full_set)
    for a, b in zip(resumed.method.queue, full.method.queue):
        assert (a.born, a.correct, a.seen) == (b.born, b.correct, b.seen)
        for pa, pb in zip(a.net.parameters(), b.net.parameters()):
            assert torch.equal(pa, pb)


def test_cmi_is_applied_once_per_iteration_as_each_classs_share(toy):
    """lambda x (n_c / N) x CMI_c at each class update: over one iteration that is lambda x the CMI of
    the whole decoded set; the history records the set's CMI (the mean of the classes')."""
    cfg = idm_config(toy, "idm+cmi", iterations=1)
    res = Distiller(cfg, toy, progress=False).run()
    step = res.history["steps"][0]
    assert step["cmi"] > 0 and step["loss"] == pytest.approx(step["match"] + cfg.cmi.weight * step["cmi"] / 10, rel=1e-6)


def test_paper_profile_is_the_releases_command_list():
    c10 = {ipc: make_config("paper", "cifar10", "idm", ipc) for ipc in (1, 10, 50)}
    assert all(c.iterations == 20_000 and c.lr_img == 0.2 and c.momentum == 0.5 for c in c10.values())
    assert (c10[1].real_per_class, c10[1].options.net_generate_interval, c10[1].options.ce_weight) == (5000, 5, 0.5)
    assert (c10[10].real_per_class, c10[10].options.net_generate_interval, c10[10].options.ce_weight) == (256, 30, 0.5)
    assert (c10[50].options.ce_weight, c10[50].options.acc_reset_interval) == (0.1, 500)
    assert c10[10].options == IDMOptions()
    c100 = make_config("paper", "cifar100", "idm", 10)
    assert (c100.options.ce_weight, c100.options.model_train_steps, c100.options.net_num) == (0.1, 50, 100)
    assert make_config("paper", "cifar10_jpeg", "idm", 10) .options == IDMOptions()
    cmi = make_config("paper", "cifar10", "idm+cmi", 10).cmi
    assert cmi.weight == 8000 and "not published for IDM" in cmi.weight_note
    assert make_config("paper", "cifar10", "idm+cmi", 10).eval.batch_size == 256  # the standard protocol


def test_bad_idm_options_are_refused_with_the_name():
    with pytest.raises(ddcmi.ConfigError, match="options.net_num"):
        make_config("smoke", "mnist", "idm", 1, overrides={"options.net_num": "0"})
    with pytest.raises(ddcmi.ConfigError, match="initial_nets"):
        IDMOptions(initial_nets=5, net_num=3)


@pytest.mark.parametrize("method", ["idm", "idm+cmi"])
def test_idm_smoke_runs_beat_chance_on_mnist(mnist, method, tmp_path):
    cfg = make_config("smoke", "mnist", method, 2)
    res = Distiller(cfg, mnist, out_dir=tmp_path, progress=False).run()
    s = res.synset
    assert s.images.shape == (2 * 4 * 10, 1, 28, 28)  # decoded: 4 images per stored image
    acc = ddcmi.evaluate_synset(s.images, s.labels, mnist, cfg.eval, progress=False)
    assert acc["mean"] > 0.3, acc
