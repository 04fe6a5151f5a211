"""One colour-blind-safe colour and marker per method in every figure; figures that read on their own."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from ddcmi.methods import list_methods  # noqa: E402
from ddcmi.plots import figure_problems, method_color, method_marker  # noqa: E402


def test_every_method_has_its_own_colour_and_a_pair_differs_in_hue_and_marker():
    colours = {m: method_color(m) for m in list_methods()}
    assert len(set(colours.values())) == len(colours), colours
    for m in list_methods():
        if m.endswith("+cmi"):
            base = mcolors.rgb_to_hsv(mcolors.to_rgb(colours[m.split("+")[0]]))
            plus = mcolors.rgb_to_hsv(mcolors.to_rgb(colours[m]))
            assert abs(base[0] - plus[0]) > 0.1 or base[2] < 0.05  # another hue (black's partner: any)
            assert method_marker(m) != method_marker(m.split("+")[0])


def test_figure_problems_finds_unlabelled_axes_and_missing_legends():
    fig, (a, b, c) = plt.subplots(1, 3)
    a.plot([1, 2], [3, 4], label="dm"); a.plot([1, 2], [4, 5], label="dm+cmi")  # two series, no legend, no labels
    b.errorbar([0, 1], [1, 2], yerr=[0.1, 0.1], label="x"); b.set_xticks([0, 1], ["dm", "dm+cmi"]); b.set_ylabel("acc")
    c.imshow([[0, 1], [1, 0]])  # an image panel needs neither
    problems = figure_problems(fig)
    assert any("panel 0" in p and "no x label" in p for p in problems)
    assert any("panel 0" in p and "no legend" in p for p in problems)
    assert not any("panel 1" in p or "panel 2" in p for p in problems)  # categorical x axis, one series
    a.set_xlabel("iteration"); a.set_ylabel("loss"); a.legend()
    twin = a.twinx(); twin.plot([1, 2], [0.1, 0.2]); twin.set_ylabel("CMI")  # a twin shares the x label
    assert figure_problems(fig) == []
    plt.close(fig)


def test_colour_depends_only_on_the_name():
    assert method_color("distilled dm+cmi") == method_color("dm+cmi") == method_color("DM+CMI")
    assert method_color("random (seed 3)") == method_color("random (seed 0)") != method_color("herding coreset")
    assert method_color("something new") == method_color("something new")


def test_report_index_lists_every_report_and_names_cells_run_elsewhere(tmp_path):
    from ddcmi.report import write_index, write_report
    write_report(tmp_path / "cpu" / "a", {"notebook": "a", "profile": "cpu", "dataset_label": "MNIST"}, None, "cpu")
    write_report(tmp_path / "cpu" / "b", {"notebook": "b", "profile": "cpu", "dataset_label": "MNIST",
                                          "cell_devices": {"mnist/ipc10": "NVIDIA H200"}}, None, "cpu")
    write_report(tmp_path / "cpu" / "c", {"notebook": "teaching_demo", "profile": "cpu", "lam": 1.0, "toy_cmi_start": 0.25,
                                          "toy_cmi_end": 0.07, "cmi_feature_dm": 0.004, "cmi_feature_dm+cmi": 0.0006}, None, "cpu")
    (tmp_path / "cpu" / "c" / "reproduce.json").write_text('{"seconds": 5.0, "earlier": [{"seconds": 3600.0}]}')
    index = write_index(tmp_path).read_text()
    rows = [line for line in index.splitlines() if line.startswith("| [cpu/")]
    assert [r.split("]")[0] for r in rows] == ["| [cpu/a", "| [cpu/b", "| [cpu/c"]
    assert "toy CMI 0.25 -> 0.07 (lambda 1); dm CMI feat 0.004; dm+cmi CMI feat 0.0006" in rows[2]
    assert "(earlier runs of this report: 60.0 min)" in rows[2] and "earlier runs" not in rows[0]
    assert "except" not in rows[0] and "(except mnist/ipc10 on NVIDIA H200)" in rows[1]
    assert "## Sweep reports" not in index
    assert all("| not recorded |" in r for r in rows)  # none of them named a pool
    # the overview across methods: each row's paired gain, the lambda where one is recorded
    write_report(tmp_path / "cpu" / "d", {"notebook": "cmi_across_methods", "profile": "cpu", "pairs": [], "rows": [
        {"dataset": "mnist", "method": "idc", "lambda": 1500.0, "gain": 0.035},
        {"dataset": "mnist", "method": "dm", "lambda": None, "gain": -0.0002}]}, None, "cpu")
    assert "mnist idc (lambda 1500): +3.50; mnist dm: -0.02" in write_index(tmp_path).read_text()
    import shutil
    shutil.rmtree(tmp_path / "cpu" / "d")
    # a folder made by `ddcmi sweep` (a grid and its notes, no metrics.json) gets a row of its own
    (tmp_path / "cpu" / "seeds").mkdir()
    (tmp_path / "cpu" / "seeds" / "grid.yaml").write_text("name: s\nprofile: cpu\nmethods: [dm]\n")
    (tmp_path / "cpu" / "seeds" / "NOTES.md").write_text("# Three seeds (2026-12-06)\n\nbody\n")
    (tmp_path / "cpu" / "a" / "grid.yaml").write_text("name: a\n")  # beside a metrics.json: not a sweep report
    index = write_index(tmp_path).read_text()
    assert "| [cpu/seeds](cpu/seeds/) | cpu | Three seeds (2026-12-06) |" in index
    assert "| [cpu/a](cpu/a/) | cpu |  |" not in index and index.count("[cpu/a]") == 1


def test_log_axis_labels_a_short_range_without_crowding():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ddcmi.plots import log_axis
    fig, ax = plt.subplots()
    ax.plot([2.6e-4, 5.6e-4, 1.1e-3, 4e-3], [94.6, 95.1, 95.4, 95.8], "o")
    log_axis(ax, "x")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert ax.get_xscale() == "log" and labels == ["5e-4", "1e-3", "2e-3"]  # 1-2-5 inside the data's range
    assert not [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    ax.set_xlim(150, 2500)  # a study's iterations axis: plain numbers where they are short
    log_axis(ax, "x")
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text() and 150 <= t.get_position()[0] <= 2500] == \
        ["200", "500", "1000", "2000"]
    plt.close(fig)


def test_slow_stretches_name_the_part_of_a_run_that_shared_the_cpu():
    from ddcmi.plots import slow_stretches
    its = [0, 10, 20, 30, 40]
    secs = [0, 10, 20, 60, 70]  # 1 s/it, except 20-30 at 4 s/it
    assert slow_stretches(its, secs) == [(20, 30, 4.0)]
    assert slow_stretches(its, [0, 10, 20, 30, 40]) == []
    assert slow_stretches([0, 10], [0, 10]) == []  # one stretch has no median to compare with


def test_a_report_records_its_proxy_pools_in_one_key_and_the_index_shows_them(tmp_path):
    import json
    from types import SimpleNamespace
    from ddcmi.proxy import PoolConfig
    from ddcmi.report import report_pools, write_index, write_report
    strong, weak = PoolConfig("mnist", epochs=8), PoolConfig("mnist", epochs=2, train_per_class=2000)
    built = SimpleNamespace(config=strong)  # a built ProxyPool is named by its config
    write_report(tmp_path / "cpu" / "a", {"notebook": "a", "profile": "cpu"}, None, "cpu",
                 pools=[built, weak, strong, strong.describe()])
    m = json.loads((tmp_path / "cpu" / "a" / "metrics.json").read_text())
    assert m["proxy_pools"] == sorted([strong.describe(), weak.describe()])  # distinct, sorted, one per pool
    assert "8 epochs on all" in strong.describe() and "2 epochs on 2000/class" in weak.describe()
    row = next(line for line in write_index(tmp_path).read_text().splitlines() if "[cpu/a]" in line)
    assert f"| {m['proxy_pools'][0]}; {m['proxy_pools'][1]} |" in row
    # reports written before the key: the single pool they kept, as a string or a comparison's dict
    assert report_pools({"proxy_pool": "4 x resnet18"}) == "4 x resnet18"
    assert report_pools({"proxy_pool": {"describe": "2 x convnet3", "key": "k"}}) == "2 x convnet3"
    assert report_pools({"proxy_pools": []}) == report_pools({}) == "not recorded"
