"""Chapter 6's judgement (lesa.claims.beyond): a variant beats LLaMA Pro only beyond the seed spread, in the later
half of the run; one seed on a side decides nothing."""
import json

from lesa.claims import beyond as B
from lesa.study.results import load_cpt_runs
from lesa.grow.methods import color, label, method_id
from lesa import PROJECT_ROOT


def log(losses, every=100):
    return [{"step": i, "tokens": i * every, "heldout_loss": x} for i, x in enumerate(losses)]


LP = [log([3.4, 3.2, 3.1, 3.0, 2.95]), log([3.4, 3.21, 3.12, 3.02, 2.97]), log([3.4, 3.19, 3.09, 2.99, 2.94])]


def test_lower_beyond_the_spread_in_the_later_half_beats_llama_pro():
    # worse than LLaMA Pro early (first half ignored), below every LLaMA Pro seed at every later evaluation
    var = [log([3.6, 3.3, 3.0, 2.9, 2.85]), log([3.7, 3.35, 3.02, 2.91, 2.86]), log([3.5, 3.28, 3.01, 2.92, 2.87])]
    out = B.heldout_vs_reference(var, LP)
    assert out["result"] == "lower"
    assert [p["tokens"] for p in out["points"]] == [300, 400]        # later half: above 0.5 x 400 tokens
    assert out["end_diff"] < 0


def test_overlapping_ranges_higher_and_single_seed_are_not_wins():
    overlap = [log([3.4, 3.2, 3.1, 2.93, 2.9]), log([3.4, 3.2, 3.1, 3.05, 3.0]), log([3.4, 3.2, 3.1, 3.0, 2.96])]
    assert B.heldout_vs_reference(overlap, LP)["result"] == "overlap"
    worse = [log([3.4, 3.3, 3.2, 3.1, 3.05]), log([3.4, 3.3, 3.2, 3.12, 3.06])]
    assert B.heldout_vs_reference(worse, LP)["result"] == "higher"
    one = B.heldout_vs_reference([log([3.0, 2.5, 2.0, 1.5, 1.0])], LP)
    assert one["result"] == "single seed" and {p["state"] for p in one["points"]} == {"lower"}
    # evaluations at different tokens cannot be compared
    assert B.heldout_vs_reference([log([3.0, 2.0], every=7)] * 2, LP)["result"] == "no common evaluations"


def test_one_run_against_a_seed_range():
    # the spectrum test's reading: one run against the variant's seeds, judged at every later evaluation
    below = B.heldout_vs_reference([log([3.4, 3.2, 3.05, 2.95, 2.9])], LP)
    assert below["result"] == "single seed" and B.against_range(below) == "below"
    above = B.heldout_vs_reference([log([3.4, 3.0, 3.2, 3.1, 3.0])], LP)     # below early: the first half is ignored
    assert B.against_range(above) == "above"
    # inside the range at the end, below it before: not below at every later evaluation
    mixed = B.heldout_vs_reference([log([3.4, 3.2, 3.1, 2.95, 2.95])], LP)
    assert B.against_range(mixed) == "within"
    assert B.against_range(B.heldout_vs_reference([log([3.0, 2.0], every=7)], LP)) is None


def test_tokens_to_reach():
    assert B.tokens_to_reach(LP[0], 3.1) == 200
    assert B.tokens_to_reach(LP[0], 2.0) is None


def _run(tmp, name, method, options=None, ablation=None, evals=None):
    d = tmp / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"growth": {"method": method}, "completed": True,
                                                "run": {"options": options or {}, "ablation": ablation}}))
    (d / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 3.0, "tokens": 100, "flops": 5e9}) + "\n")
    (d / "eval_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in (evals or log([3.4, 3.2]))))


def test_seed_groups_gather_the_seeds_of_one_method_and_options(tmp_path):
    for s in range(3):
        _run(tmp_path, f"llama_pro-seed{s}", "llama_pro")
        _run(tmp_path, f"lesa_fp-0-p{s}", "lesa_fp", {"alpha": 0.0})
    _run(tmp_path, "lesa_fp-0.1", "lesa_fp", {"alpha": 0.1})
    _run(tmp_path, "lesa_fp-0-spread", "lesa_fp", {"gaps": "spread", "alpha": 0.0})
    _run(tmp_path, "lesa-unfrozen", "lesa", ablation="unfrozen")
    _run(tmp_path, "base", "base")
    runs = load_cpt_runs(tmp_path)
    groups = B.seed_groups(runs)
    assert groups[("llama_pro", (), None)] == ["llama_pro-seed0", "llama_pro-seed1", "llama_pro-seed2"]
    assert groups[("lesa_fp", (("alpha", 0.0),), None)] == ["lesa_fp-0-p0", "lesa_fp-0-p1", "lesa_fp-0-p2"]
    assert groups[("lesa_fp", (("alpha", 0.1),), None)] == ["lesa_fp-0.1"]
    # the key chapter 6 finds a variant's twin in LESA's gaps with: options in any order, placement dropped
    spread = B.seed_group_key("lesa_fp", {"gaps": "spread", "alpha": 0.0})
    assert groups[spread] == ["lesa_fp-0-spread"] and spread != B.seed_group_key("lesa_fp", {"alpha": 0.0})
    assert groups[B.seed_group_key("lesa_fp", {k: v for k, v in dict(spread[1]).items() if k != "gaps"})][0] == "lesa_fp-0-p0"
    assert all(k[0] != "base" for k in groups) and all(k[2] is None for k in groups)   # control and ablation apart
    assert B.seed_groups(runs, frozen=False) == {("lesa", (), "unfrozen"): ["lesa-unfrozen"]}
    assert B.flops_at(runs["base"], 100) == 5e9 and B.flops_at(runs["base"], 0) == 0.0
    assert B.flops_at(runs["base"], 999) is None


def test_committed_cpu_runs_are_judged_and_single_seeds_decide_nothing():
    runs = load_cpt_runs(PROJECT_ROOT / "results" / "cpu" / "cpt")
    groups = B.seed_groups(runs)
    lp = [runs[n]["eval"] for n in groups[("llama_pro", (), None)]]
    fp = [runs[n]["eval"] for n in groups[("lesa_fp", (("alpha", 0.0),), None)]]
    out = B.heldout_vs_reference(fp, lp)
    assert out["result"] == "single seed" and out["points"]
    # the held-out curves the trainer logged: LLaMA Pro starts at the base model, its loss falls
    assert lp[0][-1]["heldout_loss"] < lp[0][0]["heldout_loss"]


def test_variant_names_keep_their_options_and_their_method_colour():
    name = "LESA, low rank (ours), k = 8"
    assert label(name) == name and method_id(name) == "lesa_lowrank"
    assert color(name) == color("lesa_lowrank") and label("lesa_lowrank") == "LESA, low rank (ours)"
    assert label("LLaMA Pro") == "LLaMA Pro" and label("LESA, all layers trained") == "LESA, all layers trained"


def test_replicates_are_told_apart_by_their_recorded_seeds():
    """Seed replicates share a display name; the tables add the data order and predictor seed their
    summaries record ("–" for a method that predicts nothing)."""
    from lesa.study.results import run_seeds
    runs = load_cpt_runs(PROJECT_ROOT / "results" / "cpu-long" / "cpt")
    assert run_seeds(runs["llama_pro-seed1"]) == {"data order": 1, "predictor seed": "–"}
    assert run_seeds(runs["lesa_fp-0-p2"]) == {"data order": 0, "predictor seed": 2}
    assert run_seeds(runs["copy_scaled"])["predictor seed"] == "–"
    assert len({tuple(run_seeds(runs[n]).values()) for n in ("lesa_fp-0-p0", "lesa_fp-0-p1", "lesa_fp-0-p2")}) == 3


def test_chapter_6_tables_come_from_the_package_and_match_the_committed_page():
    """Notebook 6 draws what lesa.study.variants computes: on the committed cpu results (notebook 3's screen,
    cpu-long's CPT runs) the function returns exactly the tables the published chapter wrote."""
    import json

    from lesa.study.profiles import load_profile
    from lesa.study.variants import variants_vs_llama_pro

    committed = json.loads((PROJECT_ROOT / "results" / "cpu" / "06_beyond" / "beyond.json").read_text())
    d = variants_vs_llama_pro(load_profile("cpu", check_device=False), "cpu", PROJECT_ROOT / "results",
                              ["gpu"], ["cpu-long"], committed["later"])
    assert (d["init_source"], d["source"]) == (committed["init_source_profile"], committed["cpt_source_profile"])
    assert json.loads(json.dumps(d["init_rows"])) == committed["init"]
    rows = [{k: v for k, v in r.items() if k != "_key"} for r in d["rows"]]
    assert json.loads(json.dumps(rows)) == committed["vs_llama_pro"]
    assert d["lp_key"][0] == "llama_pro" and any(r["later half against LLaMA Pro"] == "(the reference)" for r in rows)


def _chapter_6():
    from lesa.study.profiles import load_profile
    from lesa.study.variants import variants_vs_llama_pro

    later = json.loads((PROJECT_ROOT / "results" / "cpu" / "06_beyond" / "beyond.json").read_text())["later"]
    return variants_vs_llama_pro(load_profile("cpu", check_device=False), "cpu", PROJECT_ROOT / "results",
                                 ["gpu"], ["cpu-long"], later)


def test_chapter_6_diagnostics_spectrum_and_after_training_tables_match_the_committed_csvs():
    """The tables notebook 6 shows below its first one come from lesa.study.variants too, byte for byte the CSVs
    the published chapter wrote; the spectrum test's numbers say what the page says."""
    import pandas as pd

    from lesa.study import variants as V

    page = PROJECT_ROOT / "results" / "cpu" / "06_beyond"
    d = _chapter_6()
    diag = V.load_diagnostics(d, "cpu", PROJECT_ROOT / "results")
    shown = lambda rows: pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    diag_rows, spec_rows = V.diagnostics_rows(d, diag), V.spectrum_rows(d, diag)
    assert shown(diag_rows).to_csv(index=False) == (page / "init_diagnostics.csv").read_text()
    assert shown(spec_rows).to_csv(index=False) == (page / "spectrum_test.csv").read_text()
    after, tasks = V.after_training_rows(d)
    assert pd.DataFrame(after).to_csv(index=False) == (page / "after_training.csv").read_text()
    assert tasks == "arc_challenge, arc_easy, hellaswag, piqa, winogrande"         # the same in every row: said once
    st = V.spectrum_tests(d, spec_rows)
    assert set(st["tests"]) == {"spectrum", "directions"} and st["n_variant"] == 3 and st["n_test"] == [2]
    for o, t in st["tests"].items():
        assert t["position"] == d["spec_pos"][o] and len(t["diffs"]) == len(t["seeds"]) == 2
        assert t["perm"]["p"] >= t["perm"]["smallest_p"] == 0.1        # 2 runs against 3: ten splits
        assert t["share"] is None or 0 <= t["share"] < 100
    assert len(V.spectrum_readings(d, st)) >= 2
    assert V.position_text("within", True, 3) == "inside its 3 seeds' range at one or more evaluations in the later half"
    assert V.position_text("below", False, 3).startswith("the run below all 3")
    a = V.gradient_association(d, diag, diag_rows)
    assert a["n"] >= 4 and -1 <= a["rho"] <= 1 and a["lesa"]["_key"][0] == "lesa"
    s = V.start_counts(d)
    assert s["of"] >= 2 and 0 <= s["at_base"] <= s["of"] and len(s["lesa"]) == 3 and min(s["lesa"]) > s["base"]
    # only learned variants count: the controls grown beside them (copy, random) are left out
    variants = {r["label"]: r["method"] for r in d["init_rows"] if r["name"] in d["VARIANTS"]}
    assert s["of"] == sum(m in V.LEARNED for m in variants.values()) < len(variants)
    res = V.learned_results(d)
    assert sum(map(len, res.values())) == sum(r["_key"][0] in V.LEARNED for r in d["rows"])
    ctrl = V.controls_vs_variants(d)
    assert {c["control"] for c in ctrl} == {V.group_label(k) for k in d["groups"] if k[0] in V.CONTROLS}
    assert [p["seeds"] for p in V.placement_pairs(d)] == [3]                    # the spread variant, 3 seeds


def test_difference_curves_pair_each_run_with_the_reference_median_at_equal_tokens():
    from lesa.study.variants import difference_curves

    runs = {f"lp{i}": {"method": "llama_pro", "frozen": True, "options": {}, "eval": log([3.4, 3.2 + d, 3.0 + d])}
            for i, d in enumerate((-0.01, 0.0, 0.02))}
    runs["v0"] = {"method": "lesa_fp", "frozen": True, "options": {}, "eval": log([3.4, 3.3, 3.1, 3.0])}   # one more eval
    runs["v1"] = {"method": "lesa_fp", "frozen": True, "options": {}, "eval": log([3.4, 3.25, 3.2])}
    out = difference_curves(runs, {"variant": ["v0", "v1"]}, ["lp0", "lp1", "lp2"])
    q = out["panels"][0]
    assert q["tokens"] == [100, 200] and q["n"] == 2                  # the start left out; only common evaluations
    assert [round(x, 6) for x in q["lo"]] == [0.05, 0.1] and [round(x, 6) for x in q["hi"]] == [0.1, 0.2]
    assert [round(x, 6) for x in q["median"]] == [0.075, 0.15]
    assert [round(x, 6) for x in out["ref"]["lo"]] == [-0.01, -0.01] and [round(x, 6) for x in out["ref"]["hi"]] == [0.02, 0.02]
