"""One colour per method in every figure."""
import matplotlib.colors as mcolors

from ddcmi.methods import list_methods
from ddcmi.plots import method_color


def test_every_method_has_its_own_colour_and_pairs_share_a_hue():
    colours = {m: method_color(m) for m in list_methods()}
    assert len(set(colours.values())) == len(colours), colours
    for m in list_methods():
        if m.endswith("+cmi"):
            base = mcolors.rgb_to_hsv(mcolors.to_rgb(colours[m.split("+")[0]]))
            plus = mcolors.rgb_to_hsv(mcolors.to_rgb(colours[m]))
            assert abs(base[0] - plus[0]) < 0.02 and plus[2] < base[2]  # same hue, darker with CMI


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
    assert "(re-rendered; earlier runs 60.0 min)" in rows[2] and "re-rendered" not in rows[0]
    assert "except" not in rows[0] and "(except mnist/ipc10 on NVIDIA H200)" in rows[1]


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
    plt.close(fig)
