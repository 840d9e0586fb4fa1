"""What fills a new layer: one small registered function per slot kind (layer_kind) builds one projection's
weight from a TypeView, the per-type view that computes the concatenated SVD and trains (or fits) the
predictor once, on the requested device with a CPU fallback; plus the helpers that size and spread
predictor training over worker processes. lesa.grow.expand runs them, caches the costly ones and assembles the model."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .spec import KINDS, Slot
from .predictor import PredictorConfig, TrainedPredictor, make_mlp, train_predictor
from .ridge import fit_ridge
from .factor_cache import STATS as FACTOR_STATS
from .factor_cache import cached_factorize
from ..core.store import available_gib, stable_hash, usable_cpus
from .svd import interpolate_svd, layer_svd


def _stack(layers, path: str) -> torch.Tensor:
    return torch.stack([layer.get_submodule(path).weight.detach() for layer in layers])  # (L, d_out, d_in)


def _train_one(short: str, blocks: torch.Tensor, cfg: PredictorConfig) -> tuple[str, dict, list, float, int]:
    """One weight type's predictor (a worker-process entry point: plain tensors in and out)."""
    g = train_predictor(blocks, cfg, desc=f"G_{short}", progress=False)
    return short, {k: v.detach().cpu() for k, v in g.mlp.state_dict().items()}, g.history, g.seconds, g.n_samples


def auto_workers(n_types: int, total_steps: int, device: str, memory: tuple[float, float] | None = None) -> int:
    """Processes for predictor training: one per usable core on CPU (the process's affinity set, so a
    job pinned with taskset to one core trains in one process) when the job is big enough to repay
    starting them (about 2 s each), else 1. Each process trains whole weight types with one thread,
    so results equal the sequential run's; separate processes degrade gracefully when another job
    shares the cores, unlike several threads in one process (see PredictorConfig.threads).
    ``memory``: (GiB the parent must hold beside the model to hand every type out at once, GiB one
    worker needs at most): only as many workers as this machine's free memory holds with a margin, and
    none when even one would not fit (the sequential path factorises one type at a time and frees it)."""
    if not str(device).startswith("cpu") or total_steps < 5000:
        return 1
    w = max(1, min(n_types, usable_cpus(), 4))
    if memory is not None:
        free = available_gib()
        if free is not None:
            parent, per_worker = memory
            w = min(w, int((free - MEMORY_MARGIN_GIB - parent) // per_worker))
    return max(1, w)


MEMORY_MARGIN_GIB = 3.0      # left free for the OS, page cache and the grown model's assembly


def worker_memory_gib(shapes: dict[str, tuple[int, int, int]], cfg: PredictorConfig) -> tuple[float, float]:
    """(GiB the parent holds to hand every type to workers: each type's factorisation, about U plus its
    coefficient blocks; GiB the largest type's worker holds: its blocks, the training pairs X (n*r, 2d) and
    Y (n*r, d) built from them, and their shuffled batches: about 4.5 times the blocks). fp32 sizes;
    Qwen2.5-Coder-1.5B measured at 21 GB in the parent and about 10 GB per worker with two workers."""
    def blocks(sh):
        L, d_out, d_in = sh
        r = min(d_out, L * d_in) if cfg.space == "svd" else d_out
        return L * r * d_in * 4, d_out * r * 4
    parent = sum(b + u for b, u in map(blocks, shapes.values()))
    worker = max(4.5 * blocks(sh)[0] for sh in shapes.values())
    return parent / 2**30, worker / 2**30


def _train_all(blocks: dict[str, torch.Tensor], cfg: PredictorConfig, workers: int,
               progress: bool) -> tuple[dict[str, TrainedPredictor], int]:
    """Every weight type's predictor, trained in ``workers`` spawned processes, biggest job first
    (results identical to training them one after the other: each type has its own seeded init and
    permutation). Returns the predictors and the number of processes used. (Factorising in the
    parent while the first predictors train was tried: no faster on 2 cores, 49.9 vs 48.2 s.)"""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from concurrent.futures.process import BrokenProcessPool

    order = sorted(blocks, key=lambda t: -predictor_cost(tuple(blocks[t].shape), cfg))
    out: dict[str, TrainedPredictor] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_train_one, t, blocks[t].cpu(), cfg) for t in order]
            for fut in tqdm(as_completed(futs), total=len(futs), desc=f"predictors ({workers} processes)",
                            disable=not progress):
                short, state, history, secs, n = fut.result()
                mlp = make_mlp(blocks[short].shape[-1], cfg)
                mlp.load_state_dict(state)
                out[short] = TrainedPredictor(mlp.to(device=cfg.device, dtype=getattr(torch, cfg.dtype)).eval(),
                                              history, secs, n)
    except BrokenProcessPool:      # e.g. a script read from stdin, which spawned workers cannot re-import
        print("[lesa] worker processes could not start here; training the predictors one by one", flush=True)
        out = {t: train_predictor(blocks[t], cfg, desc=f"G_{t}", progress=progress) for t in order}
        workers = 1
    return out, workers


def on_device_or_cpu(fn, device: str, what: str, stats: dict | None = None):
    """fn(device), or fn("cpu") when the accelerator runs out of memory: slower, same numbers up to
    float rounding. The fallback is printed and recorded in stats["cpu_fallback"]."""
    try:
        return fn(device)
    except torch.OutOfMemoryError:
        if str(device).startswith("cpu"):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(f"[lesa] {what}: out of memory on {device}; doing it on the CPU instead", flush=True)
        if stats is not None:
            stats.setdefault("cpu_fallback", []).append(what)
        return fn("cpu")


def predictor_steps(shape: tuple[int, int, int], cfg: PredictorConfig) -> int:
    """Optimizer steps to train one weight type's predictor on an (L, d_out, d_in) stack (or on its
    (L, r, d_in) coefficient blocks: the same count)."""
    L, d_out, d_in = shape
    rows = min(d_out, L * d_in) if cfg.space == "svd" else d_out             # thin-SVD rank or weight rows
    return cfg.epochs * -(-(L - 2 * cfg.train_distance) * rows // cfg.batch_size)


def predictor_cost(shape: tuple[int, int, int], cfg: PredictorConfig) -> int:
    """Relative cost of one weight type's predictor training: steps x MLP weights (FLOPs per sample
    are proportional to the weights), used to hand out the biggest jobs first."""
    d_in = shape[2]
    weights = 2 * d_in * cfg.hidden + (cfg.depth - 1) * cfg.hidden ** 2 + cfg.hidden * d_in
    return predictor_steps(shape, cfg) * weights


# ---------------------------------------------------------------------------------------------
# slot kinds: one small registered function per kind builds one projection's weight of a new layer
# (mergekit style). The layer's norms and biases come from its template (see _template), and every
# kind's o_proj/down_proj is then multiplied by the slot's alpha (identity: 0).
KIND_FNS: dict[str, Callable[["TypeView", Slot], torch.Tensor]] = {}
COSTLY: set[str] = set()        # kinds whose weights take seconds to minutes: computed once, cached


def layer_kind(name: str, costly: bool = False):
    """Register fn(view, slot) -> (d_out, d_in) weight as the builder of slot kind ``name``."""
    if name not in KINDS:
        raise ValueError(f"slot kind {name!r} is not declared in lesa.plans.KINDS")  # old module path kept: this text enters cache keys (lesa.core.cachekeys)

    def deco(fn):
        KIND_FNS[name] = fn
        if costly:
            COSTLY.add(name)
        return fn
    return deco


_PREDICTORS: dict[tuple, Any] = {}        # in-process memo: (weights, type, predictor config, code) -> predictor


class TypeView:
    """One weight type of the source model, as the kind functions see it: the layers' weights, and
    (computed on first use, once per type) the concatenated SVD, the trained predictor and each
    layer's own SVD."""

    def __init__(self, short: str, path: str, layers, cfg: PredictorConfig, stats: dict,
                 factored: tuple | None = None, predictor: Any = None, memo_key: tuple | None = None):
        self.short, self.path, self.layers, self.cfg, self.stats = short, path, layers, cfg, stats
        self._factored, self._predictor, self._memo_key = factored, predictor, memo_key
        self._layer_svd: dict[int, tuple] = {}

    def weight(self, i: int) -> torch.Tensor:
        return self.layers[i].get_submodule(self.path).weight.detach()

    @property
    def factored(self) -> tuple:
        """(Factors or None in raw space, (L, r, d_in) blocks) on cfg.device."""
        if self._factored is None:
            self._factored = _factor(self.layers, self.path, self.short, self.cfg, self.stats)
        return self._factored

    @property
    def predictor(self):
        if self._predictor is None:
            F, blocks = self.factored
            cfg = self.cfg
            if cfg.kind == "ridge":
                g = fit_ridge(blocks, cfg)
            else:
                g = on_device_or_cpu(lambda d: train_predictor(blocks, dataclasses.replace(cfg, device=d),
                                                               desc=f"G_{self.short}", progress=False),
                                     cfg.device, f"predictor of {self.short}", self.stats)
            self._predictor = g
            if self._memo_key is not None:
                _PREDICTORS[self._memo_key] = g
        g = self._predictor
        self.stats["predictor_seconds"][self.short] = round(g.seconds, 3)
        self.stats["predictor_loss"][self.short] = g.history
        return g

    def layer_svd(self, i: int) -> tuple:
        if i not in self._layer_svd:
            self._layer_svd[i] = layer_svd(self.weight(i).to(self.cfg.device))
        return self._layer_svd[i]


def _factor(layers, path: str, short: str, cfg: PredictorConfig, stats: dict) -> tuple:
    t0, loaded = time.perf_counter(), FACTOR_STATS["loaded"]
    dtype = getattr(torch, cfg.dtype)
    Ws = _stack(layers, path)                                                # (L, d_out, d_in)
    if cfg.space == "svd":
        # cached on disk by the stack's bytes (lesa.grow.factor_cache): the same for every predictor seed and method
        F = on_device_or_cpu(lambda d: cached_factorize(Ws, device=d, dtype=dtype, method=cfg.svd_method,
                                                        what=short),
                             cfg.device, f"SVD of {short}", stats)
        out = (F, F.V)                                                       # V: (L, r, d_in)
    else:
        out = (None, Ws.to(device=cfg.device, dtype=dtype))                 # raw rows ("w/o SVD")
    stats["svd_seconds"][short] = round(time.perf_counter() - t0, 3)
    if FACTOR_STATS["loaded"] > loaded:
        stats.setdefault("svd_reused", []).append(short)                     # read from .cache/factors
    return out


@layer_kind("orig")
def _orig(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0])


@layer_kind("copy")
def _copy(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0]).clone()


@layer_kind("identity")
def _identity(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0]).clone()                # o_proj/down_proj zeroed by the kind's alpha = 0


@layer_kind("average")
def _average(v: TypeView, s: Slot) -> torch.Tensor:
    return (v.weight(s.src[0]) + v.weight(s.src[1])) / 2


@layer_kind("random")
def _random(v: TypeView, s: Slot) -> torch.Tensor:
    a, b = v.weight(s.src[0]), v.weight(s.src[1])
    std = torch.cat([a.flatten(), b.flatten()]).float().std()
    # one generator per (seed, slot, type): a slot's draw does not depend on the rest of the plan
    gen = torch.Generator().manual_seed(int(stable_hash([v.cfg.seed, list(s.src), v.short]), 16) % 2**63)
    return (torch.randn(a.shape, generator=gen) * std).to(a.dtype)


@layer_kind("predict", costly=True)
def _predict(v: TypeView, s: Slot) -> torch.Tensor:
    """LESA: U Sigma G([V_a, V_b]) (top-``rank`` directions only when set), or G's raw rows."""
    F, blocks = v.factored
    a, b = s.src
    coeffs = v.predictor.predict(blocks[a], blocks[b])                       # (r, d_in)
    return coeffs if F is None else F.reconstruct(coeffs=coeffs, rank=s.param("rank"))


def _orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """A random (rows, cols) matrix with orthonormal columns (rows >= cols): Q of a Gaussian's QR."""
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=gen))
    return q * torch.sign(torch.diagonal(r))            # signs fixed: Haar-distributed, not QR's convention


def reshape_svd(W: torch.Tensor, v: TypeView, s: Slot) -> torch.Tensor:
    """Ours: a predicted weight W = P diag(sigma) Q^T with its singular values replaced by the mean of its
    two neighbours' (``spectrum: neighbours``) and/or its singular vectors by random orthonormal ones
    (``directions: random``); W itself when the slot sets neither. Separates what a prediction's
    directions give from what its collapsed spectrum (few effective directions) takes away."""
    spectrum, directions = s.param("spectrum"), s.param("directions")
    if spectrum is None and directions is None:
        return W
    P, S, Qh = torch.linalg.svd(W.float(), full_matrices=False)              # (d_out, r), (r,), (r, d_in)
    if spectrum == "neighbours":
        a, b = s.src
        S = ((v.layer_svd(a)[1] + v.layer_svd(b)[1]) / 2).to(S.device)[:len(S)]   # both sorted descending
    if directions == "random":
        # one generator per (seed, slot, type), as the random kind: a slot's draw does not depend on the plan
        gen = torch.Generator().manual_seed(int(stable_hash([v.cfg.seed, list(s.src), v.short, "directions"]), 16) % 2**63)
        P = _orthonormal(P.shape[0], len(S), gen).to(S.device)
        Qh = _orthonormal(Qh.shape[1], len(S), gen).T.to(S.device)
    return ((P * S) @ Qh).to(W.dtype)                                        # (d_out, d_in)


@layer_kind("interp", costly=True)
def _interp(v: TypeView, s: Slot) -> torch.Tensor:
    """Ours: the neighbours' own SVDs, singular pairs matched and interpolated (lesa.grow.svd.interpolate_svd)."""
    a, b = s.src
    return interpolate_svd(v.layer_svd(a), v.layer_svd(b), t=s.param("t"), rank=s.param("rank"))
