import dataclasses

import pytest
import torch

import ddcmi
from ddcmi import SyntheticSet
from ddcmi.proxy import PoolConfig, ProxyPool, pool_dir


def toy_synset(**kw):
    base = dict(images=torch.randn(6, 3, 8, 8), labels=torch.tensor([0, 0, 1, 1, 2, 2]), classes=["a", "b", "c"],
                mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), dataset="toy", dataset_label="Toy", method="dm",
                profile="smoke", seed=3, config={"ipc": 2}, provenance={"git_commit": "x"})
    base.update(kw)
    return SyntheticSet(**base)


def test_round_trip_keeps_everything(tmp_path):
    s = toy_synset()
    s.save(tmp_path / "s.pt")
    t = SyntheticSet.load(tmp_path / "s.pt")
    assert torch.equal(s.images, t.images) and torch.equal(s.labels, t.labels)
    assert (t.classes, t.mean, t.dataset, t.seed, t.config, t.ipc) == (s.classes, s.mean, "toy", 3, {"ipc": 2}, 2)


def test_export_for_public_evaluators(tmp_path):
    s = toy_synset()
    s.export(tmp_path / "norm")
    assert torch.equal(torch.load(tmp_path / "norm" / "images.pt"), s.images)
    assert torch.equal(torch.load(tmp_path / "norm" / "labels.pt"), s.labels)
    s.export(tmp_path / "unit", space="unit")
    unit = torch.load(tmp_path / "unit" / "images.pt")
    assert unit.min() >= 0 and unit.max() <= 1
    assert torch.allclose(unit, (s.images * 0.2 + 0.5).clamp(0, 1))


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ddcmi.ArtefactError, match="synthetic set .* is unreadable"):
        SyntheticSet.load(tmp_path / "junk.pt")
    torch.save({"images": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ddcmi.ArtefactError, match="not a ddcmi synthetic set"):
        SyntheticSet.load(tmp_path / "foreign.pt")
    d = toy_synset().to_dict()
    del d["classes"]
    torch.save(d, tmp_path / "trunc.pt")
    with pytest.raises(ddcmi.ArtefactError, match="lacks the fields"):
        SyntheticSet.load(tmp_path / "trunc.pt")
    toy_synset().save(tmp_path / "ok.pt")
    with pytest.raises(ddcmi.ArtefactError, match="not mnist"):
        SyntheticSet.load(tmp_path / "ok.pt", expect_dataset="mnist")
    with pytest.raises(ddcmi.ArtefactError, match="NaN"):
        toy_synset(images=torch.full((6, 3, 8, 8), float("nan")))
    with pytest.raises(ddcmi.ArtefactError, match="labels reach"):
        toy_synset(labels=torch.tensor([0, 0, 1, 1, 2, 5]))


def tiny_pool_config(**kw):
    return PoolConfig("mnist", arch="convnet3", count=2, epochs=1, train_per_class=20, arch_kwargs={"width": 8}, **kw)


def test_pool_is_built_once_cached_by_config_and_drawn_from_a_generator(mnist, tmp_path):
    cfg = tiny_pool_config()
    pool = ProxyPool.build(cfg, mnist, root=tmp_path, progress=False)
    assert len(pool) == 2 and all(not m.training for m in pool.members)
    assert all(not p.requires_grad for m in pool.members for p in m.parameters())
    assert all(0.1 < a <= 1 for a in pool.info["test_acc"])  # trained above chance
    files = sorted(pool_dir(cfg, tmp_path).glob("member_*.pt"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = ProxyPool.build(cfg, mnist, root=tmp_path, progress=False)  # cached: nothing retrained
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert torch.equal(again.members[1].classifier.weight, pool.members[1].classifier.weight)
    draws = [pool.draw(torch.Generator().manual_seed(s)) for s in range(40)]
    assert set(draws) == {0, 1}
    assert pool_dir(cfg, tmp_path) != pool_dir(dataclasses.replace(cfg, epochs=2), tmp_path)


def test_pool_checkpoints_from_another_config_or_corrupt_are_refused(mnist, tmp_path):
    cfg = tiny_pool_config()
    ProxyPool.build(cfg, mnist, root=tmp_path, progress=False)
    other = tiny_pool_config(seed=1)
    d_other = pool_dir(other, tmp_path)
    d_other.mkdir(parents=True)
    for f in pool_dir(cfg, tmp_path).glob("member_*.pt"):
        (d_other / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ddcmi.ArtefactError, match="trained for another config"):
        ProxyPool.load(other, mnist, root=tmp_path)
    (pool_dir(cfg, tmp_path) / "member_0001.pt").write_bytes(b"broken")
    with pytest.raises(ddcmi.ArtefactError, match="unreadable.*rebuild"):
        ProxyPool.load(cfg, mnist, root=tmp_path)
    with pytest.raises(ddcmi.ConfigError, match="pool config is for 'cifar10'"):
        ProxyPool.build(dataclasses.replace(cfg, dataset="cifar10"), mnist, root=tmp_path)


def test_provenance_commit_is_dirty_only_when_code_changed(tmp_path):
    import shutil
    import subprocess

    from ddcmi.utils import git_commit
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    (tmp_path / "ddcmi").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "ddcmi" / "cmi.py").write_text("x = 1\n")
    (tmp_path / "reports" / "README.md").write_text("index\n")
    run("init", "-q")
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) == 12 and not clean.endswith("dirty")
    (tmp_path / "reports" / "README.md").write_text("index rewritten by a reproduction\n")
    assert git_commit(tmp_path) == clean  # generated outputs do not make the code dirty
    (tmp_path / "ddcmi" / "cmi.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"


def test_a_source_copy_without_git_is_named_by_the_exported_commit(tmp_path, monkeypatch):
    from ddcmi.utils import git_commit
    monkeypatch.delenv("DDCMI_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("DDCMI_GIT_COMMIT", "0123456789abcdef0123")
    assert git_commit(tmp_path) == "0123456789ab-exported"  # marked: a copy's cleanliness cannot be checked


def test_an_interrupted_pool_member_resumes_from_its_last_epoch_bitwise(toy, tmp_path, monkeypatch):
    import ddcmi.train
    from conftest import interrupt_at_call
    from ddcmi.proxy import PoolConfig, ProxyPool
    cfg = PoolConfig(toy.name, arch="convnet3", count=2, epochs=3, arch_kwargs={"width": 8})
    whole = ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False)
    original = interrupt_at_call(monkeypatch, ddcmi.train, "sgd_steps", 3 + 3)  # member 1, in its 3rd epoch
    with pytest.raises(KeyboardInterrupt, match="1 of 2 members kept, member 1 kept after 2 of 3 epochs"):
        ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    monkeypatch.setattr(ddcmi.train, "sgd_steps", original)
    resumed = ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    for m1, m2 in zip(whole.members, resumed.members):
        assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not list((tmp_path / "b").rglob("*.partial.pt"))


def test_a_damaged_artefact_is_refused_by_its_checksum(tmp_path):
    s = toy_synset()
    path = s.save(tmp_path / "synset.pt")
    d = torch.load(path, weights_only=True)
    assert len(d["checksum"]) == 64
    d["images"][0, 0, 0, 0] += 0.5  # finite garbage in the pixels, the file otherwise intact
    torch.save(d, path)
    with pytest.raises(ddcmi.ArtefactError, match="damaged.*checksum"):
        SyntheticSet.load(path)
    del d["checksum"]  # a file written before checksums existed still loads
    torch.save(d, path)
    assert SyntheticSet.load(path).images.shape == s.images.shape


def test_pool_snapshots_are_bitwise_the_pools_with_fewer_epochs(toy, tmp_path):
    """A member kept after e epochs of a longer build equals the member of the e-epoch pool."""
    cfg = PoolConfig(toy.name, arch="convnet3", count=2, epochs=3, arch_kwargs={"width": 8})
    long = ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False, snapshots=[1, 2])
    for e in (1, 2):
        short = dataclasses.replace(cfg, epochs=e)
        kept = ProxyPool.load(short, toy, root=tmp_path / "a")  # written by the 3-epoch build
        direct = ProxyPool.build(short, toy, root=tmp_path / "b", progress=False)
        for m, n in zip(kept.members, direct.members):
            assert all(torch.equal(p, q) for p, q in zip(m.state_dict().values(), n.state_dict().values()))
        assert kept.info["test_acc"] == direct.info["test_acc"]
    one = ProxyPool.load(dataclasses.replace(cfg, epochs=1), toy, root=tmp_path / "a")
    assert not all(torch.equal(p, q) for p, q in zip(one.members[0].state_dict().values(),
                                                      long.members[0].state_dict().values()))
    with pytest.raises(ddcmi.ConfigError, match="snapshots"):
        ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False, snapshots=[3])


def test_provenance_names_the_code_a_process_loaded_when_the_checkout_moves_on(monkeypatch):
    import torch
    from ddcmi import utils
    monkeypatch.setattr(utils, "_LOADED", {"commit": "aaaaaaaaaaaa"})  # what import ddcmi recorded
    monkeypatch.setattr(utils, "git_commit", lambda root=None: "bbbbbbbbbbbb")  # the checkout now
    p = utils.provenance(torch.device("cpu"))
    assert p["git_commit"] == "aaaaaaaaaaaa" and p["git_commit_at_end"] == "bbbbbbbbbbbb"
    monkeypatch.setattr(utils, "git_commit", lambda root=None: "aaaaaaaaaaaa")
    assert "git_commit_at_end" not in utils.provenance(torch.device("cpu"))


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def test_stacked_pool_members_end_where_one_by_one_training_leaves_them(toy, tmp_path):
    """pool.stacked: members trained together (a group of 2 and a last one alone) equal the plain build within
    float rounding, their snapshots too, and the members are three different networks."""
    cfg = PoolConfig(toy.name, arch="convnet3", count=3, epochs=2, arch_kwargs={"width": 8})
    fast = dataclasses.replace(cfg, stacked=2)
    assert fast.key() != cfg.key() and cfg.key() == PoolConfig(toy.name, arch="convnet3", count=3, epochs=2,
                                                                arch_kwargs={"width": 8}).key()
    plain = ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False, snapshots=[1])
    together = ProxyPool.build(fast, toy, root=tmp_path / "b", progress=False, snapshots=[1])
    for epochs in (1, 2):
        a = ProxyPool.load(dataclasses.replace(cfg, epochs=epochs), toy, root=tmp_path / "a")
        b = ProxyPool.load(dataclasses.replace(fast, epochs=epochs), toy, root=tmp_path / "b")
        for m, n in zip(a.members, b.members):
            pa, pb = _flat(m), _flat(n)
            assert float((pa - pb).norm() / pa.norm()) < 1e-5  # float rounding only
        assert b.info["test_acc"] == pytest.approx(a.info["test_acc"], abs=0.02)
    assert not torch.equal(_flat(together.members[0]), _flat(together.members[1]))
    assert not list((tmp_path / "b").rglob("*.partial.pt"))
    bn = ProxyPool.build(PoolConfig(toy.name, arch="convnet3_bn", count=2, epochs=1, stacked=2,
                                    arch_kwargs={"width": 8}), toy, root=tmp_path / "c", progress=False)
    assert len(bn) == 2  # batch norm: trained one by one, the switch is ignored


def test_an_interrupted_stacked_group_resumes_from_its_last_epoch_bitwise(toy, tmp_path, monkeypatch):
    """Each member of a group checkpoints in the one-network form; the group resumes together, bitwise."""
    import ddcmi.train
    from conftest import interrupt_at_call
    cfg = PoolConfig(toy.name, arch="convnet3", count=2, epochs=3, stacked=2, arch_kwargs={"width": 8})
    whole = ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False)
    original = interrupt_at_call(monkeypatch, ddcmi.train, "stacked_gradients", 2 * 2 + 1)  # 2 steps an epoch
    with pytest.raises(KeyboardInterrupt, match="0 of 2 members kept, member 0 kept after 2 of 3 epochs, "
                                                "member 1 kept after 2 of 3 epochs"):
        ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    saved = torch.load(tmp_path / "b" / cfg.key() / "member_0001.partial.pt", weights_only=False)
    one = torch.optim.SGD(ddcmi.create_model("convnet3", toy.channels, toy.num_classes, toy.image_size,
                                             width=8).parameters(), lr=cfg.lr, momentum=cfg.momentum)
    one.load_state_dict(saved["optimizer"])  # the one-network optimiser's own form
    buf = saved["optimizer"]["state"][0]["momentum_buffer"]
    assert buf.untyped_storage().nbytes() == buf.numel() * buf.element_size()  # not a view of the whole stack
    monkeypatch.setattr(ddcmi.train, "stacked_gradients", original)
    resumed = ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    for m1, m2 in zip(whole.members, resumed.members):
        assert torch.equal(_flat(m1), _flat(m2))
    assert not list((tmp_path / "b").rglob("*.partial.pt"))


def test_members_interrupted_at_different_epochs_resume_one_by_one(toy, tmp_path, monkeypatch):
    """A group whose checkpoints stand at different epochs (Ctrl-C between two writes) resumes each alone."""
    import ddcmi.train
    cfg = PoolConfig(toy.name, arch="convnet3", count=2, epochs=3, stacked=2, arch_kwargs={"width": 8})
    whole = ProxyPool.build(cfg, toy, root=tmp_path / "a", progress=False)
    d = tmp_path / "b" / cfg.key()
    original, writes = ddcmi.train._save_partial, {"n": 0}

    def save_then_stop(path, *a, **k):  # epoch 1: both written; epoch 2: member 0 written, then Ctrl-C
        original(path, *a, **k)
        writes["n"] += 1
        if writes["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(ddcmi.train, "_save_partial", save_then_stop)
    with pytest.raises(KeyboardInterrupt, match="member 0 kept after 2 of 3 epochs, member 1 kept after 1 of 3"):
        ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    monkeypatch.setattr(ddcmi.train, "_save_partial", original)
    assert sorted(p.name for p in d.glob("*.partial.pt")) == ["member_0000.partial.pt", "member_0001.partial.pt"]
    resumed = ProxyPool.build(cfg, toy, root=tmp_path / "b", progress=False)
    for m1, m2 in zip(whole.members, resumed.members):
        pa, pb = _flat(m1), _flat(m2)
        assert float((pa - pb).norm() / pa.norm()) < 1e-4  # float rounding, grown over 3 epochs (measured 3e-5)


def test_pool_autocast_trains_under_bf16_and_bad_pool_switches_are_refused_early(toy, tmp_path):
    cfg = PoolConfig(toy.name, arch="convnet3", count=1, epochs=2, arch_kwargs={"width": 8})
    plain = ProxyPool.build(cfg, toy, root=tmp_path, progress=False)
    bf16 = ProxyPool.build(dataclasses.replace(cfg, autocast="train"), toy, root=tmp_path, progress=False)
    pa, pb = _flat(plain.members[0]), _flat(bf16.members[0])
    assert 0 < float((pa - pb).norm() / pa.norm()) < 0.05  # bf16's rounding, not another network
    assert bf16.info["key"] != plain.info["key"] and dataclasses.replace(cfg, autocast="train").recipe().bf16
    for bad, message in ((dict(autocast="bf16"), "autocast must be one of none, train"),
                         (dict(stacked=0), "stacked must be >= 1"),
                         (dict(stacked=2, compile=True), "stacked and compile are both on")):
        with pytest.raises(ddcmi.ConfigError, match=message):
            ProxyPool.build(dataclasses.replace(cfg, **bad), toy, root=tmp_path, progress=False)
