"""The method table: every method declared once, with what the book, the CPT runs and the figures need to know.

    METHODS["lesa"].trains   # "new": its CPT run trains only the grown layers ("all": every weight)
    METHODS["lesa"].seeded   # its grown weights depend on a predictor seed (a run needs cpt.lesa_seed)
    label("lesa"), color("lesa")

A method's plan builder and one-line description are registered next to the builders (lesa.grow.plans.METHODS);
tests/test_plans.py checks that both tables name the same methods and that a seedless method's plan has no slot
kind that draws from a seed. Read by the plans' users, CPT (lesa.study.cpt.TRAINS, SEEDLESS), the figures
(lesa.plots.style), the verdicts (lesa.claims) and the notebooks (learned methods and controls of chapter 6).
"""
from __future__ import annotations

import re
from typing import NamedTuple


class Method(NamedTuple):
    name: str                   # display name: every figure, table and legend goes through label()
    color: str                  # Okabe-Ito colour-blind-safe palette, distinct hues per family
    origin: str                 # "paper" (the paper's methods, baselines and ablations) or "ours"
    trains: str | None          # CPT recipe: "new" (only the grown layers), "all" (every weight), None (display only)
    seeded: bool                # grown weights depend on the predictor seed
    learned: bool = False       # learns or interpolates new weights from the neighbours (chapter 6's subject)
    control: str | None = None  # a control of chapter 6's variants: what it stands for


P, O = "paper", "ours"
METHODS: dict[str, Method] = {
    "base": Method("Base model (not grown)", "#000000", P, "all", False),
    "lesa": Method("LESA", "#D55E00", P, "new", True, learned=True),
    "llama_pro": Method("LLaMA Pro", "#0072B2", P, "new", False),
    "solar": Method("SOLAR", "#009E73", P, "all", False),      # SOLAR continues pre-training the whole model
    "lesa_raw": Method("LESA w/o SVD", "#E69F00", P, "new", True, learned=True),
    "average": Method("Neighbour average", "#CC79A7", P, "new", False),
    "random": Method("Random init", "#56B4E9", P, "new", True),
    "copy": Method("Plain copy", "#999999", P, "new", False),
    # beyond the paper (ours) and their controls: distinct hues of the same families, LESA-placed, trained like LESA
    "lesa_fp": Method("LESA, o/down scaled (ours)", "#8B2E00", O, "new", True, learned=True),
    "lesa_lowrank": Method("LESA, low rank (ours)", "#F0A07A", O, "new", True, learned=True),
    "lesa_ridge": Method("Ridge predictor", "#B07A00", O, "new", True, learned=True),
    "svd_interp": Method("Per-layer SVD interpolation (ours)", "#6A3D9A", O, "new", True, learned=True),
    "copy_scaled": Method("Copy, o/down scaled", "#555555", O, "new", False,
                          control="the lower neighbour's copy, i.e. LLaMA Pro's initialisation in the variants' places"),
    # not a blue: LLaMA Pro's is, and they share figures
    "random_zero_out": Method("Random, o/down zeroed", "#AA4499", O, "new", True, control="random q, k, v, gate and up"),
    # notebook 3's λ variants of LESA: display rows only (no builder of their own, no CPT recipe)
    "lesa-lambda0": Method("LESA, λ = 0", "#F5C26B", O, None, True),
    "lesa-lambda5e-5": Method("LESA, λ = 5e-5 (the paper's)", "#882255", O, None, True),   # wine: 25 CIELAB units from any other
}
ORIGINS = (P, O)
TRAINED = ("new", "all")
LEARNED = tuple(m for m, r in METHODS.items() if r.learned)
CONTROLS = {m: r.control for m, r in METHODS.items() if r.control}
# names found in result files and in the paper's tables, mapped to a method id
_ALIASES = {"llama pro": "llama_pro", "llamapro": "llama_pro", "llama-pro": "llama_pro", "base (8b)": "base",
            "w/o svd": "lesa_raw", "lesa w/o svd": "lesa_raw"}
OTHER_COLOR = "#7f7f7f"
# back-compatible views of the table above (notebooks of older commits use them)
METHOD_COLORS = {k: r.color for k, r in METHODS.items()}
METHOD_LABELS = {k: r.name for k, r in METHODS.items()}


def method_id(name: str) -> str:
    """A method id from a run name ("lesa-unfrozen"), a display name ("LLaMA Pro") or a paper row
    ("LESA-6k", "LLaMA Pro-6k"); unknown names are returned lower-cased."""
    n = str(name).strip().lower()
    if n in METHODS:
        return n
    if n in _ALIASES:
        return _ALIASES[n]
    for disp_id, r in METHODS.items():
        if n == r.name.lower():
            return disp_id
    # a variant's display name: its method's name, then its options ("LESA, low rank (ours), k = 8")
    prefixed = [(len(r.name), i) for i, r in METHODS.items() if n.startswith(r.name.lower() + ", ")]
    if prefixed:
        return max(prefixed)[1]
    head = re.split(r"[-(]", n, maxsplit=1)[0].strip()
    return _ALIASES.get(head, head.replace(" ", "_"))


def color(method: str) -> str:
    m = METHODS.get(method_id(method))
    return m.color if m else OTHER_COLOR


def label(method: str) -> str:
    """Display name of a method id (unknown ids are shown as given)."""
    m = method_id(method)
    if m in METHODS and not str(method).lower().startswith(METHODS[m].name.lower() + ", "):
        return METHODS[m].name
    return str(method)            # unknown, or a variant's or run's own name ("LESA, low rank (ours), k = 8")


def check_table() -> None:
    """Every row well-formed, or a clear error naming the row (tests/test_plans.py)."""
    for m, r in METHODS.items():
        if r.origin not in ORIGINS or r.trains not in (*TRAINED, None) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", r.color):
            raise ValueError(f"lesa.grow.methods.METHODS[{m!r}] = {r}: origin must be one of {ORIGINS}, trains one of "
                             f"{TRAINED} or None, color a #rrggbb string")


# ------------------------------------------------------------------------------ names of runs and variants
def display_name(name: str) -> str:
    """A run or row name as shown: method ids and run names ("lesa", "lesa-unfrozen") by their display
    name; anything else (the paper's "LESA-6k") unchanged."""
    n = str(name)
    if n.lower() in METHODS:
        return label(n)
    head, _, tail = n.partition("-")
    if head.lower() in METHODS and tail == "unfrozen":
        return run_label(head, frozen=False)
    if head.lower() in METHODS and tail == "dup":
        return run_label(head, ablation="dup_only")
    return n


def run_label(method: str, frozen: bool = True, ablation: str | None = None, trains: str | None = None,
              options: dict | None = None) -> str:
    """Legend name of a training run: the method (with a variant's plan options), and what was trained
    when it is not only the new layers. ``trains`` ("new" | "all") is what the run recorded; without it,
    the recipes of lesa.study.cpt.TRAINS (the base model and SOLAR train every layer) and the ablations decide."""
    m = method_id(method)
    name = variant_label(m, options) if options else label(m)
    if ablation == "dup_only":
        return f"{name}, duplicated layers only"
    if trains is not None:
        return f"{name}, all layers trained" if trains == "all" else name
    if m in ("base", "solar") or not frozen:
        return f"{name}, all layers trained"
    return name


_OPTION_SYMBOLS = {"alpha": "α", "rank": "k", "lam": "λ", "t": "t", "gaps": "placement"}


def run_title(run: dict) -> str:
    """run_label of a CPT run as lesa.study.analysis.load_cpt_runs loads it, or of an entry of lesa.study.cpt.run_names
    (a run not trained yet): its method, options, ablation and what it trains, as recorded."""
    ablation = run.get("ablation")
    return run_label(run["method"], run.get("frozen", ablation is None), ablation, run.get("trains"), run.get("options"))


def variant_label(method: str, options: dict | None = None) -> str:
    """Display name of a method grown with plan options, e.g. "LESA, low rank (ours), k = 8": the
    method's one name (label) and its options, so two settings of a method never share a name."""
    opts = ", ".join(f"{_OPTION_SYMBOLS.get(k, k)} = {v:g}" if isinstance(v, float) else f"{_OPTION_SYMBOLS.get(k, k)} = {v}"
                     for k, v in (options or {}).items())
    return f"{label(method)}, {opts}" if opts else label(method)
