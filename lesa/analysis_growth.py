"""Measurements of a grown model before training (C3, C12c): new-layer statistics, the residual-stream
effect of each layer, perplexity on the protocol's sets (lesa.protocol) and quick benchmarks."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from .analysis_predictor import weight_metrics
from .arch import check_model, get_layers
from .store import PROJECT_ROOT

FIXTURE_TEXT = PROJECT_ROOT / "tests" / "fixtures" / "wikitext_excerpt.txt"


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


@torch.no_grad()
def text_perplexity(model: Any, tokenizer: Any, text: str, max_length: int) -> dict:
    """Token perplexity of a text in disjoint windows of max_length tokens (no data files needed)."""
    ids = tokenizer.encode(text)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    nll, n = 0.0, 0
    for s in range(0, len(ids), max_length):
        chunk = [bos] + ids[s:s + max_length]
        x = torch.tensor([chunk])
        logits = model(input_ids=x).logits[0, :-1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
        n += len(chunk) - 1
    return {"task": "ppl_fixture", "metrics": {"token_perplexity": math.exp(nll / n)},
            "primary_metric": "token_perplexity", "value": math.exp(nll / n), "n_tokens": n,
            "data": str(FIXTURE_TEXT.relative_to(PROJECT_ROOT))}


def perplexity_suite(model: Any, tokenizer: Any, sets: list[str], limits: dict, max_length: int,
                     batch_size: int = 2, precision: str = "fp32") -> dict:
    """{set: record} for 'fixture' (always available) and lesa.evaluate's wikitext / lambada /
    heldout; a set whose data is not prepared gets {'status': 'missing', 'reason': ...}.
    Call it through lesa.protocol.measure (one protocol for every notebook). precision: lesa.evaluate's
    ("fp32" | "bf16", the protocol's); the fixture set is always fp32."""
    from .evaluate import check_precision

    precision = check_precision(precision, next(model.parameters()).device)
    out: dict = {}
    for name in sets:
        t0 = time.perf_counter()
        try:
            if name == "fixture":
                rec = text_perplexity(model, tokenizer, FIXTURE_TEXT.read_text(encoding="utf-8"), max_length)
            else:
                from .evaluate import perplexity

                rec = perplexity(model, tokenizer, name, max_length=max_length, limit=limits.get(name),
                                 batch_size=batch_size, progress=False, precision=precision)
            rec["status"] = "ok"
            if name == "lambada":            # report its perplexity as the set's headline number
                rec["acc"] = rec["metrics"].get("acc")
                rec["value"] = rec["metrics"]["perplexity"]
                rec["primary_metric"] = "perplexity"
        except (FileNotFoundError, OSError, RuntimeError, KeyError) as e:
            rec = {"status": "missing", "reason": f"{type(e).__name__}: {e}"[:300]}
        rec["limit"] = limits.get(name)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = rec
    return out


def quick_benchmarks(model: Any, tokenizer: Any, tasks: list[str], limit: int | None,
                     precision: str = "fp32") -> dict:
    """A quick lm-eval pass (accuracy, stderr, n) per task; missing data or lm-eval -> status.
    precision: as in perplexity_suite (checked before anything runs)."""
    out: dict = {}
    if not tasks:
        return out
    from .evaluate import check_precision

    precision = check_precision(precision, next(model.parameters()).device)
    try:
        from .evaluate import run_benchmarks

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
