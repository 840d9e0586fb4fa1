"""The pieces lesa.train.trainer's Trainer is built from: LR schedule, data order, device and precision,
activation checkpointing, optimizer, loss and held-out loss. Each is a plain function of the config."""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.checkpoint import checkpoint

from ..core.precision import native_bf16, resolve_precision
from ..data.shards import read_shards

if TYPE_CHECKING:
    from .trainer import TrainConfig


# ---------------------------------------------------------------------------------------- schedule, data

def lr_at(step: int, cfg: TrainConfig) -> float:
    """LR for optimizer step ``step`` (0-based): linear warmup, then cosine/linear decay to min."""
    w = cfg.warmup_steps
    if step < w:
        return cfg.lr * (step + 1) / w
    if cfg.schedule == "constant":
        return cfg.lr
    frac = min(1.0, (step - w) / max(1, cfg.steps - w))
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if cfg.schedule == "cosine" else 1 - frac
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)


class DataOrder:
    """Deterministic sequence order: epoch e is a permutation seeded by (seed, e); a step's global batch
    is the next G sequences. Independent of world size and of the model, so identical across methods."""

    def __init__(self, n: int, seed: int):
        if n == 0:
            raise ValueError("no training sequences in the shards")
        self.n, self.seed, self._perms = n, seed, {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perms[epoch]

    def indices(self, start: int, count: int) -> np.ndarray:
        flat = np.arange(start, start + count)
        return np.array([self._perm(int(i) // self.n)[int(i) % self.n] for i in flat], dtype=np.int64)


# ---------------------------------------------------------------------------------------- device, precision

def check_bf16(device_type: str) -> None:
    """Fail early, saying what to do, when bf16 is asked on a device that cannot run it."""
    if device_type == "cuda":
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name()
            cc = ".".join(map(str, torch.cuda.get_device_capability()))
            raise ValueError(f"precision 'bf16' needs a GPU with bf16 support (compute capability 8.0+, e.g. "
                             f"A100, H100); {name} has {cc}. Set precision: fp32 (TrainConfig / --precision fp32)")
        return
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError as e:
        raise ValueError(f"precision 'bf16' cannot run on this CPU with this torch build ({e}); "
                         "set precision: fp32 (TrainConfig / --precision fp32)") from None


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX) that oneDNN uses; without them
    torch emulates bf16 matmuls, which can be slower than fp32 (measure: python -m lesa.bench training)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
                and native_bf16("cpu"))


def autocast(device: torch.device, precision: str):
    """bf16 autocast on the run's device, or a no-op for fp32. Our own context rather than
    ``Accelerator.autocast``, which reads accelerate's process-global state: two trainers of different
    precision in one process (the precision bench) would otherwise share the last one's setting."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def make_accelerator(cfg: TrainConfig) -> tuple[Accelerator, str]:
    """The accelerator for this config and the resolved precision ("fp32" or "bf16")."""
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise RuntimeError("a GPU run was requested (device='cuda', gpu profile) but CUDA is not available "
                           "on this machine; use the cpu profile or run on a GPU machine")
    on_cpu = cfg.device == "cpu" or not cuda
    prec = resolve_precision(cfg.precision, "cpu" if on_cpu else "cuda")   # auto: by the hardware (lesa.core.precision)
    if prec == "bf16":
        check_bf16("cpu" if on_cpu else "cuda")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:   # a fresh state for each run in one process
        with contextlib.suppress(Exception):
            AcceleratorState._reset_state(True)
    acc = Accelerator(cpu=on_cpu, mixed_precision="bf16" if prec == "bf16" else "no")
    if acc.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return acc, prec


# ---------------------------------------------------------------------------------------- model, loss

def enable_checkpointing(layers, lowest: int) -> None:
    """Non-reentrant activation checkpointing on layers >= lowest trainable (none below: no grads there)."""
    for i, layer in enumerate(layers):
        if i < max(lowest, 0):
            continue
        fwd = layer.forward

        def wrapped(*args, _fwd=fwd, _layer=layer, **kwargs):
            if _layer.training and torch.is_grad_enabled():
                return checkpoint(_fwd, *args, use_reentrant=False, **kwargs)
            return _fwd(*args, **kwargs)

        layer.forward = wrapped


def build_optimizer(model, cfg: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (decay on >=2-D weights; ``fused``: one kernel for all
    parameters, on CUDA and CPU, where it is about 4x faster than the per-tensor loop)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=tuple(cfg.betas),
                             **({"fused": True} if fused else {}))


def loss_fn(model, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the B*(T-1) predicted positions. The targets are shifted, not the
    logits (the last position gets the ignored label -100, as in transformers' own loss), so the
    (B, T, vocab) logits and their gradient are never copied into a sliced tensor."""
    logits = model(input_ids=x, use_cache=False).logits                      # (B, T, V)
    labels = F.pad(x[:, 1:], (0, 1), value=-100)                              # (B, T): next token, -100 last
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction=reduction)


@torch.no_grad()
def heldout_loss(model, data: np.ndarray, batch_size: int, acc, precision: str, feed=None) -> tuple[float, int]:
    """Mean token NLL over ``data`` (split across processes), and the number of predicted tokens.
    ``feed(x)``: a context for the forward on ``x`` (lesa.prefix_store: the frozen prefix's stored output).

    Every process runs the same number of forward passes (a rank out of rows runs a zero-weight batch),
    so collectives inside DDP/FSDP forwards stay matched."""
    was = model.training
    model.eval()
    rows = np.array_split(np.arange(len(data)), acc.num_processes)[acc.process_index]
    n_batches = math.ceil(math.ceil(len(data) / acc.num_processes) / batch_size)
    nll = torch.zeros((), dtype=torch.float64, device=acc.device)
    cnt = torch.zeros((), dtype=torch.float64, device=acc.device)
    for b in range(n_batches):
        chunk = rows[b * batch_size:(b + 1) * batch_size]
        weight = 1.0 if len(chunk) else 0.0
        x = torch.from_numpy(np.asarray(data[chunk if len(chunk) else [0]], dtype=np.int64)).to(acc.device)
        with autocast(acc.device, precision), (feed(x) if feed else contextlib.nullcontext()):
            nll += weight * loss_fn(model, x, "sum").double()
        cnt += weight * (x.numel() - x.shape[0])
    nll, cnt = acc.reduce(nll, "sum"), acc.reduce(cnt, "sum")
    model.train(was)
    return float(nll / cnt), int(cnt)


def heldout_sets(heldout_dir, n: int, T: int) -> dict[str, np.ndarray]:
    """Held-out sequences: one shard folder, or a folder of per-source shard folders (each evaluated)."""
    if not heldout_dir:
        return {}
    root = Path(heldout_dir)
    if not (root / "meta.json").exists() and root.is_dir():
        subs = sorted(p for p in root.iterdir() if (p / "meta.json").exists())
        if subs:
            return {p.name: np.asarray(read_shards(p)[:n, :T]) for p in subs}
    return {root.name: np.asarray(read_shards(root)[:n, :T])}   # read_shards says `make data` if missing
