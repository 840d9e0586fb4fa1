"""Packed token shards: fixed-length sequences as compact integer arrays plus a small JSON.

Layout of a shard folder (readable with numpy alone, no `datasets` needed on a GPU machine)::

    meta.json           {"seq_len": T, "dtype": "uint16", "n_sequences": N, "files": [...], ...}
    shard_00000.npy     (n_0, T) integers
    shard_00001.npy     (n_1, T) integers
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.store import read_json, write_json


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def write_shards(out_dir: str | Path, sequences: np.ndarray | Iterable[np.ndarray], *, seq_len: int,
                 vocab_size: int, sequences_per_shard: int = 8192, meta: dict | None = None) -> Path:
    """Write (N, seq_len) token ids into ``out_dir`` as .npy shards; ``meta`` is merged into meta.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = _dtype_for(vocab_size)
    arr = np.asarray(sequences if isinstance(sequences, np.ndarray) else np.stack(list(sequences)))
    if arr.ndim != 2 or arr.shape[1] != seq_len:
        raise ValueError(f"expected token array of shape (N, {seq_len}), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}); got [{arr.min()}, {arr.max()}]")
    files = []
    for k, start in enumerate(range(0, len(arr), sequences_per_shard)):
        name = f"shard_{k:05d}.npy"
        tmp = out / f".{name}.tmp.npy"
        np.save(tmp, arr[start:start + sequences_per_shard].astype(dtype))
        tmp.replace(out / name)
        files.append(name)
    info = {"format": "lesa-shards-v1", "seq_len": seq_len, "dtype": dtype.name,
            "vocab_size": vocab_size, "n_sequences": int(len(arr)), "files": files, **(meta or {})}
    write_json(out / "meta.json", info)   # written last: its presence marks a complete folder
    return out


def read_meta(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"no token shards at {shard_dir} (missing meta.json); "
                                "build them first with `make data`")
    return read_json(path)


def read_shards(shard_dir: str | Path, mmap: bool = True) -> np.ndarray:
    """All sequences of a shard folder as one (N, seq_len) array (memory-mapped shards, concatenated)."""
    meta = read_meta(shard_dir)
    mode = "r" if mmap else None
    parts = [np.load(Path(shard_dir) / f, mmap_mode=mode) for f in meta["files"]]
    if not parts:
        return np.zeros((0, meta["seq_len"]), dtype=meta["dtype"])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
