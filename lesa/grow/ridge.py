"""Ridge regression in place of LESA's MLP: the closed-form linear baseline (PredictorConfig.kind = "ridge").

Same samples as the MLP (rows x = [V_{i-d}[j], V_{i+d}[j]] -> y = V_i[j], lesa.grow.predictor.training_pairs),
fitted in one solve: B = (Xc^T Xc + mu I)^-1 Xc^T Yc on centred data, intercept = mean(Y) - mean(X) B,
with mu = ridge_lam * trace(Xc^T Xc) / p so the penalty does not depend on the scale of the rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .predictor import PredictorConfig, training_pairs


@dataclass
class RidgePredictor:
    B: torch.Tensor                   # (2d, d)
    c: torch.Tensor                   # (d,)
    history: list[float] = field(default_factory=list)   # [training mean squared error], like the MLP's
    seconds: float = 0.0
    n_samples: int = 0

    @torch.no_grad()
    def predict(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The block between blocks a and b, each (r, d) -> (r, d)."""
        x = torch.cat([a, b], dim=1).to(device=self.B.device, dtype=torch.float64)
        return (x @ self.B + self.c).to(a.dtype)


@torch.no_grad()
def fit_ridge(blocks: torch.Tensor, cfg: PredictorConfig, layers: list[int] | None = None) -> RidgePredictor:
    """Fit on the (L, r, d) coefficient blocks (or raw weights) of one weight type, in float64."""
    t0 = time.perf_counter()
    X, Y = training_pairs(blocks.to(device=cfg.device, dtype=torch.float64), cfg.train_distance, layers)
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc                                                   # (2d, 2d)
    mu = cfg.ridge_lam * float(G.diagonal().sum()) / G.shape[0]
    G.diagonal().add_(mu if mu > 0 else 1e-12 * max(float(G.diagonal().max()), 1e-30))
    B = torch.linalg.solve(G, Xc.T @ Yc)                            # symmetric positive definite
    c = my - mx @ B
    mse = float(((X @ B + c - Y) ** 2).mean())
    return RidgePredictor(B, c, [mse], time.perf_counter() - t0, X.shape[0])
