"""lesa.study.diagnose: what a grown model's new layers offer training at step 0, on a tiny Llama."""
import torch

from lesa.study import diagnose as D
from lesa.core.arch import get_layers
from lesa.grow.expand import apply_plan
from lesa.grow.plans import build_plan


def test_effective_rank_counts_the_directions_a_matrix_uses():
    assert abs(D.effective_rank(torch.outer(torch.arange(1.0, 6), torch.ones(4))) - 1) < 1e-4
    assert abs(D.effective_rank(torch.eye(7)) - 7) < 1e-4
    assert 1 < D.effective_rank(torch.diag(torch.tensor([4.0, 1.0, 0.1]))) < 2


def test_zeroed_outputs_block_the_other_gradients_and_collapsed_features_show(tiny_llama):
    tokens = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(0))
    grown = apply_plan(tiny_llama, build_plan("llama_pro", 6), progress=False)      # 6 -> 9, o/down zeroed
    d = D.diagnose(grown, tokens)
    assert d["new_layers"] == [2, 5, 8] and d["reference_layers"] == [1, 4, 7]     # copies of the layer below
    w = d["weights"]
    assert abs(w["q"]["cosine"] - 1) < 1e-5 and abs(w["gate"]["norm_ratio"] - 1) < 1e-5 and w["o"]["norm_ratio"] == 0
    # with o/down at zero a new layer writes nothing: only o/down get a gradient at step 0
    g = d["grad_l1_by_type"]
    assert g["o"] > 0 and g["down"] > 0 and g["q"] == g["k"] == g["v"] == g["gate"] == g["up"] == 0
    assert abs(d["grad_l1"] - sum(g.values())) / d["grad_l1"] < 1e-3 + 1e-6   # (norms carry no gradient either)

    # the synthetic case the diagnostic must see: rank-one v, gate and up collapse the features o/down read
    layers = get_layers(grown)
    with torch.no_grad():
        for i in d["new_layers"]:
            for lin in (layers[i].self_attn.v_proj, layers[i].mlp.gate_proj, layers[i].mlp.up_proj):
                u, v = torch.randn(lin.weight.shape[0]), torch.randn(lin.weight.shape[1])
                lin.weight.copy_(torch.outer(u, v) * lin.weight.norm() / (u.norm() * v.norm()))
    c = D.diagnose(grown, tokens)
    assert c["weights"]["v"]["erank_ratio"] < 0.3 < w["v"]["erank_ratio"]
    for short in D.FEATURES:
        assert c["features"][short]["erank"] < 0.5 * d["features"][short]["erank"], (short, c["features"], d["features"])


def test_a_partial_run_adds_to_the_diagnostics_file(tmp_path):
    path = tmp_path / "init_diagnostics.json"
    D.save_diagnostics(path, {"profile": "p", "runs": {"a": {"loss": 1.0}, "b": {"loss": 2.0}}, "provenance": {"commit": "x"}})
    merged = D.save_diagnostics(path, {"profile": "p", "runs": {"b": {"loss": 3.0}}, "provenance": {"commit": "y"}})
    assert {n: r["loss"] for n, r in merged["runs"].items()} == {"a": 1.0, "b": 3.0}
    assert merged["runs"]["a"]["provenance"]["commit"] == "x" and merged["runs"]["b"]["provenance"]["commit"] == "y"
