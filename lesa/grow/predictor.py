"""The LESA predictor G_W: an MLP that maps the coefficient rows of two layers to the layer between.

Samples are ROWS: x = [V_{i-d}[j], V_{i+d}[j]] (2*d_in) -> y = V_i[j] (d_in), for every interior
layer i and every singular direction j, all stacked into one shuffled dataset (released code, d = 1
i.e. neighbours i-1, i+1). Loss = (1-lam) * MSE + lam * (||pred_batch||_F - ||target_batch||_F)^2.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm


RECIPES = ("package", "released")     # see PredictorConfig.recipe


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
    kind: str = "mlp"            # "mlp" (LESA's G) or "ridge" (closed-form linear baseline, lesa.grow.ridge)
    ridge_lam: float = 1e-3      # ridge penalty, relative to the mean eigenvalue of X^T X (scale-free)
    svd_method: str = "auto"     # see lesa.grow.svd.factorize
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1             # CPU threads while training. On an idle 2-core machine 2 threads are
                                 # 1.4x faster (2.1 vs 2.9 ms/step), but when another job shares the cores
                                 # they are 20x slower (188 vs 8 ms/step); 1 is the safe default
    recipe: str = "package"      # "package": shuffled by a generator seeded with `seed`, fused AdamW.
                                 # "released": the release's loop bit for bit (lesa.grow.reference, tested in
                                 # tests/test_reference.py): DataLoader(shuffle=True)'s order (see
                                 # epoch_order), default AdamW, nn.MSELoss's gradient; slower
    batched: bool = False        # expansion: train the types that share an input width as one batched MLP
                                 # (train_batched); False trains them one by one (train_predictor)
    flush_denormal: bool = True  # CPU: flush values below 1.2e-38 to zero while training. They appear
                                 # after the first epoch and slow every step by ~1.4x; on SmolLM2 the
                                 # trained weights are bit-identical either way (lesa.bench.run checks it)

    def __post_init__(self):
        for name in ("flush_denormal", "batched"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PredictorConfig.{name} must be true or false, got {getattr(self, name)!r}")
        for name, typ in (("hidden", int), ("depth", int), ("batch_size", int), ("epochs", int),
                          ("train_distance", int), ("seed", int), ("threads", int)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name in ("epochs", "seed") else 1):
                raise ValueError(f"PredictorConfig.{name} must be a positive integer, got {v!r}")
        for name in ("lam", "lr", "weight_decay", "ridge_lam"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"PredictorConfig.{name} must be a non-negative number, got {v!r}")
        if not 0 <= self.lam <= 1:
            raise ValueError(f"PredictorConfig.lam must lie in [0, 1], got {self.lam}")
        if self.recipe not in RECIPES:
            raise ValueError(f"PredictorConfig.recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.recipe == "released" and self.batched:
            raise ValueError("PredictorConfig: recipe='released' replays the release's one-type-at-a-time loop; "
                             "it cannot be batched (drop batched=True)")
        if self.space not in ("svd", "raw"):
            raise ValueError(f"PredictorConfig.space must be 'svd' or 'raw', got {self.space!r}")
        if self.kind not in ("mlp", "ridge"):
            raise ValueError(f"PredictorConfig.kind must be 'mlp' or 'ridge', got {self.kind!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["recipe"] == "package":      # the default leaves the cache keys of older configs valid
            del d["recipe"]
        return d


def epoch_order(n: int, cfg: PredictorConfig, gen: torch.Generator) -> torch.Tensor:
    """The order of the n training rows for one epoch.

    "released" replays torch.utils.data.DataLoader(dataset, batch_size, shuffle=True) as torch 2.13
    iterates it with num_workers=0: creating the epoch's iterator draws a base seed from the global
    RNG (_BaseDataLoaderIter.__init__), then RandomSampler.__iter__ draws another, seeds a fresh
    Generator with it and yields torch.randperm(n) from that generator.
    """
    if cfg.recipe == "released":
        torch.empty((), dtype=torch.int64).random_()                  # the loader iterator's _base_seed
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.randperm(n, generator=gen)


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


@torch.no_grad()
def forward_backward(mlp: nn.Sequential, x: torch.Tensor, y: torch.Tensor, lam: float,
                     mse_loss_module: bool = False) -> torch.Tensor:
    """norm_loss(mlp(x), y, lam) and its gradients, written into each parameter's .grad, by hand.

    The same ATen calls that loss.backward() makes, with autograd's operands and order (addmm
    forward; threshold, mm and sum backward; the mean, pow and vector-norm derivative formulas),
    so the gradients equal autograd's bit for bit (tested) while skipping the graph bookkeeping,
    which costs more than the matrix products at these sizes (CPU, batch 64: 2.2 vs 3.2 ms/step).
    ``mse_loss_module``: the gradient of the release's form of the same loss, nn.MSELoss for the
    element-wise term (its backward rounds in another order: equal values, other last bits).
    """
    lins = [m for m in mlp if isinstance(m, nn.Linear)]
    hs = [x]                                                     # each layer's input
    for i, lin in enumerate(lins):
        h = torch.addmm(lin.bias, hs[-1], lin.weight.t())      # F.linear on 2-d input: (B, d_out)
        hs.append(torch.relu(h) if i < len(lins) - 1 else h)
    pred = hs.pop()                                              # (B, d)
    diff = pred - y
    n_pred, n_y = pred.norm(), y.norm()
    loss = (1 - lam) * torch.mean(diff ** 2) + lam * (n_pred - n_y) ** 2      # = norm_loss(pred, y, lam)
    one = torch.ones_like(loss)                                  # d loss / d loss
    if mse_loss_module:                                          # nn.MSELoss: MseLossBackward0's kernel,
        g = diff.mul(2.0 / diff.numel()).mul_(one * (1 - lam))   # (2/n as float) * diff * grad, that order
    else:
        g_sq = (one * (1 - lam)).expand(diff.shape) / diff.numel()   # MulBackward0, MeanBackward0
        g = g_sq * (2.0 * diff.pow(1.0))                         # PowBackward0; SubBackward0 passes it on
    g_norm = (one * lam) * (2.0 * (n_pred - n_y).pow(1.0))       # MulBackward0, PowBackward0, SubBackward0
    g = g + g_norm * (pred / n_pred).masked_fill_(n_pred == 0, 0)   # LinalgVectorNormBackward0, summed
    for i in reversed(range(len(lins))):                         # AddmmBackward0 (+ TBackward0, sum_to)
        lin, inp = lins[i], hs[i]
        lin.weight.grad = g.t().mm(inp)                          # (d_out, d_in): mm_mat2_backward, W.t() is column-major
        lin.bias.grad = g.sum(0)                                 # (d_out,)
        if i > 0:
            g = g.mm(lin.weight).masked_fill_(inp <= 0, 0)       # mm_mat1_backward, then ReluBackward0's threshold
    return loss


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

    Data stay on the device as two tensors; each epoch draws a seeded permutation, gathers the data
    in that order once and slices contiguous mini-batches of cfg.batch_size (no DataLoader, no
    per-step gather), which equals the released shuffled loader.
    ``layers`` restricts the targets (e.g. leave-one-layer-out evaluation).
    """
    with cpu_training_state(cfg):
        return _train(blocks, cfg, layers, desc, progress)


@contextmanager
def cpu_training_state(cfg: PredictorConfig):
    """On the CPU: cfg.threads torch threads and denormals flushed to zero (cfg.flush_denormal) while
    the predictors train; on leaving, the previous thread count and torch's default (no flushing) come
    back. Process-wide torch state, so every trainer sets and restores it here, the same way."""
    prev_threads = torch.get_num_threads()
    on_cpu = str(cfg.device).startswith("cpu")
    if on_cpu:
        torch.set_num_threads(cfg.threads)
        torch.set_flush_denormal(cfg.flush_denormal)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        if on_cpu:
            torch.set_flush_denormal(False)          # torch's default


def _train(blocks: torch.Tensor, cfg: PredictorConfig, layers: list[int] | None, desc: str,
           progress: bool) -> TrainedPredictor:
    dtype = getattr(torch, cfg.dtype)
    X, Y = training_pairs(blocks.to(device=cfg.device, dtype=dtype), cfg.train_distance, layers)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)                                  # MLP init
    mlp = make_mlp(blocks.shape[-1], cfg).to(device=cfg.device, dtype=dtype)
    # fused AdamW: same update rule as the released (default) AdamW, one kernel instead of a loop,
    # other last bits; recipe "released" keeps the default implementation to match the release's bits
    released = cfg.recipe == "released"
    opt = torch.optim.AdamW(mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=None if released else True)
    n, bs = X.shape[0], cfg.batch_size
    history: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        perm = epoch_order(n, cfg, gen).to(cfg.device)
        Xp, Yp = X.index_select(0, perm), Y.index_select(0, perm)   # (n, 2d) (n, d) in epoch order
        total = torch.zeros((), device=cfg.device, dtype=dtype)
        for s in range(0, n, bs):
            loss = forward_backward(mlp, Xp[s:s + bs], Yp[s:s + bs], cfg.lam, released)  # sets every .grad
            opt.step()
            total += loss.detach()
        del Xp, Yp
        history.append(float(total) / -(-n // bs))
        bar.set_postfix(loss=f"{history[-1]:.3g}")
    return TrainedPredictor(mlp.eval(), history, time.perf_counter() - t0, n)


# ----------------------------------------------------------------------------- batched training
@torch.no_grad()
def forward_backward_batched(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                             lam: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """forward_backward for G MLPs at once: params = [W_1, b_1, W_2, b_2, ...] stacked over the
    models ((G, d_out, d_in), (G, d_out)); x (G, B, 2d), y (G, B, d). Returns each model's loss (G,)
    and the gradients in params' order. The same formulas as forward_backward with baddbmm/bmm in
    place of addmm/mm (tested against autograd), so each model gets its own loss and norm term."""
    Ws, bs = params[0::2], params[1::2]
    hs = [x]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        h = torch.baddbmm(b[:, None, :], hs[-1], W.transpose(1, 2))             # (G, B, d_out)
        hs.append(torch.relu(h) if i < len(Ws) - 1 else h)
    pred = hs.pop()                                                             # (G, B, d)
    diff = pred - y
    n_pred, n_y = pred.flatten(1).norm(dim=1), y.flatten(1).norm(dim=1)         # (G,)
    loss = (1 - lam) * (diff ** 2).mean(dim=(1, 2)) + lam * (n_pred - n_y) ** 2
    g = diff * (2.0 * (1 - lam) / diff[0].numel())
    coef = (2.0 * lam) * (n_pred - n_y) / n_pred
    g = g + coef.masked_fill_(n_pred == 0, 0)[:, None, None] * pred
    grads: list[torch.Tensor] = [None] * len(params)                            # type: ignore[list-item]
    for i in reversed(range(len(Ws))):
        inp = hs[i]
        grads[2 * i] = torch.bmm(g.transpose(1, 2), inp)                        # (G, d_out, d_in)
        grads[2 * i + 1] = g.sum(1)                                             # (G, d_out)
        if i > 0:
            g = torch.bmm(g, Ws[i]).masked_fill_(inp <= 0, 0)
    return loss, grads


class _StackedAdamW:
    """AdamW (torch's update rule, decoupled weight decay) on parameters stacked over G models, each
    with its own step count, updating only the models given (the others have finished their epoch)."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.wd, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = torch.zeros(params[0].shape[0], dtype=torch.float64)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], idx: torch.Tensor | None) -> None:
        b1, b2 = self.betas
        sel = slice(None) if idx is None else idx
        self.t[sel] += 1
        t = self.t[sel]
        step = (self.lr / (1 - b1 ** t)).to(self.params[0].dtype)                 # (g,)
        bc2 = torch.sqrt(1 - b2 ** t).to(self.params[0].dtype)
        for p, m, v, g in zip(self.params, self.m, self.v, grads):
            shape = (-1,) + (1,) * (p.dim() - 1)
            if idx is None:
                P, M, V = p, m, v
            else:
                P, M, V = p.index_select(0, idx), m.index_select(0, idx), v.index_select(0, idx)
            P.mul_(1 - self.lr * self.wd)
            M.lerp_(g, 1 - b1)
            V.mul_(b2).addcmul_(g, g, value=1 - b2)
            P.sub_((M / (V.sqrt() / bc2.view(shape)).add_(self.eps)).mul_(step.view(shape)))   # addcdiv_
            if idx is not None:
                p.index_copy_(0, idx, P)
                m.index_copy_(0, idx, M)
                v.index_copy_(0, idx, V)


def train_batched(blocks: dict[str, torch.Tensor], cfg: PredictorConfig, progress: bool = True,
                  ) -> dict[str, TrainedPredictor]:
    """Every weight type's predictor, the types that share an input width (Llama: q, k, v, o, gate,
    up) trained together as one batched MLP; each type keeps its own seeded init and permutation (those
    of train_predictor) and its own number of steps per epoch (types with fewer rows stop earlier in
    each epoch). The same loss and AdamW as train_predictor, so results equal one-by-one training up
    to float rounding: bmm and the hand-written AdamW sum in another order than addmm and torch's
    fused AdamW, and over thousands of steps the difference grows (tested bound in tests)."""
    with cpu_training_state(cfg):
        by_width: dict[int, list[str]] = {}
        for t, b in blocks.items():
            by_width.setdefault(int(b.shape[-1]), []).append(t)
        out: dict[str, TrainedPredictor] = {}
        for types in by_width.values():
            out.update(_train_group({t: blocks[t] for t in types}, cfg, progress))
        return {t: out[t] for t in blocks}


def _train_group(blocks: dict[str, torch.Tensor], cfg: PredictorConfig, progress: bool
                 ) -> dict[str, TrainedPredictor]:
    dtype, dev, bs = getattr(torch, cfg.dtype), cfg.device, cfg.batch_size
    names = list(blocks)
    data = [training_pairs(blocks[t].to(device=dev, dtype=dtype), cfg.train_distance) for t in names]
    mlps = []
    for t in names:
        torch.manual_seed(cfg.seed)                              # train_predictor's init, per type
        mlps.append(make_mlp(blocks[t].shape[-1], cfg).to(device=dev, dtype=dtype))
    params = [torch.stack([list(m.parameters())[j].detach() for m in mlps]).contiguous()
              for j in range(len(list(mlps[0].parameters())))]   # W1 (G, h, 2d), b1 (G, h), ...
    opt = _StackedAdamW(params, cfg.lr, cfg.weight_decay)
    gens = [torch.Generator(device="cpu").manual_seed(cfg.seed) for _ in names]   # train_predictor's order
    n = [X.shape[0] for X, _ in data]
    steps = [-(-k // bs) for k in n]
    history: list[list[float]] = [[] for _ in names]
    t0 = time.perf_counter()
    for _ in tqdm(range(cfg.epochs), desc=f"predictors {'+'.join(names)}", disable=not progress, leave=False):
        perm = [torch.randperm(k, generator=g).to(dev) for k, g in zip(n, gens)]
        Xp = [X.index_select(0, p) for (X, _), p in zip(data, perm)]
        Yp = [Y.index_select(0, p) for (_, Y), p in zip(data, perm)]
        total = torch.zeros(len(names), dtype=dtype, device=dev)
        for s in range(max(steps)):
            # types still in their epoch, grouped by this step's batch size (a last batch is smaller)
            sizes: dict[int, list[int]] = {}
            for g, k in enumerate(n):
                if s * bs < k:
                    sizes.setdefault(min(bs, k - s * bs), []).append(g)
            for b, gs in sizes.items():
                full = len(gs) == len(names)
                idx = None if full else torch.tensor(gs, device=dev)
                x = torch.stack([Xp[g][s * bs:s * bs + b] for g in gs])         # (G, b, 2d)
                y = torch.stack([Yp[g][s * bs:s * bs + b] for g in gs])         # (G, b, d)
                p = params if full else [q.index_select(0, idx) for q in params]
                loss, grads = forward_backward_batched(p, x, y, cfg.lam)
                opt.step(grads, idx)
                if full:
                    total += loss
                else:
                    total.index_add_(0, idx, loss)
        for g in range(len(names)):
            history[g].append(float(total[g]) / steps[g])
    secs = time.perf_counter() - t0
    out = {}
    for g, (t, mlp) in enumerate(zip(names, mlps)):
        with torch.no_grad():
            for j, q in enumerate(mlp.parameters()):
                q.copy_(params[j][g])
        out[t] = TrainedPredictor(mlp.eval(), history[g], secs, n[g])
    return out
