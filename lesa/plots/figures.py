"""One figure style for the book, and helpers that draw from result records (dicts / JSON).

Every helper returns the matplotlib Figure; ``save(fig, folder, name)`` writes a PNG (and closes
nothing, so the notebook still shows it) and returns its path. ``table(...)`` renders a table the same
way everywhere (significant digits, no truncation, a CSV beside it).

Sizes: the book's text column is about 690 px wide, and a notebook figure is shown at its size in
inches x ``figure.dpi`` (100) pixels, so figures are at most ``PAGE_W`` = 6.9 in wide and 9-pt text
stays 9 pt on the page. Saved PNGs and inline images are drawn at 2x for sharp text on high-density
screens (inline: "retina", shown at half its pixel size).

The style (layout, saving) is in lesa.plots.style, each method's name and colour in lesa.grow.methods, tables in
lesa.plots.table, notebooks 1-3's figures in lesa.plots.growth; this module draws the rest (CPT curves,
downstream, seeds, landing page).
"""
from __future__ import annotations

import textwrap
from typing import Any, Iterable

import numpy as np

from ..claims.verdict import smooth, verdict_of
from ..grow.methods import OTHER_COLOR, color, label, method_id
from ..grow.methods import display_name, run_title
from .style import MODEL_SHADES, PAGE_W, VERDICT_COLORS, _figure, _grid, _legend
from .table import fmt_num


# ------------------------------------------------------------------------------- notebook 4
_X_LABELS = {"step": "optimizer step", "tokens": "training tokens", "flops": "training compute ({u}FLOP)",
             "elapsed_s": "wall-clock (s)"}
_PREFIXES = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")]


def _unit(vmax: float) -> tuple[float, str]:
    """(divisor, SI prefix) that puts vmax between 1 and 1000."""
    for div, p in _PREFIXES:
        if vmax >= div:
            return div, p
    return 1.0, ""


def _x_axis(runs: dict, key: str) -> tuple[float, str]:
    """Divisor and axis label of a curve's x variable, in units that suit the largest value."""
    vmax = max([float(row.get(key) or 0) for r in runs.values() for row in r.get("train", [])] or [0])
    if key == "tokens":
        div, p = _unit(vmax)
        return div, "training tokens" + (f" ({ {'k': 'thousands', 'M': 'millions', 'G': 'billions'}.get(p, p) })" if p else "")
    if key == "flops":
        div, p = _unit(vmax)
        return div, _X_LABELS["flops"].format(u=p)
    return 1.0, _X_LABELS.get(key, key)


def cpt_curves(runs: dict, x: str | Iterable[str] = ("tokens", "flops"), window: int = 10) -> Any:
    """Training loss of each CPT run (moving mean over `window` steps) against `x`: one panel per x,
    sharing the loss axis. The default puts tokens and FLOPs side by side: the same tokens cost each
    method a different compute (its new layers' depth and the frozen layers above them), so the two
    panels differ exactly where the methods' costs do. `x="step"` is the same picture as tokens
    (constant tokens per step), so it is not drawn beside it."""
    xs_keys = [x] if isinstance(x, str) else list(x)
    fig, axes = _figure(w=PAGE_W, h=3.0, ncols=len(xs_keys), sharey=True, squeeze=False)
    axes = list(axes.flat)
    for ax, key in zip(axes, xs_keys):
        div, xlabel = _x_axis(runs, key)
        for lab, group in _seed_groups(runs, "train").items():
            curves = [(np.asarray([row.get(key) or 0 for row in r["train"]], dtype=float) / div,
                       smooth([row["loss"] for row in r["train"]], window)) for r in group]
            _band(ax, curves, group[0], lab, _seed_word(group))
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(f"training loss\n(mean of {window} steps)")
    _legend(fig, axes[0], ncol=3)
    if len(axes) > 1:
        fig.suptitle("Training loss (shared y-axis); grown models train only their new layers unless marked")
    return fig


def _seed_groups(runs: dict, key: str) -> dict[str, list[dict]]:
    """Runs with logged `key` rows grouped by legend name: the runs of one method and recipe that differ
    only in seed (data order, predictor) share a name and are drawn as one band."""
    groups: dict[str, list[dict]] = {}
    for r in runs.values():
        if r[key]:
            lab = run_title(r)
            groups.setdefault(lab, []).append(r)
    return groups


def _seed_word(group: list[dict]) -> str:
    """What differs between a band's runs, for its legend: LLaMA Pro's three runs are data orders, a
    learned variant's are predictor seeds on one data order."""
    def varies(get) -> bool:
        return len({get(r.get("summary") or {}) for r in group}) > 1
    data = varies(lambda s: (s.get("config") or {}).get("seed"))
    pred = varies(lambda s: (s.get("run") or {}).get("predictor_seed"))
    return "data orders" if data and not pred else "predictor seeds" if pred and not data else "seeds"


# plan options that reshape a prediction's SVD (lesa.grow.plans: the spectrum test) -> (line style, marker)
RESHAPED_STYLE = {"spectrum": ("-.", "^"), "directions": ((0, (1, 1)), "x")}


def _band(ax, curves: list[tuple[np.ndarray, np.ndarray]], r: dict, lab: str, what_varies: str = "seeds",
          **kw) -> None:
    """One run: its curve. Several seeds: the median curve and a shaded min-max band over the steps all
    of them logged (x: the median across seeds, e.g. elapsed seconds differ); `what_varies` names them."""
    style = dict(color=color(r["method"]), ls="-" if r["frozen"] or method_id(r["method"]) == "base" else "--",
                 ms=3, **kw)
    if (r.get("options") or {}).get("gaps") not in (None, "top"):
        # the same method in another placement keeps its colour (one colour per method) and is told
        # apart by its line and marker
        style.update(ls=":" if style["ls"] == "-" else "-.", marker="s" if "marker" in kw else None)
    reshaped = next((RESHAPED_STYLE[k] for k in (r.get("options") or {}) if k in RESHAPED_STYLE), None)
    if reshaped:                    # the spectrum test's runs: the method's colour, their own line and marker
        style.update(ls=reshaped[0], marker=reshaped[1] if "marker" in kw else None)
    if len(curves) == 1:
        ax.plot(*curves[0], label=lab, **style)
        return
    n = min(len(y) for _, y in curves)
    xs = np.median([x[:n] for x, _ in curves], axis=0)
    ys = np.stack([y[:n] for _, y in curves])
    ax.plot(xs, np.median(ys, axis=0), label=f"{lab} (median, range of {len(curves)} {what_varies})", **style)
    ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=style["color"], alpha=0.2, lw=0)


def heldout_curves(runs: dict) -> Any:
    fig, ax = _figure(h=3.0)
    has_tokens = all("tokens" in e for r in runs.values() for e in r["eval"])
    div, xlabel = _x_axis(runs, "tokens") if has_tokens else (1.0, "optimizer step")
    for lab, group in _seed_groups(runs, "eval").items():
        curves = [(np.asarray([e["tokens"] / div if has_tokens else e["step"] for e in r["eval"]], dtype=float),
                   np.asarray([e["heldout_ppl"] for e in r["eval"]], dtype=float)) for r in group]
        _band(ax, curves, group[0], lab, _seed_word(group), marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out perplexity (log)")
    ax.set_yscale("log")
    ax.set_title("Held-out perplexity during training")
    _legend(fig, ax, ncol=3)
    return fig


def heldout_loss_curves(runs: dict, flops: Any = None, zoom: bool = True) -> Any:
    """Held-out loss during CPT against training tokens and, when ``flops(run, tokens)`` gives the
    compute spent by then (lesa.claims.beyond.flops_at), against FLOPs: runs that differ only in seed share a
    legend name and are drawn as a median curve with a min-max band.

    zoom: the y-axis spans the curves after their first evaluation (and the starts that lie near them),
    so a few far-off starts (LESA's 5.5 nats beside 3.0-3.4 for the rest) do not squeeze the training
    into a few pixels; each start left off the axis is named in the panel with its value."""
    keys = ["tokens"] + (["flops"] if flops else [])
    groups = _seed_groups(runs, "eval")
    fig, axes = _figure(w=PAGE_W, h=2.6 + 0.19 * len(groups), ncols=len(keys), sharey=True, squeeze=False)
    axes = list(axes.flat)
    drawn: list[tuple[str, str, list]] = []          # (legend name, colour, curves) of the tokens panel
    for ax, key in zip(axes, keys):
        div, xlabel = _x_axis(runs, key)
        for lab, group in groups.items():
            curves = []
            for r in group:
                # (x, loss) per evaluation; an evaluation with no logged FLOPs at its tokens is left out
                pts = [(e["tokens"] if key == "tokens" else flops(r, e["tokens"]), e["heldout_loss"])
                       for e in r["eval"] if "tokens" in e]
                pts = [(x, y) for x, y in pts if x is not None]
                curves.append((np.asarray([x for x, _ in pts], dtype=float) / div, np.asarray([y for _, y in pts], dtype=float)))
            _band(ax, curves, group[0], lab, _seed_word(group), marker="o")
            if ax is axes[0]:
                drawn.append((lab, color(group[0]["method"]), curves))
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("held-out loss (nats per token)")
    if zoom:
        _zoom_past_starts(axes, drawn)
    # one column: the names carry a variant's options and what its band spans, too long for two
    _legend(fig, axes[0], ncol=1)
    return fig


def _zoom_past_starts(axes: list, drawn: list[tuple[str, str, list]]) -> None:
    """Fit the shared y-axis to every point after the first evaluation and to the starts no further
    above them than their own spread; name each start left off, with its value, in the first panel."""
    later = [float(y) for _, _, cs in drawn for _, ys in cs for y in ys[1:] if np.isfinite(y)]
    starts = [(lab, c, max(float(ys[0]) for _, ys in cs if len(ys))) for lab, c, cs in drawn
              if any(len(ys) for _, ys in cs)]       # a band's highest start
    if not later or not starts:
        return
    lo, hi = min(later + [s for *_, s in starts]), max(later)
    spread = max(hi - lo, 1e-6)
    top = max([hi] + [s for *_, s in starts if s <= hi + spread])
    off = [(lab, c, s) for lab, c, s in starts if s > top]
    if not off:
        return
    pad = 0.06 * (top - lo)
    for ax in axes:
        ax.set_ylim(lo - pad, top + pad)
    # the curves leave the axis at their first step; the text names where they come from, placed right of
    # the first evaluations, where the curves have come down
    for i, (lab, c, s) in enumerate(sorted(off, key=lambda t: -t[2])):
        axes[0].annotate(f"{lab.split(' (median')[0]} starts at {s:.2f} (off the axis)", xy=(0.2, 0.98),
                         xycoords="axes fraction", xytext=(0, -11 * i), textcoords="offset points",
                         fontsize=9, color=c, va="top")


def difference_panels(data: dict, ref_label: str = "LLaMA Pro", ncols: int = 3, panel_h: float = 1.9,
                      what: str = "held-out loss") -> Any:
    """Small multiples of paired differences (lesa.study.variants.difference_curves): one panel per group, its
    median difference from the reference's median against training tokens with a band from its lowest to its
    highest run, over the reference's own band (grey, around 0); one shared y-axis, so panels compare by
    position. Each panel's title is the group's display name; colour and line as in every figure."""
    from .style import _grid

    panels = data["panels"]
    fig, axes, _ = _grid(len(panels), ncols=ncols, w=PAGE_W, h=panel_h, sharex=True, sharey=True)
    ref = data["ref"]
    div, p = _unit(max([t for q in panels for t in q["tokens"]] or [1]))
    for ax, q in zip(axes, panels):
        if ref["tokens"] and ref["n"] > 1:
            ax.fill_between(np.asarray(ref["tokens"]) / div, ref["lo"], ref["hi"], color="#999999", alpha=0.35, lw=0)
        ax.axhline(0, color="#666666", lw=0.8)
        style = {"color": color(q["method"]), "ls": "-" if q["frozen"] or method_id(q["method"]) == "base" else "--"}
        if q["options"].get("gaps") not in (None, "top"):
            style["ls"] = ":"
        reshaped = next((RESHAPED_STYLE[k] for k in q["options"] if k in RESHAPED_STYLE), None)
        if reshaped:
            style["ls"] = reshaped[0]
        xs = np.asarray(q["tokens"]) / div
        ax.plot(xs, q["median"], marker="o", ms=2.5, **style)
        if q["n"] > 1:
            ax.fill_between(xs, q["lo"], q["hi"], color=style["color"], alpha=0.25, lw=0)
        ax.set_title(_wrap(q["label"] + (f" ({q['n']} runs)" if q["n"] > 1 else ""), 28), fontsize=9.5)
    for ax in axes[-min(ncols, len(axes)):]:        # the lowest panel of each column: the ones with tick labels
        ax.xaxis.set_tick_params(labelbottom=True)
    # one label per axis for the whole grid: per panel they collide at a legible size
    fig.supxlabel("training tokens" + (f" ({ {'k': 'thousands', 'M': 'millions', 'G': 'billions'}.get(p, p) })" if p else ""),
                  fontsize=plt_size("axes.labelsize"))
    fig.supylabel(f"{what} minus {ref_label}'s median (nats)", fontsize=plt_size("axes.labelsize"))
    return fig


_PAIRED_HEADS = {"tokens": "at the same tokens\n(same batches; mean of {w} steps)",
                 "flops": "at the same compute\n(mean of {cw} steps)",
                 "elapsed_s": "at the same elapsed seconds\n(mean of {cw} steps)"}


def paired_loss_panels(data: dict, ref_label: str = "LLaMA Pro", row_h: float = 1.35) -> Any:
    """Small multiples of paired training-loss differences (lesa.study.curves.training_differences): one row per
    method, one column per x the data has (default: its difference from LLaMA Pro at the same tokens, left, and at
    the same training compute, right; or at the same elapsed seconds), the median over its runs with a band from the
    lowest to the highest. One y-range for every panel, fitted to the points after the first steps; a method whose
    first steps lie above it says so in its panel, with how far."""
    import matplotlib.pyplot as plt

    panels = data["panels"]
    keys = tuple(data.get("columns") or ("tokens", "flops"))
    n, foot = max(1, len(panels)), 0.4          # the last row also holds the x labels: as tall a plot as the others
    fig = plt.figure(figsize=(PAGE_W, 1.1 + foot + row_h * n), layout="constrained")
    head, *rows = fig.subfigures(1 + n, 1, height_ratios=[0.3] + [row_h] * (n - 1) + [row_h + foot])
    w = data.get("window", 10)
    for i, key in enumerate(keys):
        # the centres of the columns (the shared y label takes the left edge)
        x = 0.55 if len(keys) == 1 else 0.33 + 0.44 * i / (len(keys) - 1)
        head.text(x, 0.5, _PAIRED_HEADS.get(key, key).format(w=w, cw=data.get("compute_window", w)), ha="center",
                  va="center", fontsize=plt_size("axes.labelsize"))
    units = {k: _unit(max([v for q in panels for v in q[k]["x"]] or [1])) if k != "elapsed_s" else (1.0, "")
             for k in keys}
    later = [v for q in panels for k in keys for i, v in enumerate(q[k]["median"] + q[k]["lo"] + q[k]["hi"])
             if q[k]["x"] and (i % len(q[k]["x"])) >= data.get("later", 0.1) * len(q[k]["x"])]
    lo, hi = (min(later + [0.0]), max(later + [0.0])) if later else (-1.0, 1.0)
    pad = 0.08 * (hi - lo or 1.0)
    for sub, q in zip(rows, panels):
        axes = np.atleast_1d(sub.subplots(1, len(keys), sharey=True))
        sub.suptitle(q["label"] + (f" ({q.get('runs', str(q['n']) + ' runs')})" if q["n"] > 1 else ""),
                     fontsize=plt_size("axes.titlesize"), x=0.02, ha="left")
        style = {"color": color(q["method"]), "ls": "-" if q["frozen"] or method_id(q["method"]) == "base" else "--"}
        for ax, key in zip(axes, keys):
            d, (div, _) = q[key], units[key]
            xs = np.asarray(d["x"]) / div
            ax.axhline(0, color="#666666", lw=0.8)
            ax.plot(xs, d["median"], lw=1.3, **style)
            if q["n"] > 1:
                ax.fill_between(xs, d["lo"], d["hi"], color=style["color"], alpha=0.25, lw=0)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_xlim(0, max(max([v for p_ in panels for v in p_[key]["x"]] or [1]) / div, 1e-9))
            top = max(d["hi"] or [0.0])
            if top > hi + pad:
                ax.text(0.98, 0.95, f"first steps up to {top:+.2f} (off the axis)", transform=ax.transAxes,
                        ha="right", va="top", fontsize=9, color=style["color"])
            if sub is not rows[-1]:
                ax.xaxis.set_tick_params(labelbottom=False)
        if sub is rows[-1]:
            for ax, key in zip(axes, keys):
                p = units[key][1]
                ax.set_xlabel("training tokens" + (f" ({ {'k': 'thousands', 'M': 'millions', 'G': 'billions'}.get(p, p) })" if p else "")
                              if key == "tokens" else "elapsed wall-clock (s)" if key == "elapsed_s"
                              else _X_LABELS.get(key, key).format(u=p))
    fig.supylabel(f"training loss minus {ref_label}'s (nats)",
                  fontsize=plt_size("axes.labelsize"))
    return fig


def plt_size(key: str) -> float:
    """An rcParams font size in points (the style's, lesa.plots.style.setup)."""
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=plt.rcParams[key]).get_size_in_points()


# ------------------------------------------------------------------------------- notebook 5
def main_table_plot(rows: list[dict]) -> Any:
    """rows: {"source", "model", "ppl", "avg"} -> perplexity and benchmark average, one row of panels
    per source (their scales and benchmark sets differ, so each source has its own x-axis). Sources are
    named above their row and long model names wrap, so the bars keep the page's width."""
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(r["source"] for r in rows))
    n = len(sources)
    fig, axes = plt.subplots(n, 2, figsize=(PAGE_W, 0.5 + 0.3 * max(1, len(rows)) + 0.5 * n), layout="constrained",
                             squeeze=False, height_ratios=[max(1, sum(r["source"] == s for r in rows)) for s in sources])
    for i, s in enumerate(sources):
        rs = [r for r in rows if r["source"] == s]
        for j, key in enumerate(("ppl", "avg")):
            ax = axes[i, j]
            vals = [r.get(key) if r.get(key) is not None else np.nan for r in rs]
            ax.barh(range(len(rs)), vals, color=[color(r["model"]) for r in rs])
            ax.set_yticks(range(len(rs)), [textwrap.fill(display_name(r["model"]), 34) for r in rs] if j == 0
                          else [""] * len(rs))
            ax.invert_yaxis()
            for k, v in enumerate(vals):
                if np.isfinite(v):
                    ax.text(v, k, f" {fmt_num(v)}", va="center", fontsize=9)
                else:
                    ax.text(0, k, " not measured", va="center", fontsize=9, color="0.4")
            finite = [v for v in vals if np.isfinite(v)]
            if finite:
                ax.set_xlim(0, max(finite) * 1.25)
            if i == n - 1:
                # two lines each: side by side on one line the two labels ran into each other
                ax.set_xlabel({"ppl": "perplexity\n(lower is better)", "avg": "benchmark average, %\n(higher is better)"}[key])
        axes[i, 0].set_title(s, loc="left", fontsize=10, fontweight="bold")
    fig.suptitle("Final quality by source; each row of panels has its own x-axis\n(models, data and benchmark "
                 "sets differ by source)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------- seeds
def seed_points(rows: list[dict], value: str = "value", x: str = "method", facet: str | None = None,
                ylog: bool = False, ylabel: str = "", ref: dict | None = None) -> Any:
    """One dot per seed and a bar at the median, one row per x (e.g. method) with its name on the left (long
    names read without rotation), one panel per facet (e.g. set) sharing those rows in one order. ``ylog`` and
    ``ylabel`` are the value's axis (horizontal here); ref: {facet: value} draws a dashed reference line (e.g.
    the base model)."""
    from matplotlib.ticker import NullFormatter

    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    keep = [r for r in rows if r.get(value) is not None and np.isfinite(r[value])]
    xs = list(dict.fromkeys(r[x] for r in keep))
    names = [_wrap(label(str(m)), 28) for m in xs]
    row_h = 0.2 + 0.16 * max([n.count("\n") + 1 for n in names] or [1])   # inches per row: its label's lines
    fig, axes, _ = _grid(len(facets), ncols=min(len(facets), 3), h=row_h * max(len(xs), 1) + 0.9, sharey=True)
    for ax, f in zip(axes, facets):
        sub = [r for r in keep if facet is None or r[facet] == f]
        for i, m in enumerate(xs):
            vs = [r[value] for r in sub if r[x] == m]
            if not vs:
                continue
            ax.barh(i, float(np.median(vs)), 0.6, color=color(str(m)), alpha=0.45)
            jitter = np.linspace(-0.15, 0.15, len(vs)) if len(vs) > 1 else [0.0]
            ax.plot(vs, i + np.asarray(jitter), "o", color="k", ms=3.5)
        if ref and f in ref and ref[f] is not None:
            ax.axvline(ref[f], color="0.3", ls="--", lw=0.8, label="base model")
            ax.legend(fontsize=7)
        if ylog:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels (6x10^2, 4x10^2...) ran into each other
        ax.set_yticks(range(len(xs)), names)
        ax.set_ylim(len(xs) - 0.5, -0.5)                       # first row on top (shared: the same on every panel)
        if f is not None:
            ax.set_title(str(f))
    fig.supxlabel(ylabel or value)
    return fig                    # _grid's constrained layout (tight_layout() here warned on every call)
# ------------------------------------------------------------------------------- landing page
def _wrap(s: str, width: int) -> str:
    # " = " kept on one line ("k = 8"): textwrap breaks at spaces, not at no-break spaces
    return "\n".join(textwrap.wrap(str(s).replace(" = ", "\u00a0=\u00a0"), width)) or "-"


def scoreboard_figure(rows: list[dict], statements: dict[str, str] | None = None) -> Any:
    """The book's summary: one row per claim with what it says, the paper's value, ours, and the
    verdict as a coloured label, at page width. `rows` are scoreboard rows (book.collect_verdicts or
    results/<profile>/scoreboard.json); `statements` may give shorter claim statements by claim id."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = list(rows)
    statements = statements or {}
    # column: (left edge in inches, wrap width in characters at 8 pt)
    cols = {"claim": (0.05, 33), "paper": (2.05, 27), "ours": (3.7, 32), "verdict": (5.65, 0)}
    texts = [[_wrap(f"{r['claim']}: {statements.get(r['claim'], r.get('statement', ''))}", cols["claim"][1]),
              _wrap(r.get("paper", "-"), cols["paper"][1]), _wrap(r.get("ours", "-"), cols["ours"][1])] for r in rows]
    line_h = 0.145                                        # inches per 8-pt line
    heights = [line_h * max(max(t.count("\n") + 1 for t in cells), 2 if len(verdict_of(r)) > 15 else 1) + 0.12
               for r, cells in zip(rows, texts)]
    head = 0.35
    H = head + sum(heights)
    fig = plt.figure(figsize=(PAGE_W, H), layout="none")
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, PAGE_W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    for key, name in (("claim", "Claim"), ("paper", "Paper"), ("ours", "This replication"), ("verdict", "Verdict")):
        ax.text(cols[key][0], head / 2, name, fontsize=9, fontweight="bold", va="center")
    y = head
    for r, cells, h in zip(rows, texts, heights):
        ax.axhline(y, color="0.8", lw=0.6)
        for key, txt in zip(("claim", "paper", "ours"), cells):
            ax.text(cols[key][0], y + 0.06, txt, fontsize=8, va="top", linespacing=1.2)
        v = verdict_of(r)
        box_h = line_h * (2 if len(v) > 15 else 1) + 0.06
        ax.add_patch(FancyBboxPatch((cols["verdict"][0], y + 0.05), PAGE_W - cols["verdict"][0] - 0.05, box_h,
                                    boxstyle="round,pad=0,rounding_size=0.04", facecolor=VERDICT_COLORS.get(v, OTHER_COLOR),
                                    edgecolor="none"))
        ax.text((cols["verdict"][0] + PAGE_W - 0.05) / 2, y + 0.05 + box_h / 2, _wrap(v, 15), fontsize=8, color="white",
                ha="center", va="center", fontweight="bold", linespacing=1.1)
        y += h
    return fig


def hue_points(rows: list[dict], value: str, x: str, hue: str, ylabel: str = "", ref: float | None = None,
               ref_label: str = "") -> Any:
    """One dot per seed and a bar at the median, grouped by `x` (e.g. weight type), one colour per `hue`
    (e.g. model). ref draws a dashed horizontal line (e.g. a pass threshold)."""
    fig, ax = _figure(h=3.0)
    xs = list(dict.fromkeys(r[x] for r in rows))
    hues = list(dict.fromkeys(r[hue] for r in rows))
    w = 0.8 / len(hues)
    labelled: set = set()
    for k, h in enumerate(hues):
        for i, xv in enumerate(xs):
            ys = [r[value] for r in rows if r[x] == xv and r[hue] == h and r.get(value) is not None
                  and np.isfinite(r[value])]
            if not ys:
                continue
            pos = i + k * w
            ax.bar(pos, float(np.median(ys)), w, color=MODEL_SHADES[k % len(MODEL_SHADES)], alpha=0.55,
                   label=None if h in labelled else h)
            labelled.add(h)
            jitter = np.linspace(-w / 4, w / 4, len(ys)) if len(ys) > 1 else [0.0]
            ax.plot(pos + np.asarray(jitter), ys, "o", color="k", ms=3)
    if ref is not None:
        ax.axhline(ref, color="0.3", ls="--", lw=0.8, label=ref_label or None)
    ax.set_xticks(np.arange(len(xs)) + 0.4 - w / 2, [str(v) for v in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or value)
    _legend(fig, ax, ncol=3)
    return fig


