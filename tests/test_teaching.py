import torch

from ddcmi import empirical_cmi, teaching


def test_descent_on_cmi_lowers_it_and_keeps_classes_apart():
    logits, labels = teaching.toy_problem(3, 12, spread=1.5, seed=1)
    path = teaching.minimise_cmi(logits, labels, lam=1.0, steps=40, lr=2.0)
    start = empirical_cmi(torch.softmax(path[0], 1), labels).item()
    end = empirical_cmi(torch.softmax(path[-1], 1), labels).item()
    assert end < 0.5 * start
    _, q = teaching.kl_to_centroid(torch.softmax(path[-1], 1), labels)
    assert (q.argmax(1) == torch.arange(3)).all()  # each class still sits near its own corner


def test_kl_to_centroid_agrees_with_the_estimator():
    logits, labels = teaching.toy_problem(3, 5, seed=2)
    p = torch.softmax(logits, 1)
    kl, _ = teaching.kl_to_centroid(p, labels)
    assert torch.isclose(kl.mean(), empirical_cmi(p, labels), atol=1e-6)
    assert torch.allclose(teaching.to_xy(torch.eye(3)), teaching.CORNERS)


def test_the_demo_sweep_covers_every_slider_position_and_shows_what_lambda_does(mnist):
    import matplotlib
    matplotlib.use("Agg")
    from ddcmi.plots import figure_problems
    from ddcmi.store import runs_dir

    sweep = teaching.DemoSweep(ipcs=(1, 4), lambda_scales=(0.0, 1.0, 100.0), overrides={"iterations": 6})
    configs = teaching.demo_configs("smoke", "mnist", 0, sweep)
    assert {(c.method, c.ipc) for c in configs.values()} == {("dm", 1), ("dm+cmi", 1), ("dm", 4), ("dm+cmi", 4)}
    assert configs[(4, 100.0)].cmi.weight == 100 * configs[(4, 1.0)].cmi.weight > 0
    assert configs[(4, 0.0)].iterations == 6
    demo = teaching.build_demo("smoke", mnist, torch.device("cpu"), sweep=sweep, progress=False)
    assert set(demo.runs) == set(configs)
    assert all(demo.run(1, s).cmi == 0.0 for s in sweep.lambda_scales)  # one image per class: no spread
    assert demo.run(4, 100.0).cmi < demo.run(4, 0.0).cmi  # the regulariser acted on the set
    assert not torch.equal(demo.run(4, 100.0).images, demo.run(4, 0.0).images)
    assert demo.run(4, 0.0).images.min() >= 0 and demo.run(4, 0.0).images.max() <= 1
    assert {r["lambda_scale"] for r in demo.table()} == set(sweep.lambda_scales)
    assert demo.lambda_label(0.0) == "0 (plain DM)" and "100 x profile" in demo.lambda_label(100.0)
    fig = teaching.draw_demo(demo, 4, 100.0)
    assert figure_problems(fig) == []
    runs = sorted(p.name for p in runs_dir().rglob("config.json"))
    again = teaching.build_demo("smoke", mnist, torch.device("cpu"), sweep=sweep, progress=False)  # reused from the store
    assert sorted(p.name for p in runs_dir().rglob("config.json")) == runs
    assert torch.equal(again.run(4, 1.0).images, demo.run(4, 1.0).images)


def test_every_profile_has_a_demo_sweep_whose_runs_build():
    from ddcmi.profiles import PROFILES
    for profile in PROFILES:
        sweep = teaching.DEMO_SWEEPS[profile]
        assert 0.0 in sweep.lambda_scales and 1.0 in sweep.lambda_scales and 10 in sweep.ipcs
        configs = teaching.demo_configs(profile, "mnist", 0)
        assert len(configs) == len(sweep.ipcs) * len(sweep.lambda_scales)
        assert len({c.pool.key() for c in configs.values()}) == 1  # one pool measures every set
    assert "100 iterations" in teaching.DEMO_SWEEPS["cpu"].describe()
