"""Issue 37: what a verdict attributes (its reading), the one seed rule every CPT claim uses, the controls that
can make a green fail (C1's raw weights, C6's copy control in LESA's gaps, C7a's predictors that learn
nothing) and C5's paired accuracies. Each input is built so that exactly one outcome is right."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lesa.claims import rules as C
from lesa.claims.paper import CLAIMS, source_text
from lesa.claims.verdict import DEFAULT_READING, READINGS, READINGS_OF, VERDICTS, Verdict, across_models, markdown, mcnemar_exact, paired_accuracy, per_model, permutation_p


def _curve(start: float, end: float, n: int = 40, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, noise, n) if noise else np.zeros(n)
    loss = end + (start - end) * np.exp(-np.arange(n) / (n / 5)) + eps
    return [{"step": i + 1, "loss": float(loss[i]), "flops": float(i + 1), "tokens": 100 * (i + 1),
             "elapsed_s": float(i + 1)} for i in range(n)]


def _evals(end: float, n: int = 10):
    """A held-out evaluation log falling to ``end`` (rows with tokens and heldout_loss, tokens 0 included)."""
    return [{"tokens": 100 * k, "heldout_loss": end + 2.0 * math.exp(-k / 2)} for k in range(n + 1)]


def _seeds(*ends: float):
    return [_evals(e) for e in ends]


# ------------------------------------------------------------------------------ readings
def test_every_status_has_a_default_reading_and_a_reading_must_fit_its_status():
    assert set(DEFAULT_READING) == set(VERDICTS) == set(READINGS_OF)
    assert all(r in READINGS for rs in READINGS_OF.values() for r in rs)
    v = Verdict("C8", "reproduced", "x", "y")
    assert v.reading == "holds as worded" and v.record()["reading"] == "holds as worded"
    assert Verdict("C3", "not reproduced", "x", "y").reading == "refuted at this scale"
    assert Verdict("C10", "not testable offline", "x", "y").reading == "not tested"
    with pytest.raises(ValueError, match="does not fit"):
        Verdict("C3", "not reproduced", "x", "y", reading="holds as worded")
    with pytest.raises(ValueError, match="does not fit"):
        Verdict("C8", "reproduced", "x", "y").read_as("refuted at this scale")
    assert "| verdict (reading) |" in markdown([v]) and "**reproduced**<br>(holds as worded)" in markdown([v])


def test_models_that_agree_on_a_reading_keep_it_and_disagreeing_ones_fall_back():
    a = Verdict("C1", "reproduced", "a", "r", reading="uninformative")
    b = Verdict("C1", "reproduced", "b", "r", reading="uninformative")
    c = Verdict("C1", "reproduced", "c", "r")
    assert per_model({"m1": a, "m2": b}).reading == "uninformative"
    assert per_model({"m1": a, "m2": c}).reading == "holds as worded"
    assert across_models({"m1": a, "m2": b}).reading == "uninformative"


# ------------------------------------------------------------------------------ the one seed rule
def test_seed_rule_needs_every_seed_on_one_side_and_two_runs_a_side():
    assert C.seed_rule(_seeds(3.0, 3.1, 3.05), _seeds(3.5, 3.6, 3.55))["result"] == "lower"
    assert C.seed_rule(_seeds(3.5, 3.6), _seeds(3.0, 3.1))["result"] == "higher"
    one = C.seed_rule(_seeds(3.0), _seeds(3.5, 3.6, 3.55))          # one LESA seed decides nothing
    assert one["result"] == "inconclusive" and one["n"] == 1 and "one run" in one["why"]
    assert C.seed_rule(_seeds(3.0, 3.7), _seeds(3.5, 3.6))["result"] == "inconclusive"   # ranges overlap
    assert C.seed_rule([], _seeds(3.5, 3.6))["result"] == "inconclusive"                  # never crashes
    # "every later evaluation": a crossing in the later half is not a side
    cross = [[dict(r, heldout_loss=r["heldout_loss"] + (0.5 if r["tokens"] == 800 else 0)) for r in log]
             for log in _seeds(3.0, 3.05)]
    assert C.seed_rule(cross, _seeds(3.2, 3.25))["result"] == "inconclusive"


def test_the_seed_gate_keeps_only_what_the_seeds_decide():
    lesa = _curve(4.0, 3.0, noise=0.02, seed=3)
    worse = [dict(r, loss=r["loss"] + 0.3) for r in lesa]
    better = [dict(r, loss=r["loss"] - 0.3) for r in lesa]
    runs = {"lesa": lesa, "llama_pro": better, "solar": worse}
    assert C.judge_c2(runs).verdict == "not reproduced"                 # one run per method
    one_seed = {"llama_pro": C.seed_rule(_seeds(3.0, 3.05, 3.1), _seeds(3.5)),
                "solar": C.seed_rule(_seeds(3.9), _seeds(3.5))}
    v = C.judge_c2(runs, seeds=one_seed)
    assert v.verdict == "inconclusive" and v.reading == "inconclusive" and "not reproduced" in v.notes
    assert "1 runs" in v.notes or "vs 1 runs" in v.notes
    three = {"llama_pro": C.seed_rule(_seeds(3.0, 3.05, 3.1), _seeds(3.5, 3.55, 3.6)),
             "solar": C.seed_rule(_seeds(3.9), _seeds(3.5, 3.55, 3.6))}
    v = C.judge_c2(runs, seeds=three)
    assert v.verdict == "not reproduced" and v.uncertainty["seed_rule"]["llama_pro"]["result"] == "lower"
    assert "SOLAR: " in v.notes and "solar:" not in v.notes          # methods by the book's names, never keys
    # a reproduced needs every comparison on its side: SOLAR's single run leaves C2 inconclusive
    up = {"llama_pro": C.seed_rule(_seeds(3.9, 3.95, 4.0), _seeds(3.5, 3.55, 3.6)),
          "solar": C.seed_rule(_seeds(3.9), _seeds(3.5, 3.55, 3.6))}
    assert C.judge_c2({"lesa": lesa, "llama_pro": worse, "solar": worse}, seeds=up).verdict == "inconclusive"
    with pytest.raises(ValueError, match="no seed-rule result"):
        C.judge_c2(runs, seeds={"llama_pro": three["llama_pro"]})


def test_c4_not_reached_reads_as_budget_and_the_seeds_gate_it():
    lp = _curve(5.0, 3.0, n=100)
    slow = [dict(r, loss=r["loss"] + 0.5) for r in lp]
    v = C.judge_c4(slow, lp, history="The rule changed once.")
    assert v.verdict == "not reproduced" and v.reading == "not reached at this budget"
    assert "The rule changed once." in v.notes
    one = {"llama_pro": C.seed_rule(_seeds(3.5), _seeds(3.0, 3.05, 3.1))}
    assert C.judge_c4(slow, lp, seeds=one).verdict == "inconclusive"
    three = {"llama_pro": C.seed_rule(_seeds(3.5, 3.55, 3.6), _seeds(3.0, 3.05, 3.1))}
    v = C.judge_c4(slow, lp, seeds=three)
    assert v.verdict == "not reproduced" and v.reading == "not reached at this budget"


def test_c12a_c12b_and_c5_use_the_same_gate():
    lesa = _curve(4.0, 3.0, noise=0.02, seed=5)
    shift = lambda d: [dict(r, loss=r["loss"] + d) for r in lesa]
    raw_one = {"llama_pro": C.seed_rule(_seeds(3.6), _seeds(3.3, 3.35, 3.4)),
               "lesa": C.seed_rule(_seeds(3.6), _seeds(3.55, 3.5, 3.45))}
    assert C.judge_c12a(lesa, shift(0.6), shift(0.4)).verdict == "not reproduced"
    assert C.judge_c12a(lesa, shift(0.6), shift(0.4), seeds=raw_one).verdict == "inconclusive"
    frozen = _curve(4.0, 3.0, noise=0.01, seed=6)
    below = [dict(r, loss=r["loss"] - 0.2) for r in frozen]
    v = C.judge_c12b(frozen, below, seeds={"frozen": C.seed_rule(_seeds(3.0), _seeds(3.2, 3.3, 3.25))},
                     trainable={"frozen": 100, "unfrozen": 350}, wikitext={"frozen": 37.03, "unfrozen": 38.61})
    assert v.verdict == "inconclusive" and "3.5x the parameters" in v.notes
    assert "WikiText points the other way: perplexity after training 38.61 unfrozen vs 37.03 frozen (unfrozen above" \
        in v.notes                                                   # lower training loss, higher WikiText perplexity
    above = [dict(r, loss=r["loss"] + 0.2) for r in frozen]
    assert "WikiText points the same way" in C.judge_c12b(frozen, above, wikitext={"frozen": 37.0, "unfrozen": 38.6}).notes
    ppl = {"lesa": [30.0, 31.0, 40.0], "llama_pro": 35.0, "solar": 45.0}
    acc = {m: {"t": (0.5, 0.02)} for m in ("lesa", "llama_pro", "solar")}
    assert C.judge_c5(ppl, acc).verdict == "not reproduced"          # one LESA seed above LLaMA Pro
    v = C.judge_c5({**ppl, "lesa": [30.0, 31.0]}, acc, seeds={"llama_pro": C.seed_rule(_seeds(3.0, 3.1), _seeds(3.2)),
                                                              "solar": C.seed_rule(_seeds(3.0, 3.1), _seeds(3.4))})
    assert v.verdict == "inconclusive"                                # accuracy within noise, nothing to gate
    assert "smallest difference this comparison could call: 5.66" in v.ours and "unpaired" in v.ours


# ------------------------------------------------------------------------------ controls that can make a green fail
def _cont(ok: bool, p: float = 0.005):
    return {"shows_continuity": ok, "gap": {"observed": 0.4, "shuffled_q95": 0.1, "p_shuffled": p, "gaussian_max": 0.0},
            "nn_adjacent": {"observed": 0.9, "p_shuffled": p}}


def test_c1_reads_uninformative_when_the_raw_weights_show_the_continuity_too():
    svd = {"gate": _cont(True), "q": _cont(False)}
    v = C.judge_c1(svd, 200, raw={"gate": _cont(True), "q": _cont(False)})
    assert v.verdict == "reproduced" and v.reading == "uninformative" and "without the SVD" in v.notes
    assert "gate yes/yes, q no/no" in v.ours
    v = C.judge_c1(svd, 200, raw={"gate": _cont(False), "q": _cont(False)})
    assert v.reading == "holds as worded" and "gate yes/no" in v.ours
    assert C.judge_c1(svd, 200).reading == "holds as worded"


def test_c6_reads_placement_when_the_copy_control_in_lesas_gaps_is_as_cheap():
    t = lambda m: list(m + 0.01 * np.sin(np.arange(20)))
    steps = {"lesa": t(1.0), "llama_pro": t(1.25), "solar": t(1.78)}
    v = C.judge_c6(steps, placement_control={"step_ratio": 0.986, "flop_ratio": 1.0})
    assert v.verdict == "reproduced" and v.reading == "holds, from placement"
    assert "0.986x LESA's step" in v.ours and "1x LESA's FLOPs per token" in v.ours
    assert C.judge_c6(steps, placement_control={"step_ratio": 1.2, "flop_ratio": 1.13}).reading == "holds as worded"
    # without the FLOP model the measured ratio decides: nearer 1 than LLaMA Pro's 1.25
    assert C.judge_c6(steps, placement_control={"step_ratio": 1.05}).reading == "holds, from placement"
    assert C.judge_c6(steps, placement_control={"step_ratio": 1.2}).reading == "holds as worded"
    assert C.judge_c6(steps).reading == "holds as worded"
    assert "above the lowest trained one" in C.judge_c6(steps).notes
    assert "below the lowest" not in C.judge_c6(steps).notes


def test_c7a_reads_uninformative_when_a_control_that_learns_nothing_passes():
    ratios = [[1.1, 1.0], [1.05]]
    v = C.judge_c7a(ratios, controls={"matched_norm_random": [[1.0, 1.02], [0.99]], "mean": [[3.0], [3.2]]})
    assert v.verdict == "reproduced" and v.reading == "uninformative" and "matched norm random" in v.notes
    v = C.judge_c7a(ratios, controls={"matched_norm_random": [[2.0], [2.2]], "mean": [[3.0], [3.2]]})
    assert v.reading == "holds as worded"
    assert C.judge_c7a(ratios, in_sample_r2=[-0.9, -0.8]).reading == "uninformative"    # zeros fit better
    assert C.judge_c7a(ratios, in_sample_r2=[0.4, 0.5]).reading == "holds as worded"
    assert C.judge_c7a([[3.0], [2.5]], controls={"mean": [[1.0]]}).reading == "refuted at this scale"


def test_loo_controls_measure_what_learning_nothing_gives_on_a_tiny_model():
    from lesa.study.predictor import LOO_CONTROLS, loo_controls
    from lesa.grow.predictor import PredictorConfig

    g = torch.Generator().manual_seed(0)
    # ten layers of a smooth weight stack (each layer near its neighbours) plus noise
    base, drift = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    Ws = torch.stack([base + 0.3 * i * drift + 0.1 * torch.randn(6, 4, generator=g) for i in range(10)])
    out = loo_controls(Ws, PredictorConfig(epochs=1, seed=0, device="cpu"), 5)
    assert set(out) == set(LOO_CONTROLS)
    for k, r in out.items():
        assert r["train_mse"] > 0 and math.isclose(r["test_over_train"], r["test_mse"] / r["train_mse"])
    # zeros' MSE is the targets' mean square; the mean predictor can only lower the training MSE
    assert out["mean"]["train_mse"] <= out["zeros"]["train_mse"]
    # a matched-norm random output is about twice the mean square away (uncorrelated, same scale)
    assert 1.3 < out["matched_norm_random"]["train_mse"] / out["zeros"]["train_mse"] < 2.7
    again = loo_controls(Ws, PredictorConfig(epochs=1, seed=0, device="cpu"), 5)
    for k in out:                                                    # seeded: the same draw
        assert again[k]["test_over_train"] == pytest.approx(out[k]["test_over_train"], rel=1e-6)
    raw = loo_controls(Ws, PredictorConfig(epochs=1, seed=0, device="cpu", space="raw"), 5)
    assert math.isclose(raw["zeros"]["test_mse"], float((Ws[5].double() ** 2).mean()))


# ------------------------------------------------------------------------------ C5's power
def test_mcnemar_exact_and_paired_accuracy():
    assert mcnemar_exact(0, 0) == 1.0
    assert math.isclose(mcnemar_exact(0, 5), 2 / 32)                   # 2 x 0.5^5
    assert math.isclose(mcnemar_exact(3, 3), 1.0)
    a = [True] * 60 + [False] * 40
    b = [True] * 50 + [False] * 50                                      # a right on 10 questions b misses
    r = paired_accuracy({"t": (a, b)})
    assert math.isclose(r["diff"], 0.10) and r["tasks"]["t"]["only_first"] == 10 and r["tasks"]["t"]["only_second"] == 0
    assert math.isclose(r["se"], math.sqrt(10 - 100 / 100) / 100) and r["z"] > 2
    assert math.isclose(r["tasks"]["t"]["p_mcnemar"], 2 / 2 ** 10)
    # pairing: two models that disagree on few questions can call a gap the unpaired SE could not
    unpaired_se = math.sqrt(2 * 0.55 * 0.45 / 100)
    assert r["mdd"] < 2 * unpaired_se
    with pytest.raises(ValueError, match="same questions"):
        paired_accuracy({"t": (a, b[:-1])})
    ppl = {"lesa": 30.0, "llama_pro": 35.0, "solar": 45.0}
    acc = {m: {"t": (0.5, 0.05)} for m in ("lesa", "llama_pro", "solar")}
    v = C.judge_c5(ppl, acc, paired={"llama_pro": r, "solar": r})
    assert v.verdict == "reproduced" and "paired per question" in v.ours
    json.dumps(v.record())


def test_permutation_p_of_two_runs_against_three_cannot_go_below_a_tenth():
    r = permutation_p([1.0, 1.1], [2.0, 2.1, 2.2])
    assert r["splits"] == 10 and math.isclose(r["smallest_p"], 0.1) and math.isclose(r["p"], 0.1)
    assert math.isclose(permutation_p([2.0, 2.1], [1.0, 1.1, 1.2], "greater")["p"], 0.1)
    assert permutation_p([1.5, 2.15], [2.0, 2.1, 1.0])["p"] > 0.5          # no separation, large p
    assert math.isclose(permutation_p([0.0] * 3, [1.0] * 3)["smallest_p"], 1 / 20)
    with pytest.raises(ValueError):
        permutation_p([], [1.0])


def test_every_claims_source_reads_in_words_never_as_a_bare_key():
    import re

    for c in CLAIMS.values():
        text = source_text(c.source)
        assert not re.search(r"\[[A-Z0-9, -]+\]", text) and not re.fullmatch(r"[A-Z0-9-]+", text), (c.id, text)
    assert source_text("[PN, T-A]") == "a secondary summary of the paper (papernotes.org); its main results table"
    assert source_text("[PN] + our reading").endswith("; our reading")


def test_c5_paired_on_several_lesa_seeds_calls_only_what_every_seed_calls():
    """With per-question results for several LESA seeds, each seed is paired with the baseline and a difference is
    called only when every seed's paired test calls it the same way; the comparison without per-question results
    stays unpaired and says so."""
    a = [True] * 60 + [False] * 40
    better, same = paired_accuracy({"t": (a, [True] * 50 + [False] * 50)}), paired_accuracy({"t": (a, a)})
    ppl = {"lesa": [30.0, 31.0], "llama_pro": 35.0, "solar": 45.0}
    acc = {m: {"t": (0.5, 0.05)} for m in ("lesa", "llama_pro", "solar")}
    both = C.judge_c5(ppl, acc, paired={"llama_pro": [{**better, "run": "LESA, predictor seed 0"},
                                                      {**better, "run": "LESA, predictor seed 2"}]})
    assert both.uncertainty["calls"]["llama_pro"] == "higher" and "paired per question on 2 LESA runs" in both.ours
    assert "predictor seed 2" in both.ours and "against SOLAR are compared unpaired" in both.notes
    # one clause per baseline, each naming it as the book does (a paired clause holds commas and semicolons)
    assert both.ours.count("; LESA minus ") == 2 and "; LESA minus SOLAR " in both.ours
    split = C.judge_c5(ppl, acc, paired={"llama_pro": [better, same], "solar": [better, better]})
    assert split.uncertainty["calls"] == {"llama_pro": "within noise", "solar": "higher"}
    assert split.verdict == "inconclusive" and "unpaired" not in split.notes
    assert split.uncertainty["z_lesa_minus"]["llama_pro"] == same["z"]        # the most conservative seed's z
