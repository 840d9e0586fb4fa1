"""Chapter 2's computation (lesa.study.predictor_chapter): on the committed cpu results the package gives back the
saved study, the committed verdicts and every table byte for byte; on small hand-made records the rules hold
(an extra model's cut budget, the synthetic positive control, the figures' method names)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from lesa import PROJECT_ROOT
from lesa.book.page import seed_summary
from lesa.core.store import read_json
from lesa.grow.methods import label
from lesa.plots.table import table
from lesa.study.predictor_chapter import PredictorChapter, model_budget, synth_from_json
from lesa.study.profiles import load_profile

PAGE = PROJECT_ROOT / "results" / "cpu" / "02_predictor"
needs_cpu = pytest.mark.skipif(not (PAGE / "predictor_study.json").exists(), reason="no committed cpu results for chapter 2")


@pytest.fixture(scope="module")
def ch():
    return PredictorChapter.load(PAGE / "predictor_study.json", PAGE / "synthetic.json", load_profile("cpu"))


@needs_cpu
def test_the_saved_chapter_reads_back_to_the_same_files(ch):
    assert json.dumps(ch.to_json(), sort_keys=True) == json.dumps(read_json(PAGE / "predictor_study.json"), sort_keys=True)
    rows = [{"shuffled": sh, "seed": s, **r} for (sh, s), r in ch.synth.items()]
    assert json.dumps(rows) == json.dumps(read_json(PAGE / "synthetic.json"))
    assert list(ch.studies) == ["SmolLM2-135M", "Gemma-3-270M"] and ch.main == "SmolLM2-135M"
    assert all(isinstance(s, int) for st in ch.studies.values() for s in st) and ch.seeds == [0, 1, 2]
    # the extra model's budget: one left-out weight type, half the left-out layers (as its study holds)
    assert ch.budgets["SmolLM2-135M"]["loo_weight_types"] == ["gate", "q"]
    assert ch.budgets["Gemma-3-270M"]["loo_weight_types"] == ["gate"] and ch.budgets["Gemma-3-270M"]["loo_layers"] == 2
    assert all(set(st["loo"]) == set(ch.budgets[m]["loo_weight_types"]) and len(st["loo"]["gate"]) == ch.budgets[m]["loo_layers"]
               for m in ch.studies for st in ch.studies[m].values())


@needs_cpu
def test_verdicts_recomputed_from_the_saved_study_are_the_committed_ones(ch):
    committed = read_json(PROJECT_ROOT / "results" / "cpu" / "verdicts" / "02_predictor.json")["verdicts"]
    ours = [v.record() for v in ch.verdicts()]
    assert [v["claim"] for v in ours] == [c["claim"] for c in committed] == ["C7a", "C7b", "C8"]
    for v, c in zip(ours, committed):
        for k in ("verdict", "reading", "ours", "detail", "budget", "uncertainty", "per_model"):
            assert json.dumps(v.get(k), sort_keys=True) == json.dumps(c.get(k), sort_keys=True), (v["claim"], k)


@needs_cpu
def test_every_table_written_as_the_notebook_writes_it_is_the_committed_csv(ch, tmp_path):
    ch.loo_table().to_csv(tmp_path / "loo.csv", index=False)
    ch.full_table().to_csv(tmp_path / "full_training.csv", index=False)
    ch.lambda_table().to_csv(tmp_path / "lambda.csv", index=False)
    table(seed_summary(ch.loo_summary_input(), ["model", "weight", "method"], ["r2", "cosine", "norm_ratio"]),
          csv=tmp_path / "loo_summary.csv", index=False)
    table(ch.checks_table(), csv=tmp_path / "synthetic_checks.csv", index=False)
    err = ch.synthetic_errors()
    table(seed_summary(pd.DataFrame(err).assign(method=[label(r["method"]) for r in err]),
                       ["case", "metric", "method"], ["value"]), csv=tmp_path / "synthetic_errors.csv", index=False)
    for name in ("loo.csv", "full_training.csv", "lambda.csv", "loo_summary.csv", "synthetic_checks.csv",
                 "synthetic_errors.csv"):
        assert (tmp_path / name).read_text() == (PAGE / name).read_text(), name


@needs_cpu
def test_the_headline_and_figure_data_say_what_the_tables_say(ch):
    # the positive control works on the committed results: every check passes layered, the shuffled control fails
    assert ch.synthetic_passes() == [True] * 3 and ch.control_fails() == [True] * 3 and ch.pipeline_works()
    assert all(x >= 0.9 for x in ch.synthetic_r2_min())
    loo = ch.loo_table()
    for method in ("predictor", "neighbour_average"):   # per seed: the mean over every left-out layer and weight type
        got = ch.held_out_r2(method)
        for m in ch.studies:
            rows = loo[(loo["model"] == m) & (loo["method"] == method)]
            assert got[m] == pytest.approx([float(rows[rows["seed"] == s]["r2"].mean()) for s in ch.studies[m]], rel=1e-12)
    pts = ch.loo_points()
    assert {p["model"] for p in pts} == {ch.main} and "lesa" in {p["method"] for p in pts}
    assert "predictor" not in {p["method"] for p in pts}
    assert {p["lambda"] for p in ch.lambda_points()} == {"0", "5e-05", "5e-04"}
    rows = ch.r2_vs_real()
    assert {r["model"] for r in rows} == {"synthetic, layered", "synthetic, shuffled", *ch.studies}


def _synth(checks_layered: list[dict], checks_shuffled: list[dict]) -> list[dict]:
    rec = lambda sh, s, c: {"shuffled": sh, "seed": s, "checks": c, "r2_min": 0.95 if not sh else 0.1, "seconds": 1.0}
    return [r for s, (a, b) in enumerate(zip(checks_layered, checks_shuffled)) for r in (rec(False, s, a), rec(True, s, b))]


def test_the_positive_control_works_only_when_layered_passes_and_shuffled_fails_in_every_seed():
    ok, bad = {"loo_r2": True, "weights_beat_solar": True}, {"loo_r2": True, "weights_beat_solar": False}
    good = PredictorChapter({}, {}, {}, "cpu", synth_from_json(_synth([ok, ok], [bad, bad])))
    assert good.seeds == [0, 1] and good.synthetic_passes() == [True, True] and good.pipeline_works()
    one_fails = PredictorChapter({}, {}, {}, "cpu", synth_from_json(_synth([ok, bad], [bad, bad])))
    assert one_fails.synthetic_passes() == [True, False] and not one_fails.pipeline_works()
    control_passes = PredictorChapter({}, {}, {}, "cpu", synth_from_json(_synth([ok, ok], [bad, ok])))
    assert control_passes.control_fails() == [True, False] and not control_passes.pipeline_works()
    t = control_passes.checks_table()
    assert list(t.columns) == ["case", "seed", "held-out R2 >= 0.9, every type", "weights beat SOLAR", "seconds"]
    assert list(t["weights beat SOLAR"]) == ["pass", "fail", "pass", "pass"]
    summary = control_passes.checks_summary().set_index("check")
    assert summary.loc["weights beat SOLAR", "shuffled layers (control)"] == "passes in 1 of 2 seeds"
    assert summary.loc["weights beat SOLAR", "layered by depth"] == "passes in 2 of 2 seeds"


def test_an_extra_model_runs_every_seed_but_one_left_out_type_and_half_the_layers():
    pred = {"epochs": 10, "loo_weight_types": ["gate", "q"], "loo_layers": 5, "seeds": [0]}
    assert model_budget(pred, [3, 4], True) == {**pred, "seeds": [3, 4]}
    assert model_budget(pred, [3, 4], False) == {**pred, "seeds": [3, 4], "loo_weight_types": ["gate"], "loo_layers": 2}
    assert model_budget({**pred, "loo_layers": 3}, [0], False)["loo_layers"] == 2       # never fewer than two
    assert model_budget({**pred, "loo_layers": 8}, [0], False)["loo_layers"] == 4
    assert pred["loo_weight_types"] == ["gate", "q"]                                      # the profile is not edited


def test_the_training_table_keeps_the_profiles_weight_types_and_r2_rows_name_their_case():
    full = lambda r2: {"n_samples": 8, "seconds": 1.0, "history": [2.0, 1.0], "final_loss_over_mean_sq": 0.5,
                       "in_sample": {"r2": r2, "cosine": 0.9, "norm_ratio": 1.0}, "inference_norm_ratio": 1.1}
    loo = lambda r2: {"layer": 2, "test_over_train": 1.0, "metrics": {"predictor": {"r2": r2, "cosine": 0.5, "norm_ratio": 1.0}}}
    # gate trained only for the lambda sweep (not one of the profile's weight types): not in the training table
    study = {"full": {"q": full(0.3), "gate": full(0.7)}, "loo": {"q": [loo(0.2), loo(0.4)]}, "lambda": {}}
    synth = [{"shuffled": False, "seed": 0, "loo": {"q": {"r2": 0.95}}}, {"shuffled": True, "seed": 0, "loo": {"q": {"r2": 0.1}}}]
    ch = PredictorChapter({"M": {0: study}}, {"M": {"weight_types": ["q"]}}, {"M": "m-key"}, "cpu", synth_from_json(synth))
    assert list(ch.full_table()["weight"]) == ["q"] and list(ch.full_table()["in-sample R2"]) == [0.3]
    rows = {r["model"]: r["r2"] for r in ch.r2_vs_real()}
    assert rows == {"synthetic, layered": 0.95, "synthetic, shuffled": 0.1, "M": pytest.approx(0.3)}
    assert ch.held_out_r2() == {"M": [pytest.approx(0.3)]}
