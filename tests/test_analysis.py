"""lesa.study.analysis, lesa.study.profiles, lesa.plots.figures: continuity metrics and controls, leave-one-layer-out,
expansion cache, residual effect, CPT readers, profile validation (tiny random models, CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lesa.study.common
import lesa.study.predictor
from lesa.study import analysis as A
from lesa.claims.paper import and_list, fmt
from lesa.claims.verdict import steps_to_reach
from lesa.study.common import stack_weights
from lesa.study.growth import new_layer_stats, residual_effect
from lesa.study.predictor import LOO_CONTROLS, leave_one_layer_out, loo_layers, predictor_study, train_full, weight_metrics
from lesa.study.results import cpt_comparison, find_results, first_seed_runs, load_cpt_runs, load_eval_records, main_table, method_logs, method_row, runs_by_method, step_times, verdict, verdict_markdown, write_verdicts
from lesa.grow.plans import build_plan
from lesa.grow.predictor import PredictorConfig


def smooth_stack(L=12, d_out=16, d_in=24, noise=0.01, seed=0):
    """Weights that drift slowly with depth: W_i = cos(t_i) A + sin(t_i) B + noise."""
    g = torch.Generator().manual_seed(seed)
    Am, Bm = torch.randn(d_out, d_in, generator=g), torch.randn(d_out, d_in, generator=g)
    t = torch.linspace(0, 1.5, L)
    return torch.stack([torch.cos(x) * Am + torch.sin(x) * Bm + noise * torch.randn(d_out, d_in, generator=g)
                        for x in t])


def test_continuity_metrics_on_a_curve_and_on_noise():
    t = np.linspace(0, 3, 20)
    curve = np.stack([np.cos(t), np.sin(t), 0.1 * t], 1) + 5   # offset: all cosines positive
    m = A.continuity_metrics(curve)
    assert m["nn_adjacent"] == 1.0 and m["gap"] > 0
    assert len(m["by_distance"]) == 19 and m["by_distance"][0] > m["by_distance"][-1]
    noise = np.random.default_rng(0).normal(size=(20, 50))
    assert A.continuity_metrics(noise)["nn_adjacent"] < 0.5


def test_continuity_test_detects_drift_and_not_gaussian():
    Ws = smooth_stack()
    for rep in A.REPRESENTATIONS:
        r = A.continuity_test(Ws, rep, n_shuffles=50, n_gaussian=2, seed=0)
        assert r["shows_continuity"], rep
        assert r["gap"]["p_shuffled"] < 0.05
    g = A.gaussian_like(Ws, torch.Generator().manual_seed(1))
    assert g.shape == Ws.shape
    r = A.continuity_test(g, "raw_weights", n_shuffles=50, n_gaussian=1, seed=0)
    assert not r["shows_continuity"]


def test_memory_bounded_c1_pieces_equal_the_direct_computations():
    """Per-layer SVDs one layer at a time equal the batched call; raw-weight cosines from a chunked float64 Gram
    equal those of the float64 rows; a shuffled order's metrics from the permuted cosine matrix equal those of
    the permuted rows (what continuity_test now computes, to bound memory for 1.5B stacks)."""
    Ws = smooth_stack(L=7)
    U, S, Vh = torch.linalg.svd(Ws.double(), full_matrices=False)
    rows, spectra = A.top1_rows_per_layer(Ws)
    assert np.array_equal(spectra, S.numpy()) and np.allclose(np.abs(rows), np.abs(Vh[:, 0, :].numpy()), atol=1e-12)
    X = A.raw_rows(Ws)
    assert np.allclose(A.raw_cos(Ws, chunk=37), A._cos_matrix(X), atol=1e-13)
    p = np.random.default_rng(3).permutation(7)
    direct, from_cos = A.continuity_metrics(X[p]), A.continuity_from_cos(A._cos_matrix(X)[np.ix_(p, p)])
    for k in ("adjacent", "distant", "gap", "nn_adjacent"):
        assert from_cos[k] == pytest.approx(direct[k], abs=1e-12)
    assert from_cos["gap"] != pytest.approx(A.continuity_metrics(X)["gap"], abs=1e-6)   # the order matters


def test_shuffling_is_a_row_permutation_of_the_concat_svd():
    """The concatenated SVD is invariant to block order (up to sign), which the shuffle control uses."""
    Ws = smooth_stack(L=6)
    perm = [3, 0, 5, 1, 4, 2]
    a, b = A.top1_rows_concat(Ws), A.top1_rows_concat(Ws[perm])
    assert np.allclose(np.abs(a[perm]), np.abs(b), atol=1e-5)


def test_embed_2d_shapes():
    X = smooth_stack(L=10).reshape(10, -1).numpy()
    e = A.embed_2d(X, perplexity=5)
    assert np.asarray(e["tsne"]).shape == (10, 2) and np.asarray(e["pca"]).shape == (10, 2)


def test_weight_metrics():
    W = torch.randn(8, 8)
    m = weight_metrics(W, W)
    assert m["r2"] == pytest.approx(1) and m["cosine"] == pytest.approx(1) and m["norm_ratio"] == pytest.approx(1)
    z = weight_metrics(torch.zeros(8, 8), W)
    assert z["norm_ratio"] == 0 and z["r2"] < 0.1
    assert weight_metrics(2 * W, W)["norm_ratio"] == pytest.approx(2)


def test_loo_layers():
    assert loo_layers(30, 4) == [2, 10, 19, 27]
    assert loo_layers(8, 10) == [2, 3, 4, 5]
    with pytest.raises(ValueError):
        loo_layers(4, 1)


@pytest.mark.parametrize("space", ["svd", "raw"])
def test_leave_one_layer_out_never_sees_the_layer(space, monkeypatch):
    Ws = smooth_stack(L=10, noise=0.0)
    cfg = PredictorConfig(epochs=3, hidden=32, space=space)
    seen = {}
    import lesa.grow.predictor as Pm

    real = Pm.train_predictor

    def spy(blocks, cfg, layers=None, **kw):
        seen["layers"] = layers
        seen["held_block_zero"] = bool((blocks[5] == 0).all())
        return real(blocks, cfg, layers=layers, **kw)

    monkeypatch.setattr(Pm, "train_predictor", spy)
    monkeypatch.setattr(lesa.study.predictor, "train_predictor", spy)     # imported at its top
    r = leave_one_layer_out(Ws, cfg, 5)
    assert not {4, 5, 6} & set(seen["layers"]) and seen["held_block_zero"]
    assert set(r["metrics"]) == {"predictor", "neighbour_average", "zeros", "copy_below", "copy_above", "ridge"}
    # on a smooth stack the neighbour average is already very good, and the middle layer is an exact
    # linear function of its neighbours, which the ridge baseline finds from the other triples
    assert r["metrics"]["neighbour_average"]["r2"] > 0.9
    assert r["metrics"]["ridge"]["r2"] > 0.99
    assert r["metrics"]["zeros"]["norm_ratio"] == 0
    assert r["train_mse"] > 0 and r["test_mse"] > 0


def test_train_full_reports_loss_scale_and_norms():
    Ws = smooth_stack(L=8)
    r = train_full(Ws, PredictorConfig(epochs=2, hidden=32))
    assert len(r["history"]) == 2 and r["target_mean_sq"] > 0
    assert len(r["inference"]) == 7 and len(r["in_sample_rows"]) == 6
    assert r["final_loss_over_mean_sq"] == pytest.approx(r["history"][-1] / r["target_mean_sq"])


def test_predictor_study_caches(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    cfg = PredictorConfig(epochs=1, hidden=16)
    s1 = predictor_study(tiny_llama, cfg, ["k"], ["k"], 1, ["k"], [0.0, 5e-4], "tiny-test")
    assert set(s1["lambda"]["k"]) == {"0.0", "0.0005"} and len(s1["loo"]["k"]) == 1
    # C7a's controls on the same left-out layer (issue 37), cached beside it
    (ctrl,) = s1["loo_controls"]["k"]
    assert ctrl["layer"] == s1["loo"]["k"][0]["layer"] and set(LOO_CONTROLS) <= set(ctrl)
    assert ctrl["zeros"]["test_mse"] == pytest.approx(s1["loo"]["k"][0]["target_mean_sq"])
    n = len(list(tmp_path.rglob("*.json")))
    s2 = predictor_study(tiny_llama, cfg, ["k"], ["k"], 1, ["k"], [0.0, 5e-4], "tiny-test")
    assert len(list(tmp_path.rglob("*.json"))) == n and s1["full"] == s2["full"]


def test_new_layer_stats_on_grown_model(tiny_llama, tmp_path, monkeypatch):
    # the notebooks grow through lesa.grow.expand.apply_plan (its cache is tested in test_expand)
    from lesa.grow.expand import apply_plan

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    plan = build_plan("lesa", 6, 9)
    g = apply_plan(tiny_llama, plan, PredictorConfig(epochs=1), copy_weights=False, progress=False, cache_key="tiny")
    assert g.config.lesa_growth["method"] == "lesa" and g.config.lesa_growth["new_layers"] == plan.new_layers
    rows = new_layer_stats(tiny_llama, g, plan)
    assert len(rows) == 3 * 7 and all(r["kind"] == "predict" for r in rows)
    assert all(r["cos_src1"] is not None and r["norm_ratio"] > 0 for r in rows)


def test_residual_effect_identity_layers_are_zero(tiny_llama):
    plan = build_plan("llama_pro", 6, 9)
    from lesa.grow.expand import apply_plan

    g = apply_plan(tiny_llama, plan, progress=False)
    rows = residual_effect(g, torch.randint(0, 128, (1, 16)))
    assert len(rows) == 9
    for r in rows:
        if r["layer"] in plan.new_layers:
            assert r["rel_update"] < 1e-6
        else:
            assert r["rel_update"] > 1e-3


def test_cpt_readers(tmp_path):
    def write_run(name, method, losses, step_s, train_all=False):
        d = tmp_path / name
        d.mkdir()
        with open(d / "train_log.jsonl", "w") as f:
            for i, l in enumerate(losses):
                f.write(json.dumps({"step": i + 1, "loss": l, "tokens": (i + 1) * 100, "flops": (i + 1) * 1e9,
                                    "elapsed_s": (i + 1) * step_s, "step_s": step_s}) + "\n")
        (d / "summary.json").write_text(json.dumps({"completed": True, "growth": {"method": method},
                                                    "config": {"train_all": train_all}}))
    x = np.arange(100)
    write_run("lesa", "lesa", list(2 + np.exp(-x / 5)), 1.0)
    write_run("llama_pro", "llama_pro", list(2 + np.exp(-x / 30)), 1.24)
    write_run("solar", "solar", list(2.5 + np.exp(-x / 30)), 1.66)
    write_run("lesa-unfrozen", "lesa", list(2.2 + np.exp(-x / 30)), 1.5, train_all=True)
    # two more data orders of LLaMA Pro, one slowed by other work on the machine: the method's step time is its
    # median run's (1.24 s), not the slowed one's and not the first one's
    write_run("llama_pro-seed1", "llama_pro", list(2 + np.exp(-x / 30)), 3.0)
    write_run("llama_pro-seed2", "llama_pro", list(2 + np.exp(-x / 30)), 1.1)
    runs = load_cpt_runs(tmp_path)
    assert set(runs) == {"lesa", "llama_pro", "llama_pro-seed1", "llama_pro-seed2", "solar", "lesa-unfrozen"}
    # a profile before its first run (no folder yet, or none found): no runs, not an error
    assert load_cpt_runs(tmp_path / "not-yet") == {} and load_cpt_runs(None) == {}
    assert not runs["lesa-unfrozen"]["frozen"]
    st = step_times(runs)
    assert set(st) == {"lesa", "llama_pro", "solar"} and st["llama_pro"] == [1.24] * 99
    assert step_times(runs, frozen=False) == {"lesa": [1.5] * 99}
    # a run whose steps read the frozen-prefix store (lesa.prefix_store) gives no step times: they are not its cost
    s = json.loads((tmp_path / "llama_pro-seed2" / "summary.json").read_text())
    (tmp_path / "llama_pro-seed2" / "summary.json").write_text(json.dumps({**s, "prefix_reuse": {"train_batches_reused": 5}}))
    runs2 = load_cpt_runs(tmp_path)
    assert step_times(runs2)["llama_pro"] == [1.24] * 99        # the median of the other two (1.24, 3.0): the lower
    for n in ("llama_pro", "llama_pro-seed1"):
        p = tmp_path / n / "summary.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), "prefix_reuse": {"train_batches_reused": 5}}))
    assert "llama_pro" not in step_times(load_cpt_runs(tmp_path))
    c = cpt_comparison(runs, window=5)
    assert c["step_time_ratio"]["solar"] == pytest.approx(1.66)
    assert c["step_time_ratio"]["llama_pro"] == pytest.approx(1.24)
    assert c["reach"]["llama_pro"]["lesa"]["step"] < 50
    assert c["unfrozen"]["lesa"] > c["final_loss"]["lesa"]
    assert steps_to_reach(runs["solar"]["train"], 0.0) is None


def test_main_table_and_find_results(tmp_path):
    for label, task, v in [("lesa-6k", "ppl_wikitext", 5.0), ("lesa-6k", "arc_easy", 0.6),
                           ("lesa-6k", "piqa", 0.7), ("solar-6k", "ppl_heldout", 9.0)]:
        p = tmp_path / "gpu" / "downstream" / label / f"{task}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"label": label, "task": task, "value": v, "primary_metric": "m"}))
    d, src = find_results("cpu", "downstream", ("gpu",), root=tmp_path)
    assert src == "gpu"
    t = main_table(load_eval_records(d))
    assert t["lesa-6k"]["avg"] == pytest.approx(65) and t["lesa-6k"]["ppl"] == 5.0
    assert t["solar-6k"]["ppl_source"] == "held-out token ppl"
    assert find_results("cpu", "cpt", ("gpu",), root=tmp_path) == (None, None)
    # a record of an earlier training of the same run name (other weights) is left out and reported
    for task, key in [("piqa", "new"), ("hellaswag", "old")]:
        (d / "lesa-6k" / f"{task}.json").write_text(json.dumps(
            {"label": "lesa-6k", "task": task, "value": 0.9 if key == "old" else 0.7, "primary_metric": "m",
             "weights_id": {"run_key": key, "step": 30}}))
    stale: list = []
    t = main_table(load_eval_records(d, {"lesa-6k": "new"}, stale))
    assert t["lesa-6k"]["avg"] == pytest.approx(65) and stale == [str(d / "lesa-6k" / "hellaswag.json")]
    assert main_table(load_eval_records(d))["lesa-6k"]["avg"] == pytest.approx(220 / 3)   # unfiltered: mixed


def test_method_row_picks_the_methods_own_run():
    """Notebook 5's row per method: cpu-long names LLaMA Pro's evaluated run `llama_pro-seed0` (it has data orders),
    which must count as LLaMA Pro's; ablations and variants with plan options never do."""
    table = {n: {"ppl": float(i)} for i, n in enumerate(["lesa", "lesa-unfrozen", "llama_pro-seed0", "lesa_fp-0-p0",
                                                         "solar-300", "solar-3000"])}
    run = lambda m, frozen=True, options=None: {"method": m, "frozen": frozen, "options": options or {}}
    runs = {"lesa": run("lesa"), "lesa-unfrozen": run("lesa", False), "llama_pro-seed0": run("llama_pro"),
            "llama_pro-seed1": run("llama_pro"), "lesa_fp-0-p0": run("lesa_fp", options={"alpha": 0.0}),
            "solar-300": run("solar"), "solar-3000": run("solar")}
    assert method_row(table, runs, "llama_pro") is table["llama_pro-seed0"]
    assert method_row(table, runs, "lesa") is table["lesa"]
    assert method_row(table, runs, "solar") is table["solar-3000"]          # the largest budget
    assert method_row(table, runs, "lesa_fp") is None and method_row(table, runs, "base") is None
    # downstream results without their CPT records: the method is read from the name, seeds and ablations left out
    assert method_row(table, {}, "solar") is table["solar-3000"] and method_row(table, {}, "llama_pro") is None
    del table["lesa"]
    assert method_row(table, runs, "lesa") is None and method_row(table, {}, "lesa") is None


def test_verdicts(tmp_path):
    v = verdict("C1", "s", "p", "o", "reproduced", "e", "nb")
    with pytest.raises(ValueError):
        verdict("C1", "s", "p", "o", "probably", "e", "nb")
    path = write_verdicts(tmp_path, "nb", [v], profile="smoke")
    assert json.loads(path.read_text())["verdicts"][0]["verdict"] == "reproduced"
    assert "reproduced" in verdict_markdown([v])
    assert fmt(None) == "n/a" and fmt(1234.5678) == "1,235" and fmt(0.5) == "0.5"
    assert fmt(525.26428, 5) == "525.26" and fmt(20.0365, 5) == "20.037" and fmt(874810.0, 5) == "8.7481e+05"
    assert fmt(30.42) == "30.4" and fmt(96.0) == "96" and fmt(1.10) == "1.1" and fmt(2000.0) == "2,000"
    assert [and_list(x) for x in (["a"], ("a", "b"), ["a", "b", "c"])] == ["a", "a and b", "a, b and c"]


# ------------------------------------------------------------------------------ profiles
def test_profiles_validate_and_resolve(monkeypatch):
    from lesa.study import profiles as Pr

    for name in ("smoke", "cpu", "gpu", "paper"):
        p = Pr.load_profile(name, check_device=False)
        assert p["name"] == name
    monkeypatch.setattr(Pr, "cuda_available", lambda: False)
    assert Pr.resolve_profile("auto") == "cpu"
    with pytest.raises(Pr.ProfileError, match="needs a CUDA GPU"):
        Pr.load_profile("gpu")
    monkeypatch.setattr(Pr, "cuda_available", lambda: True)
    assert Pr.resolve_profile("auto") == "gpu"
    bad = Pr.load_profile("smoke", check_device=False)
    bad["svd"]["weight_types"] = ["qkv"]
    with pytest.raises(Pr.ProfileError, match="unknown weight types"):
        Pr.validate(bad)
    bad = Pr.load_profile("smoke", check_device=False)
    bad["expansion"]["lr"] = 1.0
    with pytest.raises(Pr.ProfileError, match="unknown keys"):
        Pr.validate(bad)
    with pytest.raises(Pr.ProfileError, match="no profile"):
        Pr.load_profile("nope")
    for sec, key in (("protocol", "precision"), ("cpt", "precision")):
        bad = Pr.load_profile("cpu", check_device=False)
        (bad[sec] if sec == "protocol" else bad[sec]["eval"])[key] = "fp16"
        with pytest.raises(Pr.ProfileError, match=f"{key} must be one of"):
            Pr.validate(bad)


def test_paper_profile_dry_run():
    from lesa.study.profiles import dry_run

    out = dry_run("paper")
    assert "32 -> 48" in out and "16, 18, 20" in out


def test_plots_draw_from_records(tmp_path):
    from lesa.plots.growth import continuity_summary, embeddings, similarity_by_distance, spectra
    from lesa.plots.style import save, setup

    setup()
    Ws = smooth_stack(L=8)

    class M:
        pass
    ev = {"num_layers": 8, "weight_types": {}}
    for t in ("q", "gate"):
        ev["weight_types"][t] = {"shape": list(Ws.shape), "spectrum": A.spectrum_concat(Ws).tolist(),
                                 "spectrum_gaussian": A.spectrum_concat(Ws).tolist(),
                                 "spectrum_per_layer": A.top1_rows_per_layer(Ws)[1].tolist(),
                                 "embedding": A.embed_2d(A.top1_rows_concat(Ws), 3),
                                 "tests": {r: A.continuity_test(Ws, r, 5, 1) for r in A.REPRESENTATIONS}}
    for name, fig in [("s", spectra(ev)), ("t", embeddings(ev)), ("d", similarity_by_distance(ev)),
                      ("c", continuity_summary(ev))]:
        assert save(fig, tmp_path, name).stat().st_size > 1000


def test_svd_evidence_reuses_one_factorisation_with_identical_results():
    """svd_evidence factorises once per weight type and hands the rows to continuity_test; the
    records must equal those computed from scratch representation by representation."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=6,
                                     num_attention_heads=4, num_key_value_heads=2))
    ev = A.svd_evidence(m, ["q", "gate"], n_shuffles=20, n_gaussian=2, tsne_perplexity=2.0)
    for short in ("q", "gate"):
        Ws = stack_weights(m, short)
        rec = ev["weight_types"][short]
        assert np.allclose(rec["spectrum"], A.spectrum_concat(Ws), rtol=1e-6)
        assert np.allclose(rec["spectrum_per_layer"], A.top1_rows_per_layer(Ws)[1])
        gen = torch.Generator().manual_seed(0)
        assert rec["spectrum_gaussian"] == A.spectrum_concat(A.gaussian_like(Ws, gen)).tolist()
        for rep in A.REPRESENTATIONS:
            fresh = A.continuity_test(Ws, rep, 20, 2)         # from scratch: its own SVDs and Gaussian draws
            for k in ("adjacent", "distant", "gap", "nn_adjacent"):
                assert rec["tests"][rep]["observed"][k] == pytest.approx(fresh["observed"][k], abs=1e-9), (rep, k)
            for key in ("gap", "nn_adjacent", "adjacent"):    # the controls: the same numbers, shared draws
                assert rec["tests"][rep][key] == pytest.approx(fresh[key], abs=1e-9), (rep, key)
            assert rec["tests"][rep]["gaussian_by_distance"] == pytest.approx(fresh["gaussian_by_distance"], abs=1e-9)
            assert rec["tests"][rep]["shows_continuity"] == fresh["shows_continuity"]


def test_predictor_study_factorises_each_type_once_with_identical_results(tiny_llama, tmp_path, monkeypatch):
    """The full training and every lambda of a weight type share one factorisation (factorize_type);
    the numbers equal train_full computing its own SVD, as before the sharing."""
    import lesa.grow.svd as S
    import lesa.study.common

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    calls, real = [], S.factorize
    counting = lambda W, *a, **k: calls.append(tuple(W.shape)) or real(W, *a, **k)    # noqa: E731
    monkeypatch.setattr(S, "factorize", counting)
    monkeypatch.setattr(lesa.study.common, "factorize", counting)       # imported at its top
    cfg = PredictorConfig(epochs=1, hidden=16)
    s = predictor_study(tiny_llama, cfg, ["k"], [], 1, ["k"], [0.0, 5e-4], "tiny-factor-once")
    assert len(calls) == 1                                # full recipe + 2 lambdas: one SVD
    Ws = stack_weights(tiny_llama, "k")
    for got, c in ((s["full"]["k"], cfg), (s["lambda"]["k"]["0.0"], PredictorConfig(epochs=1, hidden=16, lam=0.0))):
        fresh = json.loads(json.dumps(train_full(Ws, c)))
        assert {k: v for k, v in got.items() if k != "seconds"} == {k: v for k, v in fresh.items() if k != "seconds"}


def test_quiet_keeps_prints_and_logs_off_the_page(capsys):
    import logging

    from lesa.book.page import quiet

    with quiet() as buf:
        print("[eval] model arc_easy: acc_norm=0.5")
        logging.getLogger("lm_eval").warning("noisy")
    assert "[eval]" in buf.getvalue() and capsys.readouterr().out == ""
    with pytest.raises(ValueError):
        with quiet():
            raise ValueError("errors still propagate")
    assert logging.root.manager.disable == 0


def test_protocol_cache_follows_the_weights_not_the_name(tiny_llama, tmp_path, monkeypatch):
    """A perplexity is measured once per (weights, protocol, measurement code): the same weights under another
    name reuse it (notebooks 3 and 5, a refactor of the growth code), a changed weight is measured again."""
    import copy

    import torch

    from lesa.eval import protocol

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(protocol, "measure", lambda m, t, p: calls.append(1) or {"fixture": {"value": float(len(calls))}})
    proto = protocol.PplProtocol(sets=("fixture",))
    first = protocol.measure_cached(tiny_llama, None, proto, "tiny", "base")
    twin = copy.deepcopy(tiny_llama)
    assert protocol.weights_fingerprint(twin) == protocol.weights_fingerprint(tiny_llama)
    assert protocol.measure_cached(twin, None, proto, "tiny", "another name", {"method": "x"}) == first
    assert len(calls) == 1
    with torch.no_grad():
        twin.model.layers[3].mlp.down_proj.weight[0, 0] += 1e-3
    assert protocol.weights_fingerprint(twin) != protocol.weights_fingerprint(tiny_llama)
    assert protocol.measure_cached(twin, None, proto, "tiny", "base")["fixture"]["value"] == 2.0
    # another protocol (window length) is another measurement
    protocol.measure_cached(tiny_llama, None, protocol.PplProtocol(sets=("fixture",), max_length=64), "tiny", "base")
    assert len(calls) == 3


def test_a_single_run_display_shows_the_profiles_first_seed_and_the_seed_rule_reads_every_run():
    """Issue 37: cpu-long names LESA's runs lesa-p1 (the median predictor seed, first), lesa-p0, lesa-p2. A
    single-run display shows lesa-p1, not lesa-p0 by name order; the one seed rule reads every finished run."""
    first = first_seed_runs("cpu-long")
    assert {"lesa-p1", "llama_pro-seed0", "lesa-unfrozen"} <= first and not {"lesa-p0", "lesa-p2"} & first
    assert first_seed_runs("no-such-profile") == frozenset()
    table = {n: {"ppl": float(i)} for i, n in enumerate(["lesa-p0", "lesa-p1", "lesa-p2"])}
    ev = [{"tokens": 0, "heldout_loss": 5.0}, {"tokens": 10, "heldout_loss": 4.0}]
    run = lambda done=True, ablation=None: {"method": "lesa", "frozen": ablation is None, "options": {},
                                            "ablation": ablation, "completed": done, "eval": ev,
                                            "train": [{"step": 1, "loss": 1.0}]}
    runs = {"lesa-p0": run(), "lesa-p1": run(), "lesa-p2": run(False), "lesa-unfrozen": run(ablation="unfrozen")}
    assert method_row(table, runs, "lesa", first) is table["lesa-p1"]
    assert method_row(table, runs, "lesa") is table["lesa-p0"]                  # without it: name order
    assert runs_by_method(runs, True, first)["lesa"]["name"] == "lesa-p1"
    assert runs_by_method(runs, True)["lesa"]["name"] == "lesa-p0"
    assert len(method_logs(runs, "lesa")) == 2                                   # lesa-p2 still training
    assert len(method_logs(runs, "lesa", "unfrozen")) == 1 and method_logs(runs, "solar") == []
