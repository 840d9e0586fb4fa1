"""Where a new layer's RMSNorm gains come from, and what that does (the --norms option).

A LESA layer is deepcopy(layer 0) with its seven projections replaced (released code), so its two
RMSNorm gains (input_layernorm, post_attention_layernorm; biases too, where a family has them) are
layer 0's. The alternative, ``Plan.norm_source = "neighbours"``, averages the gains of the two
layers around the gap. This module measures why the choice matters:

* ``gain_stats``: mean and median |gain| per layer and norm, so layer 0 can be compared with the
  layers around the gaps where LESA inserts;
* ``norm_source_study``: on one grown model, the predicted projections' norms and cosines against
  their neighbours' (and the neighbour average's, for contrast), and, for each norm source, the new
  layers' relative update of the residual stream and the model's perplexity on a text.

The gains multiply the inputs of q/k/v (input_layernorm) and gate/up (post_attention_layernorm), so a
new layer's update of the residual stream scales with them: small layer-0 gains damp a new layer,
neighbour gains give it full strength. Full strength suits a layer that resembles its neighbours; a
prediction with the neighbours' norm (the norm loss sees to that) but not their direction then
writes a real-sized update in a direction the following layers were never trained on.

Measured on SmolLM2-135M, 30 -> 45 (released recipe, seed 0; perplexity of
tests/fixtures/wikitext_excerpt.txt in 256-token windows; residual update = ||h_out - h_in|| / ||h_in||
on its first 256 tokens, median over layers):

* gains: layer 0's input_layernorm mean |g| 0.028 vs 0.32-0.40 around the gaps (x11.5-14.6);
  post_attention_layernorm 0.107 vs 0.21-0.32 (x2.0-3.0);
* predicted projections: norm 0.87-1.17 x their neighbours', cosine with them 0.007-0.025; the
  neighbour average: norm 0.71 x, cosine 0.71 (adjacent SmolLM2 layers are nearly orthogonal);
* LESA with layer-0 norms: new-layer update 0.14 (original layers 0.32), perplexity 282;
  with neighbour norms: update 0.21, perplexity 4.0e6 (base model 36.2);
* the average with layer-0 norms: update 0.06, perplexity 39.3; with neighbour norms 0.13, 77.8.
"""
from __future__ import annotations

import statistics
from typing import Any

import torch

from ..core.arch import check_model, get_layers
from ..grow.spec import PAIR_KINDS, Plan
from ..eval.protocol import text_perplexity
from .growth import residual_effect
from .predictor import weight_metrics


def gain_stats(model: Any) -> list[dict]:
    """Per decoder layer and norm module: mean and median |gain| (RMSNorm weight)."""
    spec = check_model(model)
    rows = []
    for i, layer in enumerate(get_layers(model, spec)):
        for name in spec.norms:
            g = layer.get_submodule(name).weight.detach().abs().double()
            rows.append({"layer": i, "norm": name, "mean_abs": float(g.mean()), "median_abs": float(g.median())})
    return rows


def gaps_of(plan: Plan) -> list[tuple[int, int]]:
    """The source-layer pairs (a, b) of the plan's pair-kind slots (LESA's gaps)."""
    return [tuple(s.src) for s in plan.slots if s.kind in PAIR_KINDS]


def gain_summary(model: Any, plan: Plan) -> dict:
    """Per norm: layer 0's mean/median |gain|, the same for the average of each gap's two neighbours,
    and their ratio (neighbours / layer 0): how much stronger a new layer's inputs are with
    neighbour norms than with the released layer-0 norms."""
    rows = gain_stats(model)
    by = {(r["layer"], r["norm"]): r for r in rows}
    out = {}
    for name in sorted({r["norm"] for r in rows}):
        l0 = by[(0, name)]
        gaps = [{"gap": [a, b], **{k: (by[(a, name)][k] + by[(b, name)][k]) / 2 for k in ("mean_abs", "median_abs")}}
                for a, b in gaps_of(plan)]
        ratios = [g["mean_abs"] / l0["mean_abs"] for g in gaps]
        out[name] = {"layer0": {k: l0[k] for k in ("mean_abs", "median_abs")}, "gaps": gaps,
                     "gap_over_layer0_mean_abs": {"min": min(ratios), "median": statistics.median(ratios),
                                                  "max": max(ratios)} if ratios else None}
    return out


@torch.no_grad()
def set_norm_source(grown: Any, source: Any, plan: Plan, norm_source: str) -> None:
    """In place: give the grown model's pair-kind layers the norms and biases apply_plan would give
    them under ``norm_source`` ("layer0": copies of source layer 0's; "neighbours": the average of
    the gap's two layers'), leaving the projection weights alone. Lets one expansion (one predictor
    training) be measured under both sources; equals apply_plan's result (tested)."""
    spec = check_model(source)
    src, new = get_layers(source, spec), get_layers(grown)
    proj = {f"{p}.weight" for p in spec.projections.values()}
    for i, slot in enumerate(plan.slots):
        if slot.kind not in PAIR_KINDS:
            continue
        a, b = slot.src
        params = dict(new[i].named_parameters())
        for k, p in params.items():
            if k in proj:
                continue
            if norm_source == "layer0":
                p.copy_(src[0].get_parameter(k))
            elif norm_source == "neighbours":
                p.copy_((src[a].get_parameter(k) + src[b].get_parameter(k)) / 2)
            else:
                raise ValueError(f"norm_source must be 'layer0' or 'neighbours', got {norm_source!r}")


def weight_comparison(source: Any, grown: Any, plan: Plan) -> dict:
    """Per weight type, medians over the new layers: norm of the new projection / mean norm of its two
    neighbours', cosine with each neighbour, and the same for the neighbour average (W_a + W_b) / 2."""
    spec = check_model(source)
    src, new = get_layers(source, spec), get_layers(grown)
    out = {}
    for short, path in spec.projections.items():
        rows = []
        for i, slot in enumerate(plan.slots):
            if slot.kind not in PAIR_KINDS:
                continue
            a, b = (src[j].get_submodule(path).weight.detach().double() for j in slot.src)
            W = new[i].get_submodule(path).weight.detach().double()
            ref = (float(a.norm()) + float(b.norm())) / 2
            avg = (a + b) / 2
            rows.append({"norm_ratio": float(W.norm()) / ref,
                         "cos_neighbours": (weight_metrics(W, a)["cosine"] + weight_metrics(W, b)["cosine"]) / 2,
                         "average_norm_ratio": float(avg.norm()) / ref,
                         "average_cos_neighbours": (weight_metrics(avg, a)["cosine"] + weight_metrics(avg, b)["cosine"]) / 2})
        out[short] = {k: statistics.median(r[k] for r in rows) for k in rows[0]} if rows else {}
    return out


def norm_source_study(model: Any, tokenizer: Any, grown: Any, plan: Plan, text: str,
                      input_ids: torch.Tensor, max_length: int = 256) -> dict:
    """Both norm sources on one grown model (its projections unchanged): the new layers' relative
    residual update (median over new layers; the original layers' median for scale) and the
    perplexity of ``text``; plus gain_summary and weight_comparison. Leaves ``grown`` with the norm
    source its plan had."""
    base = {"ppl": text_perplexity(model, tokenizer, text, max_length)["value"]}
    res = residual_effect(model, input_ids)
    base["rel_update_median"] = statistics.median(r["rel_update"] for r in res)
    variants = {}
    try:
        for ns in ("layer0", "neighbours"):
            set_norm_source(grown, model, plan, ns)
            res = residual_effect(grown, input_ids)
            new = set(plan.new_layers)
            variants[ns] = {
                "ppl": text_perplexity(grown, tokenizer, text, max_length)["value"],
                "new_rel_update_median": statistics.median(r["rel_update"] for r in res if r["layer"] in new),
                "orig_rel_update_median": statistics.median(r["rel_update"] for r in res if r["layer"] not in new)}
    finally:
        set_norm_source(grown, model, plan, plan.norm_source)
    return {"method": plan.method, "gains": gain_summary(model, plan),
            "weights": weight_comparison(model, grown, plan), "base": base, "norm_sources": variants}
