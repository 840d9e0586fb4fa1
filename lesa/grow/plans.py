"""Depth-growth plans: plain data saying what fills each slot of the grown model. No torch.

A plan lists, for every layer slot of the new model, one ``Slot`` (kind, source layers, parameters):

========  ======  ==============  ====================================================================
kind      src     params          what the slot holds
========  ======  ==============  ====================================================================
orig      (i,)    -               original layer i itself (first occurrence; frozen during CPT)
copy      (i,)    alpha           a duplicate of original layer i (SOLAR's stack, copy controls)
identity  (i,)    -               a copy of layer i with o_proj and down_proj zeroed (LLaMA Pro)
predict   (a, b)  alpha, rank,    LESA: :math:`U \\Sigma\\, G([V_a, V_b])` for each projection
                  spectrum,
                  directions
interp    (a, b)  alpha, rank, t  ours: per-layer SVDs of a and b, singular vectors matched and interpolated
average   (a, b)  alpha           control: :math:`(W_a + W_b) / 2`
random    (a, b)  alpha           control: Gaussian weights with the standard deviation of :math:`(W_a, W_b)`
========  ======  ==============  ====================================================================

Parameters (a slot without one uses the default):

alpha
    o_proj and down_proj (weights and biases) multiplied by alpha (default 1). alpha = 0 makes the new
    layer the identity on the residual stream, so the grown model starts exactly at the source model
    (LLaMA Pro's trick), whatever the other weights hold.
rank
    keep only the top-k singular directions (default: all).
t
    interpolation position between a (t = 0) and b (t = 1) (default 0.5).
spectrum
    ours, predict only: null (default) keeps the predicted weight's singular values; ``neighbours`` replaces
    them by the mean of its two neighbours' (sorted), keeping the predicted singular vectors: the prediction's
    directions with the neighbours' effective rank.
directions
    ours, a control for predict: ``random`` keeps the (possibly replaced) singular values on random orthonormal
    singular vectors (default null: the predicted ones). With ``spectrum`` unset it is random weights with
    the prediction's collapsed spectrum.

CPT: continual pre-training. Every slot that is not ``orig`` is a *new* layer. ``Plan.predictor`` holds the
predictor settings a plan needs (e.g. ``space: raw`` for the "w/o SVD" ablation, ``kind: ridge`` for the
linear baseline), applied over the PredictorConfig given to apply_plan. Builders for every method live
below; the Slot and Plan types and ``load_plan``, which reads a plan file (YAML or JSON) and validates it
before any weights are touched, are in lesa.grow.spec (every name stays reachable as lesa.grow.plans.X).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import replace
from typing import Callable

from .spec import (KINDS, Plan, PlanError, Slot)


# ---------------------------------------------------------------------------------------------
# builders
def _check_depth(L: int, target: int) -> int:
    if not isinstance(L, int) or not isinstance(target, int):
        raise PlanError(f"layer counts must be integers, got source={L!r}, target={target!r}")
    if L < 2:
        raise PlanError(f"the source model needs at least 2 layers, has {L}")
    if target <= L:
        raise PlanError(f"target depth {target} must exceed the source depth {L}")
    return target - L


def default_target(L: int) -> int:
    """The paper's 1.5x depth (32 -> 48), rounded down."""
    return L + L // 2


def top_gaps(L: int, n_new: int) -> list[int]:
    """Gaps (k, k+1) of the released code: the n_new topmost gaps, k = L-1-n_new .. L-2."""
    if n_new > L - 1:
        raise PlanError(f"{n_new} new layers need more than the {L - 1} gaps of a {L}-layer model "
                        f"(one new layer per gap; maximum target {2 * L - 1}); expand in two steps")
    return list(range(L - 1 - n_new, L - 1))


def spread_gaps(L: int, n_new: int) -> list[int]:
    """Gaps spread evenly through the whole stack (ours: close to LLaMA Pro's placement, which appends a block
    after every (L / n_new)-th layer): n_new gaps from 0 to L-2, evenly spaced, e.g. 30 -> 45 uses 0, 2, ..., 28."""
    if n_new > L - 1:
        return top_gaps(L, n_new)                  # raises the same error
    if n_new == 1:
        return [(L - 2) // 2]
    return [round(i * (L - 2) / (n_new - 1)) for i in range(n_new)]


# named placements a gap method's `gaps` option accepts besides a list of gaps
PLACEMENTS: dict[str, Callable[[int, int], list[int]]] = {"top": top_gaps, "spread": spread_gaps}


def _gap_plan(method: str, kind: str, L: int, target: int | None, gaps: list[int] | str | None,
              norm_source: str, notes: str = "", params: dict | None = None,
              predictor: dict | None = None) -> Plan:
    """What every gap method shares (LESA and its variants, the controls): one new `kind` slot in each
    gap (k, k+1), by default the top gaps of the released code, and the target depth 1.5x when None;
    a method's own builder only names itself, its slot kind, notes, slot params and predictor settings."""
    target = target or default_target(L)
    n_new = _check_depth(L, target)
    if isinstance(gaps, str):
        if gaps not in PLACEMENTS:
            raise PlanError(f"unknown placement gaps={gaps!r}; give a list of gaps or one of {sorted(PLACEMENTS)}")
        gaps = PLACEMENTS[gaps](L, n_new)
    gaps = sorted(gaps) if gaps is not None else top_gaps(L, n_new)
    if len(gaps) != n_new:
        raise PlanError(f"{len(gaps)} gaps given for {n_new} new layers ({L} -> {target})")
    if len(set(gaps)) != len(gaps):
        raise PlanError(f"gaps must be distinct (one new layer per gap), got {gaps}")
    for k in gaps:
        if not 0 <= k < L - 1:
            raise PlanError(f"gap {k} has no two neighbours (k and k+1) in a {L}-layer model; "
                            f"valid gaps are 0..{L - 2}")
    slots: list[Slot] = []
    for i in range(L):
        slots.append(Slot("orig", (i,)))
        if i in gaps:
            slots.append(Slot(kind, (i, i + 1), params or {}) if KINDS[kind].n_src == 2
                         else Slot(kind, (i,), params or {}))
    return Plan(method, L, tuple(slots), norm_source, notes, dict(predictor or {}))


def lesa_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
              norm_source: str = "layer0") -> Plan:
    """LESA: one predicted layer in each of the top gaps (released code: 32 -> 48 at 16, 18, ..., 46)."""
    return _gap_plan("lesa", "predict", L, target, gaps, norm_source,
                     "new layer between k and k+1 = U Sigma G([V_k, V_k+1])")


def lesa_raw_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                  norm_source: str = "layer0") -> Plan:
    """Ablation "w/o SVD": LESA's placement, the MLP predicts raw weight rows (predictor space: raw)."""
    return _gap_plan("lesa_raw", "predict", L, target, gaps, norm_source,
                     "w/o SVD: the MLP predicts raw weight rows", predictor={"space": "raw"})


def lesa_fp_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                 norm_source: str = "layer0", alpha: float = 0.0, spectrum: str | None = None,
                 directions: str | None = None) -> Plan:
    """Ours, function-preserving LESA: every projection predicted, then o_proj and down_proj scaled by
    alpha. alpha = 0 starts exactly at the source model (as LLaMA Pro) with informative q, k, v, gate, up.
    ``spectrum`` / ``directions`` (see the module's table) reshape each predicted weight's SVD first."""
    extra = "".join(f", {k} {v}" for k, v in (("spectrum", spectrum), ("directions", directions)) if v)
    return _gap_plan("lesa_fp", "predict", L, target, gaps, norm_source,
                     f"LESA with o_proj/down_proj x {alpha}{extra}",
                     {"alpha": alpha, "spectrum": spectrum, "directions": directions})


def lesa_lowrank_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                      norm_source: str = "layer0", rank: int = 16, alpha: float = 1.0) -> Plan:
    """Ours, low-rank LESA: new layers rebuilt from the top-``rank`` singular directions of the
    concatenated SVD only (the predictor's least reliable directions dropped)."""
    return _gap_plan("lesa_lowrank", "predict", L, target, gaps, norm_source,
                     f"LESA from the top-{rank} singular directions", {"rank": rank, "alpha": alpha})


def lesa_ridge_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                    norm_source: str = "layer0", ridge_lam: float | None = None, alpha: float = 1.0) -> Plan:
    """Linear baseline: LESA with a closed-form ridge regression in place of the MLP predictor."""
    pred = {"kind": "ridge", **({"ridge_lam": ridge_lam} if ridge_lam is not None else {})}
    return _gap_plan("lesa_ridge", "predict", L, target, gaps, norm_source,
                     "ridge regression [V_k, V_k+1] -> V_new", {"alpha": alpha}, pred)


def svd_interp_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                    norm_source: str = "neighbours", alpha: float = 0.0, rank: int | None = None,
                    t: float = 0.5) -> Plan:
    """Ours, per-layer alternative to LESA (no training): each new weight from the two neighbours'
    own SVDs, singular vectors matched (permutation and sign) and interpolated; norms from the
    neighbours; o_proj/down_proj scaled by alpha."""
    return _gap_plan("svd_interp", "interp", L, target, gaps, norm_source,
                     f"matched per-layer SVDs interpolated at t={t}, o/down x {alpha}",
                     {"alpha": alpha, "rank": rank, "t": t})


def average_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                 norm_source: str = "neighbours") -> Plan:
    """Control: the mean of the two neighbours' weights, placed like LESA."""
    return _gap_plan("average", "average", L, target, gaps, norm_source)


def random_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                norm_source: str = "neighbours") -> Plan:
    """Control: Gaussian weights matching the neighbours' std, placed like LESA."""
    return _gap_plan("random", "random", L, target, gaps, norm_source)


def random_zero_out_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                         norm_source: str = "neighbours") -> Plan:
    """Control for lesa_fp: Gaussian weights with o_proj/down_proj zeroed (identity at the start)."""
    return _gap_plan("random_zero_out", "random", L, target, gaps, norm_source,
                     "random, o_proj/down_proj = 0", {"alpha": 0.0})


def copy_plan(L: int, target: int | None = None, gaps: list[int] | None = None) -> Plan:
    """Control: plain copy of the lower neighbour (no zeroing), placed like LESA."""
    return _gap_plan("copy", "copy", L, target, gaps, "layer0",
                     "copy of layer k inserted after it")


def copy_scaled_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                     alpha: float = 0.0) -> Plan:
    """Control for lesa_fp: copy of the lower neighbour with o_proj/down_proj scaled by alpha."""
    return _gap_plan("copy_scaled", "copy", L, target, gaps, "layer0",
                     f"copy of layer k, o/down x {alpha}", {"alpha": alpha})


def llama_pro_plan(L: int, target: int | None = None, after: list[int] | None = None) -> Plan:
    """LLaMA Pro block expansion: split the layers into n_new even groups and append an identity copy
    (o_proj, down_proj zeroed) of each group's last layer; ``after`` overrides the positions."""
    n_new = _check_depth(L, target or default_target(L))
    if after is None:
        if n_new > L:
            raise PlanError(f"LLaMA Pro adds at most one block per original layer ({L}); got {n_new}")
        # even groups: sizes differ by at most one, the larger groups first (numpy.array_split)
        q, r = divmod(L, n_new)
        ends, pos = [], 0
        for g in range(n_new):
            pos += q + (1 if g < r else 0)
            ends.append(pos - 1)
        after = ends
    after = sorted(after)
    if len(after) != n_new:
        raise PlanError(f"{len(after)} positions given for {n_new} new layers")
    bad = [a for a in after if not 0 <= a < L]
    if bad:
        raise PlanError(f"positions {bad} lie outside the source model's layers 0..{L - 1}")
    slots: list[Slot] = []
    for i in range(L):
        slots.append(Slot("orig", (i,)))
        slots.extend(Slot("identity", (i,)) for _ in range(after.count(i)))
    return Plan("llama_pro", L, tuple(slots), "layer0", "identity copies: o_proj, down_proj = 0")


def solar_plan(L: int, target: int | None = None) -> Plan:
    """SOLAR depth up-scaling: layers 0..a-1 then b..L-1 with a = ceil(target/2), b = L-(target-a).
    32 -> 48 gives 0..23 + 8..31 (m = 8). Second occurrences of a layer are the new ('copy') slots."""
    target = target or default_target(L)
    _check_depth(L, target)
    if target > 2 * L:
        raise PlanError(f"SOLAR stacks two copies at most: target {target} > 2 x {L}")
    a = math.ceil(target / 2)
    b = L - (target - a)
    seen: set[int] = set()
    slots: list[Slot] = []
    for i in list(range(a)) + list(range(b, L)):
        slots.append(Slot("copy" if i in seen else "orig", (i,)))
        seen.add(i)
    return Plan("solar", L, tuple(slots), "layer0", f"stack: 0..{a - 1} + {b}..{L - 1}")


# method name -> (builder, one-line description shown by `lesa expand --help` and the README)
METHODS: dict[str, tuple[Callable[..., Plan], str]] = {
    "lesa": (lesa_plan, "LESA as released: MLP-predicted layers in the top gaps"),
    "lesa_raw": (lesa_raw_plan, "ablation w/o SVD: the MLP predicts raw weight rows"),
    "llama_pro": (llama_pro_plan, "LLaMA Pro: identity copies (o_proj/down_proj = 0) spread evenly"),
    "solar": (solar_plan, "SOLAR: layers 0..a-1 then b..L-1"),
    "lesa_fp": (lesa_fp_plan, "ours: LESA with o_proj/down_proj x alpha (alpha = 0 starts at the base model)"),
    "lesa_lowrank": (lesa_lowrank_plan, "ours: LESA rebuilt from the top-rank singular directions only"),
    "lesa_ridge": (lesa_ridge_plan, "linear baseline: closed-form ridge regression instead of the MLP"),
    "svd_interp": (svd_interp_plan, "ours: matched per-layer SVDs of the neighbours interpolated, o/down x alpha"),
    "copy_scaled": (copy_scaled_plan, "control: copy of the lower neighbour, o_proj/down_proj x alpha"),
    "random_zero_out": (random_zero_out_plan, "control: random layer with o_proj/down_proj = 0"),
    "average": (average_plan, "control: mean of the two neighbours"),
    "random": (random_plan, "control: Gaussian with the neighbours' std"),
    "copy": (copy_plan, "control: plain copy of the lower neighbour"),
}
BUILDERS = {name: fn for name, (fn, _) in METHODS.items()}


def method_options(method: str) -> list[str]:
    """The keyword options a method's builder takes (beyond the depths)."""
    fn = BUILDERS[method]
    return [p for p in inspect.signature(fn).parameters if p not in ("L", "target")]


def build_plan(method: str, L: int, target: int | None = None, **kw) -> Plan:
    """Build a plan by method name (see METHODS); options a method does not take are an error."""
    key = method.replace("-", "_").lower()
    if key not in BUILDERS:
        raise PlanError(f"unknown method {method!r}; choose one of {sorted(BUILDERS)}")
    allowed = method_options(key)
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise PlanError(f"method {key!r} takes no option {', '.join(map(repr, bad))}; it takes "
                        f"{allowed or 'none'}")
    return BUILDERS[key](L, target, **kw)


def with_predictor(plan: Plan, **overrides) -> Plan:
    """The plan with more predictor settings (e.g. from the command line) over its own."""
    return replace(plan, predictor={**plan.predictor, **overrides})
