"""The profile CPT runner end to end on the smoke profile: grow by each method, train the new
layers on the same tokens, evaluate; a second call reuses every finished run."""
import json

import pytest

from lesa.cpt import TRAINS, run_names, run_profile_cpt
from lesa.data import DataError, latest_corpus
from lesa.profiles import load_profile
from lesa.store import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_run_names_cover_methods_budgets_seeds_and_ablations():
    cpt = {"methods": ["lesa", "base", "solar"], "budgets": [10, 20], "seeds": [0, 1], "unfrozen": ["lesa"],
           "dup_only": ["solar"], "train": {"steps": 20}}
    runs = run_names(cpt)
    assert set(runs) == {"lesa-10-seed0", "lesa-10-seed1", "lesa-20-seed0", "lesa-20-seed1",
                         "base-10-seed0", "base-20-seed0", "solar-10-seed0", "solar-10-seed1", "solar-20-seed0",
                         "solar-20-seed1", "lesa-unfrozen", "solar-dup"}
    # what trains comes from the method table, not from the run's name
    assert runs["lesa-20-seed1"] == {"method": "lesa", "options": {}, "steps": 20, "seed": 1, "trains": "new",
                                      "ablation": None}
    assert runs["solar-10-seed0"]["trains"] == "all" and runs["base-10-seed0"]["trains"] == "all"
    assert runs["lesa-unfrozen"] == {"method": "lesa", "options": {}, "steps": 20, "seed": 0, "trains": "all",
                                     "ablation": "unfrozen"}
    assert runs["solar-dup"] == {"method": "solar", "options": {}, "steps": 20, "seed": 0, "trains": "new",
                                 "ablation": "dup_only"}
    assert TRAINS["lesa_raw"] == TRAINS["llama_pro"] == "new"
    with pytest.raises(ValueError, match="already trains 'new'"):
        run_names({**cpt, "dup_only": ["lesa"]})
    with pytest.raises(ValueError, match="no entry in lesa.cpt.TRAINS"):
        run_names({**cpt, "methods": ["lesa", "solr"]})


def test_profiles_train_solar_whole_and_lesa_raw_new_layers():
    prof = load_profile("cpu")
    runs = run_names(prof["cpt"], prof["expansion"]["variants"])
    assert runs["solar"]["trains"] == "all" and runs["solar"]["options"] == {}
    assert runs["lesa_raw"]["trains"] == "new" and runs["lesa-unfrozen"]["trains"] == "all"
    # a variant of the profile is grown by its plan method with its options, and trains its new layers
    assert runs["lesa_lowrank-32"] == {"method": "lesa_lowrank", "options": {"rank": 32}, "steps": 30, "seed": 0,
                                       "trains": "new", "ablation": None}
    with pytest.raises(ValueError, match="not variants of the profile"):
        run_names({**prof["cpt"], "methods": ["lesa_fp-0.7"]}, prof["expansion"]["variants"])


def test_lesa_seed_is_the_median_of_notebook_3(tmp_path, monkeypatch):
    import lesa.cpt as cpt
    prof = {"name": "x", "model": {"name": "m"}, "protocol": {"sets": ["wikitext"]}, "cpt": {"lesa_seed": "median"}}
    monkeypatch.setattr(cpt, "PROJECT_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="run notebook 3 first"):
        cpt.lesa_seed(prof)
    ok = lambda v: {"ppl": {"wikitext": {"status": "ok", "value": v}}}
    (tmp_path / "results/x/03_expansion").mkdir(parents=True)
    (tmp_path / "results/x/03_expansion/expansion.json").write_text(json.dumps(
        {"models": {"m": {"results": {"lesa": {"0": ok(492.0), "1": ok(153.0), "2": ok(39.0)}}}}}))
    seed, why = cpt.lesa_seed(prof)
    assert seed == 1 and "median" in why and "seed 0: 492" in why
    assert cpt.lesa_seed({**prof, "cpt": {"lesa_seed": 2}})[0] == 2
    with pytest.raises(ValueError, match="int or 'median'"):
        cpt.lesa_seed({**prof, "cpt": {"lesa_seed": "mean"}})


def test_smoke_profile_cpt_end_to_end(capsys):
    try:
        latest_corpus(fast=True)
    except DataError:
        pytest.skip("no fast corpus: run `make data-fast`")
    summaries = run_profile_cpt("smoke")
    prof = load_profile("smoke")
    runs = run_names(prof["cpt"])
    assert set(summaries) == set(runs) >= set(prof["cpt"]["methods"]) | {"solar-dup"}
    for name, s in summaries.items():
        assert s["steps"] == prof["cpt"]["train"]["steps"], name
        assert s["run"] == {"method": runs[name]["method"], "options": {}, "trains": runs[name]["trains"],
                            "ablation": runs[name]["ablation"], "predictor_seed": 0,
                            "predictor_seed_choice": "seed 0 (set in the profile)"}, name
    # SOLAR trains the whole model; its ablation only the duplicated layers, like LESA and LLaMA Pro
    assert summaries["solar"]["trainable"]["frozen_params"] == 0
    for name in ("solar-dup", "lesa", "lesa_raw", "llama_pro"):
        rep = summaries[name]["trainable"]
        assert rep["trainable_layers"] == rep["new_layers"] and rep["frozen_params"] > 0, name
    assert summaries["solar"]["flops_per_token"] > summaries["solar-dup"]["flops_per_token"]
    hashes = {s["data_order_hash"] for s in summaries.values()}
    assert len(hashes) == 1                                    # same tokens, same order for every method
    root = PROJECT_ROOT / "results" / "smoke"
    comp = json.loads((root / "cpt" / "comparison.json").read_text())
    assert comp["same_data_order"] is True and set(comp["runs"]) == set(summaries)
    cost = comp["step_cost"]                                   # claim C6: measured beside the FLOP model
    assert comp["step_cost_reference"] == "lesa" and cost["lesa"]["flop_model_ratio"] == 1.0
    assert cost["solar"]["flop_model_ratio"] > cost["llama_pro"]["flop_model_ratio"] > 1.0
    assert all(c["measured_ratio"] > 0 for c in cost.values())
    down = root / "downstream"
    for name in summaries:
        assert (down / name / "arc_easy.json").exists() and (down / name / "ppl_heldout.json").exists()
    again = run_profile_cpt("smoke")                            # finished runs are reused, not retrained
    assert {n: s["final_loss"] for n, s in again.items()} == {n: s["final_loss"] for n, s in summaries.items()}
