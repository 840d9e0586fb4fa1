"""Beyond the paper (ours): do learned initialisations beat LLaMA Pro's identity blocks? The judgement
of chapter 6, on results other stages wrote (notebook 3's perplexities before training, the CPT runs'
held-out evaluations, notebook 5's table after training); nothing here trains or evaluates a model.

    groups = seed_groups(runs)                        # (method, options, ablation) -> run names
    cmp = heldout_vs_reference(logs, lp_logs)         # later-half held-out loss, seed range against seed range
    tokens_to_reach(log, target)                      # first evaluation at or below a held-out loss

The rule (issue 15): a variant beats LLaMA Pro only if its held-out loss is lower at equal tokens beyond
the seed spread, for the later half of the run. With one seed on either side there is no spread to beat,
and the comparison says so instead of deciding.
"""
from __future__ import annotations

import numpy as np

RESULT_TEXT = {"lower": "beats LLaMA Pro (lower beyond the seed spread at every later evaluation)",
               "higher": "worse than LLaMA Pro (higher beyond the seed spread at every later evaluation)",
               "overlap": "no difference beyond the seed spread",
               "single seed": "not decided: one seed on a side, no spread to beat",
               "no common evaluations": "not decided: no evaluations at equal tokens"}


def seed_group_key(method: str, options: dict | None = None, ablation: str | None = None) -> tuple:
    """The key seed_groups files a run under: what defines a method's recipe, with the seeds left out
    (a variant's twin in another placement is ``seed_group_key(method, options minus "gaps", ablation)``)."""
    return (method, tuple(sorted((options or {}).items())), ablation)


def seed_groups(runs: dict[str, dict], frozen: bool = True) -> dict[tuple, list[str]]:
    """Runs (lesa.study.analysis.load_cpt_runs) that differ only in seed (data order or predictor seed):
    (method, plan options, ablation) -> their names, sorted. With ``frozen`` only runs of a method's own
    recipe (the base-model control left out), else only the ablations. Runs without evaluations are
    left out."""
    out: dict[tuple, list[str]] = {}
    for name, r in sorted(runs.items()):
        if r["frozen"] != frozen or not r["eval"] or (frozen and r["method"] == "base"):
            continue
        out.setdefault(seed_group_key(r["method"], r.get("options"), r.get("ablation")), []).append(name)
    return out


def heldout_vs_reference(logs: list[list[dict]], ref: list[list[dict]], later: float = 0.5) -> dict:
    """One method's seeds (``logs``: an eval log per seed, rows with tokens and heldout_loss) against a
    reference method's seeds at equal tokens. At each evaluation in the later part of the run (tokens
    above ``later`` x the last common evaluation) the two seed ranges are compared: "lower" when every
    seed of ``logs`` is below every reference seed, "higher" when every one is above, else "overlap".

    result: "lower" / "higher" when every later evaluation says so and both sides have two seeds or
    more; "single seed" when a side has one (the states are still given); else "overlap"."""
    at = lambda log: {int(e["tokens"]): float(e["heldout_loss"]) for e in log if "tokens" in e}
    a, b = [at(x) for x in logs], [at(x) for x in ref]
    common = sorted(set.intersection(*[set(d) for d in a + b])) if a and b else []
    if not common:
        return {"result": "no common evaluations", "points": [], "n": len(a), "n_ref": len(b), "end_diff": None}
    points = []
    for t in (t for t in common if t > later * common[-1]):
        va, vb = [d[t] for d in a], [d[t] for d in b]
        state = "lower" if max(va) < min(vb) else "higher" if min(va) > max(vb) else "overlap"
        points.append({"tokens": t, "min": min(va), "median": float(np.median(va)), "max": max(va),
                       "ref_min": min(vb), "ref_median": float(np.median(vb)), "ref_max": max(vb), "state": state})
    states = {p["state"] for p in points}
    if not points:                  # only the start (tokens 0) in common
        result = "no common evaluations"
    elif min(len(a), len(b)) < 2:
        result = "single seed"
    elif len(states) == 1 and states <= {"lower", "higher"}:
        result = next(iter(states))
    else:
        result = "overlap"
    return {"result": result, "points": points, "n": len(a), "n_ref": len(b),
            "end_diff": points[-1]["median"] - points[-1]["ref_median"] if points else None}


def against_range(cmp: dict) -> str | None:
    """Where one method's seeds lie against the reference's range over the later evaluations of
    heldout_vs_reference's ``cmp``, whatever the seed counts (its result says "single seed" for one run
    against a reference's several): "below" / "above" when at every later evaluation all of them lie
    below / above all the reference's seeds, "within" otherwise; None without common evaluations."""
    states = {p["state"] for p in cmp["points"]}
    if not states:
        return None
    return {"lower": "below", "higher": "above"}.get(next(iter(states))) if len(states) == 1 and \
        states <= {"lower", "higher"} else "within"


def tokens_to_reach(log: list[dict], target: float) -> int | None:
    """Training tokens at the first evaluation whose held-out loss is at or below ``target`` (None: never)."""
    return next((int(e["tokens"]) for e in log if "tokens" in e and e["heldout_loss"] <= target), None)


def flops_at(run: dict, tokens: int) -> float | None:
    """Training FLOPs (frozen-aware, as the trainer logged them) spent when ``tokens`` had been seen."""
    if tokens == 0:
        return 0.0
    return next((float(r["flops"]) for r in run.get("train", []) if r.get("tokens") == tokens and r.get("flops")),
                None)
