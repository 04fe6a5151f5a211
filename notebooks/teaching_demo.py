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
# # What class-aware CMI measures — a teaching demo
#
# A proxy network turns each synthetic image into a probability vector $p_i$. Class-aware CMI is the average
# KL divergence from each $p_i$ to the mean $Q_c$ of its class:
# $\mathrm{CMI} = \frac1N\sum_i \mathrm{KL}(p_i\,\|\,Q_{y_i})$.
# It is small when the images of a class look alike *to the proxy*. We start with probability vectors over
# three outcomes, which live in a triangle, and end with real synthetic images.
#
# Opened in JupyterLab the demo ends with sliders; `ddcmi reproduce` (papermill) runs the static path with
# the fixed values below (it passes `interactive = False`).

# %% tags=["parameters"]
profile = "smoke"
interactive = True   # sliders (ipywidgets); ddcmi reproduce sets False
lam = 1.0           # weight of CMI in the toy descent
ipc = 10            # points (toy) and images (real part) per class
lambda_scale = 10.0  # real part: lambda as a multiple of the profile's DM+CMI lambda (0: plain DM)
spread = 1.2        # scatter of the toy points
dataset = "mnist"
seed = 0
overrides = []  # config overrides for every run, strings as for --set on the command line
data_root = None
out_dir = None  # default: <store>/reports/<profile>/teaching_demo

# %%
import time
import matplotlib.pyplot as plt
import torch
import ddcmi
from ddcmi import teaching
from ddcmi.report import write_report

started = time.time()
out_dir = out_dir or ddcmi.store.reports_dir() / profile / "teaching_demo"
figures, metrics = {}, {"notebook": "teaching_demo", "profile": profile, "lam": lam, "ipc": ipc, "spread": spread}

# %% [markdown]
# ## 1. Points, class centroids, and the KL from each point to its centroid
# Each dot is one $p_i$ (a corner is certainty in one outcome); stars are the class means $Q_c$; lines join each point to its centroid.

# %%
logits, labels = teaching.toy_problem(num_classes=3, per_class=ipc, spread=spread, seed=seed)
fig, ax = plt.subplots(figsize=(4.5, 4.2))
metrics["toy_cmi_start"] = teaching.draw_simplex(ax, logits, labels, title=f"{ipc} points per class")
figures["toy_start"] = fig

# %% [markdown]
# ## 2. Minimising $\lambda\cdot$CMI pulls every class towards its own centroid
# This is what the regulariser does to the proxy's view of a synthetic set. Classes keep their place; within a class the points agree more.

# %%
path = teaching.minimise_cmi(logits, labels, lam=lam, steps=60, lr=2.0)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
teaching.draw_simplex(axes[0], path[0], labels, title="start")
metrics["toy_cmi_end"] = teaching.draw_simplex(axes[1], path[-1], labels, title=f"after 60 steps, lambda = {lam}")
curve = [teaching.kl_to_centroid(torch.softmax(x, 1), labels)[0].mean().item() for x in path]
axes[2].plot(curve); axes[2].set_xlabel("descent step"); axes[2].set_ylabel("CMI (nats)"); axes[2].set_title("CMI along the descent")
fig.tight_layout()
figures["toy_descent"] = fig

# %% [markdown]
# ## 3. One sample per class: CMI is exactly zero
# With one point, the centroid *is* the point. That is why the regulariser does nothing at IPC 1 with synthetic centroids (and why the kit skips it there).

# %%
one_logits, one_labels = teaching.toy_problem(num_classes=3, per_class=1, spread=spread, seed=seed)
metrics["toy_cmi_ipc1"] = float(ddcmi.empirical_cmi(torch.softmax(one_logits, 1), one_labels))
print("CMI at one sample per class:", metrics["toy_cmi_ipc1"])

# %% [markdown]
# ## 4. Real synthetic images: what lambda does to a distilled set
# DM distils the set; DM+CMI adds $\lambda\cdot$CMI measured by frozen proxy networks. The demo distils
# once for every IPC and lambda of a small sweep (kept in the run store: the first opening builds it, later
# ones and the sliders only look runs up) and measures each set's CMI under the same proxies. Watch three
# things: CMI falls as lambda grows; a too-large lambda wrecks the images and CMI rises again; at IPC 1 CMI
# is zero whatever lambda is (section 3).

# %%
device = ddcmi.utils.pick_device()
ds = ddcmi.load_dataset(dataset, root=data_root)
sweep = teaching.DEMO_SWEEPS[profile]
print(f"{ds.label}: {sweep.describe()}")
if ipc not in sweep.ipcs or lambda_scale not in sweep.lambda_scales:
    raise ddcmi.ConfigError(f"the real-image part shows ipc in {list(sweep.ipcs)} and lambda_scale in "
                            f"{list(sweep.lambda_scales)} at profile {profile!r}; got ipc={ipc}, lambda_scale={lambda_scale}")
demo = teaching.build_demo(profile, ds, device, seed=seed, sweep=sweep, overrides=overrides)
print(f"proxies: {demo.pool_title}; sweep ready in {demo.seconds:.0f} s")
figures["images"] = teaching.draw_demo(demo, ipc, lambda_scale)
metrics.update({"dataset": ds.name, "dataset_label": ds.label,
                "demo_setting": sweep.describe(), "demo_sweep": demo.table(), "demo_build_s": demo.seconds,
                "lambda_scale": lambda_scale, "profile_lambda": demo.profile_lambda,
                "cmi_feature_dm": demo.run(ipc, 0).cmi, "cmi_feature_dm+cmi": demo.run(ipc, 1).cmi})

# %% [markdown]
# ## 5. Sliders (JupyterLab)
# The toy of section 2, then the real sets: every position of the second pair of sliders is a finished run.

# %%
if interactive:
    import ipywidgets as widgets

    def show(lam=lam, ipc=ipc, spread=spread):
        lg, lb = teaching.toy_problem(3, ipc, spread, seed)
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
        teaching.draw_simplex(axes[0], lg, lb, title="start")
        teaching.draw_simplex(axes[1], teaching.minimise_cmi(lg, lb, lam=lam, steps=60, lr=2.0)[-1], lb, title=f"lambda = {lam}")
        plt.show()

    widgets.interact(show, lam=widgets.FloatLogSlider(value=lam, base=10, min=-2, max=1),
                     ipc=widgets.IntSlider(value=ipc, min=1, max=30), spread=widgets.FloatSlider(value=spread, min=0.1, max=3.0))

    def show_real(ipc=ipc, scale=lambda_scale):
        teaching.draw_demo(demo, ipc, scale)
        plt.show()

    widgets.interact(show_real,
                     ipc=widgets.SelectionSlider(options=list(sweep.ipcs), value=ipc, description="IPC", continuous_update=False),
                     scale=widgets.SelectionSlider(options=[(demo.lambda_label(s), s) for s in sweep.lambda_scales],
                                                   value=lambda_scale, description="lambda", continuous_update=False,
                                                   layout=widgets.Layout(width="520px")))
else:
    print("static path: figures above drawn for lam =", lam, ", ipc =", ipc, ", lambda_scale =", lambda_scale)

# %%
write_report(out_dir, metrics, figures, device, started, pools=[demo.pool])
print("written", out_dir)
