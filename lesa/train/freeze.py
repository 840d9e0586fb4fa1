"""Which weights train in continual pre-training: the grown layers only (the original ones frozen), or
everything; and a report of what is frozen, group by group."""
from __future__ import annotations

from typing import Any

from ..core.arch import get_layers, get_submodule, spec_for


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
