"""Where the book's pages link for evidence: the figure that decides each claim, by the MyST name its chapter
notebook gives it (cell metadata), and the build-time guard for citations of figures a build did not draw.
Shared by the scoreboard (lesa.book.pages) and the landing page's abstract (lesa.book.abstract)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from ..core.layout import Results
from .common import NB_DIR

# The figure that shows each claim's decision, where the verdict record's `evidence` (what it was computed
# from) names none or names another first: C1 on the shuffled-order test per model (the t-SNE it names first only
# illustrates), C4 on the longer runs' held-out loss, C9 and C3 on the same perplexities before training, C7a on the
# left-out layers' R² (loo.csv).
# A value starting with "#" is a section of the chapter (C6 is decided on the step-cost bench's table).
DECIDING = {"C1": "continuity_by_model", "C4": "c4_longer_heldout", "C9": "ppl_before_training", "C7a": "loo_r2",
            "C6": "#step-cost-measured-and-expected"}

# the limitations page's labels (book/limitations.md), one per caveat of the abstract
CAVEATS = ("lim-source-weights", "lim-paper-numbers", "lim-budgets", "lim-chaos")


def figure_anchors(nb_dir: Path = NB_DIR, profile: str | None = None) -> dict[str, dict[str, str]]:
    """notebook -> {saved figure name (page.save's second argument) -> the figure's MyST name}, read from the
    clean notebooks' cell metadata, so a link to a figure never goes stale when a chapter is re-executed. With a
    ``profile``, only the figures its executed notebooks (results/<profile>/executed/) drew: a figure cell whose
    condition was false (the smoke profile has no CPT runs) has no anchor to link to."""
    out: dict[str, dict[str, str]] = {}
    for p in sorted(Path(nb_dir).glob("[0-9][0-9]_*.ipynb")):
        found = {}
        for cell in json.loads(p.read_text())["cells"]:
            label = ((cell.get("metadata", {}).get("mystnb") or {}).get("figure") or {}).get("name")
            if label:
                found.update({n: label for n in _saved_names("".join(cell.get("source", "")))})
        if profile is not None:
            ran = Results(profile).executed() / p.name
            drawn = drawn_labels(json.loads(ran.read_text())) if ran.exists() else set()
            found = {n: label for n, label in found.items() if label in drawn}
        out[p.stem] = found
    return out


def drawn_labels(nb: dict) -> set[str]:
    """The MyST names of the figure cells of an executed notebook that drew an image."""
    return {name for cell in nb.get("cells", [])
            if (name := ((cell.get("metadata", {}).get("mystnb") or {}).get("figure") or {}).get("name"))
            and any("image/png" in (o.get("data") or {}) for o in cell.get("outputs", []))}


def _saved_names(src: str) -> list[str]:
    """The figure names a cell saves: the second argument of each `page.save(fig, "name")` call."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return []
    return [c.args[1].value for c in ast.walk(tree)
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "save"
            and len(c.args) > 1 and isinstance(c.args[1], ast.Constant) and isinstance(c.args[1].value, str)]


def evidence_link(row: dict, anchors: dict[str, dict[str, str]]) -> tuple[str, str]:
    """(href relative to book/, link text) of the figure that decides a verdict: DECIDING, else the first
    saved figure the record's `evidence` names (a CSV `x.csv` counts for a figure named `x...`), else the
    chapter's page."""
    nb = row.get("notebook") or ""
    figs = anchors.get(nb, {})
    words = re.findall(r"[A-Za-z0-9_]+", str(row.get("evidence", "")))
    chapter = nb[:2].lstrip("0")
    if not nb:
        return "", ""
    if str(DECIDING.get(row["claim"], "")).startswith("#"):
        return f"chapters/{nb}.html{DECIDING[row['claim']]}", f"ch. {chapter}, section"
    pick = DECIDING.get(row["claim"]) if DECIDING.get(row["claim"]) in figs else None
    for w in words:
        if pick:
            break
        if w in figs:
            pick = w
    for w in words:
        if pick:
            break
        pick = next((f for f in figs if f.startswith(w) and len(w) > 2 and w not in ("figure", "figures")), None)
    if pick:
        return f"chapters/{nb}.html#{figs[pick]}", f"ch. {chapter}, figure"
    return f"chapters/{nb}.html", f"ch. {chapter}"


def record_dict(v: Any) -> dict:
    """A verdict record's uncertainty: a mapping, also when an older record stored its repr."""
    if isinstance(v, dict):
        return v
    try:
        out = ast.literal_eval(v) if isinstance(v, str) and v.startswith("{") else {}
    except (ValueError, SyntaxError):
        return {}
    return out if isinstance(out, dict) else {}



_NUMREF = re.compile(r"\{numref\}`([^`<>]+?)`")


def drop_missing_numrefs(nb: dict) -> int:
    """Rewrite, in an executed chapter notebook (JSON), each {numref} citation of a figure the notebook did not
    draw (a figure cell whose condition was false: no CPT runs in the smoke profile) into words, so that the
    build, which treats an undefined label as an error, states the absence instead of failing. Returns how many
    were rewritten; a build with every figure (cpu, gpu) rewrites none."""
    drawn = drawn_labels(nb)
    count = 0

    def fix(m: re.Match) -> str:
        nonlocal count
        if m[1] in drawn or not m[1].startswith("fig-"):
            return m[0]
        count += 1
        return "a figure not drawn in this build"

    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = _NUMREF.sub(fix, src)
    return count
