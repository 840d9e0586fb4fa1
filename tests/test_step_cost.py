"""lesa.study.step_cost (claim C6's bench) on the smoke profile: every method's CPT step, interleaved in one process."""
import json
import math

import pytest

from lesa.study import step_cost as S
from lesa.data.prepare import DataError, latest_corpus
from lesa.study.profiles import load_profile


@pytest.fixture(scope="module")
def fast_corpus():
    try:
        latest_corpus(fast=True)
    except DataError:
        pytest.skip("no fast corpus: run `make data-fast`")


def test_step_cost_times_each_method_on_its_own_cpt_batches(fast_corpus, tmp_path):
    out = tmp_path / "step_cost.json"
    s = S.measure_step_cost("smoke", rounds=2, methods=("lesa", "llama_pro", "solar", "base"), out=out)
    assert json.loads(out.read_text())["methods"] == ["lesa", "llama_pro", "solar", "base"]
    r = s["runs"]
    assert r["solar"]["trains"] == "all" and r["lesa"]["trains"] == "new" and r["base"]["trains"] == "all"
    for m, x in r.items():
        assert len(x["step_s"]) == 2 and len(x["warmup_step_s"]) == 1 and all(t > 0 for t in x["step_s"]), m
        assert len(x["loss"]) == 3 and all(math.isfinite(v) for v in x["loss"]), m
        assert x["step_s_median_se"] > 0 and s["measured_ratio"][m] > 0, m
    # the trainers read the CPT runs' batches: LLaMA Pro's zeroed copies start as the base model, so on the
    # same first batch both report the same loss; SOLAR's stack does not
    assert r["llama_pro"]["loss"][0] == pytest.approx(r["base"]["loss"][0], rel=1e-5)
    assert abs(r["solar"]["loss"][0] - r["base"]["loss"][0]) > 1e-3
    # frozen layers below the new ones skip their weight gradients: LESA (upper half) < LLaMA Pro < SOLAR
    f = s["flop_model_ratio"]
    assert f["lesa"] == 1.0 and 1.0 < f["llama_pro"] < f["solar"]
    # a step's cost is the whole step: the frozen-prefix store (lesa.prefix_store) is never read here
    assert s["prefix_store_used"] == {m: False for m in r}


def test_step_cost_rejects_what_it_cannot_time():
    with pytest.raises(ValueError, match="at least 2 timed rounds"):
        S.measure_step_cost("smoke", rounds=1)
    with pytest.raises(ValueError, match="no CPT run of 'average'"):
        S.method_runs(load_profile("smoke"), ("lesa", "average"))
