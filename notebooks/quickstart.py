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
# # Quick start: distill with DM+CMI, evaluate, look at the images and the CMI
#
# Parameters below are papermill parameters; `profile` is one of `smoke` (seconds), `cpu` (a 2-core laptop),
# `paper` (published settings, GPU). Every number this notebook writes comes from the run it executes.

# %% tags=["parameters"]
profile = "smoke"
dataset = "mnist"
method = "dm+cmi"
ipc = 10
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/quickstart

# %%
import time
import matplotlib.pyplot as plt
import torch
import ddcmi
from ddcmi.experiments import run_or_resume
from ddcmi.plots import image_grid, method_color
from ddcmi.report import write_report

started = time.time()
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "quickstart"
device = ddcmi.utils.pick_device()
ds = ddcmi.load_dataset(dataset, root=data_root)
cfg = ddcmi.make_config(profile, dataset, method, ipc, seed, overrides)
print(ds.label, "|", len(ds.train), "train /", len(ds.test), "test |", cfg.method, "IPC", ipc, "| profile", profile)

# %% [markdown]
# ## Distill (resumes a finished or interrupted run with the same config)

# %%
result = run_or_resume(cfg, ds, device)
synset = result.synset
steps = result.history["steps"]
fig_loss, ax = plt.subplots(figsize=(6, 3))
lines = ax.plot([s["iteration"] for s in steps], [s["match"] for s in steps], color=method_color(cfg.base_method),
                label=f"matching loss ({cfg.base_method.upper()}, left axis)")
if any("cmi" in s for s in steps):  # two scales: CMI on a twin axis, one legend for both lines
    ax2 = ax.twinx()
    lines += ax2.plot([s["iteration"] for s in steps if "cmi" in s], [s["cmi"] for s in steps if "cmi" in s], "--",
                      color=method_color(cfg.method), label="CMI of the set (feature space, nats; right axis)")
    ax2.set_ylabel("CMI (nats)")
ax.legend(handles=lines, fontsize=8)
ax.set_xlabel("iteration"); ax.set_ylabel(f"{cfg.base_method.upper()} matching loss"); ax.set_title(f"{cfg.method} on {ds.label}, IPC {ipc}")
fig_loss.tight_layout()

# %% [markdown]
# ## Evaluate: fresh ConvNets trained on the synthetic set, tested on the test set

# %%
acc = ddcmi.evaluate_synset(synset.images, synset.labels, ds, synset.recipe(cfg.eval), seed=seed, device=device)
print(f"accuracy {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} % over {acc['num_models']} networks, {acc['test_images']} test images")

# %% [markdown]
# ## CMI of the result under the proxy pool, in both spaces (never mixed)

# %%
pool = ddcmi.ProxyPool.build(cfg.pool, ds, device)
cmi = {space: ddcmi.measure_cmi(synset.images.to(device), synset.labels.to(device), pool, space=space)
       for space in ("feature", "logit")}
for space, r in cmi.items():
    print(f"CMI ({space} space): {r['mean']:.5g} +- {r['std']:.2g} nats over {len(r['per_member'])} proxies")

# %%
fig_grid, axes = plt.subplots(1, 2, figsize=(11, 5))
init = ddcmi.data.denormalize(torch.load(result.out_dir / "initial_images.pt"), ds.mean, ds.std).clamp(0, 1)
image_grid(init, synset.labels, synset.classes, ax=axes[0], title="initialisation (real images)")
image_grid(synset.to_unit(), synset.labels, synset.classes, ax=axes[1], title=f"after {cfg.iterations} iterations of {cfg.method}")
fig_grid.tight_layout()

# %%
write_report(out_dir, {"notebook": "quickstart", "profile": profile, "dataset": ds.name, "dataset_label": ds.label,
                       "method": cfg.method, "ipc": ipc, "seed": seed, "accuracy": acc,
                       "cmi_feature": cmi["feature"]["mean"], "cmi_logit": cmi["logit"]["mean"],
                       "config": cfg.to_dict()},
             {"loss": fig_loss, "images": fig_grid}, device, started, pools=[cfg.pool])
print("written", out_dir)
