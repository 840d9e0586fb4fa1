"""The profile CPT runner end to end on the smoke profile: grow by each method, train the new
layers on the same tokens, evaluate; a second call reuses every finished run."""
import json
import shutil

import pytest

from lesa.core import layout
from lesa.study.cpt import TRAINS, evaluated_runs, required_runs, run_names, run_profile_cpt
from lesa.data.prepare import DataError, latest_corpus
from lesa.study.profiles import load_profile
from lesa.study.results import complete_cpt_profiles, find_results
from lesa import PROJECT_ROOT
from lesa.core.store import cache_dir

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
                                      "ablation": None, "predictor_seed": None, "replicate": True,
                                      "entry": "lesa"}
    assert runs["solar-10-seed0"]["trains"] == "all" and runs["base-10-seed0"]["trains"] == "all"
    assert runs["lesa-unfrozen"] == {"method": "lesa", "options": {}, "steps": 20, "seed": 0, "trains": "all",
                                     "ablation": "unfrozen", "predictor_seed": None, "replicate": False,
                                     "entry": "lesa-unfrozen"}
    assert runs["solar-dup"] == {"method": "solar", "options": {}, "steps": 20, "seed": 0, "trains": "new",
                                 "ablation": "dup_only", "predictor_seed": None, "replicate": False,
                                 "entry": "solar-dup"}
    assert TRAINS["lesa_raw"] == TRAINS["llama_pro"] == "new"
    with pytest.raises(ValueError, match="already trains 'new'"):
        run_names({**cpt, "dup_only": ["lesa"]})
    with pytest.raises(ValueError, match="no entry in lesa.study.cpt.TRAINS"):
        run_names({**cpt, "methods": ["lesa", "solr"]})


def test_profiles_train_solar_whole_and_lesa_raw_new_layers():
    prof = load_profile("cpu")
    runs = run_names(prof["cpt"], prof["expansion"]["variants"])
    assert runs["solar"]["trains"] == "all" and runs["solar"]["options"] == {}
    assert runs["lesa_raw"]["trains"] == "new" and runs["lesa-unfrozen"]["trains"] == "all"
    # a variant of the profile is grown by its plan method with its options, and trains its new layers
    assert runs["lesa_fp-0"] == {"method": "lesa_fp", "options": {"alpha": 0.0}, "steps": 30, "seed": 0,
                                       "trains": "new", "ablation": None, "predictor_seed": None, "replicate": False,
                                       "entry": "lesa_fp-0"}
    with pytest.raises(ValueError, match="not variants of the profile"):
        run_names({**prof["cpt"], "methods": ["lesa_fp-0.7"]}, prof["expansion"]["variants"])


def test_lesa_seed_is_the_median_of_notebook_3(tmp_path, monkeypatch):
    import lesa.study.cpt as cpt
    prof = {"name": "x", "model": {"name": "m"}, "protocol": {"sets": ["wikitext"]}, "cpt": {"lesa_seed": "median"}}
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path / "results")
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
    # start as a clean clone does: a checkout that ran this before holds finished checkpoints, which resume at
    # their last step and so time no step (the step-cost check below would read None)
    shutil.rmtree(cache_dir("cpt", "smoke"))
    for part in ("cpt", "downstream"):
        shutil.rmtree(PROJECT_ROOT / "results" / "smoke" / part, ignore_errors=True)
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
    # LESA w/o SVD keeps LESA's frozen layers under the same lowest trained layer and sees the same batches: its
    # steps read what LESA's run stored (lesa.prefix_store), so its step times are not its step cost and get no ratio
    read = {n for n, s in summaries.items() if s["prefix_reuse"]["train_batches_reused"]}
    assert "lesa_raw" in read and not read & {"lesa", "solar", "base"}
    assert summaries["lesa_raw"]["prefix_reuse"]["train_batches_reused"] == prof["cpt"]["train"]["steps"]
    assert all((c["measured_ratio"] is None) == (n in read) for n, c in cost.items())
    assert all(c["measured_ratio"] > 0 for n, c in cost.items() if n not in read)
    down = root / "downstream"
    for name in summaries:
        assert (down / name / "arc_easy.json").exists() and (down / name / "ppl_heldout.json").exists()
    again = run_profile_cpt("smoke")                            # finished runs are reused, not retrained
    assert {n: s["final_loss"] for n, s in again.items()} == {n: s["final_loss"] for n, s in summaries.items()}

    # a fresh checkout: the results are there, the weights are not. A run whose suite is done is kept as it is
    log = root / "cpt" / "llama_pro" / "train_log.jsonl"
    shutil.rmtree(cache_dir("cpt", "smoke", "llama_pro"))
    stamp = log.stat().st_mtime_ns
    capsys.readouterr()
    kept = run_profile_cpt("smoke", only=["llama_pro"])
    assert "not trained again" in capsys.readouterr().out and log.stat().st_mtime_ns == stamp
    assert kept["llama_pro"]["final_loss"] == summaries["llama_pro"]["final_loss"]
    comp = json.loads((root / "cpt" / "comparison.json").read_text())
    # the comparison lists every finished run of the profile, not only the one this command named
    assert comp["runs"]["llama_pro"]["seed"] == 0 and set(comp["runs"]) == set(summaries)
    assert set(kept) == set(summaries)
    # ... one whose suite is incomplete trains again (evaluation needs the weights) and is evaluated
    (down / "llama_pro" / "arc_easy.json").unlink()
    run_profile_cpt("smoke", only=["llama_pro"])
    assert "weights are not in" in capsys.readouterr().out
    assert (cache_dir("cpt", "smoke", "llama_pro") / "latest.json").exists() and (down / "llama_pro" / "arc_easy.json").exists()
    # records name the weights they measured, starting weights included; --force retrains and evaluates afresh
    # (before, a forced retrain kept every record of the earlier weights: same run key, same step)
    init = json.loads((cache_dir("cpt", "smoke", "llama_pro") / "latest.json").read_text())["init_key"]
    held = down / "llama_pro" / "ppl_heldout.json"
    assert json.loads(held.read_text())["weights_id"]["init_key"] == init
    stamp = held.stat().st_mtime_ns
    capsys.readouterr()
    run_profile_cpt("smoke", only=["llama_pro"], force=True)
    assert held.stat().st_mtime_ns != stamp and (down / "llama_pro" / "arc_easy.json").exists()
    assert capsys.readouterr().out.count(" steps 0->") == 1          # trained once (the comparison pass resumes it)


def test_cpu_long_extends_cpu_and_lists_the_issue_runs():
    long, cpu = load_profile("cpu-long"), load_profile("cpu")
    assert long["extends"] == "cpu" and long["name"] == "cpu-long"
    # everything it does not state is cpu's; what it states replaces cpu's (lists too)
    assert long["predictor"] == cpu["predictor"] and long["protocol"]["sets"] == cpu["protocol"]["sets"]
    assert long["protocol"]["limits"]["wikitext"] is None and 7 * long["protocol"]["limits"]["heldout"] >= 64   # per source
    assert long["cpt"]["train"]["steps"] == 10 * cpu["cpt"]["train"]["steps"] and long["cpt"]["dup_only"] == []
    t = long["cpt"]["train"]
    assert t["steps"] * t["batch_size"] * t["seq_len"] >= 300_000
    runs = run_names(long["cpt"], long["expansion"]["variants"])
    assert {n for n, r in runs.items() if r["method"] == "llama_pro"} == {f"llama_pro-seed{s}" for s in range(3)}
    assert {r["seed"] for r in runs.values() if r["method"] == "llama_pro"} == {0, 1, 2}
    assert runs["lesa_fp-0-p2"] == {"method": "lesa_fp", "options": {"alpha": 0.0}, "steps": 300, "seed": 0,
                                    "trains": "new", "ablation": None, "predictor_seed": 2, "replicate": True,
                                    "entry": "lesa_fp-0"}
    # LESA on three predictor seeds, its median seed (1, the profile's cpt.lesa_seed) first: the one seed rule
    assert [(n, runs[n]["predictor_seed"], runs[n]["replicate"]) for n in runs if runs[n]["entry"] == "lesa"] \
        == [("lesa-p1", 1, False), ("lesa-p0", 0, True), ("lesa-p2", 2, True)]
    assert "lesa" not in runs and runs["lesa-unfrozen"]["trains"] == "all"
    assert runs["solar"]["trains"] == "all" and len(runs) == 25
    # the spectrum test on the median predictor seed first, then seed 0
    assert [(n, runs[n]["predictor_seed"], runs[n]["replicate"]) for n in runs if runs[n]["entry"] == "lesa_fp-0-spec"] \
        == [("lesa_fp-0-spec-p1", 1, False), ("lesa_fp-0-spec-p0", 0, True)]
    assert runs["random_zero_out"]["method"] == "random_zero_out" and runs["random_zero_out"]["trains"] == "new"
    assert runs["copy_scaled"]["method"] == "copy_scaled" and runs["copy_scaled"]["options"] == {"alpha": 0.0}
    # the o/down x 0 variant in LLaMA Pro's placement (cpu-long's own variant; cpu's are inherited)
    assert runs["lesa_fp-0-spread-p1"]["options"] == {"alpha": 0.0, "gaps": "spread"}
    assert not runs["lesa_fp-0-spread-p1"]["replicate"] and runs["lesa_fp-0-spread-p0"]["replicate"]
    assert set(cpu["expansion"]["variants"]) < set(long["expansion"]["variants"])
    with pytest.raises(ValueError, match="not in cpt.methods"):
        run_names({**long["cpt"], "data_seeds": {"random": [0, 1]}}, long["expansion"]["variants"])
    # the post-training suite runs on each method's first seed, and on every LESA seed (eval_replicates: [lesa]);
    # the other seeds give held-out curves only
    evaluated = evaluated_runs(runs, long["cpt"])
    assert "llama_pro-seed0" in evaluated and "lesa_fp-0-p0" in evaluated and "lesa-unfrozen" in evaluated
    assert {"lesa-p1", "lesa-p0", "lesa-p2"} <= set(evaluated)
    assert not {"llama_pro-seed1", "llama_pro-seed2", "lesa_fp-0-p1", "lesa_lowrank-32-p2"} & set(evaluated)
    assert evaluated_runs(runs, {**long["cpt"], "eval_replicates": False}) == [n for n in evaluated
                                                                              if n not in ("lesa-p0", "lesa-p2")]
    with pytest.raises(ValueError, match="eval_replicates"):
        evaluated_runs(runs, {**long["cpt"], "eval_replicates": ["lesa_fp-9"]})
    assert len(evaluated) == 13 and evaluated_runs(runs, {**long["cpt"], "eval_replicates": True, "curves_only": []}) == list(runs)
    with pytest.raises(ValueError, match="eval_replicates"):
        evaluated_runs(runs, {"eval_replicates": "no"})
    # a method trained for its held-out curves alone (cpt.curves_only): none of its runs gets the suite
    curves = evaluated_runs(runs, {**long["cpt"], "curves_only": ["lesa_fp-0", "lesa"]})
    assert set(evaluated) - set(curves) == {"lesa_fp-0-p0", "lesa-p1", "lesa-p0", "lesa-p2"} and "lesa-unfrozen" in curves
    with pytest.raises(ValueError, match="curves_only"):
        evaluated_runs(runs, {**long["cpt"], "curves_only": ["lesa_fp-0.5"]})


def test_profile_extends_errors(tmp_path, monkeypatch):
    import lesa.study.profiles as Pr
    monkeypatch.setattr(Pr, "CONFIG_DIR", tmp_path)
    (tmp_path / "a.yaml").write_text("extends: b\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a\nname: b\n")
    with pytest.raises(Pr.ProfileError, match="loops"):
        Pr.load_profile("a")
    (tmp_path / "c.yaml").write_text("extends: nowhere\nname: c\n")
    with pytest.raises(Pr.ProfileError, match="does not exist"):
        Pr.load_profile("c")
    assert Pr.merge({"x": {"a": 1, "b": [1]}, "y": 1}, {"x": {"b": [2]}}) == {"x": {"a": 1, "b": [2]}, "y": 1}


def test_cpu_long_replaces_cpu_results_only_when_every_run_finished(tmp_path):
    prof = load_profile("cpu-long")
    runs = run_names(prof["cpt"], prof["expansion"]["variants"])
    names = list(runs)
    evaluated = evaluated_runs(runs, prof["cpt"])
    for n in names:
        (tmp_path / "cpu-long" / "cpt" / n).mkdir(parents=True)
        (tmp_path / "cpu-long" / "cpt" / n / "summary.json").write_text(json.dumps({"completed": True}))
        if n in evaluated:                    # most seed replicates get no post-training suite
            (tmp_path / "cpu-long" / "downstream" / n).mkdir(parents=True)
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ("cpu-long",)
    (tmp_path / "cpu-long" / "downstream" / "lesa-p1").rename(tmp_path / "lesa-downstream")   # a first seed not evaluated
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ()
    (tmp_path / "lesa-downstream").rename(tmp_path / "cpu-long" / "downstream" / "lesa-p1")
    # LESA's later seeds (cpt.optional_replicates) do not hold the switch back; its first seed does
    for n in ("lesa-p0", "lesa-p2"):
        shutil.rmtree(tmp_path / "cpu-long" / "cpt" / n)
        shutil.rmtree(tmp_path / "cpu-long" / "downstream" / n)
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ("cpu-long",)
    assert set(runs) - set(required_runs(runs, {**prof["cpt"], "optional_replicates": []})) == {n for n in runs if runs[n]["entry"] in prof["cpt"]["optional"]}
    assert complete_cpt_profiles(["cpu-long"], "smoke", tmp_path) == ()      # cpu-long extends cpu only
    assert find_results("cpu", "cpt", (), tmp_path, prefer=("cpu-long",)) == (tmp_path / "cpu-long" / "cpt", "cpu-long")
    # the spectrum test's runs (cpt.optional) do not hold the switch back; any other run does
    optional = [n for n in names if runs[n]["entry"] in prof["cpt"]["optional"]]
    assert optional == ["lesa_fp-0-spec-p1", "lesa_fp-0-spec-p0", "lesa_fp-0-randdir-p1", "lesa_fp-0-randdir-p0"]
    for n in optional:
        shutil.rmtree(tmp_path / "cpu-long" / "cpt" / n)
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ("cpu-long",)
    last = [n for n in names if n not in optional][-1]
    (tmp_path / "cpu-long" / "cpt" / last / "summary.json").write_text(json.dumps({"completed": False}))
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ()
    with pytest.raises(ValueError, match="cpt.optional"):
        required_runs(runs, {**prof["cpt"], "optional": ["lesa_fp-9"]})


def test_a_page_about_some_methods_needs_only_their_runs_trained(tmp_path):
    """Chapter 6 (LLaMA Pro against the variants) takes cpu-long's curves once those runs have trained,
    without waiting for SOLAR, the base model, the unfrozen ablation or any post-training suite."""
    from lesa.study.results import complete_cpt_profiles
    prof = load_profile("cpu-long")
    runs = run_names(prof["cpt"], prof["expansion"]["variants"])
    mine = ("llama_pro", "lesa_fp", "lesa_lowrank")
    needed = [n for n, r in runs.items() if r["method"] in mine and r["ablation"] is None
              and r["entry"] not in prof["cpt"]["optional"]]
    assert len(needed) == 12   # three data orders of LLaMA Pro, three predictor seeds of each variant (two top-placed, one spread)
    for n in needed[:-1]:
        (tmp_path / "cpu-long" / "cpt" / n).mkdir(parents=True)
        (tmp_path / "cpu-long" / "cpt" / n / "summary.json").write_text(json.dumps({"completed": True}))
    check = lambda: complete_cpt_profiles(["cpu-long"], "cpu", tmp_path, methods=mine, suite=False)
    assert check() == ()                                          # one seed of the last variant is missing
    (tmp_path / "cpu-long" / "cpt" / needed[-1]).mkdir(parents=True)
    (tmp_path / "cpu-long" / "cpt" / needed[-1] / "summary.json").write_text(json.dumps({"completed": False}))
    assert check() == ()                                          # ... or has not finished
    (tmp_path / "cpu-long" / "cpt" / needed[-1] / "summary.json").write_text(json.dumps({"completed": True}))
    assert check() == ("cpu-long",)
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path) == ()          # the whole profile is not complete
    assert complete_cpt_profiles(["cpu-long"], "cpu", tmp_path, methods=mine) == ()   # first seeds lack their suite


def test_replicate_runs_notebook_3_before_cpt_and_records_stage_times(tmp_path, monkeypatch):
    import lesa.book.run as book
    import lesa.study.cpt as cpt
    import lesa.book.replicate as R
    calls = []
    monkeypatch.setattr(book, "run", lambda profile, only=None: calls.append(("run", tuple(only))))
    monkeypatch.setattr(cpt, "run_profile_cpt", lambda profile: calls.append(("cpt", profile)))
    monkeypatch.setattr(book, "build", lambda profile: calls.append(("build", profile)))
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path / "results")
    times = R.replicate("smoke")
    assert calls == [("run", tuple(R.GROWTH)), ("cpt", "smoke"), ("run", tuple(R.TRAINING)), ("build", "smoke")]
    assert "03_expansion" in R.GROWTH and list(times) == ["notebooks 1-3", "continual pre-training", "notebooks 4-6", "book"]
    rec = json.loads((tmp_path / "results/smoke/replicate_run.json").read_text())
    assert rec["stages_s"] == times and rec["provenance"]["commit"]
