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
# # Where does CMI help? Every base method on every dataset
#
# The gain of the CMI regulariser, acc(base + CMI) - acc(base), for each base method and dataset that the
# given grids have recorded, drawn against **the base set's own CMI** (feature space, under the proxy pool
# that also regularises) and against **the share of that CMI the regulariser removed**. Each point is a
# paired comparison: the two sets share their distillation seed and are evaluated by the same networks.
# Over several seeds the error bar is the standard error across seeds, else across the networks.
#
# The grids are run by `ddcmi sweep <grid>` (on Ray too); with `run = False` this notebook only reads what
# they have recorded (in the run store, or kept in their `cells_dir`) and says which cells are missing.

# %% tags=["parameters"]
profile = "smoke"
grids = ["main_table"]  # grid files (YAML) or named grids (main_table, cmi_vs_accuracy) at this profile
run = True  # run the cells the store lacks first (False: draw only what is recorded)
data_root = None
out_dir = None  # default: <store>/reports/<profile>/cmi_across_methods

# %%
import dataclasses
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments.grid import NAMED, load_grid
from ddcmi.experiments.overview import gain_rows, recorded_pairs, rows_markdown
from ddcmi.plots import log_axis
from ddcmi.report import write_report
from ddcmi.utils import atomic_write_text

started = time.time()
device = ddcmi.utils.pick_device()  # CUDA when present; the runs and the report name it
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "cmi_across_methods"
loaded = [load_grid(g, profile if g in NAMED else None) for g in grids]  # a grid file keeps its own profile
if data_root is not None:
    loaded = [dataclasses.replace(g, data_root=data_root) for g in loaded]
pairs, missing = recorded_pairs(loaded, run=run, device=str(device))
rows = gain_rows(pairs)
labels = {r["dataset"]: ddcmi.data.DATASETS.get(r["dataset"]).label for r in rows}
table = rows_markdown(rows, labels)
print(table)

# %%
palette = plt.get_cmap("tab10").colors
colors = {d: palette[i % len(palette)] for i, d in enumerate(sorted(labels))}  # colour: dataset
shapes = {"dm": "o", "dsa": "s", "dc": "P", "idc": "^", "idm": "D", "mtt": "v"}  # marker: base method
methods = sorted({r["method"] for r in rows})
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for r in rows:
    kw = dict(yerr=100 * (r["se"] or 0), fmt=shapes.get(r["method"], "X"), color=colors[r["dataset"]], capsize=3, ms=7)
    several = sum(q["method"] == r["method"] and q["dataset"] == r["dataset"] for q in rows) > 1
    for ax, x in ((left, r["base_cmi"]), (right, None if r["cmi_removed"] is None else 100 * r["cmi_removed"])):
        if x is None:
            continue
        ax.errorbar(x, 100 * r["gain"], **kw)
        if several:  # the same method at several lambdas: say which point is which
            ax.annotate(f"lambda {r['lambda']:g}", (x, 100 * r["gain"]), fontsize=7, xytext=(6, -3),
                        textcoords="offset points")
for ax in (left, right):
    ax.axhline(0, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("accuracy gain of +CMI (points)")
    ax.grid(alpha=0.3)
    handles = [ax.plot([], [], "o", color=colors[d], label=labels[d])[0] for d in sorted(labels)]
    handles += [ax.plot([], [], shapes.get(m, "X"), color="0.3", label=m)[0] for m in methods]
    ax.legend(handles=handles, fontsize=7, ncol=2, title="dataset (colour), method (marker)", title_fontsize=7)
if rows:
    log_axis(left, "x")
left.set_xlabel("the base set's feature CMI under the proxy pool (nats)")
right.set_xlabel("share of the base set's CMI the regulariser removed (%)")
ipcs = sorted({r["ipc"] for r in rows})
fig.suptitle(f"CMI's paired gain by base method and dataset, IPC {', '.join(map(str, ipcs))}, profile {profile} "
             f"on {device}", fontsize=10)
fig.tight_layout()

# %%
commits = sorted({c for p in pairs for c in p["commits"]})
atomic_write_text(f"# Where does CMI help? profile `{profile}`\n\n{table}\n\nGrids: {', '.join(g.name for g in loaded)}; "
                  f"{len(pairs)} paired cells, {missing} cell(s) of the grids not recorded; commits {', '.join(commits)}.\n",
                  f"{out_dir}/table.md")
write_report(out_dir, {"notebook": "cmi_across_methods", "profile": profile, "grids": [g.name for g in loaded],
                       "dataset_label": ", ".join(labels[d] for d in sorted(labels)),
                       "rows": rows, "pairs": pairs, "missing_cells": missing},
             {"cmi_gain_by_method": fig}, device, started, pools=[c.pool_config() for g in loaded for c in g.cells()])
print("written", out_dir)
