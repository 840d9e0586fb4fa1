"""The norm-source option: measurements (lesa.study.norms) and the CLI's early warning."""
from __future__ import annotations

import pytest
import torch

from lesa.core.arch import get_layers
from lesa.grow.cli import main
from lesa.grow.expand import apply_plan
from lesa.study.norms import gain_stats, gain_summary, set_norm_source, weight_comparison
from lesa.grow.plans import build_plan


def _distinct_norms(model):
    with torch.no_grad():
        for i, layer in enumerate(get_layers(model)):
            layer.input_layernorm.weight.fill_(1.0 + i)
            layer.post_attention_layernorm.weight.fill_(0.5 * (i + 1))
    return model


def test_set_norm_source_equals_apply_plan(tiny_qwen2):
    """Switching the norms of one grown model equals growing it again with the other norm source
    (norms and q/k/v biases), so one expansion can be measured under both."""
    model = _distinct_norms(tiny_qwen2)
    plans = {ns: build_plan("average", 6, 8, norm_source=ns) for ns in ("layer0", "neighbours")}
    want = {ns: apply_plan(model, p, progress=False).state_dict() for ns, p in plans.items()}
    grown = apply_plan(model, plans["layer0"], progress=False)
    for ns in ("neighbours", "layer0"):
        set_norm_source(grown, model, plans["layer0"], ns)
        got = grown.state_dict()
        assert all(torch.equal(got[k], want[ns][k]) for k in want[ns]), ns
    new = f"model.layers.{plans['layer0'].new_layers[0]}.input_layernorm.weight"   # between layers 3 and 4
    assert float(want["layer0"][new][0]) == 1.0 and float(want["neighbours"][new][0]) == 4.5
    with pytest.raises(ValueError, match="norm_source must be"):
        set_norm_source(grown, model, plans["layer0"], "mean")


def test_gain_and_weight_summaries(tiny_llama):
    model = _distinct_norms(tiny_llama)
    plan = build_plan("average", 6, 8)                            # gaps (3, 4) and (4, 5)
    rows = gain_stats(model)
    assert len(rows) == 12 and rows[0] == {"layer": 0, "norm": "input_layernorm", "mean_abs": 1.0, "median_abs": 1.0}
    g = gain_summary(model, plan)["input_layernorm"]
    assert [x["gap"] for x in g["gaps"]] == [[3, 4], [4, 5]]
    assert g["gap_over_layer0_mean_abs"] == {"min": 4.5, "median": 5.0, "max": 5.5}
    w = weight_comparison(model, apply_plan(model, plan, progress=False), plan)
    assert set(w) == {"q", "k", "v", "o", "gate", "up", "down"}
    for v in w.values():                                          # the new layers ARE the averages here
        assert v["norm_ratio"] == pytest.approx(v["average_norm_ratio"])
        assert v["average_norm_ratio"] < 1 and v["cos_neighbours"] > 0.5


@pytest.mark.parametrize("method,norms,warned", [
    ("lesa", "neighbours", True), ("lesa_raw", "neighbours", True), ("lesa", None, False),
    ("lesa", "layer0", False), ("average", "neighbours", False)])
def test_cli_warns_about_neighbour_norms_on_predicted_layers(tiny_llama, tmp_path, capsys, method, norms, warned):
    """Printed by the plan step, before any weights are loaded (`lesa plan` and `lesa expand --dry-run`)."""
    tiny_llama.save_pretrained(tmp_path / "tiny")
    extra = ["--norms", norms] if norms else []
    for cmd in (["plan"], ["expand", "--out", str(tmp_path / "out"), "--dry-run"]):
        assert main(cmd + ["--model", str(tmp_path / "tiny"), "--method", method] + extra) == 0
        err = capsys.readouterr().err
        assert ("warning: --norms neighbours" in err) == warned, err
        if warned:
            assert "--norms layer0" in err and "--method average" in err
    assert not (tmp_path / "out").exists()
