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
# # Main table: base method versus base + CMI over datasets x IPC
#
# ConvNet-3 test accuracy (mean +- std over freshly trained networks), the difference made by CMI, and the
# published number of the base method **only where the dataset and protocol match** (genuine CIFAR-10/100 at
# the `paper` profile); everywhere else the column shows `-`. Runs are cached by config and shared with the
# other notebooks.

# %% tags=["parameters"]
profile = "smoke"
datasets = ["mnist"]
ipcs = [10]
methods = ["dm", "dm+cmi"]
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/main_table

# %%
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments import main_table, cell_provenance, rows_to_markdown, rows_to_csv
from ddcmi.plots import method_color, method_marker
from ddcmi.report import write_report
from ddcmi.utils import atomic_write_text

started = time.time()
device = ddcmi.utils.pick_device()  # CUDA when present; every run and the report name it
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "main_table"
# each (dataset, IPC) cell is also written as its own report under out_dir/cells/ as soon as it is done
rows, raw = main_table(profile, datasets, ipcs, methods, seed, data_root, overrides=overrides or None,
                       device=device, cells_dir=f"{out_dir}/cells")
table = rows_to_markdown(rows)
print(table)

# %%
colors = {m: method_color(m) for m in methods}
# one panel per (dataset, IPC), each on its own accuracy axis: the differences that matter are a point or
# two, which a shared axis spanning MNIST and CIFAR-10 would flatten; points with error bars, not bars from zero
fig, axes = plt.subplots(1, len(raw), figsize=(0.6 + (0.5 + 0.45 * len(methods)) * len(raw), 3.4), squeeze=False)
for ax, r in zip(axes[0], raw.values()):
    for j, m in enumerate(methods):
        a = r["methods"][m]["accuracy"]
        ax.errorbar([j], [100 * a["mean"]], yerr=[100 * a["std"]], fmt=method_marker(m), capsize=3, color=colors[m], label=m)
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(methods) - 0.4); ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{r['dataset_label']}\nIPC {r['ipc']}", fontsize=8)  # two lines: long dataset labels
axes[0][0].set_ylabel("test accuracy (%)")
ran_on = ", ".join(sorted(set(cell_provenance(raw, "device").values())))  # where the cells were computed
fig.suptitle(f"profile {profile}, on {ran_on}: mean +- std over evaluation networks", fontsize=9)
fig.tight_layout()


# %%
produced_by = cell_provenance(raw)  # a cell (or a method in it) reused from an earlier report keeps its commit
devices = cell_provenance(raw, "device")  # ... and names the machine it ran on
commits = ", ".join(f"{k}: {c}" + (" (reused report)" if raw[k].get("reused") else "") for k, c in produced_by.items())
atomic_write_text(f"# Main table, profile `{profile}`\n\n" + table + f"\nEach cell's commit: {commits}.\n"
                  + f"Each cell's device: {'; '.join(f'{k}: {d}' for k, d in devices.items())}.\n", f"{out_dir}/table.md")
atomic_write_text(rows_to_csv(rows), f"{out_dir}/table.csv")
summary = {k: {m: {"acc_mean": v["methods"][m]["accuracy"]["mean"], "acc_std": v["methods"][m]["accuracy"]["std"],
                   "cmi_feature": v["methods"][m]["cmi_feature"]["mean"], "cmi_logit": v["methods"][m]["cmi_logit"]["mean"]}
               for m in methods} for k, v in raw.items()}
labels = sorted({v["dataset_label"] for v in raw.values()})
write_report(out_dir, {"notebook": "main_table", "profile": profile, "dataset": ",".join(datasets),
                       "dataset_label": ", ".join(labels), "cells": summary, "rows": rows,
                       "configs": {k: {m: v["methods"][m]["config"] for m in methods} for k, v in raw.items()},
                       "cell_commits": produced_by, "cell_devices": devices,
                       "reused_cells": sorted(k for k, v in raw.items() if v.get("reused")),
                       "reused_methods": {k: v["reused_methods"] for k, v in raw.items() if v.get("reused_methods")}},
             {"accuracy": fig}, device, started, pools=[v["proxy_pool"]["describe"] for v in raw.values()])
print("written", out_dir)
