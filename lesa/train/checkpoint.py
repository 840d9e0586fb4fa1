"""CPT checkpoints: the trainable weights, optimizer state, RNG states and step of one run.

    ckpt_dir/latest.json               {"step", "path", "run_key"} of the newest checkpoint
    ckpt_dir/step_<n>/state.pt         {"trainable": name -> tensor, "optimizer": state_dict}
    ckpt_dir/step_<n>/meta.pt          {"rng", "step", "elapsed_s", "run_key"}
Under FSDP the sharded model and optimizer go through accelerate's save_state / load_state instead of
state.pt. Only the newest checkpoint is kept. The data position and LR are functions of the step, so
these files are all an exact resume needs.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import PROJECT_ROOT
from ..core.store import read_json, write_json


def is_fsdp(acc) -> bool:
    return "FSDP" in str(acc.distributed_type)


def rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
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
    """Write step_<step>/ (see the module docstring), point latest.json at it, drop older ones."""
    path = ckpt_dir / f"step_{step:07d}"
    if is_fsdp(acc):
        acc.save_state(str(path))
    if acc.is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        if not is_fsdp(acc):
            raw = acc.unwrap_model(model)
            weights = {n: p.detach().cpu() for n, p in raw.named_parameters() if p.requires_grad}
            _atomic_torch_save({"trainable": weights, "optimizer": optimizer.state_dict()}, path / "state.pt")
        _atomic_torch_save({"rng": rng_state(), **extra}, path / "meta.pt")
        write_json(ckpt_dir / "latest.json", {"step": step, "path": path.name, "run_key": extra["run_key"],
                                              **({"init_key": extra["init_key"]} if "init_key" in extra else {})})
        for old in ckpt_dir.glob("step_*"):
            if old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return path


def latest(ckpt_dir: str | Path) -> tuple[dict, Path]:
    """(latest.json, the newest checkpoint's folder). A relative ``ckpt_dir`` that does not exist from
    here is taken relative to the checkout (summaries record it that way)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_absolute() and not ckpt_dir.exists():
        ckpt_dir = PROJECT_ROOT / ckpt_dir
    info = read_json(ckpt_dir / "latest.json")
    return info, ckpt_dir / info["path"]


def load_weights(model, tensors: dict[str, torch.Tensor]) -> None:
    """Copy named tensors into ``model``'s parameters, each cast to the parameter's dtype and device
    (frozen weights may be stored in bf16); a name the model lacks is an error."""
    params = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(params))
    if missing:
        raise KeyError(f"checkpoint weights {missing[:3]}{'...' if len(missing) > 3 else ''} are not parameters "
                       "of this model (was it grown by the same method and plan?)")
    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t)


def load_trained_weights(model, ckpt_dir: str | Path) -> int:
    """Load the trainable weights of the latest checkpoint into a (freshly grown) model; returns the step."""
    info, path = latest(ckpt_dir)
    load_weights(model, torch.load(path / "state.pt", map_location="cpu", weights_only=False)["trainable"])
    return int(info["step"])
