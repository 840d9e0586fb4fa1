"""Continual pre-training (CPT) of grown models: freezing, honest FLOP accounting, a resumable loop.

nanoGPT-style: one config dataclass, one loop. Multi-GPU comes from `accelerate` (DDP / FSDP through
``accelerate launch --config_file configs/accelerate/<x>.yaml -m lesa.train ...``); a single process
is the default and runs on CPU.

FLOPs per token (docs/flops.md; layer l has N_l matmul parameters, d_att = H*Q, T = sequence length):
    trainable layer                        6*N_l + 12*T*d_att
    frozen layer above the lowest trainable 4*N_l + 12*T*d_att   (forward + input-gradient)
    frozen layer below the lowest trainable 2*N_l +  4*T*d_att   (forward only)
    LM head V x d                           6*V*d trainable, 4*V*d frozen; embedding lookup 0
The lowest trainable layer is counted in full (6*N_l): its norm weights train, so the input-gradient
matmuls of q/k/v and gate/up still run (they feed the norm-weight gradients). Recomputation under
activation checkpointing is not counted (that would be HFU). MFU = tokens/s * FLOPs/token / (peak *
GPUs); reported as null on CPU or on an unknown GPU.

No wasted backward below the lowest trainable layer: the embeddings and the layers under the lowest
trainable one are frozen, so the hidden state entering it does not require grad and autograd never
visits them. Two things would break that and are avoided here: HF's ``gradient_checkpointing_enable``
(it calls ``enable_input_require_grads``, which forces the embedding output to require grad) -- we
checkpoint only the layers from the lowest trainable one up, with torch's non-reentrant checkpoint --
and reentrant checkpointing, which needs inputs that require grad. A test checks this with a FLOP
counter.

Resume is exact: the data order is a pure function of (seed, step), the LR a pure function of step,
and a checkpoint holds the trainable weights, optimizer state, RNG states and the step.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .arch import get_layers, get_submodule, spec_for
from .shards import read_meta, read_shards
from .store import PROJECT_ROOT, atomic_write_text, provenance, read_json, run_main, shown, stable_hash, write_json

# Dense bf16 peak FLOP/s per GPU (no sparsity), matched on torch.cuda.get_device_name().
PEAK_FLOPS_BF16 = {"H200": 989e12, "H100 80GB HBM3": 989e12, "H100 SXM": 989e12}


@dataclass
class TrainConfig:
    steps: int = 200                   # optimizer steps
    batch_size: int = 8                # sequences per micro-batch per process
    grad_accum: int = 1                # micro-batches per optimizer step
    seq_len: int | None = None         # None: the shards' length; shorter truncates each sequence
    lr: float = 2e-4                   # peak LR (LESA's CPT hyper-parameters are NOT FOUND; common CPT value)
    min_lr_ratio: float = 0.1          # final LR = lr * min_lr_ratio
    warmup_frac: float = 0.06          # warmup steps = round(warmup_frac * steps), at least 1
    schedule: str = "cosine"           # cosine | linear | constant (after warmup)
    weight_decay: float = 0.1          # on >=2-D weights only; norms and biases get none
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0             # max global grad norm; 0 disables
    seed: int = 0                      # data order; the same for every method, so curves differ by init only
    train_all: bool = False            # True: every weight trains (freezing ablation, SOLAR's recipe)
    new_layers: list[int] | None = None  # None: config.lesa_growth["new_layers"]
    eval_every: int = 50               # held-out perplexity every N steps (and at step 0 and the end)
    eval_sequences: int = 64           # first N held-out sequences (per source folder), fixed across methods
    ckpt_every: int = 100              # checkpoint every N steps (and at the end); 0: only at the end
    device: str = "auto"               # auto | cpu | cuda ("cuda" fails early when there is none)
    precision: str = "auto"            # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    frozen_bf16: bool = True           # store frozen weights in bf16 when training in bf16 (not under FSDP)
    compile: bool = False              # torch.compile each decoder layer (regional compilation)
    grad_checkpointing: bool = False   # recompute activations of layers >= the lowest trainable one
    halt_after: int | None = None      # stop after this step without a final checkpoint (tests, time budgets)
    progress: bool = True              # tqdm bar on the main process

    # fields that do not change the numbers of a run (excluded from its identity key)
    _NON_KEY = ("eval_every", "ckpt_every", "halt_after", "progress", "compile", "grad_checkpointing")

    def __post_init__(self):
        for name, ok in (("schedule", ("cosine", "linear", "constant")), ("device", ("auto", "cpu", "cuda")),
                         ("precision", ("auto", "bf16", "fp32"))):
            if getattr(self, name) not in ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; expected one of {ok}")
        if min(self.steps, self.batch_size, self.grad_accum) < 1:
            raise ValueError("steps, batch_size and grad_accum must be >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(d) - names
        if bad:
            raise ValueError(f"unknown TrainConfig fields {sorted(bad)}; known: {sorted(names)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_fields(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in self._NON_KEY}

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_frac * self.steps))


# ---------------------------------------------------------------------------------------- freezing

def growth_info(model_or_config: Any) -> dict | None:
    config = getattr(model_or_config, "config", model_or_config)
    info = getattr(config, "lesa_growth", None)
    return dict(info) if info else None


def new_layer_indices(model: Any, new_layers: list[int] | None = None) -> list[int]:
    """The trainable (new) layer indices: the explicit argument, else config.lesa_growth."""
    if new_layers is None:
        info = growth_info(model)
        if not info or "new_layers" not in info:
            raise ValueError("model config carries no lesa_growth['new_layers'] (not an expanded model?); "
                             "pass new_layers=[...] explicitly or train_all=True")
        new_layers = info["new_layers"]
    n = len(get_layers(model))
    out = sorted({int(i) for i in new_layers})
    if not out or out[0] < 0 or out[-1] >= n:
        raise ValueError(f"new_layers {out} must be a non-empty subset of 0..{n - 1}")
    return out


def _count(params) -> int:
    return sum(p.numel() for p in params)


def freeze_for_growth(model: Any, new_layers: list[int] | None = None, train_all: bool = False) -> dict:
    """Make only the new layers trainable (or everything with ``train_all``); report what is frozen.

    Groups: embed_tokens, lm_head (reported as tied to the embedding when it is, never double-counted),
    final_norm, original_layers, new_layers, other. Every unique parameter is in exactly one group.
    """
    layers = get_layers(model)
    n_layers = len(layers)
    new = list(range(n_layers)) if train_all and new_layers is None and growth_info(model) is None \
        else new_layer_indices(model, new_layers)
    for p in model.parameters():
        p.requires_grad_(bool(train_all))
    if not train_all:
        for i in new:
            for p in layers[i].parameters():
                p.requires_grad_(True)

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    spec = spec_for(model.config)
    norm = get_submodule(model, spec.layers_path.rsplit(".", 1)[0] + ".norm")
    seen: set[int] = set()

    def take(params) -> list:
        out = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in out)
        return out

    def entry(params, **extra) -> dict:
        return {"params": _count(params), "trainable": _count(p for p in params if p.requires_grad), **extra}

    groups = {"embed_tokens": entry(take(embed.parameters()))}
    if head is None:
        groups["lm_head"] = {"params": 0, "trainable": 0, "absent": True}
    elif tied:
        groups["lm_head"] = {"params": 0, "trainable": 0, "tied_to": "embed_tokens"}
    else:
        groups["lm_head"] = entry(take(head.parameters()))
    groups["final_norm"] = entry(take(norm.parameters()) if norm is not None else [])
    orig_idx = [i for i in range(n_layers) if i not in set(new)]
    groups["original_layers"] = entry(take(p for i in orig_idx for p in layers[i].parameters()),
                                      indices=orig_idx)
    groups["new_layers"] = entry(take(p for i in new for p in layers[i].parameters()), indices=new)
    groups["other"] = entry(take(model.parameters()))
    trainable = _count(p for p in model.parameters() if p.requires_grad)
    total = _count(model.parameters())
    assert sum(g["params"] for g in groups.values()) == total, "parameter groups do not add up"
    train_layers = list(range(n_layers)) if train_all else new
    return {"train_all": bool(train_all), "n_layers": n_layers, "new_layers": new,
            "trainable_layers": train_layers, "lowest_trainable_layer": -1 if train_all else new[0],
            "tied_embeddings": tied, "total_params": total, "trainable_params": trainable,
            "frozen_params": total - trainable, "groups": groups}


def format_report(rep: dict) -> str:
    lines = [f"trainable {rep['trainable_params']:,} / {rep['total_params']:,} parameters "
             f"({100 * rep['trainable_params'] / max(rep['total_params'], 1):.1f}%), "
             f"lowest trainable layer {rep['lowest_trainable_layer']}"]
    for name, g in rep["groups"].items():
        if g.get("tied_to"):
            lines.append(f"  {name:16s} tied to {g['tied_to']} (counted there)")
        elif g["params"]:
            state = "trainable" if g["trainable"] == g["params"] else (
                "frozen" if g["trainable"] == 0 else f"{g['trainable']:,} trainable")
            idx = f" layers {g['indices']}" if g.get("indices") else ""
            lines.append(f"  {name:16s} {g['params']:>14,}  {state}{idx}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- FLOPs

def _dims(config: Any) -> dict:
    d = config.hidden_size
    H = config.num_attention_heads
    Q = getattr(config, "head_dim", None) or d // H
    KV = getattr(config, "num_key_value_heads", None) or H
    inter = config.intermediate_size
    return {"d": d, "H": H, "Q": Q, "KV": KV, "I": inter, "V": config.vocab_size,
            "L": config.num_hidden_layers, "d_att": H * Q,
            # q, k, v, o projections + gate, up, down (biases are not matmuls)
            "N_layer": d * H * Q + 2 * d * KV * Q + H * Q * d + 3 * d * inter}


def flops_per_token(model_or_config: Any, trainable_layers: list[int] | None, seq_len: int, *,
                    train_all: bool = False) -> dict:
    """Training FLOPs per token with frozen layers, per docs/flops.md (see module docstring).

    ``train_all`` also trains the embeddings and LM head, so every layer needs its input-gradient.
    """
    config = getattr(model_or_config, "config", model_or_config)
    k = _dims(config)
    N, T, dat, L = k["N_layer"], seq_len, k["d_att"], k["L"]
    trainable = set(range(L)) if train_all else set(trainable_layers or [])
    lowest = -1 if train_all else (min(trainable) if trainable else L)
    per_layer = []
    for i in range(L):
        if i in trainable:
            per_layer.append(6 * N + 12 * T * dat)
        elif i > lowest:
            per_layer.append(4 * N + 12 * T * dat)
        else:
            per_layer.append(2 * N + 4 * T * dat)
    head_vd = k["V"] * k["d"]
    head = (6 if train_all else 4 if trainable else 2) * head_vd
    total = sum(per_layer) + head
    forward = L * (2 * N + 4 * T * dat) + 2 * head_vd
    n_train = len(trainable) * N + (head_vd if train_all else 0)
    return {"total": total, "forward": forward, "per_layer": per_layer, "lm_head": head,
            "lowest_trainable_layer": lowest, "naive_6N_trainable": 6 * n_train, "dims": k,
            "seq_len": T}


def peak_flops(device: torch.device | str, precision: str) -> float | None:
    """Peak dense FLOP/s of one device for this precision, or None (CPU, unknown GPU, not bf16)."""
    if torch.device(device).type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_FLOPS_BF16.items() if k in name), None)


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


# ---------------------------------------------------------------------------------------- helpers

def _make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise RuntimeError("a GPU run was requested (device='cuda', gpu profile) but CUDA is not available "
                           "on this machine; use the cpu profile or run on a GPU machine")
    on_cpu = cfg.device == "cpu" or not cuda
    prec = cfg.precision if cfg.precision != "auto" else ("fp32" if on_cpu else "bf16")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:   # fresh state for each run in one process
        with contextlib.suppress(Exception):
            AcceleratorState._reset_state(True)
    acc = Accelerator(cpu=on_cpu, mixed_precision="bf16" if prec == "bf16" else "no")
    return acc, prec


def _is_fsdp(acc) -> bool:
    return "FSDP" in str(acc.distributed_type)


def _enable_checkpointing(layers, lowest: int) -> None:
    """Non-reentrant activation checkpointing on layers >= lowest trainable (none below: no grads there)."""
    from torch.utils.checkpoint import checkpoint

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


def _loss(model, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the B*(T-1) predicted positions. The targets are shifted, not the
    logits (the last position gets the ignored label -100, as in transformers' own loss), so the
    (B, T, vocab) logits and their gradient are never copied into a sliced tensor."""
    logits = model(input_ids=x, use_cache=False).logits                      # (B, T, V)
    labels = F.pad(x[:, 1:], (0, 1), value=-100)                              # (B, T): next token, -100 last
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction=reduction)


@torch.no_grad()
def heldout_loss(model, data: np.ndarray, batch_size: int, acc) -> tuple[float, int]:
    """Mean token NLL over ``data`` (split across processes), and the number of predicted tokens.

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
        with acc.autocast():
            nll += weight * _loss(model, x, "sum").double()
        cnt += weight * (x.numel() - x.shape[0])
    nll, cnt = acc.reduce(nll, "sum"), acc.reduce(cnt, "sum")
    model.train(was)
    return float(nll / cnt), int(cnt)


def _heldout_sets(heldout_dir, n: int, T: int) -> dict[str, np.ndarray]:
    """Held-out sequences: one shard folder, or a folder of per-source shard folders (each evaluated)."""
    if not heldout_dir:
        return {}
    root = Path(heldout_dir)
    if not (root / "meta.json").exists() and root.is_dir():
        subs = sorted(p for p in root.iterdir() if (p / "meta.json").exists())
        if subs:
            return {p.name: np.asarray(read_shards(p)[:n, :T]) for p in subs}
    return {root.name: np.asarray(read_shards(root)[:n, :T])}   # read_shards says `make data` if missing


def _rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(ckpt_dir: Path, step: int, acc, model, optimizer, extra: dict) -> Path:
    """Trainable weights + optimizer + RNG + step (the data position and LR follow from the step)."""
    path = ckpt_dir / f"step_{step:07d}"
    if _is_fsdp(acc):                       # sharded model/optimizer: accelerate's own format
        acc.save_state(str(path))
    if acc.is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        if not _is_fsdp(acc):
            raw = acc.unwrap_model(model)
            weights = {n: p.detach().cpu() for n, p in raw.named_parameters() if p.requires_grad}
            _atomic_torch_save({"trainable": weights, "optimizer": optimizer.state_dict()},
                               path / "state.pt")
        _atomic_torch_save({"rng": _rng_state(), **extra}, path / "meta.pt")
        write_json(ckpt_dir / "latest.json", {"step": step, "path": path.name, "run_key": extra["run_key"]})
        for old in ckpt_dir.glob("step_*"):  # keep only the newest checkpoint
            if old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return path


def load_trained_weights(model, ckpt_dir: str | Path) -> int:
    """Load the trainable weights of the latest checkpoint into a (freshly expanded) model; returns the step."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_absolute() and not ckpt_dir.exists():      # summaries record it relative to the checkout
        ckpt_dir = PROJECT_ROOT / ckpt_dir
    latest = read_json(ckpt_dir / "latest.json")
    state = torch.load(ckpt_dir / latest["path"] / "state.pt", map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state["trainable"].items():
            params[n].copy_(t.to(params[n].dtype))
    return int(latest["step"])


def _truncate_jsonl(path: Path, step: int) -> None:
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        atomic_write_text(path, "".join(r + "\n" for r in rows))


# ---------------------------------------------------------------------------------------- the loop

def _load_model(model: Any):
    if not isinstance(model, (str, Path)):
        return model
    from transformers import AutoModelForCausalLM

    from .models import _from_hub, resolve

    path = resolve(str(model))                      # a missing folder or an offline hub id: a clear error
    return _from_hub(lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32,
                                                                    attn_implementation="sdpa"), str(model), path)


def train(model: Any, tokenizer: Any, shards_dir: str | Path, heldout_dir: str | Path | None,
          out_dir: str | Path, cfg: TrainConfig | None = None, *, ckpt_dir: str | Path | None = None,
          name: str | None = None, resume: bool = True) -> dict:
    """Train ``model`` (a module or a saved folder) on packed shards; write logs + summary to out_dir.

    out_dir/train_log.jsonl  one row per step: loss, lr, tokens, elapsed_s, step_s, grad_norm, flops, mfu
    out_dir/eval_log.jsonl   held-out loss and perplexity at step 0, every eval_every steps, and the end
    out_dir/summary.json     config, freezing report, FLOPs/token, tokens/s, final numbers, provenance
    Checkpoints go to ``ckpt_dir`` (default out_dir/ckpt); an existing one with the same run key is
    resumed. ``tokenizer`` is unused (shards are already tokenized) and kept for API symmetry.
    """
    cfg = cfg or TrainConfig()
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir / "ckpt"
    meta = read_meta(shards_dir)            # raises "build them first with `make data`" when missing
    data = read_shards(shards_dir)
    T = cfg.seq_len or meta["seq_len"]
    if T > meta["seq_len"] or T < 2:
        raise ValueError(f"seq_len {T} must lie in [2, {meta['seq_len']}] (the shards' length)")
    held = _heldout_sets(heldout_dir, cfg.eval_sequences, T)
    acc, prec = _make_accelerator(cfg)
    if acc.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model = _load_model(model)
    if model.config.vocab_size < meta.get("vocab_size", 0):
        raise ValueError(f"shards use vocab {meta['vocab_size']} > model vocab {model.config.vocab_size}")
    report = freeze_for_growth(model, cfg.new_layers, cfg.train_all)
    if hasattr(model.config, "_attn_implementation") and model.config._attn_implementation == "eager":
        with contextlib.suppress(Exception):
            model.set_attn_implementation("sdpa")
    layers = get_layers(model)
    if prec == "bf16" and cfg.frozen_bf16 and not cfg.train_all and not _is_fsdp(acc):
        for p in model.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    if cfg.grad_checkpointing:
        _enable_checkpointing(layers, report["lowest_trainable_layer"])
    if cfg.compile:
        for layer in layers:
            layer.compile()
    model.to(acc.device)
    model.train()

    optimizer = build_optimizer(model, cfg, fused=acc.device.type in ("cuda", "cpu") and not _is_fsdp(acc))
    model, optimizer = acc.prepare(model, optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    W, B, A = acc.num_processes, cfg.batch_size, cfg.grad_accum
    G = B * A * W
    fpt = flops_per_token(acc.unwrap_model(model), report["trainable_layers"], T, train_all=cfg.train_all)
    peak = peak_flops(acc.device, prec)
    order = DataOrder(len(data), cfg.seed)
    model_key = stable_hash({k: v for k, v in acc.unwrap_model(model).config.to_dict().items()
                             if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")})
    run_key = stable_hash({"cfg": cfg.key_fields(), "seq_len": T, "G": G, "new": report["trainable_layers"],
                           "model": model_key, "data": [str(meta.get(k)) for k in ("n_sequences", "files")]})
    data_order_hash = stable_hash(order.indices(0, G).tolist())

    latest = ckpt_dir / "latest.json"
    if resume and (out_dir / "summary.json").exists() and latest.exists():
        prev, info = read_json(out_dir / "summary.json"), read_json(latest)
        # done = a finished summary AND its final weights here (committed results alone are not a cache:
        # evaluating the run needs the weights, so a fresh clone trains again)
        if prev.get("completed") and prev.get("run_key") == run_key == info.get("run_key") \
                and info.get("step") == cfg.steps:
            return prev                                            # this exact run is already done
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path, eval_path = out_dir / "train_log.jsonl", out_dir / "eval_log.jsonl"
    start, elapsed, evals = 0, 0.0, []
    if resume and latest.exists():
        info = read_json(latest)
        if info["run_key"] != run_key:
            raise RuntimeError(f"checkpoint in {ckpt_dir} belongs to another run (key {info['run_key']} != "
                               f"{run_key}); delete it or pass resume=False")
        path = ckpt_dir / info["path"]
        if _is_fsdp(acc):
            acc.load_state(str(path))
        else:
            state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
            named = dict(acc.unwrap_model(model).named_parameters())
            with torch.no_grad():
                for n, t in state["trainable"].items():
                    named[n].copy_(t)
            optimizer.load_state_dict(state["optimizer"])
        m = torch.load(path / "meta.pt", map_location="cpu", weights_only=False)
        _set_rng_state(m["rng"])
        start, elapsed = int(m["step"]), float(m["elapsed_s"])
        if acc.is_main_process:
            _truncate_jsonl(log_path, start)
            _truncate_jsonl(eval_path, start)
    elif acc.is_main_process:
        for p in (log_path, eval_path):
            p.unlink(missing_ok=True)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    acc.wait_for_everyone()
    if acc.is_main_process:
        print(f"[train] {name or out_dir.name}: {format_report(report)}\n"
              f"[train] {W} process(es) on {acc.device}, {prec}, global batch {G} x {T} tokens, "
              f"{fpt['total'] / 1e9:.3f} GFLOP/token, steps {start}->{cfg.steps}")

    def log(path: Path, row: dict) -> None:
        if acc.is_main_process:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def run_eval(step: int) -> None:
        if not held:
            return
        parts = {k: heldout_loss(model, v, B, acc) for k, v in held.items()}
        n = sum(c for _, c in parts.values())
        loss = sum(l * c for l, c in parts.values()) / n          # token-weighted over sources
        row = {"step": step, "tokens": step * G * T, "heldout_loss": loss, "heldout_ppl": math.exp(loss),
               "n_tokens": n}
        if len(parts) > 1:
            row["by_source"] = {k: {"loss": l, "ppl": math.exp(l), "n_tokens": c} for k, (l, c) in parts.items()}
        evals.append(row)
        log(eval_path, row)

    if start == 0:
        run_eval(0)
    from tqdm.auto import tqdm

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=name or "cpt",
               disable=not (cfg.progress and acc.is_main_process), dynamic_ncols=True)
    step_times, last = [], None
    for step in bar:
        lr = lr_at(step, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        idx = order.indices(step * G, G)
        total = torch.zeros((), device=acc.device)
        for m in range(A):
            rows = idx[(m * W + acc.process_index) * B:(m * W + acc.process_index + 1) * B]
            x = torch.from_numpy(np.asarray(data[rows][:, :T], dtype=np.int64)).to(acc.device)
            sync = acc.no_sync(model) if m < A - 1 else contextlib.nullcontext()
            with sync, acc.autocast():
                loss = _loss(model, x)
                acc.backward(loss / A)
            total += loss.detach() / A
        gnorm = acc.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_val = float(acc.reduce(total, "mean"))
        dt = time.perf_counter() - t0
        elapsed += dt
        step_times.append(dt)
        n = step + 1
        tps = G * T / dt
        last = {"step": n, "loss": loss_val, "lr": lr, "tokens": n * G * T, "elapsed_s": round(elapsed, 4),
                "step_s": round(dt, 4), "tokens_per_s": round(tps, 2),
                "grad_norm": None if gnorm is None else float(gnorm),
                "flops": fpt["total"] * n * G * T, "mfu": None if peak is None else tps * fpt["total"] / (peak * W)}
        log(log_path, last)
        bar.set_postfix(loss=f"{loss_val:.4f}", tok_s=f"{tps:.0f}")
        if cfg.eval_every and n % cfg.eval_every == 0 and n != cfg.steps:
            run_eval(n)
        if cfg.halt_after is not None and n >= cfg.halt_after and n < cfg.steps:
            bar.close()
            return {"halted_at": n, "completed": False, "run_key": run_key}
        if (cfg.ckpt_every and n % cfg.ckpt_every == 0) or n == cfg.steps:
            if n == cfg.steps:
                run_eval(n)
            save_checkpoint(ckpt_dir, n, acc, model, optimizer,
                            {"step": n, "elapsed_s": elapsed, "run_key": run_key})
    bar.close()

    med = statistics.median(step_times[1:] or step_times) if step_times else None
    tps = G * T / med if med else None
    all_evals = [json.loads(x) for x in eval_path.read_text().splitlines()] if eval_path.exists() else evals
    rows = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    summary = {
        "name": name or out_dir.name, "completed": True, "run_key": run_key, "steps": cfg.steps,
        "tokens": cfg.steps * G * T, "global_batch": G, "seq_len": T, "world_size": W,
        "device": str(acc.device), "precision": prec,
        "final_loss": rows[-1]["loss"] if rows else None,
        "initial_heldout_ppl": all_evals[0]["heldout_ppl"] if all_evals else None,
        "final_heldout_ppl": all_evals[-1]["heldout_ppl"] if all_evals else None,
        "step_s_median": med, "tokens_per_s": tps, "tokens_per_s_note": "median step, first step of this "
        "session excluded; all processes", "elapsed_s": elapsed,
        "flops_per_token": fpt["total"], "flops_per_token_forward": fpt["forward"],
        "flops_naive_6N_trainable": fpt["naive_6N_trainable"], "peak_flops_per_device": peak,
        "mfu": None if (peak is None or tps is None) else tps * fpt["total"] / (peak * W),
        "trainable": report, "data_order_hash": data_order_hash, "growth": growth_info(acc.unwrap_model(model)),
        "config": cfg.to_dict(), "shards": shown(shards_dir), "heldout": shown(heldout_dir) if heldout_dir else None,
        "checkpoint_dir": shown(ckpt_dir), "provenance": provenance(),
    }
    if acc.is_main_process:
        write_json(out_dir / "summary.json", summary)
    return summary


def run_cpt_comparison(models: dict[str, Any], shards_dir: str | Path, heldout_dir: str | Path | None,
                       profile: str, cfg: TrainConfig, *, results_root: str | Path | None = None,
                       ckpt_root: str | Path | None = None,
                       overrides: dict[str, dict] | None = None, force: bool = False) -> dict[str, dict]:
    """Train each model with the same config, seed and data order; write results/<profile>/cpt/<name>/.

    ``models``: name -> module, saved folder, or zero-argument callable returning a module (loaded lazily,
    one at a time). ``overrides``: name -> TrainConfig fields for that run only, e.g. the unexpanded
    control ``{"base": {"new_layers": [15, ..., 29]}}`` or ``{"base": {"train_all": True}}``. A run whose
    summary.json has the same run key and is complete is reused, an interrupted one resumed from its
    checkpoint (``force`` retrains). Checkpoints go to ``ckpt_root`` (default .cache/cpt/).
    """
    from .store import PROJECT_ROOT, cache_dir

    root = Path(results_root) if results_root else PROJECT_ROOT / "results"
    out: dict[str, dict] = {}
    seeds: dict[str, int] = {}
    for name, spec in models.items():
        run_cfg = TrainConfig.from_dict({**cfg.to_dict(), **(overrides or {}).get(name, {})})
        seeds[name] = run_cfg.seed
        out_dir = root / profile / "cpt" / name
        model = spec() if callable(spec) and not isinstance(spec, torch.nn.Module) else spec
        ck = Path(ckpt_root) / profile / name if ckpt_root else cache_dir("cpt", profile, name)
        out[name] = train(model, None, shards_dir, heldout_dir, out_dir, run_cfg, ckpt_dir=ck, name=name,
                          resume=not force)
        del model
    keys = ("steps", "tokens", "final_loss", "initial_heldout_ppl", "final_heldout_ppl", "tokens_per_s",
            "flops_per_token", "mfu", "data_order_hash")
    by_seed: dict[int, set] = {}
    for n, s in out.items():                       # runs with the same seed must see the same tokens
        by_seed.setdefault(seeds[n], set()).add(s.get("data_order_hash"))
    write_json(root / profile / "cpt" / "comparison.json",
               {"profile": profile, "runs": {n: {"seed": seeds[n], **{k: s.get(k) for k in keys}}
                                             for n, s in out.items()},
                "same_data_order": all(len(h) == 1 for h in by_seed.values()),
                "provenance": provenance()})
    return out


# ---------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m lesa.train", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="saved (expanded) model folder")
    ap.add_argument("--shards", required=True, help="training token shards (from `make data`)")
    ap.add_argument("--heldout", default=None, help="held-out shards (a folder, or a folder of per-source folders)")
    ap.add_argument("--out", required=True, help="output folder for logs and summary")
    ap.add_argument("--ckpt-dir", default=None)
    ap.add_argument("--config", default=None, help="YAML/JSON file of TrainConfig fields")
    ap.add_argument("--new-layers", default=None, help="comma-separated indices (default: lesa_growth)")
    ap.add_argument("--no-resume", action="store_true")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("new_layers", "betas") or f.name.startswith("_"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction)
        else:
            conv = {"int": int, "float": float, "int | None": int}.get(str(f.type), str)
            ap.add_argument(flag, dest=f.name, default=None, type=conv)
    a = ap.parse_args(argv)
    d: dict = {}
    if a.config:
        import yaml

        d.update(yaml.safe_load(Path(a.config).read_text()) or {})
    d.update({f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(a, f.name, None) is not None})
    if a.new_layers:
        d["new_layers"] = [int(x) for x in a.new_layers.split(",")]
    return train(a.model, None, a.shards, a.heldout, a.out, TrainConfig.from_dict(d), ckpt_dir=a.ckpt_dir,
                 resume=not a.no_resume)


if __name__ == "__main__":
    import sys

    sys.exit(run_main(main))
