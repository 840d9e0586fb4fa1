"""One figure style for the book: each method's one name and colour, the page geometry, matplotlib
settings, saving, and the panel/legend layout every figure uses."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .table import fmt_num

# verdict -> colour, shared by the summary figure and the scoreboard's CSS (book/_static/lesa.css)
VERDICT_COLORS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e",
                  "inconclusive": "#9a6700", "not testable offline": "#6e7781", "not yet run": "#afb8c1"}

# representation ids of the continuity tests (notebook 1) -> what a reader is told
REPRESENTATIONS = {"concat_svd_top1": "concatenated SVD, top-1 row", "per_layer_svd_top1": "per-layer SVD, top-1 row",
                   "raw": "raw weights", "raw_weights": "raw weights"}

PAGE_W = 6.9          # inches: the book's text column at figure.dpi 100
PANEL_H = 2.1         # inches: one row of panels (11-pt tick labels and a title fit)


def setup() -> None:
    """The book's style (the backend is left alone: inline in notebooks, Agg under MPLBACKEND)."""
    import matplotlib.pyplot as plt

    # 11-pt text: a figure is shown at about its size in inches x 100 px, a little less where the page's column
    # narrows it, and 9-pt tick labels came out about 9 px tall at 1280 px (issue 40), too small to read
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "font.size": 11, "axes.titlesize": 11,
                         "axes.labelsize": 11, "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 10,
                         "figure.titlesize": 12, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
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
    """n panels, at most `ncols` per row (3 keeps 11-pt text readable at page width). spare=True keeps
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
