"""One figure style for the book, and helpers that draw from result records (dicts / JSON).

Every helper returns the matplotlib Figure; ``save(fig, folder, name)`` writes a PNG (and closes
nothing, so the notebook still shows it) and returns its path. ``table(...)`` renders a table the same
way everywhere (significant digits, no truncation, a CSV beside it).

Sizes: the book's text column is about 690 px wide, and a notebook figure is shown at its size in
inches x ``figure.dpi`` (100) pixels, so figures are at most ``PAGE_W`` = 6.9 in wide and 9-pt text
stays 9 pt on the page. Saved PNGs and inline images are drawn at 2x for sharp text on high-density
screens (inline: "retina", shown at half its pixel size).
"""
from __future__ import annotations

import csv
import html
import math
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

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
    "random_zero_out": ("Random, o/down zeroed", "#2B7BA8"),
    "lesa-lambda0": ("LESA, λ = 0", "#F5C26B"),
}
# names found in result files and in the paper's tables, mapped to a method id
_ALIASES = {"llama pro": "llama_pro", "llamapro": "llama_pro", "llama-pro": "llama_pro", "base (8b)": "base",
            "w/o svd": "lesa_raw", "lesa w/o svd": "lesa_raw"}
OTHER_COLOR = "#7f7f7f"
# back-compatible views of the table above (notebooks of older commits use them)
METHOD_COLORS = {k: c for k, (_, c) in METHODS.items()}
METHOD_LABELS = {k: n for k, (n, _) in METHODS.items()}

# verdict -> colour, shared by the summary figure and the scoreboard's CSS (book/_static/lesa.css)
VERDICT_COLORS = {"reproduced": "#1a7f37", "partially reproduced": "#9a6700", "not reproduced": "#cf222e",
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
    head = re.split(r"[-(]", n, maxsplit=1)[0].strip()
    return _ALIASES.get(head, head.replace(" ", "_"))


def color(method: str) -> str:
    return METHODS.get(method_id(method), ("", OTHER_COLOR))[1]


def label(method: str) -> str:
    """Display name of a method id (unknown ids are shown as given)."""
    m = method_id(method)
    return METHODS[m][0] if m in METHODS else str(method)


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
    the recipes of lesa.cpt.TRAINS (the base model and SOLAR train every layer) and the ablations decide."""
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
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(handles)), **kw)


# ------------------------------------------------------------------------------- notebook 1
def spectra(ev: dict) -> Any:
    types = list(ev["weight_types"])
    fig, axes, lax = _grid(len(types), sharey=True, spare=True)
    for ax, t in zip(axes, types):
        r = ev["weight_types"][t]
        S = np.asarray(r["spectrum"])
        ax.semilogy(np.arange(1, len(S) + 1), S / S[0], label="concatenated SVD", color="k")
        G = np.asarray(r["spectrum_gaussian"])
        ax.semilogy(np.arange(1, len(G) + 1), G / G[0], label="Gaussian matrices, same shapes", color="0.6", ls="--")
        P = np.asarray(r["spectrum_per_layer"])
        ax.semilogy(np.arange(1, P.shape[1] + 1), (P / P[:, :1]).mean(0), label="per-layer SVD (mean over layers)",
                    color="#0072B2", alpha=0.8)
        ax.set_title(f"{t}: {r['shape'][0]} layers of {r['shape'][1]}×{r['shape'][2]}")
        ax.set_xlabel("singular value index")
    for ax in axes[::3]:
        ax.set_ylabel("σ / σ₁ (log)")
    _legend(fig, axes[0], lax)
    fig.suptitle("Singular spectra per weight type (shared y-axis)")
    return fig


def embeddings(ev: dict, kind: str = "tsne") -> Any:
    types = list(ev["weight_types"])
    fig, axes, lax = _grid(len(types), h=2.0, spare=True)
    sc = None
    for ax, t in zip(axes, types):
        P = np.asarray(ev["weight_types"][t]["embedding"][kind])
        L = len(P)
        ax.plot(P[:, 0], P[:, 1], color="0.8", lw=0.8, zorder=1)
        sc = ax.scatter(P[:, 0], P[:, 1], c=np.arange(L), cmap="viridis", s=16, zorder=2)
        cont = ev["weight_types"][t]["tests"]["concat_svd_top1"]["shows_continuity"]
        ax.set_title(f"{t}: {'continuity' if cont else 'no continuity'} (test)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    if lax is not None:
        fig.colorbar(sc, ax=lax, location="left", fraction=0.15, label="layer index")
    else:
        fig.colorbar(sc, ax=axes, label="layer index", shrink=0.8)
    fig.suptitle(f"{'t-SNE' if kind == 'tsne' else 'PCA'} of each layer's top-1 coefficient row (concatenated "
                 "SVD); grey line joins adjacent layers; axes have no units")
    return fig


def similarity_by_distance(ev: dict, rep: str = "concat_svd_top1") -> Any:
    types = list(ev["weight_types"])
    fig, axes, lax = _grid(len(types), sharey=True, spare=True)
    for ax, t in zip(axes, types):
        tt = ev["weight_types"][t]["tests"][rep]
        d = np.arange(1, len(tt["observed"]["by_distance"]) + 1)
        ax.plot(d, tt["observed"]["by_distance"], "o-", ms=2.5, color="k", label="real layer order")
        if tt.get("gaussian_by_distance"):
            ax.plot(d, tt["gaussian_by_distance"], "--", color="0.6", label="Gaussian control")
        ax.axhline(np.mean(tt["observed"]["by_distance"]), color="#0072B2", lw=0.8, ls=":",
                   label="shuffled order (expected)")
        ax.set_title(f"{t}: p(shuffled) = {tt['gap']['p_shuffled']:.3f}")
        ax.set_xlabel("layers apart, |i − j|")
    for ax in axes[::3]:
        ax.set_ylabel("mean cosine")
    _legend(fig, axes[0], lax)
    fig.suptitle(f"Similarity vs layer distance, {REPRESENTATIONS.get(rep, rep)} (shared y-axis)")
    return fig


def continuity_summary(ev: dict) -> Any:
    import matplotlib.pyplot as plt

    types = list(ev["weight_types"])
    reps = list(next(iter(ev["weight_types"].values()))["tests"])
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_W, 4.6), layout="constrained", sharex=True)
    w = 0.8 / len(reps)
    shades = ["#000000", "#0072B2", "#E69F00", "#CC79A7"]
    for k, rep in enumerate(reps):
        x = np.arange(len(types)) + k * w
        obs = [ev["weight_types"][t]["tests"][rep]["gap"]["observed"] for t in types]
        q95 = [ev["weight_types"][t]["tests"][rep]["gap"]["shuffled_q95"] for t in types]
        axes[0].bar(x, obs, w, label=REPRESENTATIONS.get(rep, rep.replace("_", " ")), color=shades[k % len(shades)])
        axes[0].scatter(x, q95, marker="_", s=120, color="#D55E00", zorder=3,
                        label="95th percentile, shuffled layers" if k == 0 else None)
        nn = [ev["weight_types"][t]["tests"][rep]["nn_adjacent"]["observed"] for t in types]
        nq = [ev["weight_types"][t]["tests"][rep]["nn_adjacent"]["shuffled_q95"] for t in types]
        axes[1].bar(x, nn, w, color=shades[k % len(shades)])
        axes[1].scatter(x, nq, marker="_", s=120, color="#D55E00", zorder=3)
    axes[1].set_xticks(np.arange(len(types)) + 0.4 - w / 2, types)
    axes[1].set_xlabel("weight type")
    axes[0].set_ylabel("cosine: adjacent − distant")
    axes[1].set_ylabel("share of layers")
    axes[0].set_title("Adjacent minus distant layers' cosine similarity")
    axes[1].set_title("Share of layers whose nearest neighbour is an adjacent layer")
    _legend(fig, axes[0], ncol=2)
    return fig


# ------------------------------------------------------------------------------- notebook 2
def loss_curves(study: dict) -> Any:
    fig, axes = _figure(h=2.9, ncols=2)
    n = 1
    for t, r in study["full"].items():
        h = np.asarray(r["history"])
        n = max(n, len(h))
        axes[0].plot(np.arange(1, len(h) + 1), h, "o-", ms=2.5, label=t)
        axes[1].plot(np.arange(1, len(h) + 1), h / r["target_mean_sq"], "o-", ms=2.5, label=t)
    for y, txt, ls in ((1, "predicting zeros", "--"), (2, "right norm, uncorrelated", ":")):
        axes[1].axhline(y, color="0.4", ls=ls, lw=0.8)
        axes[1].text(n, y * 1.04, txt, fontsize=8, color="0.3", ha="right", va="bottom")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
    axes[0].set_title("training loss per epoch")
    axes[1].set_title("loss / mean(target²)")
    axes[0].set_ylabel("loss, MSE + norm term (log)")
    axes[1].set_ylabel("relative loss (log)")
    _legend(fig, axes[0], ncol=7, title="weight type")
    return fig


def loo_bars(study: dict, metric: str = "r2") -> Any:
    types = list(study["loo"])
    fig, axes, lax = _grid(len(types), ncols=2, h=2.3, sharey=True, spare=len(types) % 2 == 1)
    names = list(study["loo"][types[0]][0]["metrics"])
    palette = ["#D55E00", "#000000", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    for ax, t in zip(axes, types):
        rows = study["loo"][t]
        x = np.arange(len(rows))
        w = 0.8 / len(names)
        for k, n in enumerate(names):
            ax.bar(x + k * w, [r["metrics"][n][metric] for r in rows], w, label=n.replace("_", " "),
                   color=palette[k % len(palette)])
        ax.set_xticks(x + 0.4 - w / 2, [str(r["layer"]) for r in rows])
        ax.set_xlabel("held-out layer")
        ax.set_title(t)
        ax.axhline(0, color="k", lw=0.6)
    name = {"r2": "R²", "cosine": "cosine", "norm_ratio": "norm ratio"}.get(metric, metric)
    for ax in axes[::2]:
        ax.set_ylabel(name)
    _legend(fig, axes[0], lax, ncol=4, title="predictor / baseline")
    fig.suptitle(f"Leave-one-layer-out: {name} of the predicted held-out layer (shared y-axis)")
    return fig


def _lam(v: Any) -> str:
    """λ as printed everywhere: 0 stays 0, anything else in scientific notation (5e-5, not 0.0000)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "0" if x == 0 else _sci(x, 2)


def lambda_norms(study: dict) -> Any:
    types = list(study["lambda"])
    fig, axes = _figure(h=2.9, ncols=2)
    for t in types:
        lams = list(study["lambda"][t])
        x = np.arange(len(lams))
        axes[0].plot(x, [study["lambda"][t][l]["inference_norm_ratio"] for l in lams], "o-", label=t)
        axes[1].plot(x, [study["lambda"][t][l]["in_sample"]["cosine"] for l in lams], "o-", label=t)
        for ax in axes:
            ax.set_xticks(x, [_lam(l) for l in lams])
    axes[0].axhline(1, color="0.5", ls="--", lw=0.8)
    axes[0].set_title("new layer's norm / neighbours' norm")
    axes[1].set_title("in-sample cosine(predicted, real)")
    axes[0].set_ylabel("norm ratio")
    axes[1].set_ylabel("cosine")
    for ax in axes:
        ax.set_xlabel("norm-loss weight λ")
    _legend(fig, axes[0], ncol=7, title="weight type")
    return fig


# ------------------------------------------------------------------------------- notebook 3
def ppl_bars(ppl: dict, sets: list[str]) -> Any:
    methods = list(ppl)
    fig, axes, _ = _grid(len(sets), ncols=min(len(sets), 2), h=2.6, sharey=True)
    for ax, s in zip(axes, sets):
        vals = [ppl[m].get(s, {}).get("value") if ppl[m].get(s, {}).get("status") == "ok" else np.nan
                for m in methods]
        ax.barh(range(len(methods)), vals, color=[color(m) for m in methods])
        ax.set_xscale("log")
        ax.set_yticks(range(len(methods)), [label(m) for m in methods])
        ax.invert_yaxis()
        ax.set_title(s)
        ax.set_xlabel("perplexity (log scale)")
    fig.suptitle("Perplexity before any training (lower is better; log scale, each panel its own range)")
    return fig


def new_layer_heatmap(rows: list[dict], value: str = "norm_ratio", title: str = "") -> Any:
    slots = sorted({r["slot"] for r in rows})
    types = list(dict.fromkeys(r["type"] for r in rows))
    M = np.full((len(types), len(slots)), np.nan)
    for r in rows:
        if r[value] is not None:
            M[types.index(r["type"]), slots.index(r["slot"])] = r[value]
    fig, ax = _figure(h=2.6)
    im = ax.imshow(M, aspect="auto", cmap="coolwarm", vmin=min(0, np.nanmin(M)), vmax=max(1, np.nanmax(M)))
    ax.set_yticks(range(len(types)), types)
    ax.set_xticks(range(len(slots)), slots)
    ax.set_xlabel("new layer's index in the grown model")
    ax.set_ylabel("weight type")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label={"norm_ratio": "norm ratio", "cos_src0": "cosine"}.get(value, value))
    ax.set_title(title or value)
    return fig


def residual_plot(effects: dict, new_layers: dict) -> Any:
    fig, ax = _figure(h=3.2)
    zero = []                                  # methods with layers that change nothing (LLaMA Pro's identities)
    for m, rows in effects.items():
        x = [r["layer"] for r in rows]
        y = [r["rel_update"] if r["rel_update"] and r["rel_update"] > 0 else np.nan for r in rows]
        if any(np.isnan(y)):
            zero.append(label(m))
        ax.plot(x, y, "-", color=color(m), lw=1, label=label(m))
        nl = set(new_layers.get(m, []))
        ax.scatter([a for a in x if a in nl], [b for a, b in zip(x, y) if a in nl], color=color(m), s=14)
    ax.set_xlabel("layer index (dots: new layers)")
    ax.set_ylabel("‖h_out − h_in‖ / ‖h_in‖ (log)")
    ax.set_yscale("log")
    ax.set_title("Residual-stream update per layer, before training"
                 + (f"\n(layers of {', '.join(zero)} that change nothing, 0, are gaps on the log scale)" if zero else ""))
    _legend(fig, ax, ncol=4)
    return fig


# ------------------------------------------------------------------------------- notebook 4
_X_LABELS = {"step": "optimizer step", "tokens": "training tokens", "flops": "training compute, {u}FLOP (frozen layers counted)",
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
    from .analysis import smooth

    xs_keys = [x] if isinstance(x, str) else list(x)
    fig, axes = _figure(w=PAGE_W, h=3.0, ncols=len(xs_keys), sharey=True, squeeze=False)
    axes = list(axes.flat)
    for ax, key in zip(axes, xs_keys):
        div, xlabel = _x_axis(runs, key)
        for lab, group in _seed_groups(runs, "train").items():
            curves = [(np.asarray([row.get(key) or 0 for row in r["train"]], dtype=float) / div,
                       smooth([row["loss"] for row in r["train"]], window)) for r in group]
            _band(ax, curves, group[0], lab)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(f"training loss (mean of {window} steps)")
    _legend(fig, axes[0], ncol=3)
    if len(axes) > 1:
        fig.suptitle("Training loss; grown models train only their new layers unless marked (shared y-axis)")
    return fig


def _seed_groups(runs: dict, key: str) -> dict[str, list[dict]]:
    """Runs with logged `key` rows grouped by legend name: the runs of one method and recipe that differ
    only in seed (data order, predictor) share a name and are drawn as one band."""
    groups: dict[str, list[dict]] = {}
    for r in runs.values():
        if r[key]:
            lab = run_label(r["method"], r["frozen"], r.get("ablation"), r.get("trains"), r.get("options"))
            groups.setdefault(lab, []).append(r)
    return groups


def _band(ax, curves: list[tuple[np.ndarray, np.ndarray]], r: dict, lab: str, **kw) -> None:
    """One run: its curve. Several seeds: the median curve and a shaded min-max band over the steps all
    of them logged (x: the median across seeds, e.g. elapsed seconds differ)."""
    style = dict(color=color(r["method"]), ls="-" if r["frozen"] or method_id(r["method"]) == "base" else "--",
                 ms=3, **kw)
    if len(curves) == 1:
        ax.plot(*curves[0], label=lab, **style)
        return
    n = min(len(y) for _, y in curves)
    xs = np.median([x[:n] for x, _ in curves], axis=0)
    ys = np.stack([y[:n] for _, y in curves])
    ax.plot(xs, np.median(ys, axis=0), label=f"{lab} (median, range of {len(curves)} seeds)", **style)
    ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=style["color"], alpha=0.2, lw=0)


def heldout_curves(runs: dict) -> Any:
    fig, ax = _figure(h=3.0)
    has_tokens = all("tokens" in e for r in runs.values() for e in r["eval"])
    div, xlabel = _x_axis(runs, "tokens") if has_tokens else (1.0, "optimizer step")
    for lab, group in _seed_groups(runs, "eval").items():
        curves = [(np.asarray([e["tokens"] / div if has_tokens else e["step"] for e in r["eval"]], dtype=float),
                   np.asarray([e["heldout_ppl"] for e in r["eval"]], dtype=float)) for r in group]
        _band(ax, curves, group[0], lab, marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out perplexity (log)")
    ax.set_yscale("log")
    ax.set_title("Held-out perplexity during training")
    _legend(fig, ax, ncol=3)
    return fig


# ------------------------------------------------------------------------------- notebook 5
def main_table_plot(rows: list[dict]) -> Any:
    """rows: {"source", "model", "ppl", "avg"} -> perplexity and benchmark average, one row of panels
    per source (their scales and benchmark sets differ, so each source has its own x-axis)."""
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
            ax.set_yticks(range(len(rs)), [display_name(r["model"]) for r in rs] if j == 0 else [""] * len(rs))
            ax.invert_yaxis()
            for k, v in enumerate(vals):
                if np.isfinite(v):
                    ax.text(v, k, f" {fmt_num(v)}", va="center", fontsize=8)
                else:
                    ax.text(0, k, " not measured", va="center", fontsize=8, color="0.4")
            finite = [v for v in vals if np.isfinite(v)]
            if finite:
                ax.set_xlim(0, max(finite) * 1.25)
            if i == 0:
                ax.set_title({"ppl": "perplexity (lower is better)", "avg": "benchmark average, % (higher is better)"}[key])
        axes[i, 0].set_ylabel(s, rotation=0, ha="right", va="center", fontsize=8, labelpad=8)
    fig.suptitle("Final quality by source; each row of panels has its own x-axis (models, data and benchmark "
                 "sets differ by source)", fontsize=9)
    return fig


# ------------------------------------------------------------------------------- seeds
def seed_points(rows: list[dict], value: str = "value", x: str = "method", facet: str | None = None,
                ylog: bool = False, ylabel: str = "", ref: dict | None = None) -> Any:
    """One dot per seed and a bar at the median, per x (e.g. method), one panel per facet (e.g. set).
    ref: {facet: y} draws a dashed reference line (e.g. the base model)."""
    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    fig, axes, _ = _grid(len(facets), ncols=min(len(facets), 3), h=2.8)
    for ax, f in zip(axes, facets):
        sub = [r for r in rows if (facet is None or r[facet] == f) and r.get(value) is not None
               and np.isfinite(r[value])]
        xs = list(dict.fromkeys(r[x] for r in sub))
        for i, m in enumerate(xs):
            ys = [r[value] for r in sub if r[x] == m]
            ax.bar(i, float(np.median(ys)), 0.6, color=color(str(m)), alpha=0.45)
            jitter = np.linspace(-0.15, 0.15, len(ys)) if len(ys) > 1 else [0.0]
            ax.plot(i + np.asarray(jitter), ys, "o", color="k", ms=3.5)
        if ref and f in ref and ref[f] is not None:
            ax.axhline(ref[f], color="0.3", ls="--", lw=0.8, label="base model")
            ax.legend(fontsize=7)
        if ylog:
            ax.set_yscale("log")
        ax.set_xticks(range(len(xs)), [label(str(m)) for m in xs], rotation=60, ha="right")
        if f is not None:
            ax.set_title(str(f))
    axes[0].set_ylabel(ylabel or value)
    return fig                    # _grid's constrained layout (tight_layout() here warned on every call)
# ------------------------------------------------------------------------------- landing page
def _wrap(s: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(str(s), width)) or "-"


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


def verdict_of(r: dict) -> str:
    """A scoreboard row's verdict (`verdict`, or `status` in newer verdict records)."""
    return str(r.get("verdict") or r.get("status") or "not yet run")


# ------------------------------------------------------------------------------- tables
def _sci(x: float, digits: int = 3) -> str:
    """Compact scientific notation: 5e-5, 1.01e-5, 8.75e5 (no '+', no leading zeros)."""
    m, e = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in m:
        m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def fmt_num(x: Any, digits: int = 3, sci: bool = False) -> str:
    """One number as the book prints it: `digits` significant digits; integers in full with thousands
    separators; scientific notation below 1e-3 or from 1e5 on (or always, with sci=True; 0 stays 0)."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return _sci(float(x), digits) if sci and x != 0 else f"{int(x):,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    ax = abs(x)
    if sci or ax < 1e-3 or ax >= 10 ** max(digits + 2, 5):
        return _sci(x, digits)
    decimals = max(digits - 1 - int(math.floor(math.log10(ax))), 0)
    out = f"{x:,.{decimals}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


_SCI_COLUMNS = re.compile(r"(^|[^a-z])(lambda|λ|lam|lr|learning rate|weight decay)([^a-z]|$)", re.I)


class Table:
    """A rendered table: HTML in notebooks and the book (`_repr_html_`), Markdown in plain Jupyter
    text, with the CSV it was written to (linked under the table when `csv` was given)."""

    def __init__(self, header: list[str], body: list[list[str]], raw: list[list[Any]], csv_path: Path | None,
                 caption: str | None, index: bool):
        self.header, self.body, self.raw, self.csv_path, self.caption, self.index = header, body, raw, csv_path, caption, index

    def _repr_html_(self) -> str:
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        rows = []
        for r, raw in zip(self.body, self.raw):
            tds = []
            for k, (c, v) in enumerate(zip(r, raw)):
                num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                tag = "th" if (self.index and k == 0) else "td"
                cls = ' class="num"' if num else ""
                tds.append(f"<{tag}{cls}>{html.escape(c)}</{tag}>")
            rows.append("<tr>" + "".join(tds) + "</tr>")
        out = (f'<div class="lesa-table-wrap"><table class="lesa-table">{cap}<thead><tr>{head}</tr></thead>'
               f"<tbody>{''.join(rows)}</tbody></table>")
        if self.csv_path is not None:
            import base64

            data = base64.b64encode(Path(self.csv_path).read_bytes()).decode()
            out += (f'<p class="lesa-table-csv"><a download="{html.escape(Path(self.csv_path).name)}" '
                    f'href="data:text/csv;base64,{data}">Download this table (CSV)</a></p>')
        return out + "</div>"

    def markdown(self) -> str:
        def cell(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(cell(h) for h in self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.body]
        return "\n".join(lines)

    _repr_markdown_ = markdown

    def __str__(self) -> str:
        return self.markdown()


def table(data: Any, csv: str | Path | None = None, digits: int = 3, index: bool | None = None,
          sci_columns: Iterable[str] = (), caption: str | None = None) -> Table:
    """Render a pandas DataFrame, a list of dicts or a dict of dicts as the book's table: every number
    with `digits` significant digits (fmt_num), nothing truncated, λ / learning-rate columns (and
    `sci_columns`) in scientific notation, None/NaN as "–". With `csv`, the full-precision values are
    written there too and the HTML links them for download."""
    header, raw, has_index = _rows(data, index)
    sci = {h for h in header if _SCI_COLUMNS.search(str(h))} | set(sci_columns)
    body = [[fmt_num(v, digits, sci=header[k] in sci) if not isinstance(v, str) else v for k, v in enumerate(r)]
            for r in raw]
    path = None
    if csv is not None:
        path = Path(csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = _csv_writer(f)
            w.writerow(header)
            w.writerows([["" if v is None else v for v in r] for r in raw])
    return Table([str(h) for h in header], body, raw, path, caption, has_index)


def _csv_writer(f: Any) -> Any:
    return csv.writer(f)


def _rows(data: Any, index: bool | None) -> tuple[list[str], list[list[Any]], bool]:
    """(header, rows of raw values, whether the first column is an index) of a table-like object."""
    try:
        import pandas as pd
    except ImportError:                                   # pragma: no cover (pandas is a dependency)
        pd = None
    if pd is not None and isinstance(data, pd.Series):
        data = data.to_frame()
    if pd is not None and isinstance(data, pd.DataFrame):
        use_index = index if index is not None else not isinstance(data.index, pd.RangeIndex)
        cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in data.columns]
        header = ([str(data.index.name or "")] if use_index else []) + cols
        rows = []
        for idx, r in zip(data.index, data.itertuples(index=False, name=None)):
            vals = [None if (isinstance(v, float) and math.isnan(v)) else (v.item() if hasattr(v, "item") else v)
                    for v in r]
            rows.append(([" / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)] if use_index else []) + vals)
        return header, rows, use_index
    if isinstance(data, dict):                            # {row name: {column: value}}
        cols = list(dict.fromkeys(k for v in data.values() for k in v))
        return [""] + cols, [[str(k)] + [v.get(c) for c in cols] for k, v in data.items()], True
    data = list(data)
    cols = list(dict.fromkeys(k for r in data for k in r))
    return cols, [[r.get(c) for c in cols] for r in data], bool(index)


# ------------------------------------------------------------------------------- several models
# model (or case) label -> colour, in order of appearance: the figures that compare models use these
MODEL_SHADES = ["#333333", "#56B4E9", "#E69F00", "#CC79A7", "#009E73"]


def continuity_by_model(evs: dict[str, dict], rep: str = "concat_svd_top1") -> Any:
    """Notebook 1's two continuity measures for one representation, one bar per model and weight type,
    the shuffled-order 95th percentile of each as a tick: a bar above its tick beats the shuffled order."""
    import matplotlib.pyplot as plt

    types = list(dict.fromkeys(t for ev in evs.values() for t in ev["weight_types"]))
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_W, 4.4), layout="constrained", sharex=True)
    w = 0.8 / len(evs)
    for k, (name, ev) in enumerate(evs.items()):
        x = np.arange(len(types)) + k * w
        for ax, m in zip(axes, ("gap", "nn_adjacent")):
            tests = [ev["weight_types"].get(t, {}).get("tests", {}).get(rep) for t in types]
            obs = [np.nan if tt is None else tt[m]["observed"] for tt in tests]
            q95 = [np.nan if tt is None else tt[m]["shuffled_q95"] for tt in tests]
            ax.bar(x, obs, w, color=MODEL_SHADES[k % len(MODEL_SHADES)], label=name)
            ax.scatter(x, q95, marker="_", s=120, color="#D55E00", zorder=3,
                       label="95th percentile, shuffled layers" if k == 0 else None)
    axes[1].set_xticks(np.arange(len(types)) + 0.4 - w / 2, types)
    axes[1].set_xlabel("weight type")
    axes[0].set_ylabel("cosine: adjacent − distant")
    axes[1].set_ylabel("share of layers")
    axes[0].set_title("Adjacent minus distant layers' cosine similarity")
    axes[1].set_title("Share of layers whose nearest neighbour is an adjacent layer")
    _legend(fig, axes[0], ncol=3)
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


_OPTION_SYMBOLS = {"alpha": "α", "rank": "k", "lam": "λ", "t": "t"}


def variant_label(method: str, options: dict | None = None) -> str:
    """Display name of a method grown with plan options, e.g. "LESA, low rank (ours), k = 8": the
    method's one name (label) and its options, so two settings of a method never share a name."""
    opts = ", ".join(f"{_OPTION_SYMBOLS.get(k, k)} = {v:g}" if isinstance(v, float) else f"{_OPTION_SYMBOLS.get(k, k)} = {v}"
                     for k, v in (options or {}).items())
    return f"{label(method)}, {opts}" if opts else label(method)
