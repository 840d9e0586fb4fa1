"""Figures of notebooks 1-3: the SVD evidence (spectra, embeddings, continuity), the predictor study
(loss curves, leave-one-out scores, lambda) and the grown model (perplexity, new-layer norms, residual effects)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..grow.methods import color, label
from .style import MODEL_SHADES, PAGE_W, REPRESENTATIONS, _figure, _grid, _legend
from .table import _sci


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
    """Notebook 1's two continuity measures of one model, one bar per representation and weight type,
    the shuffled-order 95th percentile of each as a tick."""
    types = list(ev["weight_types"])
    reps = list(next(iter(ev["weight_types"].values()))["tests"])
    shades = ["#000000", "#0072B2", "#E69F00", "#CC79A7"]
    series = [(REPRESENTATIONS.get(rep, rep.replace("_", " ")), shades[k % len(shades)],
               [ev["weight_types"][t]["tests"][rep] for t in types]) for k, rep in enumerate(reps)]
    return _continuity_bars(types, series, h=4.6, ncol=2)


def _continuity_bars(types: list[str], series: list[tuple[str, str, list]], h: float, ncol: int) -> Any:
    """The continuity figure both of the above draw: the adjacent-minus-distant gap (top) and the
    nearest-neighbour rate (bottom) per weight type, one bar per (label, colour, tests per type) series
    (None where a type was not measured: no bar), each with its shuffled-order 95th percentile as a tick."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(PAGE_W, h), layout="constrained", sharex=True)
    w = 0.8 / len(series)
    for k, (name, shade, tests) in enumerate(series):
        x = np.arange(len(types)) + k * w
        for ax, m in zip(axes, ("gap", "nn_adjacent")):
            obs = [np.nan if tt is None else tt[m]["observed"] for tt in tests]
            q95 = [np.nan if tt is None else tt[m]["shuffled_q95"] for tt in tests]
            ax.bar(x, obs, w, color=shade, label=name)
            ax.scatter(x, q95, marker="_", s=120, color="#D55E00", zorder=3,
                       label="95th percentile, shuffled layers" if k == 0 else None)
    axes[1].set_xticks(np.arange(len(types)) + 0.4 - w / 2, types)
    axes[1].set_xlabel("weight type")
    axes[0].set_ylabel("cosine: adjacent − distant")
    axes[1].set_ylabel("share of layers")
    axes[0].set_title("Adjacent minus distant layers' cosine similarity")
    axes[1].set_title("Share of layers whose nearest neighbour is an adjacent layer")
    _legend(fig, axes[0], ncol=ncol)
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


def continuity_by_model(evs: dict[str, dict], rep: str = "concat_svd_top1") -> Any:
    """Notebook 1's two continuity measures for one representation, one bar per model and weight type,
    the shuffled-order 95th percentile of each as a tick: a bar above its tick beats the shuffled order."""
    types = list(dict.fromkeys(t for ev in evs.values() for t in ev["weight_types"]))
    series = [(name, MODEL_SHADES[k % len(MODEL_SHADES)],
               [ev["weight_types"].get(t, {}).get("tests", {}).get(rep) for t in types])
              for k, (name, ev) in enumerate(evs.items())]
    return _continuity_bars(types, series, h=4.4, ncol=3)
