"""`make replicate` after setup: the profile's stages in order, each with its estimated time printed before it
starts (the recorded times of the notebooks and CPT runs still to do, scaled by a probe of this machine) and
its measured time after, written to results/<profile>/replicate_run.json (with the precision it ran in, the
CPU and the probe) as soon as each stage ends, so an interrupted run says where it stopped and resumes.

    python -m lesa.book.replicate --profile cpu

Stages (each reuses what is already done: notebooks are skipped when their inputs are unchanged, CPT runs
when finished, predictors and evaluations come from .cache/):
  1. notebooks 1-3 (the SVD evidence, the predictor, the grown models before training)
  2. CPT: train and evaluate every run of the profile (lesa.study.cpt; LESA's predictor seed is the median of
     notebook 3, so this stage comes after it)
  3. notebooks 4-6 (training curves, after-training evaluation, the variants beyond the paper), then the scoreboard
  4. the book (static HTML from the executed notebooks)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..core.store import cpu_model, file_hash, provenance, read_json, run_main, shown, write_json
from ..core.layout import GROWTH_NOTEBOOKS as GROWTH, TRAINING_NOTEBOOKS as TRAINING, Results
from . import run as book
from ..core.precision import PROBE_SIZE, auto_reason, bf16_probe, cpu_bf16_flags, resolve_precision
from ..study.profiles import load_profile, resolve_profile


def stages(profile: str) -> list[tuple[str, object]]:
    from ..study.cpt import run_profile_cpt

    return [("notebooks 1-3", lambda: book.run(profile, only=GROWTH)),
            ("continual pre-training", lambda: run_profile_cpt(profile)),
            ("notebooks 4-6", lambda: book.run(profile, only=TRAINING)),
            ("book", lambda: book.build(profile))]


def machine_probe() -> dict:
    """This machine's matmul speed (GFLOP/s of 1024² matmuls, fp32 and bf16 autocast; lesa.core.precision's probe,
    well under a second), recorded with each run so that the next estimate can scale by it."""
    p = bf16_probe("cpu")
    flop = 2 * 2 * PROBE_SIZE ** 3                         # the probe times two matmuls
    return {"fp32_gflops": round(flop / p["fp32_s"] / 1e9, 1), "bf16_gflops": round(flop / p["bf16_s"] / 1e9, 1)}


def _notebook_done(name: str, profile: str) -> bool:
    """book.run would skip this notebook: its last execution's stamp holds the current input hash."""
    stamp, dst = book.executed_dir(profile) / f"{name}.stamp.json", book.executed_dir(profile) / f"{name}.ipynb"
    pub = book.published_dir(profile) / dst.name
    last = read_json(stamp) if stamp.exists() else {}
    return (last.get("hash") == book.input_hash(name, profile) and dst.exists() and pub.exists()
            and last.get("published") == file_hash(pub))


def _caveats(recorded: list[dict], precision: str | None, cpt: bool = False) -> str:
    """What the recorded times do not account for, in words: a precision other than this run's (bf16 on native
    units is faster, emulated bf16 slower, by a factor no probe of one matmul predicts) and CPT runs recorded
    before the frozen-prefix store (lesa.train.prefix_store), which this run uses where it applies."""
    notes = []
    if precision:
        was = sorted({r.get("precision") or "fp32" for r in recorded})
        if was and was != [precision]:
            notes.append(f"recorded in {'/'.join(was)}, this run in {precision}: not scaled for precision")
    if cpt and any("prefix_reuse" not in r for r in recorded):       # recorded before the store existed
        notes.append("some recorded without the frozen-prefix store: an upper bound where it applies")
    return "; " + "; ".join(notes) if notes else ""


def estimate(profile: str, root: Path | None = None, probe: dict | None = None,
             done: Any = None, precision: dict | None = None, fresh: bool | None = None) -> dict[str, dict]:
    """stage -> {"s": estimated seconds or None, "how": where the number comes from}: the recorded time of each
    notebook (results/<profile>/book_run.json) and CPT run (its summary.json) still to do, from the profile's
    run list; work already done counts 0. Times recorded with a probe (replicate_run.json) are scaled by this
    machine's fp32 matmul speed over that machine's; older records are taken as they are, and say so.
    ``done(name)``: whether a notebook is up to date (default: book.run's own test). ``precision``
    ({"protocol": ..., "cpt": ...}, as replicate resolves it): the "how" says where recorded times ran in another.
    ``fresh`` (default: this machine's cache holds no computed result): notebooks are estimated by their
    from-scratch times, not by their last execution, which may have read every costly value from a cache."""
    from ..study.cpt import cpt_work, run_names
    from ..study.results import recorded_eval_s
    R = Results(profile, root)
    done = done or (lambda n: _notebook_done(n, profile))
    prev = read_json(R.file("replicate_run.json")) if R.file("replicate_run.json").exists() else {}
    scale, scaled = 1.0, "not scaled: no probe recorded with them"
    if probe and (prev.get("probe") or {}).get("fp32_gflops"):
        scale = prev["probe"]["fp32_gflops"] / probe["fp32_gflops"]
        scaled = f"scaled x{scale:.2f} by this machine's fp32 matmul speed"
    book_times = read_json(R.file("book_run.json")) if R.file("book_run.json").exists() else {}
    fresh = not book.has_computed_cache() if fresh is None else fresh
    out = {}
    for stage, names in (("notebooks 1-3", GROWTH), ("notebooks 4-6", TRAINING)):
        todo = [n for n in names if not done(n)]
        rec = [book_times[n] for n in todo if n in book_times]
        scratch = [r.get("from_scratch_s", r["seconds"]) for r in rec]
        known = scratch if fresh else [r["seconds"] for r in rec]
        also = _caveats(rec, (precision or {}).get("protocol"))
        told = ("from-scratch times (this machine's cache holds no computed result)" if fresh else
                "times of their last execution (which may have read costly values from a cache; from scratch: up "
                f"to {_fmt(scale * sum(scratch))})")
        out[stage] = ({"s": 0.0, "how": "done (inputs unchanged)"} if not todo else
                      {"s": scale * sum(known), "how": f"{len(todo)} notebook(s) to run, {told}, {scaled}{also}"}
                      if len(known) == len(todo) else
                      {"s": None, "how": f"no recorded time for {sorted(set(todo) - set(book_times))}"})
    prof = load_profile(profile, check_device=False)
    cpt = prof.get("cpt") or {}
    runs = run_names(cpt, (prof.get("expansion") or {}).get("variants")) if "train" in cpt else {}
    # the runs the stage will train and evaluate, by run_profile_cpt's own rule: a finished run whose records are
    # in another precision than this run's trains again (its weights are not cached on a fresh machine)
    work = cpt_work(prof, root)
    todo, evals = work["train"], work["evaluate"]
    summaries = {n: read_json(p) for n in runs if (p := R.cpt(n) / "summary.json").exists()}
    past = {n: r.get("elapsed_s") for n, r in summaries.items()}
    per_step = [past[n] / runs[n]["steps"] for n in past if past[n]]
    also = _caveats([summaries[n] for n in todo if n in summaries] or list(summaries.values()),
                    (precision or {}).get("cpt"), cpt=True)
    eval_s = {n: recorded_eval_s(R, n) for n in evals}
    unknown = [n for n, v in eval_s.items() if not v]
    ev = (f", {len(evals)} to evaluate (recorded evaluation times"
          + (f"; {len(unknown)} without one, not counted)" if unknown else ")") if evals else "")
    if not todo and not evals:
        out["continual pre-training"] = {"s": 0.0, "how": f"all {len(runs)} runs finished and evaluated"}
    elif per_step or not todo:
        secs = sum(past.get(n) or runs[n]["steps"] * sorted(per_step)[len(per_step) // 2] for n in todo)
        out["continual pre-training"] = {"s": scale * (secs + sum(eval_s.values())),
                                         "how": f"{len(todo)} of {len(runs)} runs to train{ev}, "
                                         f"recorded run times {scaled}{also}"}
    else:
        out["continual pre-training"] = {"s": None, "how": f"{len(todo)} runs to train, none recorded yet"}
    out["book"] = {"s": 60.0, "how": "about a minute (static HTML)"}
    return out


def _fmt(s: float | None) -> str:
    return "unknown" if s is None else f"{s / 60:.1f} min"


def replicate(profile: str, skip_book: bool = False, root: Path | None = None, stage_fns: list | None = None) -> dict:
    """Run the profile's stages in order. Before each: its estimated time (estimate()); after: its measured time,
    written at once to results/<profile>/replicate_run.json with the precision the profile runs in (resolved
    here), the CPU and a probe of its speed. An interrupted run resumes: every stage reuses its finished work,
    and the record says which stages were complete."""
    profile = resolve_profile(profile)
    prof = load_profile(profile)                        # a bad profile (or gpu without CUDA) fails here, not later
    out = Results(profile, root).file("replicate_run.json")
    prev = read_json(out) if out.exists() else {}
    if prev and not prev.get("complete", True):
        print(f"[replicate] resuming an interrupted run of {prev.get('time_utc')}: stages then complete: "
              f"{list(prev.get('stages_s', {})) or 'none'}; each stage reuses the work it finished", flush=True)
    probe = machine_probe()
    device = "cuda" if prof["device"] == "cuda" else "cpu"
    precision = {"protocol": resolve_precision(prof["protocol"].get("precision", "fp32"), device),
                 "cpt": resolve_precision(((prof.get("cpt") or {}).get("train") or {}).get("precision", "auto"), device),
                 "auto_would_be": "%s (%s)" % auto_reason(device)}
    print(f"[replicate] profile {profile} on {cpu_model()} ({os.cpu_count()} cores): fp32 matmul "
          f"{probe['fp32_gflops']} GFLOP/s, bf16 {probe['bf16_gflops']}; perplexities in {precision['protocol']}, "
          f"CPT in {precision['cpt']}; precision auto here: {precision['auto_would_be']}", flush=True)
    est = estimate(profile, root, probe, precision=precision) if stage_fns is None else {}
    known = [e["s"] for e in est.values() if e["s"] is not None]
    if est:
        print(f"[replicate] estimated total {_fmt(sum(known))}"
              + (" (some stages unknown)" if len(known) < len(est) else ""), flush=True)
    times: dict[str, float] = {}
    record = {"profile": profile, "complete": False, "stages_s": times, "estimates_s": {k: v["s"] for k, v in est.items()},
              "precision": precision, "cpu_model": cpu_model(), "cpus": os.cpu_count(), "probe": probe,
              "bf16_units": cpu_bf16_flags(),        # which bf16 host class this ran on
              "resumed_from": prev.get("stages_s") if prev and not prev.get("complete", True) else None}
    t_all = time.perf_counter()
    for name, fn in stage_fns or stages(profile):
        if skip_book and name == "book":
            continue
        e = est.get(name)
        print(f"[replicate] {name}: estimated {_fmt(e['s'])} ({e['how']}) ..." if e else f"[replicate] {name} ...",
              flush=True)
        t0 = time.perf_counter()
        fn()
        times[name] = round(time.perf_counter() - t0, 1)
        print(f"[replicate] {name}: done in {_fmt(times[name])}", flush=True)
        write_json(out, {**record, "total_s": round(time.perf_counter() - t_all, 1), "provenance": provenance(),
                         "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    record["complete"] = True
    write_json(out, {**record, "total_s": round(time.perf_counter() - t_all, 1), "provenance": provenance(),
                     "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"[replicate] profile {profile}: stage times (a stage whose work was already done costs ~0 s)")
    for name, s in times.items():
        print(f"[replicate]   {name:24s} {s / 60:7.1f} min")
    print(f"[replicate]   {'total':24s} {sum(times.values()) / 60:7.1f} min  ({shown(out)})")
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.book.replicate", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="auto", help="smoke | cpu | cpu-long | gpu | auto (gpu with CUDA, else cpu)")
    ap.add_argument("--no-book", action="store_true", help="stop before building the HTML book")
    args = ap.parse_args(argv)
    replicate(args.profile, skip_book=args.no_book)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
