"""The hardening issue's figures, measured: every bad-input case's first line, and a kill survey.

    python scripts/hardening_survey.py [--kills 2] [--threads 1] [--out survey.md]

1. **Bad input**: every case of ``tests/test_bad_input.py``'s table run through the CLI in this process
   (a generated dataset, a temporary run store): its exit code, whether a traceback was printed, whether
   any file outside what the case may write changed, and the first line of what it printed.
2. **Kills**: for each method family at ``smoke`` (DM+CMI, DSA+CMI, IDC+CMI, IDM+CMI, MTT+CMI), an
   uninterrupted ``ddcmi distill`` in a subprocess, then the same command killed (SIGKILL, SIGTERM, SIGINT)
   at a random moment ``--kills`` times per signal and run again to the end, each time in the same folder
   (which also holds a file of the user's, ``notes.txt``). Counted: kills survived with a bitwise identical
   ``synset.pt`` payload, files lost (the user's file, or a finished run's files, missing at the end).

Everything runs on ``--threads`` threads per process (DSA and IDC results depend on the thread count).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

METHODS = ["dm+cmi", "dsa+cmi", "idc+cmi", "idm+cmi", "mtt+cmi"]


def bad_input_table(tmp: Path) -> list[tuple[str, int, bool, bool, str]]:
    import ddcmi
    from conftest import write_toy
    from ddcmi.cli import main
    from test_bad_input import CASES, _snapshot

    toy = ddcmi.load_dataset(str(write_toy(tmp / "data" / "toy")))
    run = tmp / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["distill", "--dataset", toy.name, "--method", "dm", "--ipc", "2", "--profile", "smoke",
              "--set", "iterations=2", "--out", str(run), "--quiet"])
    rows = []
    for name, argv, _ in CASES:
        case = tmp / "case" / name.replace(" ", "_")
        (case / "foreign").mkdir(parents=True)
        (case / "foreign" / "data.csv").write_text("1,2")
        before = (_snapshot(run), _snapshot(case))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv(toy, run, case))
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code
        text = err.getvalue()
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        changed = (_snapshot(run), _snapshot(case)) != before
        rows.append((name, code, "Traceback" in text, changed, first))
    return rows


def _distill(method: str, out: Path, data: Path, threads: int) -> list[str]:
    import ddcmi
    iterations = 3 * ddcmi.make_config("smoke", str(data), method, 3).iterations  # long enough to be hit mid-run
    return [sys.executable, "-m", "ddcmi", "--store", str(out.parent / "store"), "distill", "--dataset", str(data),
            "--method", method, "--ipc", "3", "--profile", "smoke", "--set", f"iterations={iterations}",
            "--set", "checkpoint_every=1", "--out", str(out), "--quiet"]


def _payload(path: Path):
    import ddcmi
    return ddcmi.SyntheticSet.load(path).images


def kill_survey(tmp: Path, kills: int, threads: int, methods=METHODS, seed: int = 0) -> tuple[list[tuple], int]:
    import torch
    from conftest import write_toy
    data = write_toy(tmp / "data" / "toy")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "DDCMI_OFFLINE": "1"}
    rng = random.Random(seed)
    rows, lost = [], 0
    for method in methods:
        ref = tmp / method.replace("+", "_") / "uninterrupted"
        ref.parent.mkdir(parents=True)
        t0 = time.time()
        subprocess.run(_distill(method, ref, data, threads), env=env, check=True, capture_output=True)
        span = time.time() - t0
        want = _payload(ref / "synset.pt")
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            for k in range(kills):
                out = ref.parent / f"{sig.name}-{k}"
                out.mkdir()
                (out / "notes.txt").write_text("the user's own file\n")
                proc = subprocess.Popen(_distill(method, out, data, threads), env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
                time.sleep(rng.uniform(0.05, 0.9) * span)  # from the imports (first second) to the last iterations
                killed = proc.poll() is None
                proc.send_signal(sig)
                _, err = proc.communicate()
                said = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), "")
                subprocess.run(_distill(method, out, data, threads), env=env, check=True, capture_output=True)
                same = torch.equal(_payload(out / "synset.pt"), want)
                missing = [n for n in ("notes.txt", "synset.pt", "config.json", "initial_images.pt") if not (out / n).exists()]
                lost += len(missing)
                rows.append((method, sig.name, killed, proc.returncode, same, missing, said if sig != signal.SIGKILL else "",
                             "Traceback" in err))
    return rows, lost


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=2, help="kills per signal and method")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the tables here (Markdown)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--no-bad-input", action="store_true", help="only the kill survey")
    args = ap.parse_args()
    os.environ["DDCMI_OFFLINE"] = "1"
    import platform

    import torch

    import ddcmi
    lines = [f"Survey of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {ddcmi.utils.loaded_commit()}, "
             f"{ddcmi.utils.cpu_model()}, {platform.machine()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
             f"torch {torch.__version__}: `python scripts/hardening_survey.py --kills {args.kills} --threads {args.threads}`", ""]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="ddcmi-survey-") as tmp:
        tmp = Path(tmp)
        os.environ["DDCMI_STORE"] = str(tmp / "store")
        rows = [] if args.no_bad_input else bad_input_table(tmp / "bad")
        lines += ["| case | exit | traceback | files changed | first line printed |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {c} | {'yes' if t else 'no'} | {'yes' if ch else 'no'} | {first.replace('|', '/')[:160]} |"
                  for n, c, t, ch, first in rows]
        good = sum(c == 2 and not t and not ch for _, c, t, ch, _ in rows)
        lines += ["", f"Bad input: {len(rows)} cases, {good} with exit code 2, no traceback and no file changed.", ""]
        print("\n".join(lines[2:]), flush=True)
        kills, lost = kill_survey(tmp / "kills", args.kills, args.threads, args.methods.split(","))
        more = ["| method | signal | landed mid-run | exit | traceback | resumed to the same bits | files missing | last line printed |",
                "|---|---|---|---|---|---|---|---|"]
        more += [f"| {m} | {s} | {'yes' if k else 'no (had finished)'} | {rc} | {'YES' if tb else 'no'} | {'yes' if same else 'NO'} | "
                 f"{', '.join(miss) or '-'} | {said.replace('|', '/')[:140]} |" for m, s, k, rc, same, miss, said, tb in kills]
        landed = [r for r in kills if r[2]]
        more += ["", f"Kills: {len(kills)} ({len(landed)} landed mid-run), {sum(r[4] for r in landed)} of those "
                     f"resumed to a bitwise identical synthetic set; tracebacks printed: {sum(r[7] for r in kills)}; "
                     f"files lost: {lost}; {args.threads} thread(s) per process."]
        print("\n".join(more), flush=True)
        lines += more
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
