"""One figure style for the book, and helpers that draw from result records (dicts / JSON).

Every helper returns the matplotlib Figure; ``save(fig, folder, name)`` writes a PNG (and closes
nothing, so the notebook still shows it) and returns its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METHOD_COLORS = {"base": "#444444", "lesa": "#d62728", "llama_pro": "#1f77b4", "solar": "#2ca02c",
                 "average": "#9467bd", "random": "#8c564b", "lesa_raw": "#ff7f0e", "copy": "#17becf"}
METHOD_LABELS = {"base": "base (not expanded)", "lesa": "LESA", "llama_pro": "LLaMA Pro", "solar": "SOLAR",
                 "average": "neighbour average", "random": "random", "lesa_raw": "LESA w/o SVD",
                 "copy": "plain copy", "lesa-lambda0": "LESA, lambda = 0"}


def setup() -> None:
    """The book's style (the backend is left alone: inline in notebooks, Agg under MPLBACKEND)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "font.size": 9, "axes.titlesize": 10,
                         "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.fontsize": 8, "figure.autolayout": False})


def color(method: str) -> str:
    return METHOD_COLORS.get(method.split("-")[0], "#7f7f7f")


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def save(fig: Any, folder: str | Path, name: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path


def _grid(n: int, ncols: int = 4, w: float = 3.0, h: float = 2.6):
    import matplotlib.pyplot as plt

    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


# ------------------------------------------------------------------------------- notebook 1
def spectra(ev: dict) -> Any:
    types = list(ev["weight_types"])
    fig, axes = _grid(len(types))
    for ax, t in zip(axes, types):
        r = ev["weight_types"][t]
        S = np.asarray(r["spectrum"])
        ax.semilogy(S / S[0], label="concatenated", color="k")
        G = np.asarray(r["spectrum_gaussian"])
        ax.semilogy(G / G[0], label="Gaussian, same shapes", color="0.6", ls="--")
        P = np.asarray(r["spectrum_per_layer"])
        ax.semilogy((P / P[:, :1]).mean(0), label="per-layer SVD (mean)", color="tab:blue", alpha=0.7)
        ax.set_title(f"{t}  {r['shape'][1]}x{r['shape'][2]} x{r['shape'][0]}")
        ax.set_xlabel("index")
    axes[0].set_ylabel("singular value / largest")
    axes[0].legend()
    fig.suptitle("Singular spectra per weight type")
    fig.tight_layout()
    return fig


def embeddings(ev: dict, kind: str = "tsne") -> Any:
    import matplotlib.pyplot as plt

    types = list(ev["weight_types"])
    fig, axes = _grid(len(types))
    sc = None
    for ax, t in zip(axes, types):
        P = np.asarray(ev["weight_types"][t]["embedding"][kind])
        L = len(P)
        ax.plot(P[:, 0], P[:, 1], color="0.8", lw=0.8, zorder=1)
        sc = ax.scatter(P[:, 0], P[:, 1], c=np.arange(L), cmap="viridis", s=22, zorder=2)
        cont = ev["weight_types"][t]["tests"]["concat_svd_top1"]["shows_continuity"]
        ax.set_title(f"{t} ({'continuity' if cont else 'no continuity'} by test)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, label="layer", shrink=0.8)
    fig.suptitle(f"{'t-SNE' if kind == 'tsne' else 'PCA'} of each layer's top-1 coefficient row "
                 "(concatenated SVD); line joins adjacent layers")
    return fig


def similarity_by_distance(ev: dict, rep: str = "concat_svd_top1") -> Any:
    types = list(ev["weight_types"])
    fig, axes = _grid(len(types))
    for ax, t in zip(axes, types):
        tt = ev["weight_types"][t]["tests"][rep]
        d = np.arange(1, len(tt["observed"]["by_distance"]) + 1)
        ax.plot(d, tt["observed"]["by_distance"], "o-", ms=3, color="k", label="real layers")
        if tt.get("gaussian_by_distance"):
            ax.plot(d, tt["gaussian_by_distance"], "--", color="0.6", label="Gaussian control")
        ax.axhline(np.mean(tt["observed"]["by_distance"]), color="tab:blue", lw=0.8, ls=":",
                   label="shuffled order (expected)")
        ax.set_title(f"{t}: p(shuffled) = {tt['gap']['p_shuffled']:.3f}")
        ax.set_xlabel("|i - j| (layers apart)")
    axes[0].set_ylabel("mean cosine similarity")
    axes[0].legend()
    fig.suptitle(f"Similarity vs layer distance ({rep})")
    fig.tight_layout()
    return fig


def continuity_summary(ev: dict) -> Any:
    import matplotlib.pyplot as plt

    types = list(ev["weight_types"])
    reps = list(next(iter(ev["weight_types"].values()))["tests"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    w = 0.8 / len(reps)
    for k, rep in enumerate(reps):
        x = np.arange(len(types)) + k * w
        obs = [ev["weight_types"][t]["tests"][rep]["gap"]["observed"] for t in types]
        q95 = [ev["weight_types"][t]["tests"][rep]["gap"]["shuffled_q95"] for t in types]
        axes[0].bar(x, obs, w, label=rep)
        axes[0].scatter(x, q95, marker="_", s=120, color="k", zorder=3)
        nn = [ev["weight_types"][t]["tests"][rep]["nn_adjacent"]["observed"] for t in types]
        nq = [ev["weight_types"][t]["tests"][rep]["nn_adjacent"]["shuffled_q95"] for t in types]
        axes[1].bar(x, nn, w, label=rep)
        axes[1].scatter(x, nq, marker="_", s=120, color="k", zorder=3)
    for ax in axes:
        ax.set_xticks(np.arange(len(types)) + 0.4 - w / 2, types)
    axes[0].set_title("adjacent - distant cosine (black: 95% of shuffled)")
    axes[1].set_title("share of layers whose nearest neighbour is adjacent")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- notebook 2
def loss_curves(study: dict) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.3))
    for t, r in study["full"].items():
        h = np.asarray(r["history"])
        axes[0].plot(np.arange(1, len(h) + 1), h, "o-", ms=3, label=t)
        axes[1].plot(np.arange(1, len(h) + 1), h / r["target_mean_sq"], "o-", ms=3, label=t)
    axes[1].axhline(1, color="0.5", ls="--", lw=0.8)
    axes[1].axhline(2, color="0.5", ls=":", lw=0.8)
    axes[1].text(1, 1.02, "predict zeros", fontsize=7, color="0.4")
    axes[1].text(1, 2.02, "right norm, uncorrelated", fontsize=7, color="0.4")
    axes[0].set_yscale("log")
    axes[0].set_title("epoch loss (released recipe)")
    axes[1].set_title("epoch loss / mean(target^2)")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend()
    fig.tight_layout()
    return fig


def loo_bars(study: dict, metric: str = "r2") -> Any:
    types = list(study["loo"])
    fig, axes = _grid(len(types), ncols=2, w=5.0, h=3.0)
    for ax, t in zip(axes, types):
        rows = study["loo"][t]
        names = list(rows[0]["metrics"])
        x = np.arange(len(rows))
        w = 0.8 / len(names)
        for k, n in enumerate(names):
            ax.bar(x + k * w, [r["metrics"][n][metric] for r in rows], w, label=n)
        ax.set_xticks(x + 0.4 - w / 2, [f"layer {r['layer']}" for r in rows])
        ax.set_title(f"{t}: held-out layer, {metric}")
        ax.axhline(0, color="k", lw=0.6)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def lambda_norms(study: dict) -> Any:
    import matplotlib.pyplot as plt

    types = list(study["lambda"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for t in types:
        lams = list(study["lambda"][t])
        x = np.arange(len(lams))
        axes[0].plot(x, [study["lambda"][t][l]["inference_norm_ratio"] for l in lams], "o-", label=t)
        axes[1].plot(x, [study["lambda"][t][l]["in_sample"]["cosine"] for l in lams], "o-", label=t)
        for ax in axes:
            ax.set_xticks(x, [f"lambda={l}" for l in lams])
    axes[0].axhline(1, color="0.5", ls="--", lw=0.8)
    axes[0].set_title("new layer norm / neighbours' norm (distance-1 inputs)")
    axes[1].set_title("in-sample cosine(predicted, real)")
    axes[0].legend()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- notebook 3
def ppl_bars(ppl: dict, sets: list[str]) -> Any:
    methods = list(ppl)
    fig, axes = _grid(len(sets), ncols=len(sets), w=3.3, h=3.0)
    for ax, s in zip(axes, sets):
        vals = [ppl[m].get(s, {}).get("value") if ppl[m].get(s, {}).get("status") == "ok" else np.nan
                for m in methods]
        ax.bar(range(len(methods)), vals, color=[color(m) for m in methods])
        ax.set_yscale("log")
        ax.set_xticks(range(len(methods)), [label(m) for m in methods], rotation=60, ha="right")
        ax.set_title(s)
    axes[0].set_ylabel("perplexity before training (log)")
    fig.tight_layout()
    return fig


def new_layer_heatmap(rows: list[dict], value: str = "norm_ratio", title: str = "") -> Any:
    import matplotlib.pyplot as plt

    slots = sorted({r["slot"] for r in rows})
    types = list(dict.fromkeys(r["type"] for r in rows))
    M = np.full((len(types), len(slots)), np.nan)
    for r in rows:
        if r[value] is not None:
            M[types.index(r["type"]), slots.index(r["slot"])] = r[value]
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(slots) + 2), 2.8))
    im = ax.imshow(M, aspect="auto", cmap="coolwarm", vmin=min(0, np.nanmin(M)), vmax=max(1, np.nanmax(M)))
    ax.set_yticks(range(len(types)), types)
    ax.set_xticks(range(len(slots)), slots)
    ax.set_xlabel("new layer index in the grown model")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=value)
    ax.set_title(title or value)
    fig.tight_layout()
    return fig


def residual_plot(effects: dict, new_layers: dict) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.2))
    for m, rows in effects.items():
        x = [r["layer"] for r in rows]
        y = [r["rel_update"] for r in rows]
        ax.plot(x, y, "-", color=color(m), lw=1, label=label(m))
        nl = set(new_layers.get(m, []))
        ax.scatter([a for a in x if a in nl], [b for a, b in zip(x, y) if a in nl], color=color(m), s=18)
    ax.set_xlabel("layer of the model (dots: new layers)")
    ax.set_ylabel("||h_out - h_in|| / ||h_in||")
    ax.set_yscale("log")
    ax.set_title("Residual-stream update per layer, before training")
    ax.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- notebook 4
def cpt_curves(runs: dict, x: str = "step", window: int = 10) -> Any:
    import matplotlib.pyplot as plt

    from .analysis import smooth

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, r in runs.items():
        rows = r["train"]
        if not rows:
            continue
        xs = np.asarray([row.get(x) or 0 for row in rows], dtype=float)
        if x == "flops":
            xs = xs / 1e15
        ax.plot(xs, smooth([row["loss"] for row in rows], window), color=color(r["method"]),
                ls="-" if r["frozen"] else "--", label=f"{label(r['method'])}{'' if r['frozen'] else ' (' + str(r.get('ablation') or 'unfrozen') + ')'}")
    ax.set_xlabel({"step": "optimizer step", "tokens": "tokens", "flops": "PFLOPs",
                   "elapsed_s": "wall-clock seconds"}.get(x, x))
    ax.set_ylabel(f"training loss (moving mean, {window})")
    ax.legend()
    fig.tight_layout()
    return fig


def heldout_curves(runs: dict) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, r in runs.items():
        if r["eval"]:
            ax.plot([e["step"] for e in r["eval"]], [e["heldout_ppl"] for e in r["eval"]], marker="o", ms=3,
                    color=color(r["method"]), ls="-" if r["frozen"] else "--", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- notebook 5
def main_table_plot(rows: list[dict]) -> Any:
    """rows: {"source", "model", "ppl", "avg"} -> two bar panels grouped by source."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, key in zip(axes, ("ppl", "avg")):
        rs = [r for r in rows if r.get(key) is not None]
        ax.bar(range(len(rs)), [r[key] for r in rs], color=[color(r["model"].split("-")[0].lower()
                                                                   .replace("llama pro", "llama_pro")) for r in rs])
        ax.set_xticks(range(len(rs)), [f"{r['source']}\n{r['model']}" for r in rs], rotation=70, ha="right",
                      fontsize=7)
        ax.set_title({"ppl": "perplexity (lower is better; scales differ by source)",
                      "avg": "benchmark average, % (sets differ by source)"}[key])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- seeds
def seed_points(rows: list[dict], value: str = "value", x: str = "method", facet: str | None = None,
                ylog: bool = False, ylabel: str = "", ref: dict | None = None) -> Any:
    """One dot per seed and a bar at the median, per x (e.g. method), one panel per facet (e.g. set).
    ref: {facet: y} draws a dashed reference line (e.g. the base model)."""
    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    fig, axes = _grid(len(facets), ncols=min(len(facets), 4), w=3.6, h=3.0)
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
    fig.tight_layout()
    return fig
