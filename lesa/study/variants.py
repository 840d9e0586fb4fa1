"""Chapter 6 (beyond the paper): the variants' numbers from notebook 3's screen and the CPT runs, as tables.

    d = variants_vs_llama_pro(prof, "cpu", "results", fallback_profiles=["gpu"], preferred_profiles=["cpu-long"])
    d["init_rows"], d["rows"], d["spec_pos"]     # before training; held-out loss against LLaMA Pro; the spectrum test

Reads results only (notebook 3's expansion.json, the CPT runs' logs, notebook 5's main table); the notebook draws
them and writes the prose.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..claims import beyond as B
from ..claims.verdict import permutation_p, spread_text
from ..core.layout import Results
from ..core.store import read_json
from ..grow.methods import CONTROLS, LEARNED, run_label, run_title, variant_label
from .results import complete_cpt_profiles, find_results, first_seed_runs, load_cpt_runs, run_seeds


def variants_vs_llama_pro(prof: dict, profile: str, results_root: str | Path, fallback_profiles: list | tuple = ("gpu",),
                          preferred_profiles: list | tuple = (), later: float = 0.5) -> dict[str, Any]:
    """Chapter 6's tables: notebook 3's screening perplexities of the variants (``init_rows``, the base model's
    ``base_init``), the CPT runs grouped by seed (``runs``, ``groups``) and each group against LLaMA Pro
    (``rows``: end difference, the later-half comparison, tokens to LLaMA Pro's final loss), the spectrum test's
    position against the o/down-scaled variant's seed range (``spec_pos``) and notebook 5's table (``after``)."""
    import pandas as pd          # heavy; the one median below is pandas' (kept: the published numbers come from it)

    VARIANTS = {n: dict(v) for n, v in (prof.get("expansion") or {}).get("variants", {}).items()}
    SHOWN = ("lesa", "lesa_raw", *VARIANTS)   # notebook 3's models this chapter is about (the rest are in chapter 3)

    # ---- before training: notebook 3's screening perplexities (the profile's model; this profile's or the one it extends)
    init_dir, init_source = find_results(profile, "03_expansion", tuple(x for x in (prof.get("extends"), *fallback_profiles) if x),
                                           results_root)
    exp = read_json(init_dir / "expansion.json") if init_dir and (init_dir / "expansion.json").exists() else None
    init_rows, base_init, main_model, screen_set = [], None, None, None     # no notebook 3 results: nothing before training
    if exp:
        main_model = next(iter(exp["models"]))
        d0 = exp["models"][main_model]
        screen_set = d0["screen"]["sets"][0]
        for name, by_seed in d0["results"].items():
            method, opts = (VARIANTS[name]["method"], {k: v for k, v in VARIANTS[name].items() if k != "method"}) \
                if name in VARIANTS else (name, {})
            for seed, rec in by_seed.items():
                v = (rec.get("screen") or {}).get(screen_set) or {}
                if v.get("status") == "ok":
                    init_rows.append({"name": name, "method": method, "label": variant_label(method, opts),
                                      "seed": None if seed == "None" else int(seed), "ppl": v["value"],
                                      "identity": bool(rec.get("identity"))})
        base_init = next((r["ppl"] for r in init_rows if r["name"] == "base"), None)

    # ---- during training: the CPT runs; cpu-long's once the runs this chapter compares have trained (LLaMA Pro and
    # the learned methods on their own recipe: SOLAR, the base model, the unfrozen ablation and the post-training suite
    # are chapters 4 and 5's, which wait for all of them)
    cpt_dir, source = find_results(profile, "cpt", tuple(fallback_profiles), results_root,
                                      prefer=complete_cpt_profiles(preferred_profiles, profile, results_root,
                                                                     methods=("llama_pro", *LEARNED), suite=False))
    runs = load_cpt_runs(cpt_dir)
    runs = {n: r for n, r in runs.items() if r["completed"] or source == profile}   # a longer profile: finished runs only
    groups = {k: v for k, v in B.seed_groups(runs).items() if k[0] not in ("solar",)}   # SOLAR trains every layer
    # the spectrum test's runs (a prediction's singular values or vectors replaced) are a test of a cause, not
    # variants: they have their own section below
    reshaped = lambda key: bool({"spectrum", "directions"} & set(dict(key[1])))
    test_groups = {k: v for k, v in groups.items() if reshaped(k)}
    groups = {k: v for k, v in groups.items() if not reshaped(k)}
    lp_key = next((k for k in groups if k[0] == "llama_pro"), None)
    label_of = lambda k: run_label(k[0], True, options=dict(k[1]))
    rows = []
    lp_final = None                              # no LLaMA Pro run (yet): nothing to compare with
    if lp_key:
        lp_logs = [runs[n]["eval"] for n in groups[lp_key]]
        lp_final = float(pd.Series([log[-1]["heldout_loss"] for log in lp_logs]).median())
        for key, names in groups.items():
            logs = [runs[n]["eval"] for n in names]
            cmp = B.heldout_vs_reference(logs, lp_logs, later) if key != lp_key else None
            reach = [B.tokens_to_reach(log, lp_final) for log in logs]
            ends = [log[-1]["heldout_loss"] for log in logs]
            rows.append({"run": label_of(key), "seeds": len(names), "runs": ", ".join(names),
                         "held-out loss at the end": spread_text(ends, 4),
                         "− LLaMA Pro (median, end)": cmp["end_diff"] if cmp else None,
                         "later half against LLaMA Pro": B.RESULT_TEXT[cmp["result"]] if cmp else "(the reference)",
                         "tokens to LLaMA Pro's final held-out loss": ("(the reference: its median)" if key == lp_key else
                                                                        spread_text([r for r in reach if r is not None], 3)
                                                                        if all(r is not None for r in reach) else
                                                                        f"not reached by {sum(r is None for r in reach)} of {len(reach)} seeds"),
                         "_result": cmp["result"] if cmp else None, "_key": key})

    # the spectrum test's runs against the o/down-scaled variant (α = 0, LESA's gaps): each below / within / above
    # the variant's seed range at every later evaluation (B.against_range)
    fp_key = next((k for k in groups if k[0] == "lesa_fp" and dict(k[1]).get("gaps") in (None, "top")
                   and dict(k[1]).get("alpha") == 0.0), None)
    test_by = {o: names for key, names in test_groups.items() for o in ("spectrum", "directions") if o in dict(key[1])}
    spec_pos = {o: B.against_range(B.heldout_vs_reference([runs[n]["eval"] for n in names],
                                                          [runs[n]["eval"] for n in groups[fp_key]], later))
                for o, names in test_by.items()} if fp_key else {}

    # ---- after training: notebook 5's table (first seed of each method), from the same CPT source: this profile's
    # notebook 5 when it showed that source (a complete longer profile replaces this one's runs there too), else the
    # source profile's own notebook 5
    nb5 = [Results(p, results_root).chapter("05_downstream") / "main_table.json" for p in dict.fromkeys((profile, source or profile))]
    after = next((t["ours"] for t in (read_json(f) for f in nb5 if f.exists())
                  if t.get("source_profile") == (source or profile) and t.get("ours")), {})
    return {"VARIANTS": VARIANTS, "SHOWN": SHOWN, "init_rows": init_rows, "base_init": base_init, "init_source": init_source, "main_model": main_model, "screen_set": screen_set, "runs": runs, "groups": groups, "test_groups": test_groups, "source": source, "lp_key": lp_key, "lp_final": lp_final, "rows": rows, "fp_key": fp_key, "test_by": test_by, "spec_pos": spec_pos, "after": after,
            "later": later}


# ---------------------------------------------------------------------------------------- what the chapter reads
READ = ("q", "k", "v", "gate", "up")   # the projections o/down read from (o/down themselves may be zero)
RESHAPED = ("spectrum", "directions")   # the spectrum test's plan options (a prediction's SVD reshaped)


def group_label(key: tuple) -> str:
    """A seed group's display name: its method with the plan options."""
    return run_label(key[0], True, options=dict(key[1]))


def _median(xs) -> float:
    import pandas as pd          # the published medians are pandas' (the same values as numpy's)

    return float(pd.Series(xs).median())


def start_counts(d: dict) -> dict | None:
    """Before training: how many learned variants start within 1 % of the base model's perplexity (every seed),
    of how many, the base model's perplexity and LESA's (as released) over its seeds; None without notebook 3."""
    if not (d["init_rows"] and d["base_init"] is not None):
        return None
    starts: dict[str, list[float]] = {}
    for r in d["init_rows"]:
        if r["name"] in d["VARIANTS"] and r["method"] in LEARNED:
            starts.setdefault(r["label"], []).append(r["ppl"])
    return {"at_base": sum(max(v) <= d["base_init"] * 1.01 for v in starts.values()), "of": len(starts),
            "base": d["base_init"], "lesa": [r["ppl"] for r in d["init_rows"] if r["name"] == "lesa"]}


def learned_results(d: dict) -> dict[str, list[dict]]:
    """The learned variants' rows against LLaMA Pro, by the later-half result: lower (wins), higher (losses),
    undecided (one seed, overlapping ranges, no common evaluations)."""
    learned = [r for r in d["rows"] if r["_key"][0] in LEARNED]
    return {"wins": [r for r in learned if r["_result"] == "lower"],
            "losses": [r for r in learned if r["_result"] == "higher"],
            "undecided": [r for r in learned if r["_result"] in ("single seed", "overlap", "no common evaluations")]}


def _logs(d: dict, key: tuple) -> list[list[dict]]:
    return [d["runs"][n]["eval"] for n in d["groups"][key]]


def controls_vs_variants(d: dict) -> list[dict]:
    """Each control with the variants' start (o/down zeroed) and placement (LESA's gaps) against the learned
    variants in those gaps: the median held-out loss at the end, variant minus control. copy_scaled is LLaMA
    Pro's initialisation moved to the variants' placement (placement against initialisation); random_zero_out
    asks whether the predictions beat random features."""
    learned = [r for r in d["rows"] if r["_key"][0] in LEARNED]
    top_placed = [r for r in learned if dict(r["_key"][1]).get("gaps") is None]   # the controls sit in LESA's gaps
    if not top_placed:
        return []
    out = []
    for ctrl in (k for k in d["groups"] if k[0] in CONTROLS):
        ctrl_logs = _logs(d, ctrl)
        vs = [(r["run"], B.heldout_vs_reference(_logs(d, r["_key"]), ctrl_logs, d["later"])) for r in top_placed]
        out.append({"control": group_label(ctrl), "what": CONTROLS[ctrl[0]], "seeds": len(ctrl_logs),
                    "end_diff": [(run, v["end_diff"]) for run, v in vs if v["end_diff"] is not None]})
    return out


def placement_pairs(d: dict) -> list[dict]:
    """Each learned variant moved to LLaMA Pro's placement (gaps="spread") against itself in LESA's gaps: what
    placement alone does (median end difference, negative: lower in the spread placement) and its difference
    from LLaMA Pro."""
    out = []
    for r in (r for r in d["rows"] if r["_key"][0] in LEARNED):
        opts = dict(r["_key"][1])
        if opts.get("gaps") != "spread":
            continue
        twin = B.seed_group_key(r["_key"][0], {k: v for k, v in opts.items() if k != "gaps"}, r["_key"][2])
        if twin in d["groups"]:
            v = B.heldout_vs_reference(_logs(d, r["_key"]), _logs(d, twin), d["later"])
            out.append({"twin": group_label(twin), "end_diff": v["end_diff"], "seeds": len(d["groups"][r["_key"]]),
                        "twin_seeds": len(d["groups"][twin]), "vs_llama_pro": r["− LLaMA Pro (median, end)"]})
    return out


def load_diagnostics(d: dict, profile: str, results_root: str | Path) -> dict | None:
    """The step-0 diagnostics (lesa.study.diagnose) of the CPT source profile, None when not measured."""
    diag_dir, _ = find_results(d["source"] or profile, "beyond", (), results_root)
    f = diag_dir / "init_diagnostics.json" if diag_dir else None
    return read_json(f) if f and f.exists() else None


def diagnostics_rows(d: dict, diag: dict | None) -> list[dict]:
    """One row per seed group with step-0 diagnostics: the new layers' weights against the original layer below
    (norm, cosine, effective rank: medians over q, k, v, gate and up), the features o/down read (effective
    rank), the first gradient's L1 norm (each a median over the new layers, then over seeds) and the end loss."""
    if not (diag and d["rows"]):
        return []
    med, out = _median, []
    for key, names in d["groups"].items():
        ds = [diag["runs"][n] for n in names if n in diag["runs"]]
        if not ds:
            continue
        runs_end = [d["runs"][n]["eval"][-1]["heldout_loss"] for n in names]
        out.append({
            "run": group_label(key) + (f" ({len(ds)} seeds)" if len(ds) > 1 else ""),
            "norm ÷ below": med([med([x["weights"][t]["norm_ratio"] for t in READ]) for x in ds]),
            "cosine with below": med([med([x["weights"][t]["cosine"] for t in READ]) for x in ds]),
            "eff. rank ÷ below": med([med([x["weights"][t]["erank_ratio"] for t in READ]) for x in ds]),
            "attention: eff. rank ÷ below": med([x["features"]["o"]["erank_ratio"] for x in ds]),
            "MLP hidden: eff. rank ÷ below": med([x["features"]["down"]["erank_ratio"] for x in ds]),
            "first gradient (L1)": med([x["grad_l1"] for x in ds]),
            "end loss": f"{med(runs_end):.3f}", "_key": key})     # three decimals: the runs differ in the second
    return out


def gradient_association(d: dict, diag: dict | None, diag_rows: list[dict]) -> dict | None:
    """Across the runs that start at the base model's loss (within 0.01 nats on the diagnostic's tokens) in LESA's
    gaps (one placement, one start: what differs is what the new layers hold), the Spearman correlation of the
    first gradient's L1 norm with the end held-out loss (``rho``, over ``n`` runs), beside the diagnostics rows
    of LESA and of the o/down-scaled variant, the copy and the random control; None with fewer than 4 runs."""
    if not (diag and diag_rows):
        return None
    import pandas as pd

    groups, runs = d["groups"], d["runs"]
    lp_name = next((n for n in groups.get(d["lp_key"], []) if n in diag["runs"]), None)
    at_base = [(n, x) for key, names in groups.items() if dict(key[1]).get("gaps") in (None, "top") and key[0] != "llama_pro"
               for n in names if (x := diag["runs"].get(n)) and lp_name and abs(x["loss"] - diag["runs"][lp_name]["loss"]) < 0.01]
    if len(at_base) < 4:
        return None
    pts = pd.DataFrame([{"run": n, "grad": x["grad_l1"], "end": runs[n]["eval"][-1]["heldout_loss"]} for n, x in at_base])
    # each method's plain row: LESA's gaps (the spectrum test's runs are not in groups)
    by = {r["_key"][0]: r for r in diag_rows if dict(r["_key"][1]).get("gaps") in (None, "top")}
    return {"n": len(pts), "rho": pts["grad"].rank().corr(pts["end"].rank()),    # Spearman: Pearson on ranks
            "lesa": next((r for r in diag_rows if r["_key"][0] == "lesa"), None),
            "variant": by.get("lesa_fp"), "copy": by.get("copy_scaled"), "random": by.get("random_zero_out")}


def spectrum_rows(d: dict, diag: dict | None) -> list[dict]:
    """The spectrum test's table: the o/down-scaled variant's seeds, its two reshaped versions (each seed, against
    the variant's median and its run on the same seed) and the two controls in the same places, with their step-0
    diagnostics and where each lies against the variant's seed range in the later half."""
    groups, test_groups, runs, fp_key = d["groups"], d["test_groups"], d["runs"], d["fp_key"]
    if not (test_groups and fp_key and d["lp_key"]):
        return []
    ctrl_keys = [k for k in groups if k[0] in ("copy_scaled", "random_zero_out")]
    seed_of = lambda n: runs[n]["summary"]["run"].get("predictor_seed")
    fp_logs = [runs[n]["eval"] for n in groups[fp_key]]
    out = []
    for key in (fp_key, *test_groups, *ctrl_keys):
        for n in (groups.get(key) or test_groups[key]):
            twin = next((m for m in groups[fp_key] if seed_of(m) == seed_of(n)), None) if key in test_groups else None
            x = (diag or {}).get("runs", {}).get(n)
            cmp = B.heldout_vs_reference([runs[n]["eval"]], fp_logs, d["later"]) if key != fp_key else None
            same = runs[n]["eval"][-1]["heldout_loss"] - runs[twin]["eval"][-1]["heldout_loss"] if twin else None
            # the variant and its test runs are named as the section names them (its full name would wrap every row
            # to five lines in this nine-column table, wider than the page)
            change = next((f"{o} = {dict(key[1])[o]}" for o in RESHAPED if o in dict(key[1])), None)
            out.append({       # the controls have no predictor (random_zero_out's seed draws its weights)
                "run": change or ("the variant" if key == fp_key else group_label(key)),
                "seed": seed_of(n) if key[0] == "lesa_fp" else "–",
                "weights: eff. rank ÷ below": _median([x["weights"][t]["erank_ratio"] for t in READ]) if x else None,
                "attention: eff. rank ÷ below": x["features"]["o"]["erank_ratio"] if x else None,
                "first gradient (L1)": x["grad_l1"] if x else None,
                "end loss": f"{runs[n]['eval'][-1]['heldout_loss']:.3f}",
                "− variant (end)": (f"{cmp['end_diff']:+.3f}" if cmp else "–")
                                   + (f"; {same:+.3f}" if same is not None else ""),
                "later half": B.against_range(cmp) if cmp else "–",
                "_key": key, "_name": n, "_twin": twin, "_same": same})
    return out


def spectrum_tests(d: dict, spec_rows: list[dict]) -> dict:
    """Each reshaped version against the variant: its runs' end differences from the variant's median and from
    its run on the same seed, where they lie (``position``), the share of the variant's gap to random weights it
    closes (when random weights end lower), and an exact permutation test of the end losses one-sided in the
    direction the runs lie (2 runs against 3: p is never below 0.1)."""
    runs, fp_names = d["runs"], d["groups"][d["fp_key"]]
    end = lambda n: runs[n]["eval"][-1]["heldout_loss"]
    fp_end = _median([end(n) for n in fp_names])
    rnd = next((r for r in spec_rows if r["_key"][0] == "random_zero_out"), None)
    tests = {}
    for o in RESHAPED:
        rs = [r for r in spec_rows if o in dict(r["_key"][1])]
        if not rs:
            continue
        t = {"seeds": [r["seed"] for r in rs], "position": d["spec_pos"][o],
             "diffs": [end(r["_name"]) - fp_end for r in rs], "same": [r["_same"] for r in rs if r["_same"] is not None],
             "share": None, "gap": None}
        if rnd and end(rnd["_name"]) < fp_end:    # the share of the variant's gap to random weights the change closes
            t["gap"] = fp_end - end(rnd["_name"])
            t["share"] = 100 * (fp_end - _median([end(r["_name"]) for r in rs])) / t["gap"]
        t["perm"] = permutation_p([end(r["_name"]) for r in rs], [end(n) for n in fp_names],
                                  "greater" if t["position"] == "above" else "less")
        tests[o] = t
    return {"tests": tests, "n_variant": len(fp_names), "n_test": sorted({len(v) for v in d["test_by"].values()})}


def after_training_rows(d: dict) -> tuple[list[dict], str | None]:
    """Chapter 5's evaluation of each seed group's evaluated run (its first seed that chapter 5 evaluated: the
    spread variant's is seed 1, the profile's median seed, not the first in name order), and the benchmark's
    tasks when every row has the same (then said once, not repeated down a column; else a column of each row's)."""
    first, after, runs = first_seed_runs(d["source"]), d["after"], d["runs"]
    keep = [n for n in (next((m for m in sorted(names, key=lambda m: m not in first) if m in after), None)
                        for names in d["groups"].values()) if n]
    rows = [{"run": run_title(runs[n]), **run_seeds(runs[n]), "WikiText word PPL": after[n].get("ppl"),
             "benchmark average (%)": after[n].get("avg"), "SE": after[n].get("avg_se"),
             "tasks": ", ".join(after[n].get("tasks") or [])} for n in keep]
    tasks = {r["tasks"] for r in rows}
    if len(tasks) != 1:
        return rows, None
    return [{k: v for k, v in r.items() if k != "tasks"} for r in rows], tasks.pop()


# ---------------------------------------------------------------------------------------- figure data
def difference_curves(runs: dict, named: dict[str, list[str]], ref: list[str]) -> dict:
    """Paired differences in held-out loss against a reference's median at equal tokens (what the seed rule
    compares): for each group of runs (display name -> run names), at every evaluation after the start that
    every run of the group and of the reference logged, the median and the lowest and highest run minus the
    reference's median; and the reference's own band (its runs minus its median). The starts (tokens 0) are
    left out: LESA's is 2 nats above the rest, the at-base variants' exactly 0."""
    import numpy as np

    at = lambda n: {int(e["tokens"]): float(e["heldout_loss"]) for e in runs[n]["eval"] if "tokens" in e}
    ref_at = [at(n) for n in ref]
    ref_t = set.intersection(*[set(x) for x in ref_at]) if ref_at else set()

    def band(names: list[str]) -> dict:
        xs = [at(n) for n in names]
        ts = sorted(t for t in ref_t.intersection(*[set(x) for x in xs]) if t > 0)
        ys = np.array([[x[t] - float(np.median([r[t] for r in ref_at])) for t in ts] for x in xs]).reshape(len(xs), len(ts))
        return {"tokens": ts, "median": np.median(ys, axis=0).tolist(), "lo": ys.min(axis=0).tolist(),
                "hi": ys.max(axis=0).tolist(), "n": len(xs)}

    return {"ref": band(ref), "panels": [{"label": lab, "method": runs[names[0]]["method"],
                                          "options": runs[names[0]].get("options") or {}, "frozen": runs[names[0]]["frozen"],
                                          **band(names)} for lab, names in named.items()]}


# what the spectrum test's runs show, by where they lie against the variant's seed range: worded no stronger than a
# few runs allow (a pattern consistent with a cause, not the cause)
SPECTRUM_READINGS = {
    "spectrum": {
        "below": "The runs with the neighbours' spectrum ended below the variant, as they would if the collapsed spectrum "
                 "were part of what holds the predictions back; with these run counts that is a lead, not a shown cause.",
        "within": "Restoring the spectrum does not take the curve out of the variant's seed range: these runs give no sign "
                  "that the collapsed spectrum alone explains why the predictions train slower than random weights.",
        "above": "The runs with the neighbours' spectrum ended above the variant; with these run counts that is a lead, "
                 "not a shown effect."},
    "directions": {
        "within": "Random directions with the predicted spectrum stay inside the variant's range: these runs give no "
                  "sign that the predicted directions matter to training beyond their spectrum.",
        "below": "Random directions with the predicted spectrum ended below the predictions, as they would if the "
                 "predicted directions themselves were a handicap; with these run counts that is a lead, not a shown cause.",
        "above": "Random directions with the predicted spectrum ended above the predictions, as they would if the "
                 "predicted directions carried something training uses; with these run counts that is a lead."}}


def position_text(position: str, many: bool, n: int) -> str:
    """Where a reshaped version's runs lie against the variant's ``n`` predictor seeds, in words (``many``: more
    than one run)."""
    runs = "every run" if many else "the run"
    return {"below": f"{runs} below all {n} of its seeds at every evaluation in the later half",
            "above": f"{runs} above all {n} of its seeds at every evaluation in the later half",
            "within": f"inside its {n} seeds' range at one or more evaluations in the later half"}[position]


def spectrum_readings(d: dict, tests: dict) -> list[str]:
    """The readings of the spectrum test (SPECTRUM_READINGS by each reshaped version's position), and, when neither
    closes half of the variant's gap to random weights, that either can be only a small part of the cause."""
    out = [SPECTRUM_READINGS[o][d["spec_pos"][o]] for o in RESHAPED if d["spec_pos"].get(o)]
    shares = [t["share"] for t in tests["tests"].values() if t["share"] is not None]
    if shares and max(shares) < 50:
        out.append("Neither change closes half of the gap to random weights: if either is a cause, it is a small part "
                   "of why the predictions train slower than random weights.")
    return out
