"""The package's fast predictor training equals the release's loop (lesa.grow.reference) bit for bit with
PredictorConfig(recipe="released"), on the real SmolLM2 k_proj; the default recipe differs in the
last bits only through its own shuffling and fused AdamW."""
from __future__ import annotations

import pytest
import torch

from lesa.grow.predictor import PredictorConfig, make_mlp, train_predictor
from lesa.grow.reference import SimpleNN, predict_released, prepare_data_sliding_window, train_released
from lesa.grow.svd import factorize


def _reference(blocks, **kw):
    """The release's loop on one CPU thread (the package trains with PredictorConfig.threads = 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_released(blocks, **kw)
    finally:
        torch.set_num_threads(threads)


def _same_weights(fast_mlp, ref: SimpleNN) -> bool:
    a, b = list(fast_mlp.state_dict().values()), list(ref.state_dict().values())
    assert len(a) == len(b) == 6
    return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def smollm2_k(smollm2):
    from lesa.core.arch import check_model, get_layers

    model, _ = smollm2
    spec = check_model(model)
    Ws = torch.stack([layer.get_submodule(spec.projections["k"]).weight.detach()
                      for layer in get_layers(model, spec)])           # (30, 192, 576)
    return factorize(Ws)


def test_released_recipe_equals_the_released_loop_on_smollm2(smollm2_k):
    """2 epochs (the release runs 10; each epoch replays the same code path) on the 30 x 192 x 576
    coefficient blocks of k_proj: same predictor weights and same predicted layers, bit for bit."""
    F, epochs = smollm2_k, 2
    ref, ref_hist = _reference(F.V, epochs=epochs)
    fast = train_predictor(F.V, PredictorConfig(epochs=epochs, recipe="released"), progress=False)
    assert _same_weights(fast.mlp, ref)
    gaps = list(range(14, 29))                                        # the top gaps for 30 -> 45
    want = predict_released(ref, list(F.V), F.US, gaps)
    for k, w in zip(gaps, want):
        assert torch.equal(F.reconstruct(coeffs=fast.predict(F.V[k], F.V[k + 1])), w), k
    assert fast.history == pytest.approx(ref_hist, rel=1e-5)         # summed in float32 vs Python floats

    default = train_predictor(F.V, PredictorConfig(epochs=epochs), progress=False)
    assert not _same_weights(default.mlp, ref)                       # other order: the check can fail
    assert default.history[-1] == pytest.approx(ref_hist[-1], rel=0.2)   # ... yet the same training


def test_released_recipe_with_a_partial_last_batch():
    """130 rows (2 batches of 64 + 2), 3 epochs: the loader's last short batch is replayed too."""
    torch.manual_seed(5)
    blocks = torch.randn(7, 26, 12) * 0.1                              # 5 targets x 26 rows
    assert prepare_data_sliding_window(list(blocks))[0].shape == (130, 24)
    ref, _ = _reference(blocks, epochs=3, seed=11)
    fast = train_predictor(blocks, PredictorConfig(epochs=3, seed=11, recipe="released"), progress=False)
    assert _same_weights(fast.mlp, ref)
    shuffled_otherwise = train_predictor(blocks, PredictorConfig(epochs=3, seed=11), progress=False)
    assert not _same_weights(shuffled_otherwise.mlp, ref)


def test_simple_nn_is_the_package_mlp():
    """Same layers, shapes and initialisation under the same seed (fc1, fc2, fc3 = 0, 2, 4)."""
    torch.manual_seed(0)
    ref = SimpleNN(24, 256, 12)
    torch.manual_seed(0)
    ours = make_mlp(12, PredictorConfig())
    assert _same_weights(ours, ref)


def test_recipe_option():
    with pytest.raises(ValueError, match="recipe must be one of"):
        PredictorConfig(recipe="paper")
    assert "recipe" not in PredictorConfig().to_dict()                # default: cache keys unchanged
    assert PredictorConfig(recipe="released").to_dict()["recipe"] == "released"


def test_cli_passes_the_recipe(tiny_llama, tmp_path, monkeypatch):
    """`lesa expand --recipe released` builds PredictorConfig(recipe="released") (dry run: no weights)."""
    import lesa.grow.cli
    import lesa.grow.predictor
    from lesa.grow.cli import main

    tiny_llama.save_pretrained(tmp_path / "tiny")
    seen = []
    real = lesa.grow.predictor.PredictorConfig
    monkeypatch.setattr(lesa.grow.predictor, "PredictorConfig", lambda **kw: seen.append(real(**kw)) or seen[-1])
    monkeypatch.setattr(lesa.grow.cli, "PredictorConfig", lesa.grow.predictor.PredictorConfig)     # imported at its top
    args = ["expand", "--model", str(tmp_path / "tiny"), "--out", str(tmp_path / "out"), "--dry-run"]
    assert main(args + ["--recipe", "released"]) == 0
    assert seen and seen[-1].recipe == "released"
    assert main(args) == 0
    assert seen[-1].recipe == "package"
