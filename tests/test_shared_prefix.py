"""Grown models start from the base model's cached bottom-layer states: bitwise the full forward."""
import pytest
import torch

from lesa.eval.scoring import score_continuations
from lesa.grow.expand import apply_plan
from lesa.grow.plans import build_plan
from lesa.grow.predictor import PredictorConfig
from lesa.eval.shared_prefix import SharedPrefix, prefix_hidden, shared_depth

FAST = PredictorConfig(epochs=1)


def grow(model, method, **kw):
    return apply_plan(model, build_plan(method, model.config.num_hidden_layers, 9, **kw), FAST, progress=False,
                      copy_weights=False)


def batch(seed=0):
    """Right-padded batch of three rows of different lengths, as score_continuations builds it."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 128, (3, 40), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 9:] = 0
    return ids, mask


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2"])
@pytest.mark.parametrize("method", ["lesa", "solar", "lesa_raw", "lesa_fp"])
def test_shared_prefix_is_bitwise_the_full_forward(family, method, request):
    model = request.getfixturevalue(family)
    grown = grow(model, method)
    first_new = min(build_plan(method, 6, 9).new_layers)
    depth = shared_depth(model, grown)
    assert 0 < depth <= first_new
    ids, mask = batch()
    with torch.no_grad():
        full = grown(input_ids=ids, attention_mask=mask).logits
    shared = SharedPrefix(model)
    with torch.no_grad(), shared.attach(grown) as d:
        assert d == depth
        fast = grown(input_ids=ids, attention_mask=mask).logits
        again = grown(input_ids=ids, attention_mask=mask).logits          # from the cache
    assert shared.misses == 1 and shared.hits == 1
    assert fast.dtype == full.dtype and torch.equal(fast, full) and torch.equal(again, full)
    with torch.no_grad():                                                  # detached again: the model is intact
        assert torch.equal(grown(input_ids=ids, attention_mask=mask).logits, full)
    (cached,) = shared.cache.values()
    cached.mul_(0.5)                                                       # the cached states are what it runs on
    with torch.no_grad(), shared.attach(grown):
        assert not torch.equal(grown(input_ids=ids, attention_mask=mask).logits, full)


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2"])
def test_scoring_through_a_shared_prefix_is_identical(family, request):
    """score_continuations (what every perplexity runs) gives the same numbers, fp32 and bf16 autocast."""
    model = request.getfixturevalue(family)
    g = torch.Generator().manual_seed(3)
    items = [(torch.randint(0, 128, (n,), generator=g).tolist(), torch.randint(0, 128, (m,), generator=g).tolist())
             for n, m in ((1, 30), (12, 5), (20, 20), (3, 7))]
    shared = SharedPrefix(model)
    for seed in (0, 1):                                                    # two predictor seeds, one prefix
        grown = apply_plan(model, build_plan("lesa", 6, 9), PredictorConfig(epochs=1, seed=seed), progress=False,
                           copy_weights=False)
        for prec in ("fp32", "bf16"):
            full = score_continuations(grown, items, max_length=32, batch_size=2, progress=False, precision=prec)
            with shared.attach(grown):
                fast = score_continuations(grown, items, max_length=32, batch_size=2, progress=False,
                                           precision=prec)
            assert fast == full, (seed, prec)
    assert shared.hits == 2 * 2 and shared.misses == 2 * 2    # 2 batches x 2 precisions, reused by seed 1


def test_depth_follows_the_tensors_not_the_indices(tiny_llama):
    grown = grow(tiny_llama, "lesa")
    d = shared_depth(tiny_llama, grown)
    assert d == min(build_plan("lesa", 6, 9).new_layers)
    with torch.no_grad():
        grown.model.layers[1].mlp.up_proj.weight[0, 0] += 1.0     # shared storage: changes the base too
    assert shared_depth(tiny_llama, grown) == d
    g2 = apply_plan(tiny_llama, build_plan("lesa", 6, 9), FAST, progress=False)   # its own copy
    with torch.no_grad():
        g2.model.layers[1].mlp.up_proj.weight[0, 0] += 1.0
    assert shared_depth(tiny_llama, g2) == 1
    with torch.no_grad():
        g2.model.embed_tokens.weight[0, 0] += 1.0
    assert shared_depth(tiny_llama, g2) == 0
    ids, mask = batch()
    shared = SharedPrefix(tiny_llama)
    with torch.no_grad():
        full = g2(input_ids=ids, attention_mask=mask).logits
        with shared.attach(g2) as depth:                              # nothing shared: nothing changes
            assert depth == 0 and torch.equal(g2(input_ids=ids, attention_mask=mask).logits, full)
    assert shared.misses == 0


def test_prefix_hidden_is_the_layer_input(tiny_qwen2):
    ids, mask = batch(1)
    with torch.no_grad():
        out = tiny_qwen2.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    for k in (0, 2, 5):
        assert torch.equal(prefix_hidden(tiny_qwen2, k, input_ids=ids, attention_mask=mask), out.hidden_states[k])


def test_gemma3_sliding_and_global_rotary_layers():
    """Gemma 3: sliding and full layers with their own rotary embeddings and masks, sandwich norms."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(3)
    cfg = Gemma3TextConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=8, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=128, max_position_embeddings=128,
                           sliding_window=8, sliding_window_pattern=3, query_pre_attn_scalar=16)
    model = Gemma3ForCausalLM(cfg).eval()
    grown = apply_plan(model, build_plan("lesa", 8, 12), FAST, progress=False, copy_weights=False)
    ids, mask = batch()
    with torch.no_grad():
        full = grown(input_ids=ids, attention_mask=mask).logits
    shared = SharedPrefix(model)
    with torch.no_grad(), shared.attach(grown) as depth:
        fast = grown(input_ids=ids, attention_mask=mask).logits
    assert depth == min(build_plan("lesa", 8, 12).new_layers) and shared.misses == 1
    assert torch.equal(fast, full)
