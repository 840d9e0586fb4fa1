"""`make replicate`: an estimate before each stage, the record after each, and a resumed run after an interruption."""
import json

import pytest

import lesa.book.replicate as R


def test_estimate_counts_only_the_work_left(tmp_path, monkeypatch):
    import lesa.study.cpt as C

    monkeypatch.setenv("LESA_CACHE", str(tmp_path / "cache"))            # no cached weights: a fresh machine
    monkeypatch.setattr(C, "suite_done", lambda *a, **k: True)          # a finished run's records are all there
    res = tmp_path / "smoke"
    (res / "cpt" / "lesa").mkdir(parents=True)
    (res / "book_run.json").write_text(json.dumps({n: {"seconds": 100.0 * (i + 1)} for i, n in
                                                   enumerate(R.GROWTH + R.TRAINING)}))
    from lesa.study.cpt import run_names
    from lesa.study.profiles import load_profile

    prof = load_profile("smoke", check_device=False)
    runs = run_names(prof["cpt"], prof["expansion"].get("variants"))
    (res / "cpt" / "lesa" / "summary.json").write_text(json.dumps({"completed": True, "elapsed_s": 40.0}))
    steps = runs["lesa"]["steps"]
    est = R.estimate("smoke", tmp_path, probe={"fp32_gflops": 100.0}, done=lambda n: n == "01_svd_evidence",
                     fresh=False)
    assert est["notebooks 1-3"]["s"] == 200 + 300                    # notebook 1 is up to date
    assert est["notebooks 4-6"]["s"] == 400 + 500 + 600
    left = [n for n in runs if n != "lesa"]
    assert est["continual pre-training"]["s"] == pytest.approx(sum(runs[n]["steps"] * 40.0 / steps for n in left))
    assert "not scaled" in est["notebooks 1-3"]["how"]
    # a previous run recorded its machine's speed: times scale by it (a machine twice as fast: half the time)
    (res / "replicate_run.json").write_text(json.dumps({"probe": {"fp32_gflops": 50.0}}))
    est2 = R.estimate("smoke", tmp_path, probe={"fp32_gflops": 100.0}, done=lambda n: True, fresh=False)
    assert est2["notebooks 1-3"]["s"] == 0 and "done" in est2["notebooks 1-3"]["how"]
    assert est2["continual pre-training"]["s"] == pytest.approx(est["continual pre-training"]["s"] / 2)
    assert "precision" not in est["continual pre-training"]["how"]
    # times recorded in fp32 and without the prefix store, for a bf16 run: the estimate says it did not scale them
    (res / "book_run.json").write_text(json.dumps({n: {"seconds": 10.0, "precision": "fp32"} for n in R.GROWTH}))
    est3 = R.estimate("smoke", tmp_path, done=lambda n: False, precision={"protocol": "bf16", "cpt": "bf16"},
                      fresh=False)
    assert "recorded in fp32, this run in bf16" in est3["notebooks 1-3"]["how"] and est3["notebooks 1-3"]["s"] == 30
    assert "without the frozen-prefix store" in est3["continual pre-training"]["how"]
    (res / "cpt" / "lesa" / "summary.json").write_text(json.dumps({"completed": True, "elapsed_s": 40.0, "steps": steps,
                                                                  "precision": "bf16", "prefix_reuse": {"used": False}}))
    est4 = R.estimate("smoke", tmp_path, done=lambda n: False, precision={"protocol": "fp32", "cpt": "bf16"},
                      fresh=False)
    assert "prefix" not in est4["continual pre-training"]["how"] and "precision" not in est4["continual pre-training"]["how"]


def test_a_finished_run_recorded_in_another_precision_is_estimated_as_trained_and_evaluated_again(tmp_path, monkeypatch):
    """`LESA_PRECISION=bf16 make replicate` over a committed fp32 book: CPT's records are not this run's, and the
    weights are not cached on a fresh machine, so every run trains and is evaluated again (run_profile_cpt's rule);
    the estimate counts their recorded training and evaluation times instead of 0."""
    from lesa.core.layout import Results
    from lesa.study.cpt import cpt_work, evaluated_runs, run_names
    from lesa.study.results import recorded_eval_s
    from lesa.study.profiles import load_profile

    monkeypatch.setenv("LESA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LESA_PRECISION", raising=False)
    prof = load_profile("smoke", check_device=False)
    runs = run_names(prof["cpt"], prof["expansion"].get("variants"))
    ev, R_ = prof["cpt"]["eval"], Results("smoke", tmp_path)
    evaluated = evaluated_runs(runs, prof["cpt"])
    for n, r in runs.items():
        R_.cpt(n).mkdir(parents=True)
        (R_.cpt(n) / "summary.json").write_text(json.dumps({"completed": True, "elapsed_s": 40.0,
                                                            "steps": r["steps"], "run_key": f"key-{n}"}))
        if n in evaluated:                               # the whole suite, for these weights, in fp32
            R_.downstream(n).mkdir(parents=True)
            for k in [f"ppl_{x}" for x in ev["ppl_sets"]] + ev["tasks"]:
                (R_.downstream(n) / f"{k}.json").write_text(json.dumps({
                    "limit": ev["limits"][k], "precision": "fp32", "seconds": 5.0,
                    "weights_id": {"run_key": f"key-{n}", "step": r["steps"]}}))
    assert evaluated and recorded_eval_s(R_, evaluated[0]) == 5.0 * (len(ev["ppl_sets"]) + len(ev["tasks"]))
    fp32 = R.estimate("smoke", tmp_path, done=lambda n: True, fresh=False)["continual pre-training"]
    assert cpt_work(prof, tmp_path) == {"train": [], "evaluate": []}
    assert fp32 == {"s": 0.0, "how": f"all {len(runs)} runs finished and evaluated"}
    monkeypatch.setenv("LESA_PRECISION", "bf16")
    work = cpt_work(load_profile("smoke", check_device=False), tmp_path)
    assert work == {"train": list(runs), "evaluate": [n for n in runs if n in evaluated]}
    bf16 = R.estimate("smoke", tmp_path, done=lambda n: True, fresh=False)["continual pre-training"]
    assert bf16["s"] == pytest.approx(40.0 * len(runs) + sum(recorded_eval_s(R_, n) for n in evaluated))
    assert f"{len(runs)} of {len(runs)} runs to train, {len(evaluated)} to evaluate" in bf16["how"]
    # a finished run whose weights are cached resumes at its last step: evaluated, not trained again
    n = next(iter(evaluated))
    (tmp_path / "cache" / "cpt" / "smoke" / n).mkdir(parents=True, exist_ok=True)   # cache_dir made it
    (tmp_path / "cache" / "cpt" / "smoke" / n / "latest.json").write_text("{}")
    work = cpt_work(load_profile("smoke", check_device=False), tmp_path)
    assert n not in work["train"] and n in work["evaluate"]


def test_record_after_each_stage_and_resume(tmp_path, capsys):
    ran = []

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        R.replicate("smoke", root=tmp_path, stage_fns=[("a", lambda: ran.append("a")), ("b", boom)])
    rec = json.loads((tmp_path / "smoke" / "replicate_run.json").read_text())
    assert rec["complete"] is False and list(rec["stages_s"]) == ["a"]
    assert rec["precision"]["protocol"] in ("fp32", "bf16") and rec["cpu_model"] and rec["probe"]["fp32_gflops"] > 0
    from lesa.core.precision import BF16_FLAGS, cpu_flags
    assert rec["bf16_units"] == sorted(cpu_flags() & set(BF16_FLAGS))     # the host class the times belong to
    R.replicate("smoke", root=tmp_path, stage_fns=[("a", lambda: ran.append("a")), ("b", lambda: ran.append("b"))])
    out = capsys.readouterr().out
    assert "resuming an interrupted run" in out and "stages then complete: ['a']" in out
    rec = json.loads((tmp_path / "smoke" / "replicate_run.json").read_text())
    assert rec["complete"] is True and list(rec["stages_s"]) == ["a", "b"] and rec["resumed_from"] == {"a": rec["resumed_from"]["a"]}
    assert ran == ["a", "a", "b"]


def test_a_fresh_clone_is_estimated_from_scratch_not_from_a_cached_execution(tmp_path):
    """A notebook that last ran from a warm cache took seconds; a fresh clone pays its from-scratch time. The
    record keeps both (book.run's timing_entry), and the estimate picks by whether the cache is empty."""
    from lesa.book.run import timing_entry

    first = timing_entry({}, 1000.0, empty_cache=True)
    cached = timing_entry(first, 17.5, empty_cache=False)              # a rerun that read its caches
    assert cached == {"seconds": 17.5, "from_scratch_s": 1000.0}
    assert timing_entry(cached, 1200.0, empty_cache=False)["from_scratch_s"] == 1200.0   # slower: raises it
    assert timing_entry(cached, 800.0, empty_cache=True)["from_scratch_s"] == 800.0      # from empty: sets it
    assert timing_entry({"seconds": 900.0}, 20.0, empty_cache=False)["from_scratch_s"] == 900.0  # older records
    res = tmp_path / "smoke"
    res.mkdir()
    (res / "book_run.json").write_text(json.dumps({n: cached for n in R.GROWTH}))
    fresh = R.estimate("smoke", tmp_path, done=lambda n: False, fresh=True)["notebooks 1-3"]
    warm = R.estimate("smoke", tmp_path, done=lambda n: False, fresh=False)["notebooks 1-3"]
    assert fresh["s"] == 3000.0 and "from-scratch" in fresh["how"]
    assert warm["s"] == 52.5 and "from scratch: up to 50.0 min" in warm["how"]


def test_bench_compares_a_replicate_run_with_the_committed_record(tmp_path):
    """lesa.bench.replicate on the committed cpu results as both sides: the run side reads each notebook's last
    execution, the reference its from-scratch time, each CPT run its training and evaluation seconds; an
    unfinished run is refused with what to do; the bench page renders the record."""
    import shutil

    from lesa.bench.replicate import compare
    from lesa.bench.report import bench_markdown
    from lesa.core.layout import Results

    committed = Results("cpu")
    run = tmp_path / "cpu"
    shutil.copytree(committed.dir, run, ignore=shutil.ignore_patterns("executed", "0[124-7]_*"))
    rec = {"complete": False, "stages_s": {"notebooks 1-3": 600.0}, "precision": {"protocol": "bf16", "cpt": "bf16"},
           "cpu_model": "a CPU", "cpus": 2, "probe": {"fp32_gflops": 100.0, "bf16_gflops": 700.0},
           "bf16_units": ["avx512_bf16"]}
    (run / "replicate_run.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="resume it"):
        compare("cpu", tmp_path)
    stages = {"notebooks 1-3": 600.0, "continual pre-training": 900.0, "notebooks 4-6": 30.0, "book": 40.0}
    (run / "replicate_run.json").write_text(json.dumps({**rec, "complete": True, "stages_s": stages}))
    d = compare("cpu", tmp_path, prelude_s=240.0, prelude_note="measured by a first attempt")
    book = json.loads(committed.file("book_run.json").read_text())
    nb = d["notebooks"]["03_expansion"]
    assert nb["reference_s"] == book["03_expansion"]["from_scratch_s"] and nb["run_s"] == book["03_expansion"]["seconds"]
    assert nb["speedup"] == round(nb["reference_s"] / nb["run_s"], 2) > 1
    solar = json.loads(committed.cpt("solar").joinpath("summary.json").read_text())
    evals = sum(json.loads(p.read_text())["seconds"] for p in committed.downstream("solar").glob("*.json"))
    assert d["cpt"]["solar"]["reference_train_s"] == solar["elapsed_s"] and d["cpt"]["solar"]["train_speedup"] == 1.0
    assert d["cpt"]["solar"]["run_eval_s"] == round(evals, 1)
    assert d["stages"]["notebooks 1-3"]["reference_s"] == round(sum(book[n]["from_scratch_s"] for n in R.GROWTH), 1)
    assert d["stages"]["book"]["speedup"] is None and d["reference_precision"] == "fp32"
    out = tmp_path / "bench"
    out.mkdir()
    (out / "replicate_cpu_bf16.json").write_text(json.dumps(d))
    page = bench_markdown(out)
    assert "`make replicate` from an empty cache: the CPU profile, on a host with AVX512-BF16 and no AMX" in page
    assert "SOLAR, all layers trained" in page
    assert f"x{nb['speedup']:.2f}" in page
    assert ("the run spent 4.0 min on setup, converting the models and preparing the data (not in the committed "
            "record; measured by a first attempt).") in page
    lesa = d["lesa_before_training"]            # both sides read the same committed notebook 3 here
    assert lesa["run"] == lesa["reference"] and len(lesa["run"]) == 3 and "| seed 1 |" in page
    claims = json.loads(committed.file("scoreboard.json").read_text())["claims"]
    assert d["verdicts"] == {"same": len(claims), "of": len(claims), "changed": []}
    assert f"**{len(claims)} of {len(claims)} verdicts** as in the committed book." in page
    # a verdict that moved in the run is named with both readings
    first = claims[0]
    moved = "inconclusive" if first["verdict"] != "inconclusive" else "reproduced"
    board = json.loads((run / "scoreboard.json").read_text())
    board["claims"][0]["verdict"] = moved
    (run / "scoreboard.json").write_text(json.dumps(board))
    d = compare("cpu", tmp_path)
    assert d["verdicts"]["same"] == len(claims) - 1
    assert d["verdicts"]["changed"] == [{"claim": first["claim"], "reference": first["verdict"], "run": moved}]
    (out / "replicate_cpu_bf16.json").write_text(json.dumps(d))
    assert f"{first['claim']}: {first['verdict']} in the book, {moved} in this run" in bench_markdown(out)


def test_host_class_names_the_bf16_units_a_replicate_ran_on():
    """One bench record per host class (the committed AMX record is not overwritten by a run elsewhere)."""
    from lesa.core.precision import host_class

    assert host_class(["amx_bf16", "avx512_bf16"]) == "amx" and host_class(["avx512_bf16"]) == "avx512bf16"
    assert host_class([]) == "nobf16" and host_class(None) is None
