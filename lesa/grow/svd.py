"""Concatenated SVD of one weight type over all layers: W = [W_1 | ... | W_L] = U S V^T.

V^T is cut into per-layer coefficient blocks V_i (r x d_in), so W_i = (U S) V_i exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Factors:
    US: torch.Tensor          # (d_out, r)  shared basis U * S
    S: torch.Tensor           # (r,)        singular values
    V: torch.Tensor           # (L, r, d_in) per-layer coefficient blocks V_i

    def reconstruct(self, i: int | None = None, coeffs: torch.Tensor | None = None,
                    rank: int | None = None) -> torch.Tensor:
        """W_i = (U S) V_i for a layer index, or (U S) @ coeffs for predicted coefficients (r, d_in);
        ``rank`` keeps only the top-k singular directions (U S)[:, :k] V_i[:k]."""
        block = self.V[i] if coeffs is None else coeffs
        k = block.shape[0] if rank is None else min(rank, block.shape[0])
        return self.US[:, :k] @ block[:k].to(device=self.US.device, dtype=self.US.dtype)   # (d_out, d_in)


def factorize(weights: list[torch.Tensor] | torch.Tensor, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32, method: str = "auto") -> Factors:
    """Thin SVD of the concatenation of L weights of shape (d_out, d_in), keeping all r components.

    method: "svd" (torch.linalg.svd, the released code's choice), "gram" (eigendecomposition of the
    d_out x d_out Gram matrix W W^T, much cheaper when L*d_in >> d_out; computed in float64 for
    accuracy), or "auto" (gram when W is wide and of full row rank, else svd).
    """
    Ws = torch.stack(list(weights)) if isinstance(weights, (list, tuple)) else weights
    Ws = Ws.to(device=device, dtype=dtype)                         # (L, d_out, d_in)
    L, d_out, d_in = Ws.shape
    W = Ws.permute(1, 0, 2).reshape(d_out, L * d_in)               # (d_out, L*d_in) = [W_1|...|W_L]
    if method == "auto":
        method = "gram" if L * d_in >= 2 * d_out else "svd"
    if method == "svd":
        U, S, Vt = torch.linalg.svd(W, full_matrices=False)        # (d_out,r) (r,) (r,L*d_in)
    elif method == "gram":
        U, S, Vt = _svd_via_gram(W)
    else:
        raise ValueError(f"unknown SVD method {method!r}; use 'auto', 'svd' or 'gram'")
    U, Vt = _canonical_signs(U, Vt)
    r = S.shape[0]
    V = Vt.reshape(r, L, d_in).permute(1, 0, 2).contiguous()      # (L, r, d_in)
    return Factors(US=U * S, S=S, V=V)


def _canonical_signs(U: torch.Tensor, Vt: torch.Tensor):
    """Fix each singular pair's sign (largest-|.| entry of u_j positive) so that every solver,
    device and run yields the same factors: the predictor is not sign-symmetric."""
    idx = U.abs().argmax(dim=0)                                    # (r,)
    sign = torch.sign(U[idx, torch.arange(U.shape[1], device=U.device)])
    sign[sign == 0] = 1
    return U * sign, Vt * sign[:, None]


def _svd_via_gram(W: torch.Tensor):
    """Thin SVD of a wide W (d_out << n) through eigh(W W^T) in float64; falls back to svd when the
    smallest singular value is too small for V = U^T W / S to be accurate."""
    Wd = W.double()
    evals, U = torch.linalg.eigh(Wd @ Wd.T)                        # ascending, (d_out,) (d_out,d_out)
    evals, U = evals.flip(0), U.flip(1)
    S = evals.clamp_min(0).sqrt()
    if S[-1] <= S[0] * 1e-6:                                       # (near) rank deficient: be exact
        U, S, Vt = torch.linalg.svd(W, full_matrices=False)
        return U, S, Vt
    Vt = (U.T @ Wd) / S[:, None]                                   # (r, n)
    return U.to(W.dtype), S.to(W.dtype), Vt.to(W.dtype)


# ------------------------------------------------------------------ per-layer SVD interpolation (ours)
def layer_svd(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of one layer's weight in float32, signs fixed as in factorize."""
    U, S, Vh = torch.linalg.svd(W.float(), full_matrices=False)
    U, Vh = _canonical_signs(U, Vh)
    return U, S, Vh


def interpolate_svd(a: tuple, b: tuple, t: float = 0.5, rank: int | None = None) -> torch.Tensor:
    """A weight between two layers from their own SVDs a = (U_a, S_a, Vh_a) and b: the leading
    singular pairs of b are matched to a's (one-to-one, by |u_a.u_b + v_a.v_b|, Hungarian), sign-aligned,
    then u, v are interpolated at t and renormalised and the singular values interpolated; the result
    is rescaled to the Frobenius norm of the interpolated spectrum. rank: match and keep only the
    top-k pairs (default all). A layer's singular pairs are only defined up to sign and, for close
    singular values, order, which is why plain averaging of the factors would cancel them."""
    from scipy.optimize import linear_sum_assignment

    (Ua, Sa, Vha), (Ub, Sb, Vhb) = a, b
    k = Sa.shape[0] if rank is None else min(rank, Sa.shape[0])
    Ua, Sa, Vha, Ub, Sb, Vhb = Ua[:, :k], Sa[:k], Vha[:k], Ub[:, :k], Sb[:k], Vhb[:k]
    M = (Ua.T @ Ub + Vha @ Vhb.T).double()                          # (k, k): signed agreement of pairs
    rows, cols = linear_sum_assignment(-M.abs().cpu().numpy())
    perm = torch.as_tensor(cols[rows.argsort()], device=Ua.device)
    sign = torch.sign(M[torch.arange(k, device=M.device), perm]).to(Ua.dtype)
    sign[sign == 0] = 1
    Ub, Sb, Vhb = Ub[:, perm] * sign, Sb[perm], Vhb[perm] * sign[:, None]
    U = (1 - t) * Ua + t * Ub
    Vh = (1 - t) * Vha + t * Vhb
    U = U / U.norm(dim=0, keepdim=True).clamp_min(1e-12)
    Vh = Vh / Vh.norm(dim=1, keepdim=True).clamp_min(1e-12)
    S = (1 - t) * Sa + t * Sb
    W = (U * S) @ Vh
    return W * (S.norm() / W.norm().clamp_min(1e-30))
