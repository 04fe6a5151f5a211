"""Experiments built from the library: runs in the store, comparison cells and tables, curves.

- :mod:`.runs`: a run by config in the run store, evaluations cached by content, the shared set-up;
- :mod:`.cells`: base versus +CMI on one dataset and IPC (the kit's main job), the main table,
  cross-architecture evaluation;
- :mod:`.curves`: CMI and accuracy along a run, lambda sweeps.
"""
from .cells import (cell_provenance, compare_methods, cross_architecture, main_table, rows_to_csv,  # noqa: F401
                    rows_to_markdown)
from .curves import CURVE_EVALS, curve_runs, eval_points, run_curve  # noqa: F401
from .runs import evaluated, run_dir_for, run_or_resume, runs_dir, setup  # noqa: F401

__all__ = ["compare_methods", "cell_provenance", "run_or_resume", "run_dir_for", "runs_dir", "evaluated", "setup",
           "main_table", "cross_architecture", "curve_runs", "run_curve", "eval_points", "rows_to_markdown",
           "rows_to_csv", "CURVE_EVALS"]
