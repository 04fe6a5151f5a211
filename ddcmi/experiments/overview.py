"""Every recorded +CMI gain of a set of grids, one row per base method, dataset, IPC and lambda: the kit's
answer to "where does CMI help?" across methods and datasets (``notebooks/cmi_across_methods.py``).

A row pairs a +CMI cell with its base cell (same dataset, IPC, seed and overrides, so the same evaluation
networks; :func:`~ddcmi.experiments.sweep.paired_gains`). Cells that several grids share (a DM pair kept
in two folders) count once, by their run. Over several seeds a row's gain is the mean of the per-seed
gains with the standard error across seeds; with one seed, the standard error over its networks.
"""
from __future__ import annotations

from pathlib import Path

from .grid import Grid
from .study import mean_and_se
from .sweep import sweep


def recorded_pairs(grids: list[Grid], run: bool = False, device: str | None = None,
                   progress: bool = True) -> tuple[list[dict], int]:
    """One dict per distinct (+CMI cell, base cell) pair that ``grids`` have recorded (``run=True`` first
    runs the cells the store lacks, as ``ddcmi sweep`` does), and how many of the grids' cells are not
    recorded (counted per grid, from the same summaries)."""
    pairs, seen, missing = [], set(), 0
    for grid in grids:
        summary = sweep(grid, device=device, progress=progress, table_only=not run)
        missing += sum(r["status"] != "finished" for r in summary["cells"])
        by_cell = {r["cell"]: r for r in summary["cells"]}
        for r in summary["cells"]:
            if r.get("gain") is None:
                continue
            base = by_cell[r["gain_vs"]]
            key = (Path(r["run_dir"]).name, Path(base["run_dir"]).name)
            if key in seen:
                continue
            seen.add(key)
            pairs.append({"dataset": r["dataset"], "method": base["method"], "ipc": r["ipc"], "seed": r["seed"],
                          "lambda": r["cmi_weight"], "grid": grid.name, "base_acc": base["acc_mean"],
                          "cmi_acc": r["acc_mean"], "gain": r["gain"], "base_cmi": base["cmi_feature"],
                          "cmi_cmi": r["cmi_feature"], "pool_acc": r.get("pool_acc") or base.get("pool_acc"),
                          "runs": list(key), "commits": sorted({r["commit"], base["commit"]})})
    return pairs, missing


def gain_rows(pairs: list[dict]) -> list[dict]:
    """``pairs`` grouped over seeds: (dataset, method, IPC, lambda) -> mean gain, its standard error, the
    base set's and the +CMI set's feature CMI (means over seeds) and the share of CMI the regulariser removed."""
    groups: dict[tuple, list[dict]] = {}
    for p in pairs:
        groups.setdefault((p["dataset"], p["method"], p["ipc"], p["lambda"]), []).append(p)
    rows = []
    for (dataset, method, ipc, lam), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                                 kv[0][3] or 0)):
        gains = [p["gain"]["mean"] for p in ps]
        if len(ps) > 1:
            spread = mean_and_se(gains)
            se, over = spread["se"], "seeds"
        else:
            se, over = ps[0]["gain"]["se"], "networks"
        base_cmi = sum(p["base_cmi"] for p in ps) / len(ps)
        cmi_cmi = sum(p["cmi_cmi"] for p in ps) / len(ps)
        rows.append({"dataset": dataset, "method": method, "ipc": ipc, "lambda": lam, "seeds": sorted(p["seed"] for p in ps),
                     "base_acc": sum(p["base_acc"] for p in ps) / len(ps), "cmi_acc": sum(p["cmi_acc"] for p in ps) / len(ps),
                     "gain": sum(gains) / len(gains), "se": se, "se_over": over, "base_cmi": base_cmi, "cmi_cmi": cmi_cmi,
                     "cmi_removed": 1 - cmi_cmi / base_cmi if base_cmi > 0 else None,
                     "networks": ps[0]["gain"]["n"], "pool_acc": ps[0]["pool_acc"]})
    return rows


def rows_markdown(rows: list[dict], labels: dict[str, str] | None = None) -> str:
    """The rows of :func:`gain_rows` as a Markdown table (accuracies and gains in points)."""
    labels = labels or {}
    lines = ["| dataset | method | IPC | lambda | seeds | base acc % | +CMI acc % | gain (points) | "
             "feature CMI, base -> +CMI (nats) | CMI removed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        se = "" if r["se"] is None else f" +- {100 * r['se']:.2f} ({r['se_over']})"
        removed = "-" if r["cmi_removed"] is None else f"{100 * r['cmi_removed']:.0f} %"
        lam = "-" if r["lambda"] is None else f"{r['lambda']:g}"
        lines.append(f"| {labels.get(r['dataset'], r['dataset'])} | {r['method']} | {r['ipc']} | {lam} | "
                     f"{', '.join(map(str, r['seeds']))} | {100 * r['base_acc']:.2f} | {100 * r['cmi_acc']:.2f} | "
                     f"{100 * r['gain']:+.2f}{se} | {r['base_cmi']:.4f} -> {r['cmi_cmi']:.4f} | {removed} |")
    return "\n".join(lines)
