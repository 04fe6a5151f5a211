"""A variant's +CMI cells against the plain ones, paired network by network, from recorded sweep cells.

    python scripts/compare_cells.py reports/cpu/pool_bf16/sweep_cells --variant pool.compile=true,pool.autocast=train

For every +CMI cell recorded with the variant's overrides (a switch that changes the +CMI set but not its base,
such as the proxy pool): its accuracy paired with the same method's cell without the overrides, and CMI's gain
over the plain base under each (the cells' evaluation networks share initialisations and draws, so network k of
every cell pairs with network k of every other). Each accuracy record of a cell is compared (IDC's cells carry
their own recipe's and the standard protocol's). Prints mean +- standard error in points, and the range over networks.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddcmi.experiments.study import paired_gain
from ddcmi.experiments.sweep import signed_points


def _points(accs_a: list[float], accs_b: list[float]) -> str:
    """acc(a) - acc(b), paired network by network, as the sweep tables write it, and its range over networks."""
    g = paired_gain(accs_b, accs_a)
    d = [100 * (a - b) for a, b in zip(accs_a, accs_b)]
    return f"{signed_points(g['mean'], g['se'])} (networks {min(d):+.2f}..{max(d):+.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", type=Path, help="a sweep's cells folder")
    ap.add_argument("--variant", required=True, help="the overrides, comma-separated, as the grid lists them")
    args = ap.parse_args()
    variant = tuple(args.variant.split(","))
    cells = {}
    for f in sorted(args.cells.glob("*.json")):
        d = json.loads(f.read_text())
        c = d["cell"]
        cells[(c["dataset"], c["ipc"], c["seed"], c["method"], tuple(c["overrides"]))] = d["result"]
    found = 0
    for (ds, ipc, seed, method, over), r in sorted(cells.items()):
        if over != variant or not method.endswith("+cmi"):
            continue
        plain, base = cells.get((ds, ipc, seed, method, ())), cells.get((ds, ipc, seed, method[:-4], ()))
        if plain is None or base is None:
            print(f"{ds} {method} ipc{ipc} seed{seed}: no plain {method} or {method[:-4]} cell to pair with")
            continue
        found += 1
        for key in (k for k in ("accuracy", "accuracy_standard") if k in r):
            a, p, b = (x[key]["accs"] for x in (r, plain, base))
            print(f"{ds} {method} ipc{ipc} seed{seed} [{key}]: {100 * sum(a) / len(a):.2f} % with the variant, "
                  f"{100 * sum(p) / len(p):.2f} % without; paired {_points(a, p)}; CMI's gain {_points(a, b)} "
                  f"with the variant, {_points(p, b)} without")
    if not found:
        raise SystemExit(f"no finished +CMI cell with overrides {list(variant)} in {args.cells}")


if __name__ == "__main__":
    main()
