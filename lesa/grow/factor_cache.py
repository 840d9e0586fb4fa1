"""The concatenated SVD of one weight type, kept on disk: factorised once per model, reused by every growth.

A growth's factorisation depends only on the stacked weights it factorises, the solver and its dtype and
device kind, and the code of lesa.grow.svd, never on the predictor's seed, its λ or the method (lesa, lesa_fp,
lesa_lowrank, ...). For Qwen2.5-Coder-1.5B it costs 350-390 s per call on 2 cores, so every call after the
first loads it instead (a few seconds). One file per weight type, written and read one type at a time: one
type's factors of a 1.5B model are already ~2 GB in float32, several would not fit beside the model.

    F = cached_factorize(Ws, device="cpu", dtype=torch.float32, method="auto")   # Factors, as lesa.grow.svd.factorize

The key is a hash of the stack's bytes (dtype, shape and every value), so two models with the same weights
share it whatever they are called, and a model whose weights differ in one bit does not.
``LESA_FACTOR_CACHE=0`` turns the cache off; stacks under ``MIN_BYTES`` are factorised in place (tiny test
models: the disk round trip costs more than the SVD).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

from ..core.store import cache_dir, file_hash, shown, stable_hash
from .svd import Factors, factorize

MIN_BYTES = 16 << 20          # stacks smaller than this are factorised in place, never written
STATS = {"computed": 0, "loaded": 0}    # per-process counters (tests and the bench read them)


def stack_fingerprint(Ws: torch.Tensor) -> str:
    """Hash of a tensor's dtype, shape and bytes (the exact values the SVD reads). About 1 s per GB."""
    h = hashlib.blake2b(digest_size=16)
    t = Ws.detach().contiguous().cpu()
    h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
    for block in t.reshape(t.shape[0], -1) if t.dim() > 1 else [t]:      # one layer at a time: no 2nd copy
        h.update(block.view(torch.uint8).numpy().data)
    return h.hexdigest()


def factor_key(Ws: torch.Tensor, device: str | torch.device, dtype: torch.dtype, method: str) -> str:
    """File name of a factorisation: the stack's fingerprint, the solver and its precision, the device kind
    (CPU and CUDA round differently) and the hash of lesa/grow/svd.py (a change of the SVD code is a miss)."""
    here = Path(__file__).resolve().parent
    return stable_hash({"stack": stack_fingerprint(Ws), "dtype": str(dtype), "method": method,
                        "device": torch.device(device).type, "code": file_hash(here / "svd.py")}, 24)


def enabled(Ws: torch.Tensor) -> bool:
    return os.environ.get("LESA_FACTOR_CACHE", "1") != "0" and Ws.numel() * Ws.element_size() >= MIN_BYTES


def cached_factorize(Ws: torch.Tensor, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     method: str = "auto", what: str = "", progress: bool = False):
    """lesa.grow.svd.factorize(Ws, ...) read from .cache/factors/ when this exact stack was factorised the same
    way before (in any process, for any predictor seed or method), else computed and written atomically.
    Loaded factors are bit-identical to the computed ones (safetensors stores the exact bytes)."""
    from safetensors.torch import load_file

    if not enabled(Ws):
        STATS["computed"] += 1
        return factorize(Ws, device=device, dtype=dtype, method=method)
    path = cache_dir("factors") / f"{factor_key(Ws, device, dtype, method)}.safetensors"
    if path.exists():
        d = load_file(str(path))
        STATS["loaded"] += 1
        if progress:
            print(f"[lesa] SVD of {what or 'a weight type'} reused from {shown(path)}", flush=True)
        return Factors(**{k: v.to(device) for k, v in d.items()})
    F = factorize(Ws, device=device, dtype=dtype, method=method)
    STATS["computed"] += 1
    _save_atomic(path, {"US": F.US, "S": F.S, "V": F.V})
    return F


def _save_atomic(path: Path, tensors: dict) -> None:
    """safetensors written to a temp file beside ``path`` and renamed over it (streamed from the tensors:
    lesa.core.store.atomic_write_bytes would need the whole file in memory once more)."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
