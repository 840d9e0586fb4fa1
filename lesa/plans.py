"""Depth-growth plans: plain data saying what fills each slot of the grown model. No torch.

A plan lists, for every layer slot of the new model, one ``Slot``:

========  ======  ===================================================================
kind      src     what the slot holds
========  ======  ===================================================================
orig      (i,)    original layer i itself (first occurrence; frozen during CPT)
copy      (i,)    a duplicate of original layer i (SOLAR's stack, "plain copy" control)
identity  (i,)    a copy of layer i with o_proj and down_proj zeroed (LLaMA Pro)
predict   (a, b)  LESA: :math:`U \\Sigma\\, G([V_a, V_b])` for each projection
average   (a, b)  control: :math:`(W_a + W_b) / 2`
random    (a, b)  control: Gaussian weights with the standard deviation of :math:`(W_a, W_b)`
========  ======  ===================================================================

CPT: continual pre-training. Every slot that is not ``orig`` is a *new* layer. Builders for the paper's
methods live below.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

KINDS = ("orig", "copy", "identity", "predict", "average", "random")
PAIR_KINDS = ("predict", "average", "random")
NORM_SOURCES = ("layer0", "neighbours")


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Slot:
    """One layer of the grown model: ``kind`` says what fills it (the module's table), ``src`` the
    index or indices of the original layer(s) it is built from."""

    kind: str
    src: tuple[int, ...]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise PlanError(f"unknown slot kind {self.kind!r}; expected one of {KINDS}")
        want = 2 if self.kind in PAIR_KINDS else 1
        if len(self.src) != want:
            raise PlanError(f"a {self.kind!r} slot takes {want} source layer(s), got {self.src}")

    def label(self) -> str:
        if self.kind == "orig":
            return f"L{self.src[0]}"
        if self.kind in PAIR_KINDS:
            return f"{self.kind}({self.src[0]},{self.src[1]})"
        return f"{self.kind}({self.src[0]})"


@dataclass(frozen=True)
class Plan:
    method: str
    source_layers: int                     # depth of the model the plan applies to
    slots: tuple[Slot, ...]
    norm_source: str = "layer0"            # norms/biases of pair-kind slots: "layer0" (released code) or "neighbours"
    notes: str = ""

    def __post_init__(self):
        self.validate()

    @property
    def target_layers(self) -> int:
        return len(self.slots)

    @property
    def new_layers(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.kind != "orig"]

    def validate(self) -> None:
        L = self.source_layers
        if self.norm_source not in NORM_SOURCES:
            raise PlanError(f"norm_source must be one of {NORM_SOURCES}, got {self.norm_source!r}")
        for i, s in enumerate(self.slots):
            for j in s.src:
                if not isinstance(j, int) or not 0 <= j < L:
                    raise PlanError(f"slot {i} ({s.label()}) points at layer {j}, outside the "
                                    f"source model's layers 0..{L - 1}")
        origs = [s.src[0] for s in self.slots if s.kind == "orig"]
        if len(set(origs)) != len(origs):
            raise PlanError("an original layer appears twice as 'orig'; later occurrences must be 'copy'")

    def describe(self) -> str:
        """Human-readable layer map, one line per slot (no weights needed)."""
        norms = f" (norms: {self.norm_source})" if any(s.kind in PAIR_KINDS for s in self.slots) else ""
        lines = [f"{self.method}: {self.source_layers} -> {self.target_layers} layers, "
                 f"{len(self.new_layers)} new at {self.new_layers}{norms}"]
        for i, s in enumerate(self.slots):
            lines.append(f"  {i:3d}  {'NEW' if s.kind != 'orig' else '   '}  {s.label()}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slots"] = [[s.kind, *s.src] for s in self.slots]
        d["new_layers"] = self.new_layers
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        slots = tuple(Slot(row[0], tuple(int(x) for x in row[1:])) for row in d["slots"])
        return cls(d["method"], int(d["source_layers"]), slots, d.get("norm_source", "layer0"),
                   d.get("notes", ""))


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


def _gap_plan(method: str, kind: str, L: int, target: int, gaps: list[int] | None,
              norm_source: str, notes: str = "") -> Plan:
    n_new = _check_depth(L, target)
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
            slots.append(Slot(kind, (i, i + 1)))
    return Plan(method, L, tuple(slots), norm_source, notes)


def lesa_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
              norm_source: str = "layer0") -> Plan:
    """LESA: one predicted layer in each of the top gaps (released code: 32 -> 48 at 16, 18, ..., 46)."""
    return _gap_plan("lesa", "predict", L, target or default_target(L), gaps, norm_source,
                     "new layer between k and k+1 = U Sigma G([V_k, V_k+1])")


def average_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                 norm_source: str = "neighbours") -> Plan:
    """Control: the mean of the two neighbours' weights, placed like LESA."""
    return _gap_plan("average", "average", L, target or default_target(L), gaps, norm_source)


def random_plan(L: int, target: int | None = None, gaps: list[int] | None = None,
                norm_source: str = "neighbours") -> Plan:
    """Control: Gaussian weights matching the neighbours' std, placed like LESA."""
    return _gap_plan("random", "random", L, target or default_target(L), gaps, norm_source)


def copy_plan(L: int, target: int | None = None, gaps: list[int] | None = None) -> Plan:
    """Control: plain copy of the lower neighbour (no zeroing), placed like LESA."""
    n_new = _check_depth(L, target or default_target(L))
    gaps = sorted(gaps) if gaps is not None else top_gaps(L, n_new)
    base = _gap_plan("copy", "average", L, L + n_new, gaps, "layer0")
    slots = tuple(Slot("copy", (s.src[0],)) if s.kind == "average" else s for s in base.slots)
    return Plan("copy", L, slots, "layer0", "copy of layer k inserted after it")


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


BUILDERS = {
    "lesa": lesa_plan,
    "lesa_raw": lesa_plan,        # same placement; the predictor works on raw weight rows ("w/o SVD")
    "llama_pro": llama_pro_plan,
    "solar": solar_plan,
    "average": average_plan,
    "random": random_plan,
    "copy": copy_plan,
}


def build_plan(method: str, L: int, target: int | None = None, **kw) -> Plan:
    """Build a plan by method name (see BUILDERS)."""
    key = method.replace("-", "_").lower()
    if key not in BUILDERS:
        raise PlanError(f"unknown method {method!r}; choose one of {sorted(BUILDERS)}")
    plan = BUILDERS[key](L, target, **kw)
    if key == "lesa_raw":
        plan = Plan("lesa_raw", plan.source_layers, plan.slots, plan.norm_source, "w/o SVD: " + plan.notes)
    return plan
