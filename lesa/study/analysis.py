"""Measurements behind the book's claims; every loop longer than a few lines lives here, tested.

    continuity      (C1)  adjacent vs distant similarity and nearest-neighbour adjacency of per-layer
                          representations, against shuffled-layer-order and Gaussian-matrix controls
    predictor       (C7a, C7b, C8) leave-one-layer-out evaluation against trivial predictors (zeros,
                          neighbour average, copies, ridge), lambda sweep
    expansion       (C3, C12c) cached expansion, new-layer statistics, residual-stream effect,
                          perplexity suite (before any training; one protocol: lesa.eval.protocol)
    cpt / downstream (C2, C4-C6, C12a, C12b) readers of the CPT and evaluation result files
    verdicts        records written to results/<profile>/verdicts/<notebook>.json; the rules that
                          decide them are in lesa.claims.rules
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

# shared helpers and the measurements of notebooks 2-5 live in modules of their own; every name stays
# reachable as lesa.study.analysis.X (the notebooks use `analysis as A`)
from .common import factorize_type, stack_weights
from ..grow.svd import factorize


def _cos_matrix(X: np.ndarray, absolute: bool = False) -> np.ndarray:
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    C = Xn @ Xn.T
    return np.abs(C) if absolute else C


# ============================================================================ C1: continuity
def top1_rows_concat(Ws: torch.Tensor) -> np.ndarray:
    """Top-1 coefficient row V_i[0, :] of every layer from the concatenated SVD: (L, d_in)."""
    F = factorize(Ws, method="auto")
    return F.V[:, 0, :].double().numpy()


def spectrum_concat(Ws: torch.Tensor) -> np.ndarray:
    return factorize(Ws, method="auto").S.double().numpy()


def top1_rows_per_layer(Ws: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer SVD (a different quantity): top right singular vector of each W_i (sign-ambiguous,
    so compare with |cos|) and each layer's singular values. Returns (L, d_in), (L, r).
    One layer at a time in float64: a batched call would hold every layer's U at once (6 GiB for a
    1.5B model's gate stack) for the same per-matrix LAPACK calls."""
    rows, spectra = [], []
    for W in Ws:
        _, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
        rows.append(Vh[0].numpy())
        spectra.append(S.numpy())
    return np.stack(rows), np.stack(spectra)


def raw_rows(Ws: torch.Tensor) -> np.ndarray:
    return Ws.reshape(Ws.shape[0], -1).double().numpy()


def raw_cos(Ws: torch.Tensor, chunk: int = 1 << 20) -> np.ndarray:
    """Cosine matrix of the raw (flattened) layers, == _cos_matrix(raw_rows(Ws)) up to rounding: the
    float64 Gram accumulated over column chunks, so memory is L x chunk doubles instead of a float64
    copy of the whole stack (3 GiB for a 1.5B model's gate stack, once more per Gaussian draw)."""
    X = Ws.reshape(Ws.shape[0], -1)                          # (L, d_out * d_in), a view
    G = torch.zeros(X.shape[0], X.shape[0], dtype=torch.float64)
    for a in range(0, X.shape[1], chunk):
        Xc = X[:, a:a + chunk].double()
        G += Xc @ Xc.T
    n = torch.sqrt(torch.clamp(torch.diagonal(G), min=1e-60))
    return (G / torch.outer(n, n)).numpy()


REPRESENTATIONS = {
    # name -> (function Ws -> (L, n) array, compare with |cos|?)
    "concat_svd_top1": (top1_rows_concat, False),
    "per_layer_svd_top1": (lambda W: top1_rows_per_layer(W)[0], True),
    "raw_weights": (raw_rows, False),
}


def rep_cos(Ws: torch.Tensor, rep: str, X: np.ndarray | None = None) -> np.ndarray:
    """The (L, L) cosine matrix of one representation of Ws (|cos| where the representation is sign-
    ambiguous); from its rows X when given. Raw weights go through raw_cos (bounded memory)."""
    fn, absolute = REPRESENTATIONS[rep]
    if X is None and rep == "raw_weights":
        return raw_cos(Ws)
    return _cos_matrix(fn(Ws) if X is None else X, absolute)


def continuity_metrics(X: np.ndarray, absolute: bool = False) -> dict:
    """Adjacent vs distant cosine similarity and nearest-neighbour adjacency of L row vectors.

    adjacent  mean cos(x_i, x_{i+1});  distant  mean cos(x_i, x_j) over |i-j| >= 2;
    gap = adjacent - distant;  nn_adjacent = share of layers whose most similar other layer is i+-1
    (chance about 2/(L-1)); by_distance = mean cos at each |i-j|.
    """
    return continuity_from_cos(_cos_matrix(X, absolute))


def continuity_from_cos(C: np.ndarray) -> dict:
    """continuity_metrics from the (L, L) cosine matrix of the rows (the shuffle control permutes it)."""
    L = C.shape[0]
    i, j = np.triu_indices(L, 1)
    d = j - i
    adj, far = C[i[d == 1], j[d == 1]].mean(), C[i[d >= 2], j[d >= 2]].mean() if (d >= 2).any() else np.nan
    Cn = C.copy()
    np.fill_diagonal(Cn, -np.inf)
    nn = Cn.argmax(axis=1)
    nn_adj = float(np.mean(np.abs(nn - np.arange(L)) == 1))
    by_d = [float(C[i[d == k], j[d == k]].mean()) for k in range(1, L)]
    return {"adjacent": float(adj), "distant": float(far), "gap": float(adj - far), "nn_adjacent": nn_adj,
            "nn_chance": float(2 * (L - 2) / L / (L - 1) + 2 / L / (L - 1)), "by_distance": by_d}


def gaussian_like(Ws: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gaussian matrices of the same shapes, each with its layer's standard deviation."""
    std = Ws.reshape(Ws.shape[0], -1).std(dim=1)
    return torch.randn(Ws.shape, generator=gen, dtype=torch.float32) * std[:, None, None]


def continuity_test(Ws: torch.Tensor, rep: str, n_shuffles: int, n_gaussian: int, seed: int = 0,
                    X: np.ndarray | None = None, gaussian: list[np.ndarray] | None = None) -> dict:
    """Observed continuity metrics of one representation, with two controls:

    shuffled  the same layers in a random order (the concatenated SVD is invariant to the order of
              its blocks, so this is a permutation of the rows, i.e. of the cosine matrix's rows and
              columns), n_shuffles times -> one-sided p-values
    gaussian  Gaussian matrices of the same shapes and per-layer std, n_gaussian draws

    X: the representation's rows of Ws when already computed; gaussian: the (L, L) cosine matrices of
    the n_gaussian draws of gaussian_like(Ws, Generator().manual_seed(seed)) (see gaussian_reps).
    Without them both are computed here, with the same numbers up to rounding.
    """
    C = rep_cos(Ws, rep, X)
    obs = continuity_from_cos(C)
    rng = np.random.default_rng(seed)
    sh = []
    for _ in range(n_shuffles):
        p = rng.permutation(len(C))
        sh.append(continuity_from_cos(C[np.ix_(p, p)]))
    if gaussian is None:
        gen = torch.Generator().manual_seed(seed)
        gaussian = [rep_cos(gaussian_like(Ws, gen), rep) for _ in range(n_gaussian)]
    ga = [continuity_from_cos(G) for G in gaussian[:n_gaussian]]
    out = {"representation": rep, "observed": obs, "n_shuffles": n_shuffles, "n_gaussian": n_gaussian}
    for m in ("gap", "nn_adjacent", "adjacent"):
        s = np.array([r[m] for r in sh])
        g = np.array([r[m] for r in ga])
        out[m] = {"observed": obs[m], "shuffled_mean": float(s.mean()) if len(s) else None,
                  "shuffled_q95": float(np.quantile(s, 0.95)) if len(s) else None,
                  "p_shuffled": float((1 + (s >= obs[m]).sum()) / (1 + len(s))),
                  "gaussian_mean": float(g.mean()) if len(g) else None,
                  "gaussian_max": float(g.max()) if len(g) else None}
    out["shuffled_gap_samples"] = [r["gap"] for r in sh]
    out["gaussian_by_distance"] = np.mean([r["by_distance"] for r in ga], axis=0).tolist() if ga else None
    g_gap = out["gap"]["gaussian_max"]
    out["shows_continuity"] = bool(out["gap"]["p_shuffled"] < 0.05 and out["nn_adjacent"]["p_shuffled"] < 0.05
                                   and (g_gap is None or obs["gap"] > g_gap))
    return out


def gaussian_reps(Ws: torch.Tensor, n: int, seed: int = 0) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
    """The (L, L) cosine matrix of every representation of n Gaussian draws like Ws (gaussian_like, one
    generator seeded ``seed``), each draw factorised once for all representations, and the concatenated
    spectrum of the first draw. The draws keep Ws's full shape and per-layer std: the statistics they
    control (cosines of top singular vectors and of raw rows, the spectrum) depend on the matrix shape,
    so a smaller matrix would control something else; n draws only give the null's spread (its max is
    the bar). Only cosine matrices are kept, so a draw's memory is freed before the next."""
    gen = torch.Generator().manual_seed(seed)
    reps: dict[str, list[np.ndarray]] = {r: [] for r in REPRESENTATIONS}
    spectrum = None
    for k in range(max(n, 1)):                         # the first draw also gives the Gaussian spectrum
        G = gaussian_like(Ws, gen)
        F = factorize(G, method="auto")
        if k == 0:
            spectrum = F.S.double().numpy()
        if k < n:
            reps["concat_svd_top1"].append(rep_cos(G, "concat_svd_top1", F.V[:, 0, :].double().numpy()))
            del F
            reps["per_layer_svd_top1"].append(rep_cos(G, "per_layer_svd_top1"))
            reps["raw_weights"].append(rep_cos(G, "raw_weights"))
        del G
    return reps, spectrum


def embed_2d(X: np.ndarray, perplexity: float, seed: int = 0) -> dict:
    """t-SNE (the paper's picture) and PCA (linear, deterministic) of L row vectors -> (L, 2) each."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    Xs = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    pca = PCA(n_components=2, random_state=seed).fit(Xs)
    p = min(float(perplexity), (len(X) - 1) / 3.0)
    tsne = TSNE(n_components=2, perplexity=max(p, 1.0), init="pca", random_state=seed,
                learning_rate="auto").fit_transform(Xs)
    return {"pca": pca.transform(Xs).tolist(), "pca_explained": pca.explained_variance_ratio_.tolist(),
            "tsne": tsne.tolist(), "tsne_perplexity": max(p, 1.0)}


def svd_evidence(model: Any, weight_types: list[str], n_shuffles: int, n_gaussian: int,
                 tsne_perplexity: float, seed: int = 0, *, stack: Any = None) -> dict:
    """Everything notebook 1 needs, per weight type: spectra, 2-D embeddings, continuity tests.
    Each weight type is factorised once (factorize_type, shared with predictor_study in the same
    process) and each Gaussian draw once for every representation (gaussian_reps).

    stack: short -> (L, d_out, d_in) float32 stack, instead of the model's (then ``model`` may be None and
    nothing is kept between types): the scale ladder reads a 1.5B model's stacks from disk one type at
    a time, without holding its 6 GiB of weights beside the factorisations."""
    out: dict = {"weight_types": {}, "num_layers": None}
    for short in weight_types:
        Ws = stack(short) if stack is not None else stack_weights(model, short)
        out["num_layers"] = Ws.shape[0]
        F = factorize(Ws, method="auto") if stack is not None else factorize_type(model, short, "auto")
        X, S = F.V[:, 0, :].double().numpy(), F.S.double().numpy()   # == top1_rows_concat, spectrum_concat
        del F                                              # (factorize_type keeps its own reference)
        X_per, S_per = top1_rows_per_layer(Ws)             # one per-layer SVD (float64)
        gauss, S_gauss = gaussian_reps(Ws, n_gaussian, seed)
        known = {"concat_svd_top1": X, "per_layer_svd_top1": X_per}
        rec = {"shape": list(Ws.shape), "spectrum": S.tolist(), "spectrum_gaussian": S_gauss.tolist(),
               "spectrum_per_layer": S_per.tolist(), "embedding": embed_2d(X, tsne_perplexity, seed),
               "tests": {rep: continuity_test(Ws, rep, n_shuffles, n_gaussian, seed, X=known.get(rep),
                                              gaussian=gauss[rep])
                         for rep in REPRESENTATIONS}}
        out["weight_types"][short] = rec
    return out
