"""Plan builders reproduce the known layer maps and reject impossible plans (no torch needed)."""
import pytest

from lesa.plans import Plan, PlanError, Slot, build_plan, lesa_plan, llama_pro_plan, solar_plan


def sources(plan):
    return [s.src[0] for s in plan.slots]


def test_solar_32_to_48_is_0_23_then_8_31():
    plan = solar_plan(32, 48)
    assert sources(plan) == list(range(24)) + list(range(8, 32))
    assert plan.new_layers == list(range(24, 40))          # second occurrences of layers 8..23


def test_llama_pro_32_to_48_new_slots():
    plan = llama_pro_plan(32, 48)
    assert plan.new_layers == list(range(2, 48, 3))
    assert all(plan.slots[i].kind == "identity" for i in plan.new_layers)
    # each identity copy duplicates the layer just before it
    assert all(plan.slots[i].src == plan.slots[i - 1].src for i in plan.new_layers)


def test_lesa_32_to_48_released_placement():
    plan = lesa_plan(32, 48)
    assert plan.new_layers == list(range(16, 47, 2))
    assert [plan.slots[i].src for i in plan.new_layers] == [(k, k + 1) for k in range(15, 31)]
    assert sources(plan)[:16] == list(range(16))


def test_smollm2_default_depth_is_1_5x():
    for method in ("lesa", "llama_pro", "solar", "average", "random", "copy", "lesa_raw"):
        plan = build_plan(method, 30)
        assert plan.target_layers == 45 and len(plan.new_layers) == 15, method
        origs = sorted(s.src[0] for s in plan.slots if s.kind == "orig")
        assert origs == list(range(30)), method           # every original layer kept exactly once


def test_any_target_depth_and_overrides():
    assert lesa_plan(30, 31).new_layers == [29]
    assert lesa_plan(30, 59).target_layers == 59
    assert lesa_plan(8, 10, gaps=[0, 3]).new_layers == [1, 5]
    assert llama_pro_plan(8, 10, after=[7, 7]).new_layers == [8, 9]
    assert solar_plan(30, 45).target_layers == 45


def test_roundtrip_and_describe():
    plan = lesa_plan(30, 45, norm_source="neighbours")
    assert Plan.from_dict(plan.to_dict()) == plan
    text = plan.describe()
    assert "30 -> 45" in text and "predict(14,15)" in text


@pytest.mark.parametrize("call,msg", [
    (lambda: lesa_plan(30, 30), "must exceed the source depth"),
    (lambda: solar_plan(30, 20), "must exceed the source depth"),
    (lambda: lesa_plan(30, 60), "maximum target 59"),
    (lambda: lesa_plan(8, 9, gaps=[7]), "has no two neighbours"),
    (lambda: llama_pro_plan(8, 10, after=[3, 9]), "outside the source model"),
    (lambda: Plan("x", 4, (Slot("orig", (0,)), Slot("copy", (4,)))), "outside the source model's layers 0..3"),
    (lambda: Slot("predict", (3,)), "takes 2 source layer"),
    (lambda: build_plan("net2net", 8), "unknown method"),
    (lambda: lesa_plan(30, 45.0), "must be integers"),
    (lambda: lesa_plan(30, 45, norm_source="mean"), "norm_source must be one of"),
])
def test_bad_plans_fail_with_clear_messages(call, msg):
    with pytest.raises(PlanError, match=msg):
        call()
