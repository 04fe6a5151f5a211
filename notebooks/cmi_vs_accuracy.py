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
# # CMI versus accuracy
#
# Along the distillation, with and without the regulariser: the set's CMI under the proxy pool in two
# spaces, named and never mixed (**feature space**: softmax over the proxies' penultimate features, the
# space the regulariser acts in; **logit space**: softmax over their logits), and test accuracy at
# checkpoints. Then final CMI against final accuracy across a sweep of lambda (lambda = 0 is the base method).

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
ipc = 10
methods = ["dm", "dm+cmi"]
lambdas = [1000.0, 20000.0]
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/cmi_vs_accuracy

# %%
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments import curve_runs
from ddcmi.plots import log_axis, method_color, method_marker
from ddcmi.report import write_report

started = time.time()
device = ddcmi.utils.pick_device()  # CUDA when present; the runs and the report name it
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "cmi_vs_accuracy"
runs, ds, pool = curve_runs(profile, dataset, ipc, methods, seed, lambdas, data_root, device, overrides=overrides)
colors = {m: method_color(m) for m in methods}

# %%
fig_curves, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for m in methods:
    tracks, evals = runs[m]["tracks"], runs[m]["evals"]  # measured on the run's snapshots
    it = [t["iteration"] for t in tracks]
    axes[0].plot(it, [t["cmi_feature"] for t in tracks], marker=method_marker(m), color=colors[m], label=m)
    axes[1].plot(it, [t["cmi_logit"] for t in tracks], marker=method_marker(m), color=colors[m], label=m)
    axes[2].errorbar([e["iteration"] for e in evals], [100 * e["acc_mean"] for e in evals],
                     yerr=[100 * e["acc_std"] for e in evals], fmt="-" + method_marker(m), capsize=3, color=colors[m], label=m)
axes[0].set_ylabel("feature-space CMI (nats)"); axes[1].set_ylabel("logit-space CMI (nats)"); axes[2].set_ylabel("test accuracy (%)")
for ax in axes:
    ax.set_xlabel("distillation iteration"); ax.legend(fontsize=8)
for ax in axes[:2]:
    ax.set_yscale("log")
fig_curves.suptitle(f"{ds.label}, IPC {ipc}, profile {profile}; CMI under {pool.config.title()}", fontsize=9)
fig_curves.tight_layout()

# %%
# lambda = 0 is the base method; every run with CMI is one point of the sweep
sweep = [(0.0, runs[m]) for m in methods if "+" not in m]
sweep += sorted(((r["weight"], r) for r in runs.values() if r["weight"] > 0), key=lambda t: t[0])
fig_sweep, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, space in zip(axes, ("feature", "logit")):
    for w, r in sweep:
        a = r["final_acc"]
        ax.errorbar(r[f"cmi_{space}"], 100 * a["mean"], yerr=100 * a["std"], fmt=method_marker(r["method"]), capsize=3, color=colors.get(r["method"]))
        ax.annotate(f"lambda={w:g}", (r[f"cmi_{space}"], 100 * a["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    log_axis(ax, "x"); ax.set_xlabel(f"final {space}-space CMI (nats)"); ax.set_ylabel("final test accuracy (%)")
fig_sweep.suptitle("final CMI against final accuracy across lambda", fontsize=9)
fig_sweep.tight_layout()
for w, r in sweep:
    print(f"lambda {w:>8g}: accuracy {100 * r['final_acc']['mean']:.2f} +- {100 * r['final_acc']['std']:.2f} %, "
          f"CMI feature {r['cmi_feature']:.4g}, logit {r['cmi_logit']:.4g}")

# %%
cells = {label: {"lambda": r["weight"], "acc_mean": r["final_acc"]["mean"], "acc_std": r["final_acc"]["std"],
                 "cmi_feature": r["cmi_feature"], "cmi_logit": r["cmi_logit"],
                 "tracks": r.get("tracks", []), "evals": r.get("evals", [])}
         for label, r in runs.items()}
write_report(out_dir, {"notebook": "cmi_vs_accuracy", "profile": profile, "dataset": ds.name, "dataset_label": ds.label,
                       "ipc": ipc, "cells": {f"{ds.name}/ipc{ipc}": cells},
                       "configs": {label: r["config"].to_dict() for label, r in runs.items()}},
             {"cmi_and_accuracy_along_distillation": fig_curves, "final_cmi_vs_accuracy": fig_sweep}, device, started, pools=[pool])
print("written", out_dir)
