"""The LESA predictor G_W: an MLP that maps the coefficient rows of two layers to the layer between.

Samples are ROWS: x = [V_{i-d}[j], V_{i+d}[j]] (2*d_in) -> y = V_i[j] (d_in), for every interior
layer i and every singular direction j, all stacked into one shuffled dataset (released code, d = 1
i.e. neighbours i-1, i+1). Loss = (1-lam) * MSE + lam * (||pred_batch||_F - ||target_batch||_F)^2.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class PredictorConfig:
    hidden: int = 256            # MLP width: 2*d_in -> hidden -> hidden -> d_in, ReLU (released code)
    depth: int = 2               # number of hidden layers
    lam: float = 5e-4            # norm-loss weight (code 5e-4; the paper reports 5e-5)
    lr: float = 1e-3             # AdamW, constant
    weight_decay: float = 0.01   # AdamW default, as in the code
    batch_size: int = 64
    epochs: int = 10             # code 10; the paper reports 5
    train_distance: int = 1      # train on (i-d, i+d) -> i
    space: str = "svd"           # "svd" (LESA) or "raw" (ablation "w/o SVD": rows of the weights)
    svd_method: str = "auto"     # see lesa.svd.factorize
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1             # CPU threads while training. On an idle 2-core machine 2 threads are
                                 # 1.4x faster (2.1 vs 2.9 ms/step), but when another job shares the cores
                                 # they are 20x slower (188 vs 8 ms/step); 1 is the safe default

    def __post_init__(self):
        for name, typ in (("hidden", int), ("depth", int), ("batch_size", int), ("epochs", int),
                          ("train_distance", int), ("seed", int), ("threads", int)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name in ("epochs", "seed") else 1):
                raise ValueError(f"PredictorConfig.{name} must be a positive integer, got {v!r}")
        for name in ("lam", "lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"PredictorConfig.{name} must be a non-negative number, got {v!r}")
        if not 0 <= self.lam <= 1:
            raise ValueError(f"PredictorConfig.lam must lie in [0, 1], got {self.lam}")
        if self.space not in ("svd", "raw"):
            raise ValueError(f"PredictorConfig.space must be 'svd' or 'raw', got {self.space!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_mlp(d_in: int, cfg: PredictorConfig) -> nn.Sequential:
    dims = [2 * d_in] + [cfg.hidden] * cfg.depth
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    mods.append(nn.Linear(dims[-1], d_in))
    return nn.Sequential(*mods)


def norm_loss(pred: torch.Tensor, target: torch.Tensor, lam: float) -> torch.Tensor:
    """(1-lam) * mean squared error + lam * (||pred||_F - ||target||_F)^2 over the whole batch."""
    mse = torch.mean((pred - target) ** 2)
    return (1 - lam) * mse + lam * (pred.norm() - target.norm()) ** 2


def training_pairs(blocks: torch.Tensor, distance: int = 1, layers: list[int] | None = None):
    """Stack rows of (L, r, d) blocks into X (n*r, 2d) and Y (n*r, d) for targets i = d..L-1-d."""
    L = blocks.shape[0]
    targets = [i for i in range(distance, L - distance) if layers is None or i in layers]
    if not targets:
        raise ValueError(f"no layer of a {L}-layer model has neighbours at distance {distance}")
    X = torch.cat([torch.cat([blocks[i - distance], blocks[i + distance]], dim=1) for i in targets])  # (n*r, 2d)
    Y = torch.cat([blocks[i] for i in targets])                                                       # (n*r, d)
    return X, Y


@dataclass
class TrainedPredictor:
    mlp: nn.Sequential
    history: list[float] = field(default_factory=list)   # mean loss per epoch
    seconds: float = 0.0
    n_samples: int = 0

    @torch.no_grad()
    def predict(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Predict the block between blocks a and b, each (r, d) -> (r, d)."""
        p = next(self.mlp.parameters())
        x = torch.cat([a, b], dim=1).to(device=p.device, dtype=p.dtype)   # (r, 2d)
        return self.mlp(x)


def train_predictor(blocks: torch.Tensor, cfg: PredictorConfig, layers: list[int] | None = None,
                    desc: str = "predictor", progress: bool = True) -> TrainedPredictor:
    """Train G on the (L, r, d) coefficient blocks (or raw weights) of one weight type.

    Data stay on the device as two tensors; each epoch draws a seeded permutation and slices
    mini-batches of cfg.batch_size (no DataLoader), which equals the released shuffled loader.
    ``layers`` restricts the targets (e.g. leave-one-layer-out evaluation).
    """
    prev_threads = torch.get_num_threads()
    if str(cfg.device).startswith("cpu"):
        torch.set_num_threads(cfg.threads)
    try:
        return _train(blocks, cfg, layers, desc, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _train(blocks: torch.Tensor, cfg: PredictorConfig, layers: list[int] | None, desc: str,
           progress: bool) -> TrainedPredictor:
    dtype = getattr(torch, cfg.dtype)
    X, Y = training_pairs(blocks.to(device=cfg.device, dtype=dtype), cfg.train_distance, layers)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)                                  # MLP init
    mlp = make_mlp(blocks.shape[-1], cfg).to(device=cfg.device, dtype=dtype)
    # fused AdamW: same update rule as the released (default) AdamW, one kernel instead of a loop
    opt = torch.optim.AdamW(mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    n, bs = X.shape[0], cfg.batch_size
    history: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        perm = torch.randperm(n, generator=gen).to(cfg.device)
        total = torch.zeros((), device=cfg.device, dtype=dtype)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            loss = norm_loss(mlp(X[idx]), Y[idx], cfg.lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        history.append(float(total) / -(-n // bs))
        bar.set_postfix(loss=f"{history[-1]:.3g}")
    return TrainedPredictor(mlp.eval(), history, time.perf_counter() - t0, n)
