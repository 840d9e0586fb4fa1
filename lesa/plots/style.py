"""One figure style for the book: each method's one name and colour, the page geometry, matplotlib
settings, saving, and the panel/legend layout every figure uses."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .table import fmt_num

# ------------------------------------------------------------------------------ one name, one colour
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

# verdict -> colour, shared by the summary figure and the scoreboard's CSS (book/_static/lesa.css)
VERDICT_COLORS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e",
                  "inconclusive": "#9a6700", "not testable offline": "#6e7781", "not yet run": "#afb8c1"}

# representation ids of the continuity tests (notebook 1) -> what a reader is told
REPRESENTATIONS = {"concat_svd_top1": "concatenated SVD, top-1 row", "per_layer_svd_top1": "per-layer SVD, top-1 row",
                   "raw": "raw weights", "raw_weights": "raw weights"}

PAGE_W = 6.9          # inches: the book's text column at figure.dpi 100
PANEL_H = 2.1         # inches: one row of panels (9-pt tick labels and a title fit)


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


def setup() -> None:
    """The book's style (the backend is left alone: inline in notebooks, Agg under MPLBACKEND)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "font.size": 9, "axes.titlesize": 9,
                         "axes.labelsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
                         "figure.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False, "figure.autolayout": False,
                         "figure.constrained_layout.use": True})
    try:                                    # DataFrames shown whole, every number in the book's format
        import pandas as pd

        pd.set_option("display.max_rows", None, "display.max_columns", None, "display.width", None,
                      "display.max_colwidth", None, "display.float_format", fmt_num)
    except ImportError:
        pass
    try:                                    # 2x images in notebooks, shown at 1x size (width metadata)
        from IPython import get_ipython

        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("retina")
    except ImportError:
        pass


def save(fig: Any, folder: str | Path, name: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path


def _figure(w: float = PAGE_W, h: float = 2.8, **kw):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h), layout="constrained", **kw)


def _grid(n: int, ncols: int = 3, w: float = PAGE_W, h: float = PANEL_H, sharex: bool = False,
          sharey: bool = False, spare: bool = False):
    """n panels, at most `ncols` per row (3 keeps 9-pt text readable at page width). spare=True keeps
    one extra cell for the legend when the last row has room. Returns (fig, panels, legend_ax|None)."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n + (1 if spare else 0)))
    nrows = -(-(n + (1 if spare else 0)) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h * nrows), squeeze=False, layout="constrained",
                             sharex=sharex, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    legend_ax = None
    if spare and len(flat) > n:
        legend_ax = flat[n]
        legend_ax.set_visible(True)
        legend_ax.axis("off")
    return fig, flat[:n], legend_ax


def _legend(fig: Any, ax_from: Any, legend_ax: Any = None, ncol: int = 4, **kw) -> None:
    """One legend outside the data: in the spare panel when there is one, else below the panels."""
    handles, labels = ax_from.get_legend_handles_labels()
    if not handles:
        return
    if legend_ax is not None:
        legend_ax.legend(handles, labels, loc="center", ncol=1, **kw)
    else:
        cols = _legend_columns(fig, labels, ncol)
        rows = -(-len(labels) // cols)
        if rows > 2:          # the panels keep their height: the figure grows by the legend's extra rows
            pt = _legend_pt()
            fig.set_figheight(fig.get_figheight() + (rows - 2) * 1.4 * pt / 72)
        fig.legend(handles, labels, loc="outside lower center", ncol=cols, **kw)


def _legend_pt() -> float:
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=plt.rcParams["legend.fontsize"]).get_size_in_points()


def _legend_columns(fig: Any, labels: list[str], ncol: int) -> int:
    """At most ``ncol`` columns, as many as fit the figure's width: a legend wider than its figure widens
    the saved image, and the page then shrinks the whole figure to its column (long variant names in
    many columns made chapter 4's panels unreadably small)."""
    pt = _legend_pt()
    per_col = (max(map(len, labels)) * 0.55 + 4) * pt     # text at ~0.55 em a character, plus handle and gaps
    return max(1, min(ncol, len(labels), int(fig.get_figwidth() * 72 // per_col)))


# model (or case) label -> colour, in order of appearance: the figures that compare models use these
MODEL_SHADES = ["#333333", "#56B4E9", "#E69F00", "#CC79A7", "#009E73"]


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
