"""Measurements behind the book's claims; every loop longer than a few lines lives here, tested.

    continuity      (C1)  adjacent vs distant similarity and nearest-neighbour adjacency of per-layer
                          representations, against shuffled-layer-order and Gaussian-matrix controls
    predictor       (C7a, C7b, C8) leave-one-layer-out evaluation against trivial predictors (zeros,
                          neighbour average, copies, ridge), lambda sweep
    expansion       (C3, C12c) cached expansion, new-layer statistics, residual-stream effect,
                          perplexity suite (before any training; one protocol: lesa.protocol)
    cpt / downstream (C2, C4-C6, C12a, C12b) readers of the CPT and evaluation result files
    verdicts        records written to results/<profile>/verdicts/<notebook>.json; the rules that
                          decide them are in lesa.claims
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .arch import PROJECTIONS, check_model, get_layers
from .store import PROJECT_ROOT, cache_dir, provenance, read_json, stable_hash, write_json

FIXTURE_TEXT = PROJECT_ROOT / "tests" / "fixtures" / "wikitext_excerpt.txt"
from .claims import STATUSES as VERDICTS, fmt, smooth, steps_to_reach  # noqa: F401 (re-exported)


# ============================================================================ small helpers
def results_dir(profile: str, *parts: str) -> Path:
    p = PROJECT_ROOT / "results" / profile
    p = p.joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def code_key() -> str:
    """Hash of the modules whose code decides the cached numbers (a code change invalidates them)."""
    from .store import file_hash

    here = Path(__file__).resolve().parent
    return stable_hash([file_hash(here / f) for f in ("analysis.py", "svd.py", "predictor.py", "expand.py",
                                                      "plans.py", "evaluate.py") if (here / f).exists()])


def cached_json(name: str, key: Any, fn: Callable[[], Any]) -> Any:
    """Return fn()'s JSON-able result, cached under .cache/analysis/<name>/<hash(key, code)>.json."""
    path = cache_dir("analysis", name) / f"{stable_hash([key, code_key()])}.json"
    if path.exists():
        return read_json(path)
    out = fn()
    write_json(path, out)
    return out


def stack_weights(model: Any, short: str) -> torch.Tensor:
    """(L, d_out, d_in) float32 stack of one weight type over all decoder layers."""
    spec = check_model(model)
    path = spec.projections[short]
    return torch.stack([l.get_submodule(path).weight.detach().float() for l in get_layers(model, spec)])


def _cos_matrix(X: np.ndarray, absolute: bool = False) -> np.ndarray:
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    C = Xn @ Xn.T
    return np.abs(C) if absolute else C


# ============================================================================ C1: continuity
def top1_rows_concat(Ws: torch.Tensor) -> np.ndarray:
    """Top-1 coefficient row V_i[0, :] of every layer from the concatenated SVD: (L, d_in)."""
    from .svd import factorize

    F = factorize(Ws, method="auto")
    return F.V[:, 0, :].double().numpy()


def spectrum_concat(Ws: torch.Tensor) -> np.ndarray:
    from .svd import factorize

    return factorize(Ws, method="auto").S.double().numpy()


def top1_rows_per_layer(Ws: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer SVD (a different quantity): top right singular vector of each W_i (sign-ambiguous,
    so compare with |cos|) and each layer's singular values. Returns (L, d_in), (L, r)."""
    U, S, Vh = torch.linalg.svd(Ws.double(), full_matrices=False)
    return Vh[:, 0, :].numpy(), S.numpy()


def raw_rows(Ws: torch.Tensor) -> np.ndarray:
    return Ws.reshape(Ws.shape[0], -1).double().numpy()


REPRESENTATIONS = {
    # name -> (function Ws -> (L, n) array, compare with |cos|?)
    "concat_svd_top1": (top1_rows_concat, False),
    "per_layer_svd_top1": (lambda W: top1_rows_per_layer(W)[0], True),
    "raw_weights": (raw_rows, False),
}


def continuity_metrics(X: np.ndarray, absolute: bool = False) -> dict:
    """Adjacent vs distant cosine similarity and nearest-neighbour adjacency of L row vectors.

    adjacent  mean cos(x_i, x_{i+1});  distant  mean cos(x_i, x_j) over |i-j| >= 2;
    gap = adjacent - distant;  nn_adjacent = share of layers whose most similar other layer is i+-1
    (chance about 2/(L-1)); by_distance = mean cos at each |i-j|.
    """
    L = X.shape[0]
    C = _cos_matrix(X, absolute)
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
              its blocks, so this is a permutation of the rows), n_shuffles times -> one-sided p-values
    gaussian  Gaussian matrices of the same shapes and per-layer std, n_gaussian draws

    X: the representation of Ws when already computed; gaussian: those of the n_gaussian draws of
    gaussian_like(Ws, Generator().manual_seed(seed)) (see gaussian_reps). Without them both are
    computed here, with the same numbers.
    """
    fn, absolute = REPRESENTATIONS[rep]
    X = fn(Ws) if X is None else X
    obs = continuity_metrics(X, absolute)
    rng = np.random.default_rng(seed)
    sh = [continuity_metrics(X[rng.permutation(len(X))], absolute) for _ in range(n_shuffles)]
    if gaussian is None:
        gen = torch.Generator().manual_seed(seed)
        gaussian = [fn(gaussian_like(Ws, gen)) for _ in range(n_gaussian)]
    ga = [continuity_metrics(G, absolute) for G in gaussian[:n_gaussian]]
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
    """Every representation of n Gaussian draws like Ws (gaussian_like, one generator seeded ``seed``),
    each draw factorised once for all representations, and the concatenated spectrum of the first
    draw. The draws keep Ws's full shape and per-layer std: the statistics they control (cosines of
    top singular vectors and of raw rows, the spectrum) depend on the matrix shape, so a smaller
    matrix would control something else; n draws only give the null's spread (its max is the bar)."""
    from .svd import factorize

    gen = torch.Generator().manual_seed(seed)
    reps: dict[str, list[np.ndarray]] = {r: [] for r in REPRESENTATIONS}
    spectrum = None
    for k in range(max(n, 1)):                         # the first draw also gives the Gaussian spectrum
        G = gaussian_like(Ws, gen)
        F = factorize(G, method="auto")
        if k == 0:
            spectrum = F.S.double().numpy()
        if k < n:
            reps["concat_svd_top1"].append(F.V[:, 0, :].double().numpy())      # == top1_rows_concat(G)
            reps["per_layer_svd_top1"].append(top1_rows_per_layer(G)[0])
            reps["raw_weights"].append(raw_rows(G))
        del G, F
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
                 tsne_perplexity: float, seed: int = 0) -> dict:
    """Everything notebook 1 needs, per weight type: spectra, 2-D embeddings, continuity tests.
    Each weight type is factorised once (factorize_type, shared with predictor_study in the same
    process) and each Gaussian draw once for every representation (gaussian_reps)."""
    out: dict = {"weight_types": {}, "num_layers": None}
    for short in weight_types:
        Ws = stack_weights(model, short)
        out["num_layers"] = Ws.shape[0]
        F = factorize_type(model, short, "auto")           # one concatenated SVD per weight type
        X, S = F.V[:, 0, :].double().numpy(), F.S.double().numpy()   # == top1_rows_concat, spectrum_concat
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


_FACTORS: dict[tuple, tuple] = {}


def factorize_type(model: Any, short: str, method: str = "auto"):
    """lesa.svd.factorize of one weight type's float32 stack, computed once per model, weight type
    and method in this process (every control and study reuses it; the weights are not expected to
    change in between: analysis models are frozen). Kept only while the model lives."""
    import weakref

    from .svd import factorize

    key = (id(model), short, method)
    hit = _FACTORS.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    F = factorize(stack_weights(model, short), method=method)
    ref = weakref.ref(model, lambda _r, k=key: _FACTORS.pop(k, None))
    _FACTORS[key] = (ref, F)
    return F


# ============================================================================ C7, C8, C12c: predictor
def weight_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict:
    """R^2 (1 - SSE / SS around the target's mean), cosine, norm ratio, relative error."""
    p, t = pred.double().flatten(), true.double().flatten()
    sse = float(((p - t) ** 2).sum())
    sst = float(((t - t.mean()) ** 2).sum())
    return {"r2": 1 - sse / max(sst, 1e-30),
            "cosine": float(p @ t / max(float(p.norm() * t.norm()), 1e-30)),
            "norm_ratio": float(p.norm() / max(float(t.norm()), 1e-30)),
            "rel_error": math.sqrt(sse) / max(float(t.norm()), 1e-30)}


def _blocks(Ws: torch.Tensor, cfg, keep: list[int] | None = None, F=None):
    """Coefficient blocks (L, r, d_in) and the basis US, from the layers in ``keep`` only (the
    others are zero placeholders that no training pair touches). F: the factorisation of all of Ws
    (keep=None) when already computed (factorize_type)."""
    from .svd import factorize

    keep = list(range(Ws.shape[0])) if keep is None else keep
    if cfg.space == "raw":
        blocks = torch.zeros_like(Ws)
        blocks[keep] = Ws[keep]
        return blocks, None
    if F is None or len(keep) != Ws.shape[0]:
        F = factorize(Ws[keep], method=cfg.svd_method)
    blocks = torch.zeros((Ws.shape[0],) + tuple(F.V.shape[1:]), dtype=F.V.dtype)
    blocks[keep] = F.V
    return blocks, F.US


def _reconstruct(US, coeffs):
    return coeffs if US is None else US @ coeffs.to(US.dtype)


def loo_layers(L: int, n: int) -> list[int]:
    """n held-out layers spread evenly over 2..L-3 (each needs two neighbours that are themselves
    targets' neighbours, so layer i-1, i, i+1 can all be excluded from training)."""
    lo, hi = 2, L - 3
    if hi < lo:
        raise ValueError(f"a {L}-layer model is too shallow for leave-one-layer-out (needs >= 5 layers)")
    return sorted({int(round(x)) for x in np.linspace(lo, hi, min(n, hi - lo + 1))})


def leave_one_layer_out(Ws: torch.Tensor, cfg, layer: int) -> dict:
    """Train G on every layer triple that does not touch ``layer`` (targets i-1, i, i+1 excluded; the
    SVD itself is computed without it), predict W_layer from its neighbours, and compare with the
    real layer and with baselines: neighbour average, zeros, copies of either neighbour.
    Also the training-set MSE vs the held-out MSE in the predictor's own space (claim C7)."""
    from .predictor import train_predictor

    L = Ws.shape[0]
    keep = [i for i in range(L) if i != layer]
    blocks, US = _blocks(Ws, cfg, keep)
    targets = [t for t in range(1, L - 1) if abs(t - layer) > 1]
    g = train_predictor(blocks, cfg, layers=targets, desc=f"loo {layer}", progress=False)
    pred_c = g.predict(blocks[layer - 1], blocks[layer + 1]).double()
    W_true = Ws[layer].double()
    # the real layer's coefficients in the same basis (least squares, exact when US is square)
    if US is None:
        true_c = W_true
    else:
        true_c = torch.linalg.lstsq(US.double(), W_true).solution
    from .predictor import training_pairs

    X, Y = training_pairs(blocks, 1, targets)
    with torch.no_grad():
        train_mse = float(((g.mlp(X.float()).double() - Y.double()) ** 2).mean())
    test_mse = float(((pred_c - true_c) ** 2).mean())
    W_pred = _reconstruct(US.double() if US is not None else None, pred_c)
    # ridge: the best linear map from the neighbours' rows to the middle rows on the same training
    # pairs (a trivial predictor the MLP must beat to have learned more than a linear rule)
    ridge_c = ridge_predict(X.double(), Y.double(), torch.cat([blocks[layer - 1], blocks[layer + 1]], dim=-1).double())
    base = {"predictor": W_pred, "neighbour_average": (Ws[layer - 1] + Ws[layer + 1]).double() / 2,
            "zeros": torch.zeros_like(W_true), "copy_below": Ws[layer - 1].double(),
            "copy_above": Ws[layer + 1].double(),
            "ridge": _reconstruct(US.double() if US is not None else None, ridge_c)}
    return {"layer": layer, "train_mse": train_mse, "test_mse": test_mse,
            "test_over_train": test_mse / max(train_mse, 1e-30), "target_mean_sq": float((true_c ** 2).mean()),
            "history": g.history, "seconds": g.seconds,
            "metrics": {k: weight_metrics(v, W_true) for k, v in base.items()}}


def ridge_predict(X: torch.Tensor, Y: torch.Tensor, X_new: torch.Tensor, alpha: float = 1e-3) -> torch.Tensor:
    """Ridge regression Y ~ X B (no intercept; penalty alpha x the mean diagonal of X^T X, so it is
    scale-free), applied to X_new."""
    G = X.T @ X
    G = G + alpha * float(G.diagonal().mean().clamp_min(1e-30)) * torch.eye(G.shape[0], dtype=G.dtype)
    B = torch.linalg.solve(G, X.T @ Y)
    return X_new @ B


def train_full(Ws: torch.Tensor, cfg, F=None) -> dict:
    """The released recipe on all layers of one weight type: loss curve, time, and what the loss means
    (MSE of predicting zeros = mean(Y^2); a right-norm but uncorrelated prediction gives about 2x),
    in-sample predictions' quality and norm, and the norm of distance-1 (inference) predictions.
    F: Ws's factorisation when already computed (factorize_type)."""
    from .predictor import train_predictor, training_pairs

    blocks, US = _blocks(Ws, cfg, F=F)
    g = train_predictor(blocks, cfg, progress=False)
    X, Y = training_pairs(blocks, cfg.train_distance)
    mean_sq = float((Y.double() ** 2).mean())
    L = Ws.shape[0]
    in_sample, infer = [], []
    for i in range(1, L - 1):
        W = _reconstruct(US, g.predict(blocks[i - 1], blocks[i + 1]).to(blocks.dtype))
        in_sample.append(weight_metrics(W, Ws[i]))
    for k in range(L - 1):
        W = _reconstruct(US, g.predict(blocks[k], blocks[k + 1]).to(blocks.dtype))
        ref = (Ws[k].norm() + Ws[k + 1].norm()) / 2
        infer.append({"gap": k, "norm_ratio": float(W.norm() / ref),
                      "cos_below": weight_metrics(W, Ws[k])["cosine"],
                      "cos_above": weight_metrics(W, Ws[k + 1])["cosine"]})
    avg = lambda rows, k: float(np.mean([r[k] for r in rows]))
    return {"history": g.history, "seconds": g.seconds, "n_samples": g.n_samples,
            "target_mean_sq": mean_sq, "final_loss_over_mean_sq": g.history[-1] / mean_sq if g.history else None,
            "in_sample": {k: avg(in_sample, k) for k in ("r2", "cosine", "norm_ratio")},
            "in_sample_rows": in_sample, "inference": infer,
            "inference_norm_ratio": avg(infer, "norm_ratio")}


def predictor_study(model: Any, base_cfg, weight_types: list[str], loo_types: list[str], n_loo: int,
                    lambda_types: list[str], lambdas: list[float], model_key: str) -> dict:
    """Notebook 2: full training per type (recipe), LOO per (type, layer), lambda sweep; each unit
    cached by its inputs so an interrupted run resumes. A weight type is factorised once
    (factorize_type) for its full training and every lambda; each LOO unit factorises the stack
    without its held-out layer (a different matrix)."""
    out: dict = {"config": base_cfg.to_dict(), "full": {}, "loo": {}, "lambda": {}}
    L = None
    for short in sorted(set(weight_types) | set(loo_types) | set(lambda_types), key=list(PROJECTIONS).index):
        Ws = stack_weights(model, short)
        L = Ws.shape[0]
        key = {"model": model_key, "type": short, "cfg": base_cfg.to_dict()}
        fac = lambda c, short=short: None if c.space == "raw" else factorize_type(model, short, c.svd_method)
        if short in weight_types or short in lambda_types:
            out["full"][short] = cached_json("pred_full", key, lambda: train_full(Ws, base_cfg, F=fac(base_cfg)))
        if short in loo_types:
            out["loo"][short] = [cached_json("pred_loo", {**key, "layer": i},
                                             lambda i=i: leave_one_layer_out(Ws, base_cfg, i))
                                 for i in loo_layers(L, n_loo)]
        if short in lambda_types:
            out["lambda"][short] = {}
            for lam in lambdas:
                c = dataclasses.replace(base_cfg, lam=float(lam))
                k2 = {**key, "cfg": c.to_dict()}
                out["lambda"][short][str(lam)] = cached_json("pred_full", k2, lambda c=c: train_full(Ws, c, F=fac(c)))
    out["num_layers"] = L
    return out


# ============================================================================ expansion
def new_layer_stats(model: Any, grown: Any, plan) -> list[dict]:
    """Per new layer and weight type: norm relative to its source layer(s), cosine with each source."""
    spec = check_model(model)
    src_layers, new = get_layers(model, spec), get_layers(grown)
    rows = []
    for i in plan.new_layers:
        s = plan.slots[i]
        for short, path in spec.projections.items():
            W = new[i].get_submodule(path).weight.detach().double()
            refs = [src_layers[j].get_submodule(path).weight.detach().double() for j in s.src]
            ref_norm = float(np.mean([float(r.norm()) for r in refs]))
            row = {"slot": i, "kind": s.kind, "src": list(s.src), "type": short,
                   "norm_ratio": float(W.norm()) / max(ref_norm, 1e-30),
                   "cos_src0": weight_metrics(W, refs[0])["cosine"]}
            row["cos_src1"] = weight_metrics(W, refs[1])["cosine"] if len(refs) > 1 else None
            row["cos_src0_src1"] = weight_metrics(refs[0], refs[1])["cosine"] if len(refs) > 1 else None
            rows.append(row)
    return rows


@torch.no_grad()
def residual_effect(model: Any, input_ids: torch.Tensor) -> list[dict]:
    """Per decoder layer: ||h_out - h_in|| / ||h_in|| (mean over tokens) and cos(h_out - h_in, h_in).
    A layer with o_proj = down_proj = 0 has relative update 0 (the identity)."""
    layers = get_layers(model)
    caught: dict[int, dict] = {}

    def pre(i):
        def hook(mod, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            caught.setdefault(i, {})["in"] = h.detach().float()
        return hook

    def post(i):
        def hook(mod, args, kwargs, out):
            h = out[0] if isinstance(out, (tuple, list)) else out
            caught[i]["out"] = h.detach().float()
        return hook

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(pre(i), with_kwargs=True))
        handles.append(layer.register_forward_hook(post(i), with_kwargs=True))
    try:
        model(input_ids=input_ids)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i in range(len(layers)):
        hin, hout = caught[i]["in"], caught[i]["out"]
        upd = hout - hin
        rel = (upd.norm(dim=-1) / hin.norm(dim=-1).clamp_min(1e-12)).mean()
        cos = torch.nn.functional.cosine_similarity(upd, hin, dim=-1).mean()
        rows.append({"layer": i, "rel_update": float(rel), "cos_update_input": float(cos)})
    return rows


@torch.no_grad()
def text_perplexity(model: Any, tokenizer: Any, text: str, max_length: int) -> dict:
    """Token perplexity of a text in disjoint windows of max_length tokens (no data files needed)."""
    ids = tokenizer.encode(text)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    nll, n = 0.0, 0
    for s in range(0, len(ids), max_length):
        chunk = [bos] + ids[s:s + max_length]
        x = torch.tensor([chunk])
        logits = model(input_ids=x).logits[0, :-1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
        n += len(chunk) - 1
    return {"task": "ppl_fixture", "metrics": {"token_perplexity": math.exp(nll / n)},
            "primary_metric": "token_perplexity", "value": math.exp(nll / n), "n_tokens": n,
            "data": str(FIXTURE_TEXT.relative_to(PROJECT_ROOT))}


def perplexity_suite(model: Any, tokenizer: Any, sets: list[str], limits: dict, max_length: int,
                     batch_size: int = 2, precision: str = "fp32") -> dict:
    """{set: record} for 'fixture' (always available) and lesa.evaluate's wikitext / lambada /
    heldout; a set whose data is not prepared gets {'status': 'missing', 'reason': ...}.
    Call it through lesa.protocol.measure (one protocol for every notebook). precision: lesa.evaluate's
    ("fp32" | "bf16", the protocol's); the fixture set is always fp32."""
    from .evaluate import check_precision

    check_precision(precision, next(model.parameters()).device)
    out: dict = {}
    for name in sets:
        t0 = time.perf_counter()
        try:
            if name == "fixture":
                rec = text_perplexity(model, tokenizer, FIXTURE_TEXT.read_text(encoding="utf-8"), max_length)
            else:
                from .evaluate import perplexity

                rec = perplexity(model, tokenizer, name, max_length=max_length, limit=limits.get(name),
                                 batch_size=batch_size, progress=False, precision=precision)
            rec["status"] = "ok"
            if name == "lambada":            # report its perplexity as the set's headline number
                rec["acc"] = rec["metrics"].get("acc")
                rec["value"] = rec["metrics"]["perplexity"]
                rec["primary_metric"] = "perplexity"
        except (FileNotFoundError, OSError, RuntimeError, KeyError) as e:
            rec = {"status": "missing", "reason": f"{type(e).__name__}: {e}"[:300]}
        rec["limit"] = limits.get(name)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = rec
    return out


def quick_benchmarks(model: Any, tokenizer: Any, tasks: list[str], limit: int | None,
                     precision: str = "fp32") -> dict:
    """A quick lm-eval pass (accuracy, stderr, n) per task; missing data or lm-eval -> status.
    precision: as in perplexity_suite (checked before anything runs)."""
    out: dict = {}
    if not tasks:
        return out
    from .evaluate import check_precision

    check_precision(precision, next(model.parameters()).device)
    try:
        from .evaluate import run_benchmarks

        for rec in run_benchmarks(model, tokenizer, tasks, limit=limit, batch_size=8, precision=precision):
            out[rec["task"]] = {"status": "ok", "value": rec["value"], "metric": rec["primary_metric"],
                                "stderr": (rec.get("stderr") or {}).get(rec["primary_metric"]),
                                "chance": rec.get("chance"), "n": rec["n_samples"], "seconds": rec["seconds"]}
    except Exception as e:  # noqa: BLE001 (lm-eval raises many kinds; the page must still render)
        for t in tasks:
            out.setdefault(t, {"status": "missing", "reason": f"{type(e).__name__}: {e}"[:300]})
    return out


def fixture_ids(tokenizer: Any, n_tokens: int) -> torch.Tensor:
    ids = tokenizer.encode(FIXTURE_TEXT.read_text(encoding="utf-8"))
    while len(ids) < n_tokens:
        ids = ids + ids
    return torch.tensor([ids[:n_tokens]])


# ============================================================================ CPT and downstream
def find_results(profile: str, sub: str, fallbacks: tuple[str, ...] = ("gpu",),
                 root: str | Path | None = None, prefer: tuple[str, ...] = ()) -> tuple[Path | None, str | None]:
    """results/<p>/<sub> of the first preferred profile that has them (e.g. cpu-long's longer runs shown
    on the cpu page), else this profile's, else the first fallback profile's (e.g. committed GPU results
    rendered on a CPU machine). Returns (path, profile it came from)."""
    for p in (*prefer, profile, *[f for f in fallbacks if f != profile]):
        d = Path(root or PROJECT_ROOT / "results") / p / sub
        if d.exists() and any(d.rglob("*.json")):
            return d, p
    return None, None


def complete_cpt_profiles(profiles: list[str] | tuple[str, ...], of: str,
                          root: str | Path | None = None) -> tuple[str, ...]:
    """Those of ``profiles`` that extend profile ``of`` (its longer budget, e.g. cpu-long of cpu) and whose
    every CPT run (lesa.cpt.run_names) has finished and been evaluated: only a complete set of runs
    replaces a profile's own (a partial one would mix budgets in one verdict)."""
    from .cpt import run_names
    from .profiles import ProfileError, load_profile

    out = []
    for p in profiles:
        try:
            prof = load_profile(p, check_device=False)
        except ProfileError:
            continue
        if prof.get("extends") != of:
            continue
        base = Path(root or PROJECT_ROOT / "results") / p
        runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants")) if prof.get("cpt") else {}
        done = lambda n: ((base / "cpt" / n / "summary.json").exists()
                          and read_json(base / "cpt" / n / "summary.json").get("completed")
                          and (base / "downstream" / n).is_dir())
        if runs and all(done(n) for n in runs):
            out.append(p)
    return tuple(out)


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def load_cpt_runs(cpt_dir: Path) -> dict[str, dict]:
    """name -> {summary, train (list of rows), eval (list of rows), method, frozen (the method's own
    recipe, not an ablation: SOLAR's trains every layer), ablation}."""
    runs = {}
    for d in sorted(p for p in Path(cpt_dir).iterdir() if p.is_dir()):
        summ = read_json(d / "summary.json") if (d / "summary.json").exists() else {}
        train, ev = _jsonl(d / "train_log.jsonl"), _jsonl(d / "eval_log.jsonl")
        if not (summ or train):
            continue
        growth = summ.get("growth") or {}
        cfg = summ.get("config") or {}
        run = summ.get("run") or {}         # lesa.cpt's run table; older summaries: train_all alone
        ablation = run.get("ablation") if "ablation" in run else ("unfrozen" if cfg.get("train_all") else None)
        runs[d.name] = {"summary": summ, "train": train, "eval": ev,
                        "method": growth.get("method") or d.name.split("-")[0],
                        "options": run.get("options") or {},        # a variant's plan options (alpha, rank)
                        "frozen": ablation is None, "ablation": ablation, "completed": bool(summ.get("completed")),
                        # what the run trained, as recorded (older summaries: train_all alone)
                        "trains": run.get("trains") or ("all" if cfg.get("train_all") else "new")}
    return runs


def runs_by_method(runs: dict[str, dict], frozen: bool = True) -> dict[str, dict]:
    """method -> its frozen (or unfrozen) run with the most logged steps (first seed on ties); the
    unexpanded 'base' control trains every layer and is never a frozen run."""
    out: dict[str, dict] = {}
    for name, r in sorted(runs.items()):
        if r["frozen"] != frozen or not r["train"] or (frozen and r["method"] == "base"):
            continue
        key = run_key(name, r)
        if key not in out or len(r["train"]) > len(out[key]["train"]):
            out[key] = {**r, "name": name}
    return out


def run_key(name: str, r: dict) -> str:
    """A run's key in method-keyed comparisons: its method, or its run name for a variant grown with plan
    options (two settings of one method must not collide)."""
    return name if r.get("options") else r["method"]


def cpt_comparison(runs: dict[str, dict], window: int = 10) -> dict:
    """Frozen runs of lesa / llama_pro / solar: final smoothed loss, steps and compute for LESA to
    reach each baseline's final loss, median step time ratio (the paper's: lesa.claims.PAPER_STEP_RATIO)."""
    frozen = {run_key(n, r): r for n, r in runs.items() if r["frozen"] and r["train"]}
    out: dict = {"final_loss": {}, "step_s": {}, "reach": {}, "methods": sorted(frozen)}
    for m, r in frozen.items():
        out["final_loss"][m] = float(smooth([x["loss"] for x in r["train"]], window)[-1])
        st = [x["step_s"] for x in r["train"][1:]] or [x["step_s"] for x in r["train"]]
        out["step_s"][m] = float(np.median(st))
    if "lesa" in frozen:
        for b in ("llama_pro", "solar"):
            if b in frozen:
                hit = steps_to_reach(frozen["lesa"]["train"], out["final_loss"][b], window=window)
                total = frozen[b]["train"][-1]
                out["reach"][b] = {"lesa": hit, "baseline_total": {k: total.get(k) for k in
                                                                   ("step", "tokens", "flops", "elapsed_s")}}
        if out["step_s"].get("lesa"):
            out["step_time_ratio"] = {m: out["step_s"][m] / out["step_s"]["lesa"] for m in out["step_s"]}
    if "llama_pro" in frozen:     # every frozen run against LLaMA Pro's final loss (the variants beyond the paper)
        total = frozen["llama_pro"]["train"][-1]
        out["reach_llama_pro"] = {
            "target": out["final_loss"]["llama_pro"],
            "baseline_total": {k: total.get(k) for k in ("step", "tokens", "flops", "elapsed_s")},
            "runs": {m: steps_to_reach(r["train"], out["final_loss"]["llama_pro"], window=window)
                     for m, r in frozen.items() if m != "llama_pro"}}
    unfrozen = {r["method"]: r for r in runs.values() if r.get("ablation") == "unfrozen" and r["train"]}
    out["unfrozen"] = {m: float(smooth([x["loss"] for x in r["train"]], window)[-1]) for m, r in unfrozen.items()}
    out["unfrozen_std"] = {m: float(np.std(np.diff([x["loss"] for x in r["train"]][-50:])))
                           for m, r in unfrozen.items() if len(r["train"]) > 2}
    out["frozen_std"] = {m: float(np.std(np.diff([x["loss"] for x in r["train"]][-50:])))
                         for m, r in frozen.items() if len(r["train"]) > 2}
    return out


def load_eval_records(eval_dir: Path) -> list[dict]:
    """Tidy rows (label, task, metric, value, n) from lesa.evaluate records under eval_dir/<label>/."""
    rows = []
    for p in sorted(Path(eval_dir).glob("*/*.json")):
        r = read_json(p)
        if "task" in r and "value" in r:
            rows.append({"label": r.get("label") or p.parent.name, "task": r["task"],
                         "metric": r.get("primary_metric"), "value": r["value"],
                         "stderr": (r.get("stderr") or {}).get(r.get("primary_metric")),
                         "n": r.get("n_samples"), "limit": r.get("limit"), "max_length": r.get("max_length"),
                         "precision": r.get("precision")})
    return rows


def main_table(rows: list[dict]) -> dict:
    """{label: {"ppl": wikitext word perplexity or held-out ppl, "avg": mean benchmark accuracy (%),
    "n_tasks": k}} in the shape of the paper's main table."""
    by: dict = {}
    for r in rows:
        d = by.setdefault(r["label"], {"acc": {}, "ppl": None, "ppl_source": None})
        if r["task"] == "ppl_wikitext":
            d["ppl"], d["ppl_source"] = r["value"], "wikitext word ppl"
        elif r["task"] == "ppl_heldout" and d["ppl"] is None:
            d["ppl"], d["ppl_source"] = r["value"], "held-out token ppl"
        elif not r["task"].startswith("ppl_") and r["task"] != "lambada_openai":
            d["acc"][r["task"]] = (r["value"], r.get("stderr"))
    out = {}
    for k, v in by.items():
        accs = [a for a, _ in v["acc"].values()]
        ses = [se for _, se in v["acc"].values()]
        se = (100 * math.sqrt(sum(x * x for x in ses)) / len(ses)) if ses and None not in ses else None
        out[k] = {"ppl": v["ppl"], "ppl_source": v["ppl_source"], "n_tasks": len(v["acc"]),
                  "avg": 100 * float(np.mean(accs)) if accs else None, "avg_se": se,
                  "tasks": sorted(v["acc"]), "acc": v["acc"]}
    return out


# ============================================================================ verdicts
def verdict(claim: str, statement: str, paper: str, ours: str, status: str, evidence: str,
            notebook: str, detail: str = "") -> dict:
    if status not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {status!r}")
    return {"claim": claim, "statement": statement, "paper": paper, "ours": ours, "verdict": status,
            "evidence": evidence, "notebook": notebook, "detail": detail}


def write_verdicts(folder: str | Path, notebook: str, rows: list, *, profile: str,
                   source_profile: str | None = None) -> Path:
    """results/<profile>/verdicts/<notebook>.json: the claims this notebook judged (lesa.claims.Verdict
    objects or their records)."""
    from .claims import Verdict

    rows = [r.record() if isinstance(r, Verdict) else r for r in rows]
    path = Path(folder) / f"{notebook}.json"
    write_json(path, {"profile": profile, "notebook": notebook, "source_profile": source_profile or profile,
                      "verdicts": rows, "provenance": provenance()})
    return path


def verdict_markdown(rows: list) -> str:
    """Markdown table of verdicts (lesa.claims.Verdict objects or their records)."""
    from .claims import markdown

    return markdown(rows)

