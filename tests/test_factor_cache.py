"""The concatenated SVD is computed once per model and weight type, then read from .cache/factors/ by every
later growth (another predictor seed, another method), with bit-identical results."""
import pytest
import torch

import lesa.grow.factor_cache as fc
import lesa.grow.svd
from lesa.grow.expand import apply_plan, clear_memo
from lesa.grow.plans import build_plan
from lesa.grow.predictor import PredictorConfig


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Cache in tmp_path, on for tiny stacks, and a counter of real factorisations."""
    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    monkeypatch.setenv("LESA_FACTOR_CACHE", "1")
    monkeypatch.setattr(fc, "MIN_BYTES", 0)
    calls = []
    real = lesa.grow.svd.factorize

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(lesa.grow.svd, "factorize", counting)
    monkeypatch.setattr(fc, "factorize", counting)                          # imported at its top
    clear_memo()
    yield calls
    clear_memo()


def grow(model, method, seed):
    return apply_plan(model, build_plan(method, 6, 9), PredictorConfig(epochs=1, seed=seed), progress=False)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2"])
def test_second_seed_loads_the_factors_and_matches_a_fresh_computation(family, request, counted, monkeypatch,
                                                                       tmp_path):
    model = request.getfixturevalue(family)
    grow(model, "lesa", seed=0)
    n_types = len(counted)
    assert n_types == 7                                   # q k v o gate up down: each factorised once
    assert len(list((tmp_path / "factors").glob("*.safetensors"))) == n_types
    reused = grow(model, "lesa", seed=1)                  # another predictor seed: no SVD at all
    assert len(counted) == n_types
    assert sorted(reused.lesa_report["svd_reused"]) == sorted(reused.lesa_report["svd_seconds"])
    grow(model, "lesa_fp", seed=3)                        # another method on the same weights: none either
    assert len(counted) == n_types

    monkeypatch.setenv("LESA_FACTOR_CACHE", "0")          # the same growth computed from scratch
    clear_memo()
    fresh = grow(model, "lesa", seed=1)
    assert len(counted) == 2 * n_types
    assert same_weights(reused, fresh)


def test_changed_weights_miss_the_cache(tiny_llama, counted):
    grow(tiny_llama, "lesa", seed=0)
    n = len(counted)
    with torch.no_grad():
        tiny_llama.model.layers[2].mlp.down_proj.weight[0, 0] += 1e-3     # one value of one type
    grow(tiny_llama, "lesa", seed=0)
    assert len(counted) == n + 1                           # only down_proj is factorised again


def test_cache_off_for_small_stacks_by_default(tiny_llama, monkeypatch, tmp_path):
    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    clear_memo()
    grow(tiny_llama, "lesa", seed=0)
    assert not (tmp_path / "factors").exists()            # tiny stacks: the disk round trip costs more
