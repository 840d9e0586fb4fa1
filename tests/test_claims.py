"""Each claim's rule on constructed inputs: reproduced, not reproduced and inconclusive (and 'not yet
run' when its measurement is missing). The inputs are built so that exactly one outcome is right."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from lesa import PROJECT_ROOT
from lesa.claims import rules as C
from lesa.claims.paper import CLAIMS, source_text
from lesa.claims.verdict import Verdict, across_models, budget_text, call, compare_ranges, markdown, paired_window, per_model, smooth, spread, spread_text, steps_to_reach, z_score


def _curve(start: float, end: float, n: int = 40, noise: float = 0.0, seed: int = 0, flops: float = 1.0):
    """CPT log rows with a loss that decays from start to end (+ shared-batch noise when seeded equal)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, noise, n) if noise else np.zeros(n)
    loss = end + (start - end) * np.exp(-np.arange(n) / (n / 5)) + eps
    return [{"step": i + 1, "loss": float(loss[i]), "flops": flops * (i + 1), "tokens": 100 * (i + 1),
             "elapsed_s": float(i + 1)} for i in range(n)]


def _status(v):
    assert isinstance(v, Verdict)
    json.dumps(v.record())                                 # what write_verdicts stores must be JSON
    return v.verdict


# ------------------------------------------------------------------------------ registry
def test_every_claim_has_wording_source_and_a_notebook():
    assert set(CLAIMS) == {"C1", "C2", "C3", "C4", "C5", "C6", "C7a", "C7b", "C8", "C9", "C10", "C11",
                             "C12a", "C12b", "C12c"}
    for c in CLAIMS.values():
        assert c.wording and c.source.startswith("[") and c.paper and re.match(r"0[1-5]_", c.notebook), c.id


def test_one_verdict_name_and_one_ordered_list_read_by_the_scoreboard():
    """The verdict is `verdict` in the dataclass and in the JSON record; VERDICTS (lesa.claims.verdict) is the only
    list of verdicts in the package, in the scoreboard's order; the colours and default readings cover exactly it;
    the committed verdict files read back through verdict_of."""
    import ast
    import dataclasses

    from lesa import PROJECT_ROOT
    from lesa.book.pages import collect_verdicts, verdict_counts
    from lesa.claims.verdict import DEFAULT_READING, VERDICTS, verdict_of
    from lesa.core.codekey import LESA_DIR
    from lesa.plots.style import VERDICT_COLORS

    v = Verdict("C1", "inconclusive", "o", "r")
    assert "verdict" in {f.name for f in dataclasses.fields(Verdict)} and v.record()["verdict"] == "inconclusive"
    assert verdict_of(v.record()) == "inconclusive" and verdict_of({"claim": "C1"}) == "not yet run"
    assert set(VERDICT_COLORS) == set(DEFAULT_READING) == set(VERDICTS)
    lists = []                                     # every tuple or list literal naming three verdicts or more
    for path in sorted(LESA_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List)):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)} & set(VERDICTS)
                if len(names) >= 3:
                    lists.append(str(path.relative_to(LESA_DIR)))
    assert lists == ["claims/verdict.py"]
    rows = [{"claim": c, "verdict": w} for c, w in zip(["C1", "C2", "C3", "C4", "C5", "C6"], reversed(VERDICTS + ("x",)))]
    assert list(verdict_counts(rows)) == [*VERDICTS, "x"]       # the scoreboard's order, an unknown one last
    if (PROJECT_ROOT / "results" / "cpu" / "verdicts").exists():  # committed records ("verdict" since they exist)
        judged = [r for r in collect_verdicts("cpu") if r.get("ours") != "-"]
        assert judged and all(r["verdict"] == verdict_of(r) and r["verdict"] in VERDICTS for r in judged)


def test_paper_numbers_are_derived_from_the_constants():
    assert CLAIMS["C6"].paper.startswith("1 : 1.24 : 1.66")       # 56.4 / 45.6, 75.6 / 45.6
    assert "5.13 / 5.44 / 8.09" in CLAIMS["C5"].paper and "64.30 / 62.67 / 47.86" in CLAIMS["C5"].paper
    assert "< 5 min, 5 epochs" in CLAIMS["C8"].paper


def test_verdict_rejects_unknown_status_and_claim():
    with pytest.raises(ValueError, match="status"):
        Verdict("C1", "probably", "o", "r")
    with pytest.raises(ValueError, match="unknown claim"):
        Verdict("C7", "reproduced", "o", "r")


def test_markdown_table_has_one_row_per_verdict():
    vs = [C.not_testable("C9", "code path only", "no weights offline"), Verdict("C3", "reproduced", "o", "rule"),
          Verdict("C8", "reproduced", "1 s | 2 types", "rule", budget={"seeds": [0, 1]})]
    md = markdown(vs)
    lines = md.splitlines()
    assert lines[0].startswith("| claim |") and lines[1].startswith("|---")
    assert sum(1 for x in lines if x.startswith("| **C")) == 3
    assert "budget: -" not in md                                                  # C3 recorded none: none said
    assert "1 s \\| 2 types" in md and "seeds 0, 1" in md and "**not testable offline**" in md
    # where each claim's wording comes from is said in words, never as the digest's bare tags
    assert "[PN]" not in md and "wording from a secondary summary of the paper (papernotes.org)" in md
    assert source_text("[ABS][CAP]") == "the paper's abstract; the paper's Figure 1 caption"


# ------------------------------------------------------------------------------ statistics
def test_spread_compare_and_z():
    assert spread([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3, "values": [3.0, 1.0, 2.0]}
    assert spread(5.0)["n"] == 1 and spread(None) is None
    assert compare_ranges([1, 2], 3) == "lower" and compare_ranges([4, 5], [1, 3.9]) == "higher"
    assert compare_ranges([1, 3], [2, 4]) == "overlap"
    assert call(z_score(0.6, 0.05, 0.5, 0.0)) == "within noise"      # z = 2.0 is not beyond 2
    assert call(z_score(0.6, 0.04, 0.5, 0.0)) == "higher"
    assert "range 39 to 492, 3 seeds" in spread_text([492, 153, 39])


def test_paired_window_cancels_shared_batch_noise():
    a, b = _curve(4, 3, noise=0.3, seed=1), _curve(4, 3, noise=0.3, seed=1)
    for r in a:
        r["loss"] += 0.05                           # a constant gap under large shared noise
    d = paired_window(a, b, "end", 10)
    assert math.isclose(d["mean"], 0.05, abs_tol=1e-9) and d["se"] < 1e-9 and call(d["z"]) == "higher"


# ------------------------------------------------------------------------------ rules
def _cont(ok: bool, p: float = 0.005):
    return {"shows_continuity": ok, "gap": {"observed": 0.4, "shuffled_q95": 0.1, "p_shuffled": p, "gaussian_max": 0.0},
            "nn_adjacent": {"observed": 0.9, "p_shuffled": p}}


def test_c1():
    assert _status(C.judge_c1({"gate": _cont(True), "q": _cont(False)}, 200)) == "reproduced"
    assert _status(C.judge_c1({"gate": _cont(False), "q": _cont(True)}, 200)) == "not reproduced"
    assert _status(C.judge_c1({"gate": _cont(True, 0.1)}, 9)) == "inconclusive"     # p can never be < 0.05


def test_c3_seed_ranges_and_the_llama_pro_note():
    base = {"base": 20.0, "llama_pro": 20.0, "solar": 35.0}
    v = C.judge_c3({**base, "lesa": [18.0, 19.0, 19.5]}, "wikitext")
    assert v.verdict == "reproduced"
    assert "beating the unexpanded base model" in v.notes and "equals the base model" in v.notes
    assert _status(C.judge_c3({**base, "lesa": [492, 153, 39]}, "wikitext")) == "not reproduced"
    assert _status(C.judge_c3({**base, "lesa": [15.0, 25.0]}, "wikitext")) == "inconclusive"
    assert "does not hold" in C.judge_c3({**base, "lesa": [40, 50]}, "w").notes        # T-D part
    assert _status(C.judge_c3({"lesa": [1.0], "solar": 2.0}, "w")) == "not yet run"


def test_c2_judged_on_cpt_curves_not_on_initialisation():
    lesa = _curve(4.0, 3.0, noise=0.02, seed=3)
    worse = [dict(r, loss=r["loss"] + 0.3) for r in lesa]
    better = [dict(r, loss=r["loss"] - 0.3) for r in lesa]
    assert _status(C.judge_c2({"lesa": lesa, "llama_pro": worse, "solar": worse})) == "reproduced"
    assert _status(C.judge_c2({"lesa": lesa, "llama_pro": better, "solar": worse})) == "not reproduced"
    rng = np.random.default_rng(0)
    noisy = [dict(r, loss=r["loss"] + float(rng.normal(0, 0.2))) for r in lesa]
    assert _status(C.judge_c2({"lesa": lesa, "llama_pro": noisy, "solar": worse})) == "inconclusive"
    assert _status(C.judge_c2({"lesa": lesa})) == "not yet run"


def test_c4():
    lp = _curve(5.0, 3.0, n=100)
    fast = _curve(3.5, 2.0, n=100)                    # below LP's end within a few steps
    slow = [dict(r, loss=r["loss"] + 0.5) for r in lp]
    assert _status(C.judge_c4(fast, lp)) == "reproduced"
    assert _status(C.judge_c4(slow, lp)) == "not reproduced"
    v = C.judge_c4([dict(r, loss=r["loss"] + 0.02) for r in lp], lp)          # just above, never reaches
    assert v.verdict == "not reproduced" and "never reaches" in v.ours        # a constant gap is beyond noise
    fast3 = [dict(r, loss=lp[min(3 * i, len(lp) - 1)]["loss"]) for i, r in enumerate(lp)]   # 3x as fast
    v = C.judge_c4(fast3, lp)
    assert v.verdict == "reproduced" and 0.3 < v.uncertainty["compute_fraction"] <= 0.5
    fast15 = [dict(r, loss=lp[min(int(1.5 * i), len(lp) - 1)]["loss"]) for i, r in enumerate(lp)]
    assert _status(C.judge_c4(fast15, lp)) == "not reproduced"               # faster, but not 2x
    assert _status(C.judge_c4([], lp)) == "not yet run"


def test_c4_inconclusive_when_never_reached_but_level_within_noise():
    lp = _curve(5.0, 3.0, n=60)
    bump = [0.25, -0.2] * 30
    lesa = [dict(r, loss=r["loss"] + bump[i] + 0.01) for i, r in enumerate(lp)]
    # smoothed LESA stays above LP's final smoothed loss, but the paired end gap is within noise
    assert steps_to_reach(lesa, smooth([r["loss"] for r in lp], 10)[-1]) is None
    assert _status(C.judge_c4(lesa, lp)) == "inconclusive"


def test_c5_accuracy_standard_errors():
    ppl = {"lesa": 10.0, "llama_pro": 11.0, "solar": 12.0}
    good = {"lesa": {"a": (0.70, 0.01)}, "llama_pro": {"a": (0.60, 0.01)}, "solar": {"a": (0.50, 0.01)}}
    close = {"lesa": {"a": (0.61, 0.02)}, "llama_pro": {"a": (0.60, 0.02)}, "solar": {"a": (0.50, 0.01)}}
    assert _status(C.judge_c5(ppl, good)) == "reproduced"
    assert _status(C.judge_c5(ppl, close)) == "inconclusive"
    assert _status(C.judge_c5({**ppl, "lesa": 11.5}, good)) == "not reproduced"
    assert C.judge_c5({**ppl, "lesa": 11.5}, good).reading == "not reached at this budget"   # a short CPT, not a refutation
    bad_acc = {**good, "lesa": {"a": (0.50, 0.01)}}
    assert _status(C.judge_c5(ppl, bad_acc)) == "not reproduced"
    assert _status(C.judge_c5(ppl, None)) == "inconclusive"             # perplexity alone does not decide
    assert _status(C.judge_c5({"lesa": 1.0}, None)) == "not yet run"


def test_c6():
    rng = np.random.default_rng(0)
    t = lambda m: list(m + rng.normal(0, 0.01, 30))
    assert _status(C.judge_c6({"lesa": t(1.0), "llama_pro": t(1.24), "solar": t(1.66)})) == "reproduced"
    v = C.judge_c6({"lesa": t(1.0), "llama_pro": t(1.08), "solar": t(0.92)})
    assert v.verdict == "not reproduced" and v.ours.startswith("measured 1 : 1.08 : 0.9")
    assert _status(C.judge_c6({"lesa": t(1.0), "llama_pro": t(1.001), "solar": t(1.66)})) == "inconclusive"
    assert _status(C.judge_c6({"lesa": [1.0]})) == "not yet run"


def test_c7a_says_when_the_fit_is_worse_than_zeros():
    v = C.judge_c7a([[1.1, 1.0], [1.2, 1.0], [1.05]], in_sample_r2=[-0.9, -0.8, -1.0])
    assert v.verdict == "reproduced" and "worse than predicting zeros" in v.notes
    assert "worse than predicting zeros" not in C.judge_c7a([[1.0]], [0.2]).notes
    assert _status(C.judge_c7a([[3.0, 2.5], [2.0]])) == "not reproduced"
    assert _status(C.judge_c7a([[1.0], [2.0]])) == "inconclusive"
    assert _status(C.judge_c7a([])) == "not yet run"


def test_c7b_against_trivial_predictors():
    base = {"zeros": 0.0, "neighbour_average": 0.3, "ridge": 0.35}
    assert _status(C.judge_c7b([0.5, 0.6, 0.55], base)) == "reproduced"
    v = C.judge_c7b([-0.9, -0.8, -1.0], base)
    assert v.verdict == "not reproduced" and "ridge" in v.ours
    assert _status(C.judge_c7b([0.2, 0.4], base)) == "inconclusive"
    assert _status(C.judge_c7b([], base)) == "not yet run"


def test_c8_reports_what_it_learns():
    v = C.judge_c8([100, 120, 110], 10, 7, "cpu", in_sample_r2=[-0.9, -0.8, -0.95], in_sample_cos=[0.1, 0.12, 0.11])
    assert v.verdict == "reproduced" and "worse than zeros" in v.notes and "cosine" in v.notes
    assert "worse than zeros" not in C.judge_c8([100], 10, 7, "cpu", in_sample_r2=[0.6]).notes
    assert _status(C.judge_c8([400, 500], 10, 7, "cpu")) == "not reproduced"
    assert _status(C.judge_c8([200, 400], 10, 7, "cpu")) == "inconclusive"


def test_c12a_needs_the_cpt_run_of_the_ablation():
    lesa = _curve(4.0, 3.0, noise=0.02, seed=5)
    shift = lambda d: [dict(r, loss=r["loss"] + d) for r in lesa]
    v = C.judge_c12a(lesa, None, shift(0.4))
    assert v.verdict == "not yet run" and "not tested" in v.ours and "IS the base model" in v.notes
    assert _status(C.judge_c12a(lesa, shift(0.2), shift(0.4))) == "reproduced"
    assert _status(C.judge_c12a(lesa, shift(0.6), shift(0.4))) == "not reproduced"
    rng = np.random.default_rng(2)
    noisy = [dict(r, loss=r["loss"] + 0.3 + float(rng.normal(0, 0.3))) for r in lesa]
    assert _status(C.judge_c12a(lesa, noisy, shift(0.4))) == "inconclusive"


def test_c12b():
    frozen = _curve(4.0, 3.0, noise=0.01, seed=6)
    rng = np.random.default_rng(3)
    jittery = [dict(r, loss=r["loss"] + 0.3 + float(rng.normal(0, 0.05))) for r in frozen]
    assert _status(C.judge_c12b(frozen, jittery)) == "reproduced"
    assert _status(C.judge_c12b(frozen, [dict(r, loss=r["loss"] - 0.2) for r in frozen])) == "not reproduced"
    assert _status(C.judge_c12b(frozen, [dict(r, loss=r["loss"] + 0.3) for r in frozen])) == "inconclusive"  # not noisier
    assert _status(C.judge_c12b(frozen, None)) == "not yet run"


def test_c12c_asks_whether_the_norm_term_helps_perplexity():
    lam0, lamc = 0.0, C.CODE_LAMBDA
    shrink = {lam0: [0.1, 0.12, 0.11], lamc: [0.9, 0.93, 0.95]}
    v = C.judge_c12c(shrink, {lam0: [60, 70, 65], lamc: [30, 35, 32]})
    assert v.verdict == "reproduced" and "helps" in v.notes
    v = C.judge_c12c(shrink, {lam0: [30, 35, 32], lamc: [200, 500, 40.1]})      # prevents shrinkage, hurts PPL
    assert v.verdict == "not reproduced" and "shrinks" in v.notes and "hurts" in v.notes
    assert _status(C.judge_c12c({lam0: [0.95], lamc: [0.9]}, {lam0: [60], lamc: [30]})) == "not reproduced"
    assert _status(C.judge_c12c(shrink, {lam0: [30, 60], lamc: [40, 50]})) == "inconclusive"
    assert _status(C.judge_c12c({lam0: [0.1]}, {})) == "not yet run"


def test_per_model_keeps_one_verdict_with_every_models_numbers():
    a = C.judge_c1({"gate": _cont(True)}, 200)
    b = C.judge_c1({"gate": _cont(False)}, 200)
    both = per_model({"SmolLM2": a, "Gemma-3": a})
    assert both.claim == "C1" and both.verdict == "reproduced"
    assert both.ours.startswith("SmolLM2: ") and "; Gemma-3: " in both.ours and set(both.budget) == {"SmolLM2", "Gemma-3"}
    mixed = per_model({"SmolLM2": a, "Gemma-3": b})
    assert mixed.verdict == "inconclusive" and "Gemma-3: not reproduced" in mixed.rule
    assert per_model({"SmolLM2": b}) is b
    with pytest.raises(ValueError):
        per_model({"a": a, "b": C.judge_c8([1.0], 1, 1, "cpu")})
    assert budget_text({"SmolLM2": {"seeds": [0, 1]}, "Gemma-3": {"seeds": [0]}}) == "SmolLM2: (seeds 0, 1); Gemma-3: (seeds 0)"
    # chapter 1's record as committed: a model's cache key is dropped (its entry names the model), nothing else is
    c1 = next(v for v in json.loads((PROJECT_ROOT / "results" / "cpu" / "verdicts" / "01_svd_evidence.json").read_text())
              ["verdicts"] if v["claim"] == "C1")
    text = budget_text(c1["budget"])
    assert text.startswith("SmolLM2-135M: (weight types 7;") and not re.search(r"[0-9a-f]{16}", text)
    assert budget_text({"model": "smollm2-135m", "seeds": [0]}) == "model smollm2-135m; seeds 0"   # a plain name stays


def test_judge_c9_needs_two_models_and_compares_ranges():
    one = C.judge_c9({"smollm2-135m": {"lesa": [30.0, 31.0], "solar": 40.0}}, "WikiText")
    assert one.verdict == "not yet run"
    below = C.judge_c9({"a": {"lesa": [30.0, 31.0], "solar": 40.0}, "b": {"lesa": [5.0, 6.0], "solar": 9.0}}, "WikiText")
    assert below.verdict == "reproduced" and set(below.record()["per_model"]) == {"a", "b"}
    above = C.judge_c9({"a": {"lesa": [30.0, 31.0], "solar": 40.0}, "b": {"lesa": [12.0, 13.0], "solar": 9.0}}, "WikiText")
    assert above.verdict == "not reproduced"
    mixed = C.judge_c9({"a": {"lesa": [30.0, 31.0], "solar": 40.0}, "b": {"lesa": [8.0, 10.0], "solar": 9.0}}, "WikiText")
    assert mixed.verdict == "inconclusive"


def test_across_models_keeps_each_models_result():
    ok = C.judge_c3({"base": 10.0, "lesa": [8.0, 9.0], "llama_pro": 10.0, "solar": 12.0}, "WikiText")
    bad = C.judge_c3({"base": 10.0, "lesa": [50.0, 60.0], "llama_pro": 10.0, "solar": 12.0}, "WikiText")
    assert across_models({"a": ok, "b": ok}).verdict == "reproduced"
    v = across_models({"a": ok, "b": bad})
    assert v.verdict == "inconclusive" and "disagree" in v.notes
    rec = v.record()
    assert rec["per_model"]["a"].startswith("reproduced") and rec["per_model"]["b"].startswith("not reproduced")
    assert "per_model" not in ok.record()
    with pytest.raises(ValueError):
        across_models({})
    with pytest.raises(ValueError, match="one claim"):
        across_models({"a": ok, "b": C.judge_c8([1.0], 1, 1, "cpu")})


def test_judge_c6_prints_the_flop_model_beside_the_measured_ratios():
    t = lambda m: [m + 0.001 * i for i in range(20)]
    steps = {"lesa": t(1.0), "llama_pro": t(1.5), "solar": t(2.0)}
    v = C.judge_c6(steps, flops_per_token={"lesa": 8.0, "llama_pro": 9.0, "solar": 7.0})
    assert "measured 1 : 1.5" in v.ours and "FLOP model expects 1 : 1.12 : 0.875" in v.ours
    assert v.record()["uncertainty"]["flop_model_ratio"]["solar"] == 7.0 / 8.0
    assert "not recorded" in C.judge_c6(steps).ours and C.judge_c6(steps).verdict == v.verdict
    assert "CPT runs' own step times" in v.notes and "from the bench" in C.judge_c6(steps, source="the bench").notes


def test_c4_held_out_reading_over_llama_pro_data_orders():
    """With held-out evaluations (LLaMA Pro on several data orders) C4 is read twice; a held-out reading
    that disagrees with the training-loss one makes the verdict inconclusive."""
    lp = _curve(5.0, 3.0, n=100)
    fast3 = [dict(r, loss=lp[min(3 * i, len(lp) - 1)]["loss"]) for i, r in enumerate(lp)]
    slow = [dict(r, loss=r["loss"] + 0.5) for r in lp]
    ev = lambda ends_at, start=5.0: [{"tokens": lp[i]["tokens"] if i else 0, "heldout_loss": start + (ends_at - start) * i / 99}
                                     for i in (0, 24, 49, 74, 99)]
    lp_orders = [ev(3.0), ev(3.05), ev(2.95)]
    early = [{"tokens": e["tokens"], "heldout_loss": min(e["heldout_loss"], 2.9) if e["tokens"] else 5.0} for e in ev(2.9)]
    v = C.judge_c4(fast3, lp, heldout={"lesa": early, "llama_pro": lp_orders})
    assert v.verdict == "reproduced" and v.uncertainty["heldout"]["llama_pro_end"]["n"] == 3
    assert "3 data orders" in v.ours and v.uncertainty["heldout"]["compute_fraction"] <= 0.5
    v = C.judge_c4(slow, lp, heldout={"lesa": ev(3.5), "llama_pro": lp_orders})
    assert v.verdict == "not reproduced" and "never reached" in v.ours
    assert v.uncertainty["heldout"]["lesa_end_vs_llama_pro_range"] == "higher"
    v = C.judge_c4(fast3, lp, heldout={"lesa": ev(3.5), "llama_pro": lp_orders})   # the readings disagree
    assert v.verdict == "inconclusive"
    assert C.judge_c4(fast3, lp, heldout={"lesa": [], "llama_pro": lp_orders}).verdict == "reproduced"   # no second reading


def test_c4_training_loss_reading_has_a_control_for_batch_noise():
    """A flat, noisy LLaMA Pro curve 'reaches' its own final smoothed loss early; then reaching it times
    nothing (a copy of LLaMA Pro would look twice as fast) and the paired end difference decides."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.3, 300)
    lp = [{"step": i + 1, "loss": 3.0 + 0.5 * np.exp(-i / 10) + noise[i], "flops": float(i + 1), "tokens": 100 * (i + 1)}
          for i in range(300)]
    copy = [dict(r) for r in lp]
    assert steps_to_reach(lp, smooth([r["loss"] for r in lp], 10)[-1])["step"] < 150      # the noise at work
    v = C.judge_c4(copy, lp)
    assert v.verdict == "inconclusive" and "too noisy" in v.ours       # a copy of LLaMA Pro is not 2x faster
    worse = [dict(r, loss=r["loss"] + 0.2) for r in lp]
    assert C.judge_c4(worse, lp).verdict == "not reproduced"
