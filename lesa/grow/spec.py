"""A plan as data (see lesa.grow.plans for what each slot kind and parameter means): the slot kinds and their
parameters, Slot and Plan with their validation, and the plan file format (YAML or JSON) that
load_plan reads and checks before any weights are touched. No torch."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from .predictor import PredictorConfig


class PlanError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# slot kinds: how many source layers each takes and which parameters (the weights are built by the
# function registered for the kind in lesa.grow.expand)
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_alpha(v):
    if not _number(v):
        return "a number (o_proj/down_proj scale; 0 makes the new layer an identity)"


def _check_rank(v):
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        return "a positive integer (number of top singular directions kept) or null for all"


def _check_t(v):
    if not _number(v) or not 0 <= v <= 1:
        return "a number in [0, 1] (0 = lower neighbour, 1 = upper neighbour)"


def _check_spectrum(v):
    if v not in (None, "neighbours"):
        return "null (the prediction's own singular values) or 'neighbours' (the mean of its neighbours')"


def _check_directions(v):
    if v not in (None, "random"):
        return "null (the prediction's own singular vectors) or 'random' (random orthonormal ones)"


PARAMS: dict[str, tuple[Any, Callable]] = {       # name -> (default, check returning what is expected)
    "alpha": (1.0, _check_alpha),
    "rank": (None, _check_rank),
    "t": (0.5, _check_t),
    "spectrum": (None, _check_spectrum),          # ours: the predicted weight's singular values replaced
    "directions": (None, _check_directions),      # ours: its singular vectors replaced (a control)
}


@dataclass(frozen=True)
class KindSpec:
    n_src: int
    params: tuple[str, ...]                      # parameters a slot of this kind may set
    doc: str
    fixed: tuple[tuple[str, Any], ...] = ()      # parameters the kind itself sets (identity: alpha = 0)


KINDS: dict[str, KindSpec] = {
    "orig": KindSpec(1, (), "original layer i itself"),
    "copy": KindSpec(1, ("alpha",), "duplicate of layer i"),
    "identity": KindSpec(1, (), "copy of layer i with o_proj, down_proj = 0 (LLaMA Pro)", (("alpha", 0.0),)),
    "predict": KindSpec(2, ("alpha", "rank", "spectrum", "directions"), "LESA: U Sigma G([V_a, V_b])"),
    "interp": KindSpec(2, ("alpha", "rank", "t"), "ours: matched per-layer SVDs of a and b, interpolated"),
    "average": KindSpec(2, ("alpha",), "(W_a + W_b) / 2"),
    "random": KindSpec(2, ("alpha",), "Gaussian with the std of W_a, W_b"),
}
PAIR_KINDS = tuple(k for k, s in KINDS.items() if s.n_src == 2)
NORM_SOURCES = ("layer0", "neighbours")


@dataclass(frozen=True)
class Slot:
    """One layer of the grown model: ``kind`` says what fills it (the module's table), ``src`` the
    index or indices of the original layer(s) it is built from."""

    kind: str
    src: tuple[int, ...]
    params: tuple[tuple[str, Any], ...] = ()     # sorted (name, value) pairs that differ from the default

    def __init__(self, kind: str, src: tuple[int, ...], params: dict | tuple = (), **kw):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "src", tuple(src))
        p = dict(params)
        p.update(kw)
        if kind not in KINDS:
            raise PlanError(f"unknown slot kind {kind!r}; expected one of {tuple(KINDS)}")
        spec = KINDS[kind]
        if len(self.src) != spec.n_src:
            raise PlanError(f"a {kind!r} slot takes {spec.n_src} source layer(s), got {self.src}")
        for name, v in p.items():
            if name not in spec.params:
                raise PlanError(f"a {kind!r} slot takes no parameter {name!r}"
                                + (f"; it takes {list(spec.params)}" if spec.params else "; it takes none"))
            bad = PARAMS[name][1](v)
            if bad:
                raise PlanError(f"{kind!r} slot parameter {name!r} must be {bad}, got {v!r}")
        # canonical: defaults dropped, ints kept apart from floats only where the type matters
        canon = tuple(sorted((k, float(v) if k != "rank" and _number(v) else v) for k, v in p.items()
                             if v != PARAMS[k][0]))
        object.__setattr__(self, "params", canon)

    def param(self, name: str):
        """The slot's value of a parameter: fixed by its kind, set in the slot, or the default."""
        return {**dict(self.params), **dict(KINDS[self.kind].fixed)}.get(name, PARAMS[name][0])

    @property
    def is_new(self) -> bool:
        return self.kind != "orig"

    def label(self) -> str:
        if self.kind == "orig":
            return f"L{self.src[0]}"
        args = ",".join(str(j) for j in self.src) + "".join(f", {k}={v}" for k, v in self.params)
        return f"{self.kind}({args})"

    def to_row(self) -> list:
        """``[kind, *src]`` or ``[kind, *src, {params}]`` (the plan-file and config.json form)."""
        return [self.kind, *self.src] + ([dict(self.params)] if self.params else [])


def slot_from_row(row: Any, where: str = "slot") -> Slot:
    """A slot from its file form: [kind, i], [kind, a, b], [kind, a, b, {params}] or
    {kind: ..., src: [...], <param>: ...}."""
    if isinstance(row, dict):
        row = dict(row)
        if "kind" not in row or "src" not in row:
            raise PlanError(f"{where}: a slot written as a mapping needs 'kind' and 'src', got {row}")
        kind, src = row.pop("kind"), row.pop("src")
        src = src if isinstance(src, (list, tuple)) else [src]
        params = row
    elif isinstance(row, (list, tuple)) and row and isinstance(row[0], str):
        kind, rest = row[0], list(row[1:])
        params = rest.pop() if rest and isinstance(rest[-1], dict) else {}
        src = rest
    else:
        raise PlanError(f"{where}: expected [kind, layer(s)...] such as [orig, 0] or [predict, 15, 16], got {row!r}")
    for j in src:
        if not isinstance(j, int) or isinstance(j, bool):
            raise PlanError(f"{where}: source layers must be integers, got {j!r} in {row!r}")
    try:
        return Slot(kind, tuple(src), params)
    except PlanError as e:
        raise PlanError(f"{where}: {e}") from None


def _check_predictor(overrides: dict) -> None:
    """Predictor settings a plan carries must be PredictorConfig fields of the right type."""
    if not overrides:
        return
    if not isinstance(overrides, dict):
        raise PlanError(f"predictor settings must be a mapping of PredictorConfig fields, got {overrides!r}")
    from dataclasses import fields

    known = {f.name for f in fields(PredictorConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise PlanError(f"unknown predictor setting(s) {bad}; PredictorConfig fields are {sorted(known)}")
    try:
        PredictorConfig(**overrides)
    except (TypeError, ValueError) as e:
        raise PlanError(f"predictor settings: {e}") from None


@dataclass(frozen=True)
class Plan:
    method: str
    source_layers: int                     # depth of the model the plan applies to
    slots: tuple[Slot, ...]
    norm_source: str = "layer0"            # norms/biases of pair-kind slots: "layer0" (released code) or "neighbours"
    notes: str = ""
    predictor: dict = field(default_factory=dict)   # PredictorConfig fields this plan needs (e.g. space: raw)

    def __post_init__(self):
        self.validate()

    @property
    def target_layers(self) -> int:
        return len(self.slots)

    @property
    def new_layers(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.is_new]

    def validate(self) -> None:
        L = self.source_layers
        if not isinstance(L, int) or isinstance(L, bool) or L < 1:
            raise PlanError(f"source_layers must be a positive integer, got {L!r}")
        if self.norm_source not in NORM_SOURCES:
            raise PlanError(f"norm_source must be one of {NORM_SOURCES}, got {self.norm_source!r}")
        for i, s in enumerate(self.slots):
            if not isinstance(s, Slot):
                raise PlanError(f"slot {i} is not a Slot: {s!r}")
            for j in s.src:
                if not isinstance(j, int) or not 0 <= j < L:
                    raise PlanError(f"slot {i} ({s.label()}) points at layer {j}, outside the "
                                    f"source model's layers 0..{L - 1}")
            if len(s.src) == 2 and not s.src[0] < s.src[1]:
                raise PlanError(f"slot {i} ({s.label()}): a new layer between two layers names the lower "
                                f"one first, e.g. [{s.kind}, {min(s.src)}, {max(s.src)}]")
        origs = [s.src[0] for s in self.slots if s.kind == "orig"]
        if len(set(origs)) != len(origs):
            dup = sorted({j for j in origs if origs.count(j) > 1})
            raise PlanError(f"original layer(s) {dup} appear twice as 'orig'; later occurrences must be 'copy'")
        missing = sorted(set(range(L)) - set(origs))
        if missing:
            raise PlanError(f"original layer(s) {missing} appear nowhere as 'orig': a growth plan keeps every "
                            f"original layer once (repeat a layer with 'copy')")
        if origs != sorted(origs):
            raise PlanError(f"original layers must keep their order; the plan has them as {origs}")
        if not self.new_layers:
            raise PlanError("the plan adds no layer: add slots of a new kind (copy, identity, predict, ...)")
        _check_predictor(self.predictor)

    def describe(self) -> str:
        """Human-readable layer map, one line per slot (no weights needed)."""
        extra = []
        if any(s.kind in PAIR_KINDS for s in self.slots):
            extra.append(f"norms: {self.norm_source}")
        if self.predictor:
            extra.append("predictor: " + ", ".join(f"{k}={v}" for k, v in sorted(self.predictor.items())))
        lines = [f"{self.method}: {self.source_layers} -> {self.target_layers} layers, "
                 f"{len(self.new_layers)} new at {self.new_layers}" + (f" ({'; '.join(extra)})" if extra else "")]
        for i, s in enumerate(self.slots):
            lines.append(f"  {i:3d}  {'NEW' if s.is_new else '   '}  {s.label()}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {"method": self.method, "source_layers": self.source_layers, "norm_source": self.norm_source,
             "notes": self.notes, "predictor": dict(self.predictor), "slots": [s.to_row() for s in self.slots],
             "new_layers": self.new_layers}
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "plan") -> "Plan":
        """A plan from its dict/file form; every problem is a PlanError that names the field."""
        if not isinstance(d, dict):
            raise PlanError(f"{where}: expected a mapping with 'method', 'source_layers' and 'slots', got {type(d).__name__}")
        unknown = sorted(set(d) - PLAN_FILE_KEYS)
        if unknown:
            raise PlanError(f"{where}: unknown key(s) {unknown}; a plan file may have {sorted(PLAN_FILE_KEYS)}")
        for k in ("source_layers", "slots"):
            if k not in d:
                raise PlanError(f"{where}: missing {k!r} (see configs/plans/ for complete examples)")
        L = d["source_layers"]
        if not isinstance(L, int) or isinstance(L, bool):
            raise PlanError(f"{where}: source_layers must be an integer, got {L!r}")
        rows = d["slots"]
        if not isinstance(rows, list):
            raise PlanError(f"{where}: 'slots' must be a list of rows such as [orig, 0], got {type(rows).__name__}")
        slots = tuple(slot_from_row(r, f"{where}: slot {i}") for i, r in enumerate(rows))
        if "target_layers" in d and d["target_layers"] != len(slots):
            raise PlanError(f"{where}: target_layers is {d['target_layers']} but the plan lists {len(slots)} slots")
        if "new_layers" in d and list(d["new_layers"]) != [i for i, s in enumerate(slots) if s.is_new]:
            raise PlanError(f"{where}: new_layers {d['new_layers']} does not match the slots "
                            f"(new at {[i for i, s in enumerate(slots) if s.is_new]}); drop the key or fix it")
        predictor = d.get("predictor") or {}
        try:
            return cls(str(d.get("method", "custom")), L, slots, d.get("norm_source", "layer0"),
                       str(d.get("notes", "") or ""), dict(predictor) if isinstance(predictor, dict) else predictor)
        except PlanError as e:
            raise PlanError(f"{where}: {e}") from None

    def to_yaml(self, header: str = "") -> str:
        """The plan-file form (compact: one flow-style row per slot), readable by load_plan."""
        import json

        def flow(v):          # YAML flow style is a superset of JSON for these values
            return json.dumps(v)
        lines = [f"# {ln}".rstrip() for ln in header.strip().splitlines()] if header else []
        lines += [f"method: {self.method}", f"source_layers: {self.source_layers}",
                  f"target_layers: {self.target_layers}", f"norm_source: {self.norm_source}"]
        if self.notes:
            lines.append(f"notes: {flow(self.notes)}")
        lines.append(f"predictor: {flow(dict(self.predictor))}")
        lines.append("slots:")
        for i, s in enumerate(self.slots):
            row = ", ".join([s.kind, *map(str, s.src)] + ([flow(dict(s.params))] if s.params else []))
            lines.append(f"  - {'[' + row + ']':36s} # slot {i}{', new' if s.is_new else ''}")
        return "\n".join(lines) + "\n"


PLAN_FILE_KEYS = {"method", "source_layers", "target_layers", "norm_source", "notes", "predictor", "slots",
                  "new_layers"}


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (.yaml/.yml/.json). Errors name the file and what to fix."""
    import json

    p = Path(path)
    if not p.is_file():
        raise PlanError(f"plan file {p} does not exist; examples are in configs/plans/ "
                        f"(or write one with `lesa plan --method lesa --layers N --yaml > my-plan.yaml`)")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
    except Exception as e:                       # yaml.YAMLError / JSONDecodeError carry the line
        raise PlanError(f"plan file {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}") from None
    return Plan.from_dict(d, where=f"plan file {p}")


def check_plan_for(plan: Plan, num_layers: int, model: str = "the model", where: str = "plan") -> Plan:
    """A plan made for another depth is rejected before any weights are loaded."""
    if plan.source_layers != num_layers:
        raise PlanError(f"{where} is for a {plan.source_layers}-layer model, but {model} has {num_layers} "
                        f"layers; write one for it with `lesa plan --model {model} --method {plan.method} "
                        f"--yaml` (or edit source_layers and the slots)")
    return plan
