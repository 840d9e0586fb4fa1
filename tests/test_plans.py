"""Plan builders reproduce the known layer maps; plan files load and validate; impossible plans and
bad files are rejected early with a message that says what to fix."""
from pathlib import Path

import pytest

from lesa.grow.plans import BUILDERS, build_plan, lesa_plan, llama_pro_plan, solar_plan
from lesa.grow.spec import Plan, PlanError, Slot, check_plan_for, load_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "plans"


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
    for method in BUILDERS:
        plan = build_plan(method, 30)
        assert plan.target_layers == 45 and len(plan.new_layers) == 15, method
        origs = sorted(s.src[0] for s in plan.slots if s.kind == "orig")
        assert origs == list(range(30)), method           # every original layer kept exactly once


def test_any_target_depth_and_overrides():
    assert lesa_plan(30, 31).new_layers == [29]
    assert lesa_plan(30, 59).target_layers == 59
    assert lesa_plan(8, 10, gaps=[0, 3]).new_layers == [1, 5]
    assert llama_pro_plan(8, 10, after=[7, 7]).new_layers == [8, 9]


def test_spread_placement_spans_the_stack_like_llama_pro():
    """gaps="spread" (ours): LESA's new layers evenly through the whole stack, one grown layer below LLaMA Pro's
    blocks (a gap needs an upper neighbour, LLaMA Pro's last block follows the top layer); "top" is the default."""
    spread = build_plan("lesa_fp", 30, 45, gaps="spread", alpha=0.0)
    assert spread.new_layers == list(range(1, 45, 3))                      # after original layers 0, 2, ..., 28
    assert llama_pro_plan(30, 45).new_layers == list(range(2, 45, 3))      # after original layers 1, 3, ..., 29
    assert build_plan("lesa", 30, 45, gaps="top") == lesa_plan(30, 45)
    assert build_plan("copy_scaled", 32, 48, gaps="spread").new_layers == list(range(1, 48, 3))
    assert lesa_plan(8, 9, gaps="spread").new_layers == [4]                # one new layer: the middle gap
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
    (lambda: lesa_plan(8, 10, gaps="even"), "unknown placement gaps='even'.*'spread', 'top'"),
    (lambda: lesa_plan(8, 16, gaps="spread"), "maximum target 15"),
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


@pytest.mark.parametrize("name,method,kw", [("solar-32-48", "solar", {}), ("llama_pro-32-48", "llama_pro", {}),
                                            ("lesa-32-48", "lesa", {}), ("lesa_fp-32-48", "lesa_fp", {"alpha": 0.0})])
def test_example_plan_files_validate_and_match_the_builders(name, method, kw):
    plan = load_plan(EXAMPLES / f"{name}.yaml")
    want = build_plan(method, 32, 48, **kw)
    assert plan.slots == want.slots and plan.norm_source == want.norm_source and plan.predictor == want.predictor
    assert plan.source_layers == 32 and plan.target_layers == 48
    assert check_plan_for(plan, 32) is plan
    with pytest.raises(PlanError, match=r"is for a 32-layer model, but smollm2-135m has 30 layers.*lesa plan --model"):
        check_plan_for(plan, 30, "smollm2-135m", "plan file x")


def test_plan_files_roundtrip_with_parameters_and_predictor(tmp_path):
    for plan in (build_plan("lesa_lowrank", 30, rank=8, alpha=0.5), build_plan("svd_interp", 8, 10, t=0.25),
                 build_plan("lesa_ridge", 8, 11, ridge_lam=0.1), build_plan("lesa_raw", 6)):
        (tmp_path / "p.yaml").write_text(plan.to_yaml("a header\nof two lines"))
        assert load_plan(tmp_path / "p.yaml") == plan
        (tmp_path / "p.json").write_text(__import__("json").dumps(plan.to_dict()))
        assert load_plan(tmp_path / "p.json") == plan


def test_slot_parameters_are_canonical():
    assert Slot("predict", (1, 2), alpha=1) == Slot("predict", (1, 2))       # a default is no parameter
    assert Slot("predict", (1, 2), alpha=0).param("alpha") == 0.0
    assert Slot("identity", (3,)).param("alpha") == 0.0                    # fixed by the kind
    assert Slot("copy", (3,)).param("alpha") == 1.0


def _plan_text(slots: str, head: str = "method: mine\nsource_layers: 3\n") -> str:
    return head + "slots:\n" + slots


GOOD_SLOTS = "  - [orig, 0]\n  - [orig, 1]\n  - [predict, 1, 2]\n  - [orig, 2]\n"


@pytest.mark.parametrize("text,msg", [
    (_plan_text(GOOD_SLOTS.replace("predict", "merge")), r"slot 2: unknown slot kind 'merge'; expected one of"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, 1, 2, {alpha: zero}]")),
     r"slot 2: 'predict' slot parameter 'alpha' must be a number"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, 1, 2, {rank: 2.5}]")),
     r"'rank' must be a positive integer"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[average, 1, 2, {rank: 4}]")),
     r"'average' slot takes no parameter 'rank'; it takes \['alpha'\]"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, 1, 3]")), r"points at layer 3, outside .* 0\.\.2"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, 2, 1]")), r"names the lower one first"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, 1]")), r"takes 2 source layer"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[predict, one, 2]")), r"source layers must be integers"),
    (_plan_text(GOOD_SLOTS.replace("[orig, 1]", "[copy, 1]")), r"original layer\(s\) \[1\] appear nowhere as 'orig'"),
    (_plan_text(GOOD_SLOTS.replace("[predict, 1, 2]", "[orig, 1]")), r"appear twice as 'orig'.*'copy'"),
    (_plan_text("  - [orig, 0]\n  - [orig, 2]\n  - [copy, 0]\n  - [orig, 1]\n"), r"must keep their order"),
    (_plan_text("  - [orig, 0]\n  - [orig, 1]\n  - [orig, 2]\n"), r"adds no layer"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\ntarget_layers: 5\n"), r"target_layers is 5 but the plan lists 4"),
    (_plan_text(GOOD_SLOTS, "source_layers: three\n"), r"source_layers must be an integer"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\nlayers: 4\n"), r"unknown key\(s\) \['layers'\]; a plan file may have"),
    ("source_layers: 3\n", r"missing 'slots' .*configs/plans/"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\npredictor: {epoch: 5}\n"), r"unknown predictor setting\(s\) \['epoch'\]"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\npredictor: {epochs: ten}\n"), r"epochs must be a positive integer"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\npredictor: {kind: svm}\n"), r"kind must be 'mlp' or 'ridge'"),
    (_plan_text(GOOD_SLOTS, "source_layers: 3\nnorm_source: mean\n"), r"norm_source must be one of"),
    ("slots: [orig, 0\n", r"is not valid YAML"),
    ("- just a list\n", r"expected a mapping"),
])
def test_bad_plan_files_fail_early_with_what_to_fix(tmp_path, text, msg):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError, match=msg) as e:
        load_plan(path)
    assert str(path) in str(e.value)


def test_good_plan_text_loads_and_missing_file_says_where_examples_are(tmp_path):
    (tmp_path / "ok.yaml").write_text(_plan_text(GOOD_SLOTS))
    assert load_plan(tmp_path / "ok.yaml").new_layers == [2]
    with pytest.raises(PlanError, match=r"does not exist; examples are in configs/plans/"):
        load_plan(tmp_path / "nope.yaml")


def test_builder_options_are_checked():
    with pytest.raises(PlanError, match=r"method 'solar' takes no option 'alpha'; it takes none"):
        build_plan("solar", 30, alpha=0.1)
    with pytest.raises(PlanError, match=r"'rank' must be a positive integer"):
        build_plan("lesa_lowrank", 30, rank=0)
    with pytest.raises(PlanError, match=r"'t' must be a number in \[0, 1\]"):
        build_plan("svd_interp", 30, t=2.0)
    assert build_plan("lesa", 30) == lesa_plan(30)                          # the released recipe is unchanged
    assert all(s.params == () for s in lesa_plan(30).slots) and lesa_plan(30).predictor == {}


SEED_FREE_KINDS = {"orig", "copy", "identity", "average"}     # no draw from the predictor seed


def test_the_method_table_declares_each_method_once_and_consistently():
    """lesa.grow.methods.METHODS is the one method table: every plan method has a row (and every row with a CPT
    recipe a plan, the base model aside), CPT's TRAINS/SEEDLESS and chapter 6's learned methods come from it, and
    a method declared seedless builds a plan with no seeded slot kind (a seeded one, at least one)."""
    from lesa.grow.methods import CONTROLS, LEARNED, METHODS, check_table
    from lesa.grow.plans import METHODS as PLAN_METHODS
    from lesa.grow.spec import KINDS
    from lesa.study.cpt import SEEDLESS, TRAINS

    check_table()
    assert set(SEED_FREE_KINDS) < set(KINDS)
    assert set(PLAN_METHODS) == {m for m, r in METHODS.items() if r.trains} - {"base"}
    assert TRAINS == {m: r.trains for m, r in METHODS.items() if r.trains} and TRAINS["solar"] == "all"
    assert SEEDLESS == {"base", "llama_pro", "solar", "average", "copy", "copy_scaled"}      # as the runs were named
    assert LEARNED == ("lesa", "lesa_raw", "lesa_fp", "lesa_lowrank", "lesa_ridge", "svd_interp")
    assert set(CONTROLS) == {"copy_scaled", "random_zero_out"}
    for m in PLAN_METHODS:
        kinds = {s.kind for s in build_plan(m, 8).slots}
        assert (kinds <= SEED_FREE_KINDS) == (not METHODS[m].seeded), (m, kinds)


def test_a_bad_method_row_fails_with_its_name(monkeypatch):
    from lesa.grow import methods

    row = methods.METHODS["lesa"]
    monkeypatch.setitem(methods.METHODS, "lesa", row._replace(trains="New"))
    with pytest.raises(ValueError, match=r"METHODS\['lesa'\].*trains one of"):
        methods.check_table()
    monkeypatch.setitem(methods.METHODS, "lesa", row._replace(seeded=False))
    with pytest.raises(AssertionError):          # declared seedless, but its plan predicts: the check above fails
        test_the_method_table_declares_each_method_once_and_consistently()
