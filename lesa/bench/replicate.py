"""A `make replicate` run from an empty cache against the committed record of the same profile, stage by stage.

    python -m lesa.bench replicate --run /path/to/clone/results --profile cpu

``--run`` is the results folder of a checkout where `make replicate` ran from an empty cache (its
replicate_run.json, book_run.json, CPT summaries and evaluation records); the reference is this checkout's
committed results of the same profile. Both sides are read from files, nothing is timed here: the stage
wall-clocks of the run, and per notebook and per CPT run the same fields on both sides (a notebook's
from-scratch seconds; a run's training seconds and the seconds of its evaluation records), so a ratio compares
like with like. The two sides may come from different machines and precisions; the record says which.
"""
from __future__ import annotations

from pathlib import Path

from ..core.layout import GROWTH_NOTEBOOKS as GROWTH, TRAINING_NOTEBOOKS as TRAINING, Results
from ..core.store import provenance, read_json
from ..grow.methods import run_title
from ..study.cpt import lesa_before_training
from ..study.results import recorded_eval_s
from ..study.profiles import load_profile

def _side(res: Results, from_scratch: bool) -> dict:
    """Per notebook seconds (its from-scratch time where recorded, when ``from_scratch``) and per CPT run its
    training and evaluation seconds, from a results folder."""
    book = read_json(res.file("book_run.json")) if res.file("book_run.json").exists() else {}
    nb = {n: (r.get("from_scratch_s", r["seconds"]) if from_scratch else r["seconds"]) for n, r in book.items()
          if n in [*GROWTH, *TRAINING]}
    runs = {}
    for s in sorted(res.cpt().glob("*/summary.json")):
        name, summary = s.parent.name, read_json(s)
        if not summary.get("completed"):
            continue
        runs[name] = {"title": run_title(summary["run"]) if summary.get("run") else name,
                      "train_s": summary.get("elapsed_s"), "eval_s": round(recorded_eval_s(res, name), 1),
                      "precision": summary.get("precision"), "prefix_reuse": summary.get("prefix_reuse")}
    precisions = sorted({r.get("precision") or "fp32" for r in book.values()} |
                        {r["precision"] or "fp32" for r in runs.values()})
    cpus = sorted({r["cpu_model"] for r in book.values() if r.get("cpu_model")})
    return {"notebooks_s": nb, "cpt": runs, "precision": "/".join(precisions), "cpu_models": cpus}


def _verdicts(run: Results, ref: Results) -> dict | None:
    """Each claim's verdict in the run's scoreboard against the committed one: the run trained its own predictors
    and CPT runs, maybe in another precision, so a verdict that moves is one that depends on either."""
    sides = [read_json(r.file("scoreboard.json")).get("claims", []) if r.file("scoreboard.json").exists() else []
             for r in (run, ref)]
    got, want = ({c["claim"]: c["verdict"] for c in side} for side in sides)
    if not got or not want:
        return None
    changed = [{"claim": k, "reference": v, "run": got.get(k)} for k, v in want.items() if got.get(k) != v]
    return {"same": len(want) - len(changed), "of": len(want), "changed": changed}


def _ratio(ref: float | None, run: float | None) -> float | None:
    return round(ref / run, 2) if ref and run else None


def compare(profile: str, run_root: str | Path, reference_root: str | Path | None = None,
            prelude_s: float | None = None, estimate_note: str | None = None, prelude_note: str | None = None) -> dict:
    """The bench record: the run's replicate_run.json (stage times, precision, CPU, probe), both sides' per-notebook
    and per-CPT-run seconds, and reference / run ratios (above 1: the run was faster). ``prelude_s``: the run's
    wall-clock before the stages (setup, model conversion, data), when measured (`make`'s total minus the stages).
    ``estimate_note``: what to know about the estimate the run printed (e.g. a bug fixed since); ``prelude_note``:
    how ``prelude_s`` was measured, when not by the run itself."""
    run_res, ref_res = Results(profile, Path(run_root)), Results(profile, reference_root)
    rec_path = run_res.file("replicate_run.json")
    if not rec_path.exists():
        raise FileNotFoundError(f"{rec_path}: no replicate_run.json; run `make replicate PROFILE={profile}` in that "
                                "checkout first")
    rec = read_json(rec_path)
    if not rec.get("complete"):
        raise ValueError(f"{rec_path}: the run stopped after {list(rec.get('stages_s', {}))}; resume it "
                         "(`make replicate` again) and compare when it completes")
    run, ref = _side(run_res, from_scratch=False), _side(ref_res, from_scratch=True)
    notebooks = {n: {"reference_s": ref["notebooks_s"].get(n), "run_s": s,
                     "speedup": _ratio(ref["notebooks_s"].get(n), s)} for n, s in run["notebooks_s"].items()}
    cpt = {}
    for n, r in run["cpt"].items():
        q = ref["cpt"].get(n) or {}
        cpt[n] = {"title": r["title"], "reference_train_s": q.get("train_s"), "run_train_s": r["train_s"],
                  "train_speedup": _ratio(q.get("train_s"), r["train_s"]),
                  "reference_eval_s": q.get("eval_s"), "run_eval_s": r["eval_s"],
                  "eval_speedup": _ratio(q.get("eval_s"), r["eval_s"]), "prefix_reuse": r["prefix_reuse"]}
    stage_ref = {"notebooks 1-3": sum(ref["notebooks_s"].get(n) or 0 for n in GROWTH),
                 "continual pre-training": sum((q["train_s"] or 0) + q["eval_s"] for q in ref["cpt"].values()),
                 "notebooks 4-6": sum(ref["notebooks_s"].get(n) or 0 for n in TRAINING)}
    stages = {k: {"reference_s": round(stage_ref[k], 1) if k in stage_ref else None, "run_s": s,
                  "speedup": _ratio(stage_ref.get(k), s)} for k, s in rec["stages_s"].items()}
    # LESA's perplexity before training per predictor seed on both sides: the run trained its own predictors
    prof = load_profile(profile, check_device=False)
    sets = prof["protocol"].get("sets")
    before = {side: {str(k): v for k, v in lesa_before_training(p, prof["model"]["name"], sets).items()}
              for side, p in (("run", run_res.chapter("03_expansion") / "expansion.json"),
                              ("reference", ref_res.chapter("03_expansion") / "expansion.json")) if p.exists()}
    return {"kind": "replicate", "label": f"`make replicate` of the {profile} profile from an empty cache",
            "profile": profile, "device": "cpu", "cpu_model": rec.get("cpu_model"), "cpus": rec.get("cpus"),
            "probe": rec.get("probe"), "bf16_units": rec.get("bf16_units"), "run_precision": rec.get("precision"),
            "run_provenance": rec.get("provenance"),
            "run_time_utc": rec.get("time_utc"), "estimates_s": rec.get("estimates_s"), "estimate_note": estimate_note,
            "total_s": rec.get("total_s"), "prelude_s": prelude_s, "prelude_note": prelude_note,
            "reference_precision": ref["precision"], "reference_cpus": ref["cpu_models"],
            "stages": stages, "notebooks": notebooks, "cpt": cpt,
            "lesa_before_training": {"model": prof["model"]["name"], **before},
            "verdicts": _verdicts(run_res, ref_res),
            "reference_note": ("adds each notebook's from-scratch seconds (book_run.json) and each CPT run's "
                               "training seconds and its evaluation records' seconds; it leaves out model loading and "
                               "growth inside the CPT stage, so that stage's ratio understates the run's speed-up"),
            "provenance": provenance()}
