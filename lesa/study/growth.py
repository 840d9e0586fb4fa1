"""Measurements of a grown model before training (C3, C12c): new-layer statistics, the residual-stream
effect of each layer and quick benchmarks (perplexity on the protocol's sets: lesa.eval.protocol)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .predictor import weight_metrics
from ..core.arch import check_model, get_layers
# the perplexity sets are measured at the protocol layer, below every study
from ..eval.protocol import FIXTURE_TEXT
from ..eval.scoring import check_precision


def new_layer_stats(model: Any, grown: Any, plan) -> list[dict]:
    """Per new layer and weight type: norm relative to its source layer(s), cosine with each source."""
    spec = check_model(model)
    src_layers, new = get_layers(model, spec), get_layers(grown)
    rows = []
    for i in plan.new_layers:
        s = plan.slots[i]
        for short, path in spec.projections.items():
            W = new[i].get_submodule(path).weight.detach().double()
            refs = [src_layers[j].get_submodule(path).weight.detach().double() for j in s.src]
            ref_norm = float(np.mean([float(r.norm()) for r in refs]))
            row = {"slot": i, "kind": s.kind, "src": list(s.src), "type": short,
                   "norm_ratio": float(W.norm()) / max(ref_norm, 1e-30),
                   "cos_src0": weight_metrics(W, refs[0])["cosine"]}
            row["cos_src1"] = weight_metrics(W, refs[1])["cosine"] if len(refs) > 1 else None
            row["cos_src0_src1"] = weight_metrics(refs[0], refs[1])["cosine"] if len(refs) > 1 else None
            rows.append(row)
    return rows


@torch.no_grad()
def residual_effect(model: Any, input_ids: torch.Tensor) -> list[dict]:
    """Per decoder layer: ||h_out - h_in|| / ||h_in|| (mean over tokens) and cos(h_out - h_in, h_in).
    A layer with o_proj = down_proj = 0 has relative update 0 (the identity)."""
    layers = get_layers(model)
    caught: dict[int, dict] = {}

    def pre(i):
        def hook(mod, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            caught.setdefault(i, {})["in"] = h.detach().float()
        return hook

    def post(i):
        def hook(mod, args, kwargs, out):
            h = out[0] if isinstance(out, (tuple, list)) else out
            caught[i]["out"] = h.detach().float()
        return hook

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(pre(i), with_kwargs=True))
        handles.append(layer.register_forward_hook(post(i), with_kwargs=True))
    try:
        model(input_ids=input_ids)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i in range(len(layers)):
        hin, hout = caught[i]["in"], caught[i]["out"]
        upd = hout - hin
        rel = (upd.norm(dim=-1) / hin.norm(dim=-1).clamp_min(1e-12)).mean()
        cos = torch.nn.functional.cosine_similarity(upd, hin, dim=-1).mean()
        rows.append({"layer": i, "rel_update": float(rel), "cos_update_input": float(cos)})
    return rows


def quick_benchmarks(model: Any, tokenizer: Any, tasks: list[str], limit: int | None,
                     precision: str = "fp32") -> dict:
    """A quick lm-eval pass (accuracy, stderr, n) per task; missing data or lm-eval -> status.
    precision: as in lesa.eval.protocol.perplexity_suite (checked before anything runs)."""
    out: dict = {}
    if not tasks:
        return out
    precision = check_precision(precision, next(model.parameters()).device)
    try:
        from ..eval.harness import run_benchmarks

        for rec in run_benchmarks(model, tokenizer, tasks, limit=limit, batch_size=8, precision=precision):
            out[rec["task"]] = {"status": "ok", "value": rec["value"], "metric": rec["primary_metric"],
                                "stderr": (rec.get("stderr") or {}).get(rec["primary_metric"]),
                                "chance": rec.get("chance"), "n": rec["n_samples"], "seconds": rec["seconds"]}
    except Exception as e:  # noqa: BLE001 (lm-eval raises many kinds; the page must still render)
        for t in tasks:
            out.setdefault(t, {"status": "missing", "reason": f"{type(e).__name__}: {e}"[:300]})
    return out


def fixture_ids(tokenizer: Any, n_tokens: int) -> torch.Tensor:
    ids = tokenizer.encode(FIXTURE_TEXT.read_text(encoding="utf-8"))
    while len(ids) < n_tokens:
        ids = ids + ids
    return torch.tensor([ids[:n_tokens]])
