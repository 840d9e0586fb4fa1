"""What a reader is shown instead of the code's identifiers and raw numbers: one display name per method,
run and trivial predictor, and one uncertainty format, "median (min–max, n seeds)".

    display.name("lesa_fp-0-p2")      # "LESA, o/down scaled (ours), predictor seed 2"
    display.uniform("0.2 (range 0.1 to 0.3, 3 seeds); a +- b")   # "0.2 (0.1–0.3, 3 seeds); a ± b"

Method names are declared once, in lesa.plots_style.METHODS; this module only maps what is not a method
(run ids, C7b's trivial predictors) onto them, so that a later method table can absorb it. The verdict
records already written (results/*/verdicts/) carry the older formats ("range a to b", "[a, b]", "+-"):
`uniform` rewrites them when the book shows them, so no result file needs to change.
"""
from __future__ import annotations

import re

from ..core.models import profile_label
from ..grow.methods import METHODS, display_name, label, variant_label

# C7b's trivial predictors (lesa.claims.TRIVIAL) and the predictor itself, as a reader is told them
TERMS = {"zeros": "zeros", "neighbour_average": "neighbours' average", "copy_below": "copy of the layer below",
         "copy_above": "copy of the layer above", "ridge": "linear ridge map", "predictor": "LESA's predictor"}

# benchmark and evaluation ids (lesa.evaluate_tasks) as their authors write them
TASKS = {"arc_challenge": "ARC-Challenge", "arc_easy": "ARC-Easy", "hellaswag": "HellaSwag", "piqa": "PIQA",
         "winogrande": "WinoGrande", "ppl_wikitext": "WikiText perplexity", "ppl_lambada": "LAMBADA perplexity"}

# run-name suffixes of lesa.cpt (`lesa_fp-0-randdir-p1`): the plan option and what each variant changes
_RUN_PARTS = {"unfrozen": "all layers trained", "dup": "duplicated layers only", "randdir": "random directions",
              "spec": "reshaped spectrum", "spread": "spread-matched"}


def name(ident: str, variants: dict | None = None) -> str:
    """The display name of a method id, a CPT run name or a trivial predictor; anything else unchanged.
    Run names are `<method or variant>[-<part>...][-p<predictor seed>|-seed<data order>]` (lesa.cpt.run_names);
    ``variants``: a profile's expansion.variants (variant name -> {method, options...}), named with their options."""
    s = str(ident)
    for v in sorted(variants or {}, key=len, reverse=True):         # "lesa_fp-0-p1": the variant "lesa_fp-0"
        if s == v or s.startswith(v + "-"):
            spec = dict(variants[v])
            rest = name(spec["method"] + s[len(v):]).split(", ")[1:] if s != v else []
            return ", ".join([variant_label(spec.pop("method"), spec), *rest])
    if s in TERMS:
        return TERMS[s]
    if s.lower() in METHODS:
        return label(s)
    head, *parts = s.split("-")
    if head.lower() not in METHODS or not parts:
        return display_name(s)
    out, extra = [label(head)], []
    for p in parts:
        if re.fullmatch(r"p\d+", p):
            extra.append(f"predictor seed {p[1:]}")
        elif re.fullmatch(r"seed\d+", p):
            extra.append(f"data order {p[4:]}")
        elif p in _RUN_PARTS:
            extra.append(_RUN_PARTS[p])
        elif re.fullmatch(r"\d+(\.\d+)?", p):
            out[0] += f" {p}"            # a variant's option value, named in full when ``variants`` is given
        else:
            return display_name(s)       # an unknown part: keep the name as recorded rather than guess
    return ", ".join(out + extra)


_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
_RANGE = re.compile(rf"({_NUM}) \(range ({_NUM}) to ({_NUM}), (\d+) ([a-z][a-z ]*?)\)")
_BRACKET = re.compile(rf"({_NUM}) \[({_NUM}), ({_NUM})\]")
_TINY = re.compile(r"(?<![\w.])(-?\d(?:\.\d+)?e-\d+)(?![\w.])")


def spread_format(median: str, lo: str, hi: str, n: int | None = None, unit: str = "seeds") -> str:
    """The book's one uncertainty format for a spread over runs: "median (min–max, n unit)" ("min to max" when
    either is negative); all equal:
    "median (all n unit equal)"."""
    count = f", {n} {unit}" if n else ""
    if lo == hi == median:
        return f"{median} (all {n} {unit} equal)" if n else median
    dash = " to " if lo.startswith("-") or hi.startswith("-") else "–"     # "-0.97–-0.89" misreads
    return f"{median} ({lo}{dash}{hi}{count})"


def _tiny(m: re.Match) -> str:
    """A measured float in e-notation below 0.001 in size reads as "≈ 0"; a setting ("λ = 5e-05") is kept."""
    if "=" in m.string[max(0, m.start() - 3):m.start()]:
        return m.group(1)
    return "≈ 0" if abs(float(m.group(1))) < 1e-3 else m.group(1)


def uniform(text: str, tiny: bool = True) -> str:
    """Rewrite a computed sentence into the book's one format: spreads as spread_format, "+-" as "±",
    trivial predictors, task and method ids by their display names, and (``tiny``) a measured float in
    e-notation below 0.001 as "≈ 0" (off for tables whose small values are the measurement, chapter 1's)."""
    s = str(text)
    s = _RANGE.sub(lambda m: spread_format(m[1], m[2], m[3], int(m[4]), m[5]), s)
    s = _BRACKET.sub(lambda m: spread_format(m[1], m[2], m[3]), s)
    s = s.replace("+-", "±")
    if tiny:
        s = _TINY.sub(_tiny, s)
    words = {**TERMS, **TASKS, **{m: label(m) for m in METHODS}}
    for ident, shown in words.items():
        if "_" in ident or "-" in ident or ident in TASKS:   # plain words (zeros, ridge, lesa) read as they are
            s = re.sub(rf"(?<![\w-]){re.escape(ident)}(?![\w-])", shown, s)
    # a module of this package named in a sentence ("...; lesa.flops)") says nothing to a reader; a command keeps it
    s = re.sub(r" \(lesa\.[a-z_.]*[a-z_]\)", "", s)
    s = re.sub(r"[;,] ?lesa\.[a-z_.]*[a-z_](?=\))", "", s)
    # a profile by its name in words (its config name is for commands), and no pointer into a profile's file
    s = s.replace("(profile `protocol` section, ", "(")
    s = re.sub(r"\bthe `?(cpu-long|cpu|gpu|smoke|scale|paper)`? profile\b", lambda m: profile_label(m[1]), s)
    # a weight type's module name (o_proj) as the projection it is
    return re.sub(r"\b(q|k|v|o|gate|up|down)_proj\b", r"\1-projection", s)
