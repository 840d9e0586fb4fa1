"""The step-cost bench behind claim C6: the methods' CPT steps timed back to back in one process.

A CPT run's own step times are measured on whatever day and machine it ran, with whatever else shared the
CPU (a profile that runs across sessions, cpu-long, cannot compare them). Here each method's grown model,
frozen as its CPT run freezes it, gets a `lesa.train.trainer.Trainer` with the profile's CPT config; the trainers
then take one step each in turn, in an order rotated every round, so slow periods of a shared machine fall
on every method alike.

    python -m lesa.study.step_cost --profile cpu-long            # results/cpu-long/cpt/step_cost.json
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..claims.rules import median_se
from .cpt import _grower, run_names, start_seeds
from ..data.prepare import latest_corpus
from .profiles import load_profile
from ..core.store import provenance, run_main, write_json
from ..train.trainer import TrainConfig, Trainer
from ..core.layout import Results

METHODS = ("lesa", "llama_pro", "solar")     # the three C6 compares


def method_runs(prof: dict, methods: tuple[str, ...] = METHODS) -> dict[str, dict]:
    """method -> the profile's CPT run of it that C6 reads (its first seed, its own freezing, no ablation)."""
    runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants"))
    out = {}
    for m in methods:
        hit = next(((n, r) for n, r in runs.items() if r["method"] == m and not r["options"]
                    and not r["ablation"] and not r["replicate"]), None)
        if hit is None:
            raise ValueError(f"profile {prof['name']!r} has no CPT run of {m!r} (cpt.methods: {prof['cpt']['methods']})")
        out[m] = {"run": hit[0], **hit[1]}
    return out


def measure_step_cost(profile: str, rounds: int = 10, warmup: int = 1, methods: tuple[str, ...] = METHODS,
                      out: Path | None = None) -> dict:
    """``warmup`` + ``rounds`` rounds; in round r every method takes its optimizer step r (the CPT run's own
    batch), starting with method r mod len(methods). Warm-up rounds are dropped from the statistics."""
    if rounds < 2 or warmup < 1:
        raise ValueError("need at least 2 timed rounds (for a standard error) and 1 warm-up round")
    prof = load_profile(profile)
    if not (prof.get("cpt") or {}).get("train"):
        raise ValueError(f"profile {prof['name']!r} has no cpt.train section")
    t_all = time.perf_counter()
    picked = method_runs(prof, methods)
    seeds = start_seeds(prof, {r["run"]: r for r in picked.values()}, [r["run"] for r in picked.values()])
    corpus = latest_corpus(fast=True if prof["name"] == "smoke" else None)
    base = {**prof["cpt"]["train"], "device": prof["device"], "eval_every": 0, "ckpt_every": 0, "progress": False,
            "prefix_reuse": "off"}      # a method's step cost is its whole step: never the stored frozen layers' output
    n = warmup + rounds
    trainers: dict[str, Trainer] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m, r in picked.items():
            model = _grower(prof, r["method"], seeds[r["run"]] or 0, r["options"])()
            cfg = TrainConfig.from_dict({**base, "steps": max(n, r["steps"]), "seed": r["seed"],
                                         "train_all": r["trains"] == "all"})
            trainers[m] = Trainer(model, corpus / "train", None, cfg, Path(tmp) / m)
            print(f"[step_cost] {m}: run {r['run']}, trains {r['trains']}, "
                  f"{trainers[m].fpt['total'] / 1e9:.3f} GFLOP/token", flush=True)
        rows: dict[str, list[dict]] = {m: [] for m in trainers}
        names = list(trainers)
        for step in range(n):
            order = names[step % len(names):] + names[:step % len(names)]
            for m in order:
                rows[m].append(trainers[m].step(step))
            print(f"[step_cost] round {step + 1}/{n}: " + ", ".join(f"{m} {rows[m][-1]['step_s']:.2f} s" for m in names),
                  flush=True)
        fpt = {m: t.fpt["total"] for m, t in trainers.items()}
        stored = {m: t.prefix.summary()["used"] for m, t in trainers.items()}
        del trainers
    gc.collect()
    res = {}
    for m in names:
        st = [x["step_s"] for x in rows[m]]
        timed = st[warmup:]
        res[m] = {"run": picked[m]["run"], "trains": picked[m]["trains"], "step_s": timed, "warmup_step_s": st[:warmup],
                  "step_s_median": statistics.median(timed), "step_s_median_se": median_se(timed),
                  "flops_per_token": fpt[m], "loss": [x["loss"] for x in rows[m]]}
    ref = names[0]
    summary = {"profile": prof["name"], "device": prof["device"], "methods": names, "rounds": rounds,
               "warmup_rounds": warmup, "interleaved": True, "reference": ref,
               "batch": prof["cpt"]["train"].get("batch_size"), "seq_len": prof["cpt"]["train"].get("seq_len"),
               "precision": prof["cpt"]["train"].get("precision"), "threads": torch.get_num_threads(),
               "runs": res, "prefix_store_used": stored,
               "measured_ratio": {m: res[m]["step_s_median"] / res[ref]["step_s_median"] for m in names},
               "flop_model_ratio": {m: fpt[m] / fpt[ref] for m in names},
               "bench_wall_s": time.perf_counter() - t_all, "provenance": provenance()}
    out = out or Results(prof["name"]).cpt("step_cost.json")
    write_json(out, summary)
    print("[step_cost] median step (s): " + ", ".join(f"{m} {res[m]['step_s_median']:.3f}" for m in names)
          + "; measured / FLOP-model ratio to " + ref + ": "
          + ", ".join(f"{m} {summary['measured_ratio'][m]:.2f} / {summary['flop_model_ratio'][m]:.2f}" for m in names)
          + f"; wrote {out}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", required=True, help="configs/<profile>.yaml (its cpt.train config and run list)")
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (one step of every method each)")
    ap.add_argument("--warmup", type=int, default=1, help="rounds dropped before timing")
    args = ap.parse_args(argv)
    measure_step_cost(args.profile, rounds=args.rounds, warmup=args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
