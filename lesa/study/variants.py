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
from ..claims.verdict import spread_text
from ..core.layout import Results
from ..core.store import read_json
from ..grow.methods import LEARNED, run_label, variant_label
from .results import complete_cpt_profiles, find_results, load_cpt_runs


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
    init_rows, base_init = [], None
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
    runs = load_cpt_runs(cpt_dir) if cpt_dir else {}
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
    return {"VARIANTS": VARIANTS, "SHOWN": SHOWN, "init_rows": init_rows, "base_init": base_init, "init_source": init_source, "main_model": main_model, "screen_set": screen_set, "runs": runs, "groups": groups, "test_groups": test_groups, "source": source, "lp_key": lp_key, "lp_final": lp_final, "rows": rows, "fp_key": fp_key, "test_by": test_by, "spec_pos": spec_pos, "after": after}
