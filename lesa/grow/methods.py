"""Each method's one display name and colour, and how a name found in results or the paper maps to its id.

Read by the figures (lesa.plots.style), the verdicts (lesa.claims) and the reports; the plans that build each
method are in lesa.grow.plans."""
from __future__ import annotations

import re

# method id -> (display name, colour). The only place a method's name or colour is defined: every
# figure, table and legend goes through label() / color(). Okabe-Ito colour-blind-safe palette.
METHODS: dict[str, tuple[str, str]] = {
    "base": ("Base model (not grown)", "#000000"),
    "lesa": ("LESA", "#D55E00"),
    "llama_pro": ("LLaMA Pro", "#0072B2"),
    "solar": ("SOLAR", "#009E73"),
    "lesa_raw": ("LESA w/o SVD", "#E69F00"),
    "average": ("Neighbour average", "#CC79A7"),
    "random": ("Random init", "#56B4E9"),
    "copy": ("Plain copy", "#999999"),
    # beyond the paper (ours) and their controls: distinct hues of the same families
    "lesa_fp": ("LESA, o/down scaled (ours)", "#8B2E00"),
    "lesa_lowrank": ("LESA, low rank (ours)", "#F0A07A"),
    "lesa_ridge": ("Ridge predictor", "#B07A00"),
    "svd_interp": ("Per-layer SVD interpolation (ours)", "#6A3D9A"),
    "copy_scaled": ("Copy, o/down scaled", "#555555"),
    "random_zero_out": ("Random, o/down zeroed", "#AA4499"),   # not a blue: LLaMA Pro's is, and they share figures
    "lesa-lambda0": ("LESA, λ = 0", "#F5C26B"),
    "lesa-lambda5e-5": ("LESA, λ = 5e-5 (the paper's)", "#882255"),   # wine: 25 CIELAB units from any other
}
# names found in result files and in the paper's tables, mapped to a method id
_ALIASES = {"llama pro": "llama_pro", "llamapro": "llama_pro", "llama-pro": "llama_pro", "base (8b)": "base",
            "w/o svd": "lesa_raw", "lesa w/o svd": "lesa_raw"}
OTHER_COLOR = "#7f7f7f"
# back-compatible views of the table above (notebooks of older commits use them)
METHOD_COLORS = {k: c for k, (_, c) in METHODS.items()}
METHOD_LABELS = {k: n for k, (n, _) in METHODS.items()}


def method_id(name: str) -> str:
    """A method id from a run name ("lesa-unfrozen"), a display name ("LLaMA Pro") or a paper row
    ("LESA-6k", "LLaMA Pro-6k"); unknown names are returned lower-cased."""
    n = str(name).strip().lower()
    if n in METHODS:
        return n
    if n in _ALIASES:
        return _ALIASES[n]
    for disp_id, (disp, _) in METHODS.items():
        if n == disp.lower():
            return disp_id
    # a variant's display name: its method's name, then its options ("LESA, low rank (ours), k = 8")
    prefixed = [(len(disp), i) for i, (disp, _) in METHODS.items() if n.startswith(disp.lower() + ", ")]
    if prefixed:
        return max(prefixed)[1]
    head = re.split(r"[-(]", n, maxsplit=1)[0].strip()
    return _ALIASES.get(head, head.replace(" ", "_"))


def color(method: str) -> str:
    return METHODS.get(method_id(method), ("", OTHER_COLOR))[1]


def label(method: str) -> str:
    """Display name of a method id (unknown ids are shown as given)."""
    m = method_id(method)
    if m in METHODS and not str(method).lower().startswith(METHODS[m][0].lower() + ", "):
        return METHODS[m][0]
    return str(method)            # unknown, or a variant's or run's own name ("LESA, low rank (ours), k = 8")
