"""The real SmolLM2-135M (30 layers) grown to 45 by each method, saved, and reloaded from disk."""
import math

import pytest
import torch

from lesa.grow.expand import apply_plan, save_grown
from lesa.grow.plans import build_plan
from lesa.grow.predictor import PredictorConfig

pytestmark = pytest.mark.slow


def perplexity(model, tok, text: str, window: int = 256) -> float:
    ids = tok(text, return_tensors="pt").input_ids[0]
    n = (len(ids) // window) * window
    batch = ids[:n].view(-1, window)                                  # (n_windows, window)
    with torch.no_grad():
        loss = model(batch, labels=batch).loss
    return math.exp(loss.item())


@pytest.fixture(scope="module")
def base_ppl(smollm2, fixed_text):
    model, tok = smollm2
    ppl = perplexity(model, tok, fixed_text)
    print(f"\n[smollm2] base perplexity on the fixed WikiText excerpt: {ppl:.3f}")
    return ppl


def test_default_model_is_the_expected_smollm2(smollm2):
    model, tok = smollm2
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_key_value_heads) == ("llama", 30, 576, 3)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    out = model.generate(**tok("The capital of France is", return_tensors="pt"), max_new_tokens=3,
                         do_sample=False)
    assert "Paris" in tok.decode(out[0])


@pytest.mark.parametrize("method", ["llama_pro", "solar", "lesa"])
def test_expand_30_to_45_save_and_reload(smollm2, base_ppl, fixed_text, method, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = smollm2
    # epochs=1 keeps the test short; the full recipe (10 epochs) runs in `make replicate`.
    grown = apply_plan(model, build_plan(method, 30), PredictorConfig(epochs=1), copy_weights=False,
                       progress=False)
    save_grown(grown, tmp_path / method, tok)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / method).eval()
    assert reloaded.config.num_hidden_layers == 45
    assert len(reloaded.config.lesa_growth["new_layers"]) == 15
    ppl = perplexity(reloaded, tok, fixed_text)
    print(f"\n[smollm2 -> 45, {method}] perplexity {ppl:.3f} (base {base_ppl:.3f})")
    assert math.isfinite(ppl)
    if method == "llama_pro":
        assert abs(ppl / base_ppl - 1) < 1e-4                         # identity blocks keep the model
    else:
        assert ppl > base_ppl                                          # untrained new layers cost something
