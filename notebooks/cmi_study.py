# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # When does CMI help?
#
# The gain of the CMI regulariser, acc(base + CMI) - acc(base), along the axes a profile reduces, one
# axis at a time with every other setting at the profile's: **proxy strength** (epochs the proxy pool is
# trained, drawn against the proxies' test accuracy), **lambda** (multiples of the profile's value),
# **distillation iterations** and **real images per class per step**. Each point is a paired comparison:
# the two runs share their seed and are evaluated by the same evaluation networks; the error bar is the
# standard error of the paired difference. The cells are one grid of the run store (`ddcmi sweep
# cmi_study --profile P` computes the same cells, on Ray too).

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
ipc = 2
method = "dm"
axes = {"pool.epochs": [1, 2], "lambda_scale": [5.0]}  # axis -> values, one varied at a time (any --set key)
seeds = [0]
overrides = []  # config overrides for every run, strings as for --set on the command line
threads = None  # threads per cell (default: every core)
data_root = None
out_dir = None  # default: <store>/reports/<profile>/cmi_study
cells_dir = None  # cell records kept beside the report (committed with it; reused in any store); default <out_dir>/cells

# %%
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments.study import LAMBDA, run_study
from ddcmi.plots import log_axis
from ddcmi.report import write_report
from ddcmi.utils import atomic_write_text

started = time.time()
device = ddcmi.utils.pick_device()  # CUDA when present; the runs and the report name it
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "cmi_study"
cells_dir = cells_dir or f"{out_dir}/cells"
grid, points, summary = run_study(profile, dataset, ipc, method, axes, seeds, overrides, data_root, device,
                                  threads=threads, cells_dir=cells_dir)
label = ddcmi.data.DATASETS.get(dataset).label
centre = ddcmi.make_config(profile, dataset, f"{method}+cmi", ipc, seeds[0], overrides)  # at the profile's settings
names = {"pool.epochs": "proxy pool epochs", LAMBDA: "lambda / profile lambda", "iterations": "distillation iterations",
         "real_per_class": "real images per class per step"}


def setting(axis):
    """The profile's value of an axis (the point every panel shares)."""
    if axis == LAMBDA:
        return 1.0
    value = centre
    for part in axis.split("."):
        value = getattr(value, part)
    return value


def se_text(gain):
    return "-" if gain["se"] is None else f"{100 * gain['se']:.2f}"


rows = ["| axis | value | proxies' test acc % | lambda | base acc % | +CMI acc % | gain (points) | networks |",
        "|---|---|---|---|---|---|---|---|"]
for p in points:
    acc = "-" if p["pool_acc"] is None else f"{100 * p['pool_acc']:.1f}"
    if p["finished"]:
        g = p["gain"]
        rows.append(f"| {p['axis']} | {p['value']:g} | {acc} | {p['cmi_weight']:g} | {100 * p['base_acc']:.2f} | "
                    f"{100 * p['cmi_acc']:.2f} | {100 * g['mean']:+.2f} +- {se_text(g)} | {g['n']} |")
    else:
        rows.append(f"| {p['axis']} | {p['value']:g} | {acc} | {p['cmi_weight']:g} | not finished | | | |")
table = "\n".join(rows)
print(table)

# %%
fig, panels = plt.subplots(1, len(axes), figsize=(3.6 * len(axes), 3.4), squeeze=False)
for ax, axis in zip(panels[0], axes):
    pts = [p for p in points if p["axis"] == axis and p["finished"]]
    by_pool = axis.startswith("pool.") and all(p["pool_acc"] is not None for p in pts)
    pts.sort(key=lambda p: p["pool_acc"] if by_pool else p["value"])
    xs = [100 * p["pool_acc"] if by_pool else p["value"] for p in pts]
    ax.errorbar(xs, [100 * p["gain"]["mean"] for p in pts], yerr=[100 * (p["gain"]["se"] or 0) for p in pts],
                fmt="o-", capsize=3, color="#1b6ca8")
    for x, p in zip(xs, pts):
        mark = " (profile)" if p["value"] == setting(axis) else ""
        ax.annotate(f"{p['value']:g}{mark}", (x, 100 * p["gain"]["mean"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.axhline(0, color="0.5", lw=0.8, ls="--")
    if axis in (LAMBDA, "iterations", "real_per_class") and len(pts) > 1:
        log_axis(ax, "x")  # 1-2-5 labels: matplotlib's own overlap on a decade-wide range
    ax.set_xlabel(f"proxies' test accuracy (%), labelled by {names[axis]}" if by_pool else names.get(axis, axis),
                  fontsize=8)
    ax.set_ylabel("accuracy gain of +CMI (points)", fontsize=8)
    ax.grid(alpha=0.3)
seeds_txt = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds}"
fig.suptitle(f"{label}, IPC {ipc}, {method} vs {method}+CMI, profile {profile} on {device}, {seeds_txt}: paired gain "
             f"+- standard error over {centre.eval.num_models} evaluation networks per set", fontsize=9)
fig.tight_layout()

# %%
atomic_write_text(f"# When does CMI help? {label}, IPC {ipc}, profile `{profile}`\n\n{table}\n\n"
                  f"Cells: {summary['finished']} finished of {len(grid.cells())}; commits "
                  f"{', '.join(sorted({c for p in points if p['finished'] for c in p['commits']}))}.\n",
                  f"{out_dir}/table.md")
write_report(out_dir, {"notebook": "cmi_study", "profile": profile, "dataset": dataset, "dataset_label": label, "ipc": ipc,
                       "method": method, "axes": axes, "seeds": list(seeds), "points": points,
                       "grid": summary["grid"], "sweep_cells": summary["cells"]},
             {"cmi_gain_along_axes": fig}, device, started, pools=[c.pool_config() for c in grid.cells()])
print("written", out_dir)
