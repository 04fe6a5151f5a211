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
# # Training efficiency: accuracy against distillation iterations and wall time
#
# The paper reports that CMI makes distillation converge faster. These are the same runs as the
# main table and the CMI-versus-accuracy notebook (shared through the run cache), read for speed of progress: test accuracy
# at the evaluation checkpoints against iterations and against wall-clock seconds of distillation
# (evaluation time excluded).

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
ipc = 10
methods = ["dm", "dm+cmi"]
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/training_efficiency

# %%
import time
import matplotlib.pyplot as plt
import ddcmi
from ddcmi.experiments import curve_runs
from ddcmi.plots import method_color, method_marker, slow_stretches
from ddcmi.report import write_report

started = time.time()
device = ddcmi.utils.pick_device()  # CUDA when present; the runs and the report name it
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "training_efficiency"
runs, ds, pool = curve_runs(profile, dataset, ipc, methods, seed, (), data_root, device, overrides=overrides)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
curves = {}
for m in methods:
    evals = runs[m]["evals"]  # accuracy at snapshots of the run, with its distillation wall time there
    its = [e["iteration"] for e in evals]
    acc = [100 * e["acc_mean"] for e in evals]
    err = [100 * e["acc_std"] for e in evals]
    secs = [e["seconds"] for e in evals]
    curves[m] = {"iterations": its, "seconds": secs, "acc_mean": acc, "acc_std": err}
    axes[0].errorbar(its, acc, yerr=err, fmt="-" + method_marker(m), capsize=3, color=method_color(m), label=m)
    axes[1].errorbar(secs, acc, yerr=err, fmt="-" + method_marker(m), capsize=3, color=method_color(m), label=m)
# the wall-time axis is each run's own clock: a stretch that ran slower than 1.5x the run's median rate
# (most often it shared the CPU with other work, or the run was stopped and resumed) is drawn hatched
slow = {m: slow_stretches(c["iterations"], c["seconds"]) for m, c in curves.items()}
for m, stretches in slow.items():
    at = dict(zip(curves[m]["iterations"], curves[m]["seconds"]))
    for i0, i1, times in stretches:
        axes[1].axvspan(at[i0], at[i1], color=method_color(m), alpha=0.12, hatch="//",
                        label=f"{m}: iterations {i0}-{i1} ran {times:.1f}x slower (shared CPU or resumed)")
axes[0].set_xlabel("distillation iteration"); axes[1].set_xlabel("distillation wall time (s), each run's own clock")
axes[1].set_title("hatched: a stretch slower than 1.5x the run's median rate" if any(slow.values())
                  else "no stretch slower than 1.5x its run's median rate", fontsize=8)
for ax in axes:
    ax.set_ylabel("test accuracy (%)"); ax.legend(fontsize=7)
ran_on = ddcmi.utils.device_name(device)
fig.suptitle(f"{ds.label}, IPC {ipc}, profile {profile}, on {ran_on}", fontsize=9)
fig.tight_layout()

# %%
base, plus = methods[0], methods[-1]
target = curves[base]["acc_mean"][-1]
reached = [it for it, a in zip(curves[plus]["iterations"], curves[plus]["acc_mean"]) if a >= target]
verdict = (f"{plus} reached {base}'s final accuracy ({target:.2f} %) at iteration {reached[0]} of "
           f"{curves[base]['iterations'][-1]}" if reached else f"{plus} did not reach {base}'s final accuracy ({target:.2f} %) at any checkpoint")
print(verdict)
rates = {m: [round((s1 - s0) / (i1 - i0), 3) for i0, i1, s0, s1 in zip(c["iterations"], c["iterations"][1:], c["seconds"], c["seconds"][1:])]
         for m, c in curves.items()}
for m, r in rates.items():
    print(f"{m}: seconds per distillation iteration between evaluation points: {r}")

# %%
write_report(out_dir, {"notebook": "training_efficiency", "profile": profile, "dataset": ds.name, "dataset_label": ds.label,
                       "ipc": ipc, "curves": curves, "verdict": verdict, "seconds_per_iteration": rates,
                       "slow_stretches": slow,
                       "cells": {f"{ds.name}/ipc{ipc}": {m: {"acc_mean": runs[m]["final_acc"]["mean"], "acc_std": runs[m]["final_acc"]["std"]} for m in methods}}},
             {"accuracy_vs_iterations_and_time": fig}, device, started, pools=[pool])
print("written", out_dir)
