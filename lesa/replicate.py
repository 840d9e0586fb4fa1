"""`make replicate` after setup: the profile's stages in order, each timed, the times printed at the end
and written to results/<profile>/replicate_run.json.

    python -m lesa.replicate --profile cpu

Stages (each reuses what is already done: notebooks are skipped when their inputs are unchanged, CPT runs
when finished, predictors and evaluations come from .cache/):
  1. notebooks 1-3 (the SVD evidence, the predictor, the grown models before training)
  2. CPT: train and evaluate every run of the profile (lesa.cpt; LESA's predictor seed is the median of
     notebook 3, so this stage comes after it)
  3. notebooks 4-6 (training curves, after-training evaluation, the variants beyond the paper), then the scoreboard
  4. the book (static HTML from the executed notebooks)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .store import PROJECT_ROOT, provenance, run_main, write_json

GROWTH = ["01_svd_evidence", "02_predictor", "03_expansion"]
TRAINING = ["04_cpt_curves", "05_downstream", "06_beyond"]


def stages(profile: str) -> list[tuple[str, object]]:
    from . import book
    from .cpt import run_profile_cpt

    return [("notebooks 1-3", lambda: book.run(profile, only=GROWTH)),
            ("continual pre-training", lambda: run_profile_cpt(profile)),
            ("notebooks 4-6", lambda: book.run(profile, only=TRAINING)),
            ("book", lambda: book.build(profile))]


def replicate(profile: str, skip_book: bool = False) -> dict:
    from .profiles import load_profile, resolve_profile

    profile = resolve_profile(profile)
    load_profile(profile)                               # a bad profile (or gpu without CUDA) fails here, not later
    times: dict[str, float] = {}
    out = PROJECT_ROOT / "results" / profile / "replicate_run.json"
    t_all = time.perf_counter()
    for name, fn in stages(profile):
        if skip_book and name == "book":
            continue
        print(f"[replicate] {name} ...", flush=True)
        t0 = time.perf_counter()
        fn()
        times[name] = round(time.perf_counter() - t0, 1)
        write_json(out, {"profile": profile, "stages_s": times, "total_s": round(time.perf_counter() - t_all, 1),
                         "cpus": os.cpu_count(), "provenance": provenance(),
                         "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"[replicate] profile {profile}: stage times (a stage whose work was already done costs ~0 s)")
    for name, s in times.items():
        print(f"[replicate]   {name:24s} {s / 60:7.1f} min")
    print(f"[replicate]   {'total':24s} {sum(times.values()) / 60:7.1f} min  ({out.relative_to(PROJECT_ROOT)})")
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.replicate", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="auto", help="smoke | cpu | cpu-long | gpu | auto (gpu with CUDA, else cpu)")
    ap.add_argument("--no-book", action="store_true", help="stop before building the HTML book")
    args = ap.parse_args(argv)
    replicate(args.profile, skip_book=args.no_book)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
