"""Predictor measurements (C7a, C7b, C8, C12c): leave-one-layer-out evaluation against trivial predictors
(zeros, neighbour average, copies, ridge), full training per weight type, the cached predictor study."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from .common import cached_json, factorize_type, stack_weights
from ..core.arch import PROJECTIONS
from ..grow.predictor import train_predictor, training_pairs
from ..grow.svd import factorize


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


LOO_CONTROLS = ("matched_norm_random", "mean", "zeros")   # C7a's controls: predictors that learn nothing


def loo_controls(Ws: torch.Tensor, cfg, layer: int, seed: int = 0) -> dict[str, dict]:
    """C7a's controls (issue 37): the held-out / training MSE ratio of predictors that learn nothing, measured
    exactly as leave_one_layer_out measures the predictor's (the same training layers, the same basis built
    without ``layer``, the predictor's own coefficient space). No training: each costs one factorisation.

    matched_norm_random  Gaussian rows scaled to the training targets' root-mean-square row norm (on the
                         training rows and on the held-out layer's), so it has the predictions' scale, no content
    mean                 the mean training target row, for every row
    zeros                predicting zeros (what R2 = 0 means)

    Returns control -> {train_mse, test_mse, test_over_train}. A held-out / training ratio near 1 for these
    means the claim "held-out loss on par with training loss" cannot tell learning from none."""
    L = Ws.shape[0]
    keep = [i for i in range(L) if i != layer]
    blocks, US = _blocks(Ws, cfg, keep)
    targets = [t for t in range(1, L - 1) if abs(t - layer) > 1]
    _, Y = training_pairs(blocks, 1, targets)
    Y = Y.double()
    W_true = Ws[layer].double()
    true_c = W_true if US is None else torch.linalg.lstsq(US.double(), W_true).solution
    gen = torch.Generator().manual_seed(seed)
    rms_row = float(Y.pow(2).sum(1).mean().sqrt())

    def random_rows(n: int, d: int) -> torch.Tensor:
        Z = torch.randn((n, d), generator=gen, dtype=torch.float64)
        return Z / Z.norm(dim=1, keepdim=True).clamp_min(1e-30) * rms_row

    mean_row = Y.mean(0, keepdim=True)
    preds = {"matched_norm_random": (random_rows(*Y.shape), random_rows(*true_c.shape)),
             "mean": (mean_row.expand_as(Y), mean_row.expand_as(true_c)),
             "zeros": (torch.zeros_like(Y), torch.zeros_like(true_c))}
    out = {}
    for k, (p_train, p_test) in preds.items():
        tr = float(((p_train - Y) ** 2).mean())
        te = float(((p_test - true_c) ** 2).mean())
        out[k] = {"train_mse": tr, "test_mse": te, "test_over_train": te / max(tr, 1e-30)}
    return out


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
            # C7a's controls on the same left-out layers (no training; the seed draws the random control)
            out.setdefault("loo_controls", {})[short] = [
                cached_json("pred_loo_controls", {**key, "layer": i, "controls": LOO_CONTROLS},
                            lambda i=i: {"layer": i, **loo_controls(Ws, base_cfg, i, seed=base_cfg.seed)})
                for i in loo_layers(L, n_loo)]
        if short in lambda_types:
            out["lambda"][short] = {}
            for lam in lambdas:
                c = dataclasses.replace(base_cfg, lam=float(lam))
                k2 = {**key, "cfg": c.to_dict()}
                out["lambda"][short][str(lam)] = cached_json("pred_full", k2, lambda c=c: train_full(Ws, c, F=fac(c)))
    out["num_layers"] = L
    return out
