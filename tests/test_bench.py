"""Benchmarks: the training bench runs both trainers on the same parameters and tokens, and the book
tables render from result files (tiny random Llama, CPU; no timing is asserted)."""
from __future__ import annotations

import numpy as np
import pytest

from lesa.bench.evaluation import recorded_eval_rates
from lesa.bench.expansion import end_to_end
from lesa.bench.hardware import bench_hardware
from lesa.bench.report import _md_end_to_end, bench_markdown
from lesa.bench.training import bench_precision, bench_training, trained_params
from lesa.grow.expand import apply_plan
from lesa.core.flops import flops_per_token
from lesa.grow.plans import build_plan
from lesa.data.shards import write_shards
from lesa.core.store import write_json

B, T, WARMUP, STEPS = 2, 16, 1, 2


@pytest.fixture
def grown(tiny_llama):
    return apply_plan(tiny_llama, build_plan("llama_pro", 6), progress=False)     # 6 -> 9 layers


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    return write_shards(tmp_path / "train", rng.integers(0, 128, (24, 32)), seq_len=32, vocab_size=128)


def test_training_bench_runs_both_trainers_on_the_new_layers(grown, shards, tmp_path):
    before = {n: p.detach().clone() for n, p in grown.named_parameters()}
    out = tmp_path / "bench" / "training_tiny_cpu.json"
    s = bench_training(grown, shards, label="tiny", batch=B, seq=T, warmup=WARMUP, steps=STEPS, out=out)
    assert out.exists() and s["kind"] == "training" and s["device"] == "cpu"
    new = grown.config.lesa_growth["new_layers"]
    assert s["new_layers"] == new and len(new) == 3
    expected = sorted(f"model.layers.{i}.{n}" for i in new for n, _ in grown.model.layers[i].named_parameters())
    numel = sum(p.numel() for i in new for p in grown.model.layers[i].parameters())
    for name in ("lesa", "hf_trainer"):
        r = s["trainers"][name]
        assert r["steps_run"] == WARMUP + STEPS
        assert r["tokens_seen"] == (WARMUP + STEPS) * B * T             # counted in the model's forward
        assert r["tokens_timed"] == STEPS * B * T and len(r["step_s"]) == STEPS
        assert r["trainable_tensors"] == r["changed_tensors"] == len(expected)
        assert r["trained_numel"] == numel and r["new_layers_only"]
        assert r["tokens_per_s"] > 0 and r["mfu"] is None                # no peak on CPU unless given
    assert s["trainers"]["lesa"]["tokens_logged"] == (WARMUP + STEPS) * B * T
    assert s["same_trained_params"]
    assert s["hf_training_args"]["use_cpu"] and s["hf_training_args"]["per_device_train_batch_size"] == B
    # the grown model itself is untouched (each trainer got a copy)
    assert all(p.equal(before[n]) for n, p in grown.named_parameters())
    # lesa's FLOP count: the frozen layers above the lowest new one pay forward + input-gradient
    assert s["flops_per_token"] == flops_per_token(grown, new, T)["total"]


def test_trained_params_sees_a_change(grown):
    import copy

    import torch

    m = copy.deepcopy(grown)
    for p in m.parameters():
        p.requires_grad_(False)
    w = m.model.layers[0].mlp.up_proj.weight
    w.requires_grad_(True)
    with torch.no_grad():
        w[0, 0] += 1
    assert trained_params(m, grown) == {"trainable": ["model.layers.0.mlp.up_proj.weight"],
                                              "changed": ["model.layers.0.mlp.up_proj.weight"]}


def test_recorded_eval_rates(tmp_path):
    write_json(tmp_path / "m" / "piqa.json", {"label": "m", "task": "piqa", "n_samples": 200, "seconds": 16.0,
                                              "batch_size": 8, "provenance": {"hardware": {"cpus": 2}}})
    write_json(tmp_path / "m" / "bad.json", {"task": "x", "n_samples": 0, "seconds": 1.0})
    rows = recorded_eval_rates(tmp_path)
    assert [r["task"] for r in rows] == ["piqa"] and rows[0]["samples_per_s"] == 200 / 16.0


def test_bench_markdown_renders_result_files(grown, shards, tmp_path):
    res = tmp_path / "bench"
    s = bench_training(grown, shards, label="tiny", batch=B, seq=T, warmup=WARMUP, steps=1,
                             precision_steps=3, heldout=shards, out=res / "training_tiny_cpu.json")
    p = s["precision"]                          # fp32 vs bf16 on the same batches, stepped in turn
    assert set(p["runs"]) == {"fp32", "bf16"} and all(len(r["loss"]) == 3 for r in p["runs"].values())
    assert p["runs"]["fp32"]["loss"] != p["runs"]["bf16"]["loss"] and p["loss_max_rel_diff"] < 0.05
    assert p["runs"]["bf16"]["heldout_ppl_end"] > 0 and p["heldout_ppl_max_rel_diff"] < 0.05
    write_json(res / "eval_tiny_cpu.json", {
        "kind": "eval", "label": "tiny", "device": "cpu", "dtype": "bfloat16", "limit": 4, "ppl_limit": 1,
        "rows": [{"task": "piqa", "n_samples": 4, "requests": 8, "seconds": 2.0, "samples_per_s": 2.0,
                  "requests_per_s": 4.0, "batch_size": 8}],
        "recorded": [{"task": "arc_easy", "n_samples": 500, "seconds": 653.4, "samples_per_s": 500 / 653.4,
                      "batch_size": 32, "cpus": 2, "threads": 1, "file": "base/m/arc_easy.json"}],
        "provenance": s["provenance"]})
    md = bench_markdown(res)
    assert "### Training: tiny grown by LLaMA Pro to 9 layers (3 new), on the CPU" in md
    lines = md.splitlines()
    lesa_row = next(ln for ln in lines if ln.startswith("| lesa |"))
    hf_row = next(ln for ln in lines if ln.startswith("| HF Trainer |"))
    assert "lesa: the lesa trainer (`lesa.train.trainer.train`); HF Trainer: a default `transformers.Trainer`." in md
    from lesa.claims.paper import fmt
    assert fmt(s["trainers"]["lesa"]["tokens_per_s"]) in lesa_row
    assert fmt(s["trainers"]["hf_trainer"]["tokens_per_s"]) in hf_row
    assert "| piqa | 4 | 8 | 2 |" in md and "| piqa | 2 | 4 | 8 |" in md        # seven columns as two tables
    # the records' one folder is said above their table instead of repeated in a column
    assert "From the recorded results runs" in md and "records `base/m/<task>.json`" in md
    assert "| task | samples | seconds | samples/s |\n" in md and "| task | batch | hardware |\n" in md
    assert "results/bench/training_tiny_cpu.json" in md and s["provenance"]["time_utc"] in md
    assert f"bf16 / fp32 tokens/s: **x{p['tokens_per_s_ratio_bf16_over_fp32']:.2f}**" in md
    assert "Not measured yet" in md                               # only CPU results here
    assert "No benchmark results yet" in bench_markdown(tmp_path / "empty")


def test_a_wide_table_is_split_into_narrow_ones_that_repeat_its_key_columns():
    from lesa.bench.report import _narrow, _table

    head = ["precision", "run", "a", "b", "c", "d", "e"]
    md = _narrow(head, [["fp32", "full", 1, 2, 3, 4, 5], ["bf16", "reuse", 6, 7, 8, 9, 10]], keys=2, width=5)
    tables = "\n".join(md).strip().split("\n\n")
    assert [t.splitlines()[0] for t in tables] == ["| precision | run | a | b | c |", "| precision | run | d | e |"]
    assert "| bf16 | reuse | 6 | 7 | 8 |" in tables[0] and "| bf16 | reuse | 9 | 10 |" in tables[1]
    narrow = [["fp32", "full", 1]]                                       # one that fits stays one table
    assert _narrow(head[:3], narrow, keys=2) == _table(head[:3], narrow)


def test_end_to_end_expansion_times_every_stage_and_renders(tiny_llama):
    from lesa.grow.predictor import PredictorConfig

    e = end_to_end(tiny_llama, PredictorConfig(epochs=1), load_s=0.5)
    assert e["predictor_workers"] == 1                     # a tiny job is not worth extra processes
    assert e["total_s"] == pytest.approx(e["load_s"] + e["grow_s"] + e["save_s"])
    assert 0 < e["svd_s"] <= e["grow_s"]
    assert e["identical_with_denormals_kept"] is True and e["grow_s_denormals_kept"] > 0
    assert e["predictors_batched"] is False and e["grow_s_batched"] > 0         # the batched path, same run
    assert e["total_s_one_by_one"] == pytest.approx(e["total_s"])
    assert e["batched_vs_one_by_one_max_abs_diff"] < 1e-5
    md = "\n".join(_md_end_to_end(e))
    within = e["total_s"] <= e["goal_s"]
    assert "lesa expand" in md and f"{'within' if within else 'over'} the {e['goal_s']:.0f} s a user should wait" in md
    assert "identical bit for bit" in md and "one batched MLP" in md


def test_precision_bench_alone_writes_and_renders(grown, shards, tmp_path):
    out = tmp_path / "bench" / "training_precision_tiny_cpu.json"
    s = bench_precision(grown, shards, shards, label="tiny", batch=B, seq=T, steps=2, out=out)
    assert out.exists() and s["kind"] == "precision" and s["steps"] == 2 and s["interleaved"]
    assert s["new_layers"] == grown.config.lesa_growth["new_layers"]
    md = bench_markdown(out.parent)
    assert "### Training precision: tiny grown by LLaMA Pro to 9 layers (3 new), on the CPU" in md
    assert f"x{s['tokens_per_s_ratio_bf16_over_fp32']:.2f}" in md


def test_eval_and_end_to_end_tables_render_the_new_measurements(tmp_path):
    """Renderers only (the numbers come from `make bench`): prefix-sharing vs HFLM with its token
    ceiling, the bf16 WikiText line or why it was not measured, the end-to-end expansion file."""
    prov = {"time_utc": "2026-11-28T10:00:00Z", "commit": "abc", "hardware": {"cpus": 2}, "versions": {}}
    row = {"task": "arc_easy", "precision": "fp32", "batch_size": 8, "n_samples": 20, "hf_samples_per_s": 1.0,
           "prefix_samples_per_s": 1.9, "speedup": 1.9, "tokens_hflm": 2600, "tokens_prefix": 1130, "ceiling": 2.3}
    write_json(tmp_path / "eval_m_cpu.json", {"kind": "eval", "label": "m", "device": "cpu", "dtype": "float32",
                                              "limit": 20, "ppl_limit": 1, "rows": [], "prefix_vs_hf": [row],
                                              "wikitext_bf16": {"status": "bf16 not supported on this device"},
                                              "provenance": prov})
    write_json(tmp_path / "expansion_e2e_m_cpu.json", {
        "kind": "expansion_e2e", "label": "m", "device": "cpu", "provenance": prov,
        "end_to_end": {"load_s": 1.0, "svd_s": 2.0, "grow_s": 50.0, "save_s": 1.0, "total_s": 52.0, "goal_s": 60.0,
                       "predictor_workers": 2, "cpus": 2, "total_s_batched": 70.0, "total_s_one_by_one": 52.0,
                       "batched_vs_one_by_one_max_abs_diff": 1e-5}})
    write_json(tmp_path / "expansion_m_cpu.json", {
        "kind": "expansion", "label": "m", "device": "cpu", "provenance": prov, "max_steps_measured": 5,
        "ours_full_recipe_s": 3.0, "released_full_recipe_s": 6.0, "speedup": 2.0, "peak_mem_gb": 1.0,
        "rows": [{"weight": "q", "shape": [4, 8, 8], "ours_svd_s": 0.5, "released_svd_s": 1.5, "svd_speedup": 3.0,
                  "ours_train_s": 0.02, "ours_steps": 10, "released_train_s": 0.04, "released_steps": 10,
                  "train_step_speedup": 2.0, "ours_full_recipe_s": 3.0, "released_full_recipe_s": 6.0}]})
    md = bench_markdown(tmp_path)
    # the expansion's stages in three narrow tables: SVD, one predictor step (ms), the full recipe
    assert "| q | 4x8x8 | 0.5 | 1.5 | 3 |" in md and "| q | 2 | 4 | 2 |" in md and "| q | 3 | 6 |" in md
    assert "**3.0 s** against 6.0 s for the released recipe, **x2.00**" in md
    assert "| arc_easy | 20 | 1 | 1.9 | x1.9 |" in md and "| arc_easy | 2,600 | 1,130 | x2.3 |" in md
    assert "WikiText in bf16: not measured (bf16 not supported on this device)" in md
    assert "### Expansion end to end: m on the CPU" in md and "end to end 70.0 s against 52.0 s one by one" in md


def test_hardware_bench_measures_both_precisions_in_one_run_and_renders(tiny_qwen2, tmp_path):
    """fp32 and bf16 side by side (a matmul, forward, training step) and the shared prefix, on a tiny Qwen2
    (sliding layers); the model comes back in eval mode with its weights untouched."""
    import torch

    before = {k: v.clone() for k, v in tiny_qwen2.state_dict().items()}
    out = tmp_path / "bench" / "hardware_tiny_cpu.json"
    d = bench_hardware("tiny", model=tiny_qwen2, matmul_size=64, batch=2, seq=16, train_batch=2, train_seq=16,
                             prefix_batch=2, prefix_seq=16, reps=1, out=out)
    assert d["kind"] == "hardware" and d["cpu_model"] and d["auto"].split()[0] in ("fp32", "bf16")
    for k in ("matmul", "forward", "train_step"):
        assert d[k]["bf16_speedup"] > 0
    assert d["train_step"]["fp32_loss"] != d["train_step"]["bf16_loss"]          # bf16 really ran
    p = d["shared_prefix"]
    assert p["shared_layers"] == min(build_plan("average", 6).new_layers)
    assert p["fp32"]["bitwise_equal"] and p["bf16"]["bitwise_equal"] and p["fp32"]["saving"] > 0
    assert not tiny_qwen2.training
    assert all(torch.equal(before[k], v) for k, v in tiny_qwen2.state_dict().items())
    md = bench_markdown(out.parent)
    assert "bf16 and the shared prefix" in md and "train step 2 x 16" in md
    from lesa.core.precision import HOST_WORDS, host_class
    heading = next(line for line in md.splitlines() if line.startswith("### bf16 and the shared prefix"))
    assert heading.endswith(HOST_WORDS[host_class(d["bf16_flags"])])                  # the host class heads it


def test_cpu_hardware_records_are_named_by_host_class(monkeypatch):
    """A hardware bench on one CPU host class does not overwrite another class's record; a GPU's is unchanged."""
    import argparse

    import lesa.bench.run as run

    monkeypatch.setattr(run, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    args = argparse.Namespace(model="smollm2-135m", device="cpu")
    assert run._out(args, "hardware", by_host=True).name == "hardware_smollm2-135m_cpu_avx512bf16.json"
    assert run._out(args, "training").name == "training_smollm2-135m_cpu.json"
    monkeypatch.setattr(run, "cpu_bf16_flags", lambda: ["amx_bf16", "avx512_bf16"])
    assert run._out(args, "hardware", by_host=True).name.endswith("_cpu_amx.json")
    args.device = "cuda:0"
    assert run._out(args, "hardware", by_host=True).name == "hardware_smollm2-135m_cuda.json"
