"""What a grown model's new layers offer training at step 0 (ours, beyond the paper).

Chapter 6 finds that LESA's predicted layers, with o_proj and down_proj zeroed, train slower than random
weights or a copy of the neighbour with the same start. With o/down at zero a new layer adds nothing to
the residual stream; the first gradients reach only o/down, and each is built from the features those
projections read: the attention output (o_proj's input) and act(gate) * up (down_proj's input). So we
measure, before any training, per new layer:

- weights: each projection's Frobenius norm and effective rank relative to the nearest original layer
  below it, and their cosine (flattened);
- features on held-out tokens: the effective rank of o_proj's and down_proj's inputs, and their norm
  relative to the same features of that original layer;
- the first gradient: its L1 norm over the new layers' parameters. Adam's first update is lr * sign(g)
  (m / sqrt(v) = g / |g| at step 1), so to first order it lowers the loss by lr * sum |g|.

Effective rank: exp of the entropy of the normalised singular values (Roy & Vetterli, 2007); a matrix
whose energy sits in a few directions has a small one. ``python -m lesa.study.diagnose --profile cpu-long``
writes results/<profile>/beyond/init_diagnostics.json for the profile's CPT runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.arch import get_layers, get_submodule, spec_for
from ..train.freeze import new_layer_indices
from ..core.store import provenance, read_json, run_main, write_json
from ..core.layout import Results
from ..data.prepare import latest_corpus
from .profiles import load_profile

FEATURES = {"o": "attention output (o_proj's input)", "down": "act(gate) * up (down_proj's input)"}


def effective_rank(m: torch.Tensor) -> float:
    """exp(entropy of sigma / sum(sigma)) of a 2-D tensor: 1 for rank one, min(shape) for a flat spectrum."""
    m = m.detach().double()
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T     # the smaller side: its eigenvalues are sigma^2
    s = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()           # several times faster than an SVD
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _reference(i: int, new: set[int], n: int) -> int:
    """The nearest original layer below new layer i (above it when none is below)."""
    below = [j for j in range(i - 1, -1, -1) if j not in new]
    return below[0] if below else next(j for j in range(i + 1, n) if j not in new)


def diagnose(model: Any, tokens: torch.Tensor, feature_tokens: int = 512) -> dict:
    """The module docstring's measurements on one grown model (lesa_growth in its config) and a batch of
    token ids [batch, seq]; medians over the new layers per projection/feature, and the gradient's L1 norm
    (on every token; the features' effective rank on ``feature_tokens`` of them). Leaves the model in eval mode
    with only the new layers' parameters requiring grad, as frozen CPT would train it."""
    spec = spec_for(model.config)
    layers = get_layers(model)
    new = new_layer_indices(model)
    ref = {i: _reference(i, set(new), len(layers)) for i in new}
    weights: dict[str, dict[str, list[float]]] = {}
    for short, path in spec.projections.items():
        rows = weights.setdefault(short, {"norm_ratio": [], "erank_ratio": [], "cosine": []})
        ref_erank = {j: effective_rank(get_submodule(layers[j], path).weight) for j in set(ref.values())}
        for i in new:
            w, w0 = get_submodule(layers[i], path).weight.detach(), get_submodule(layers[ref[i]], path).weight.detach()
            n0 = float(w0.norm())
            rows["norm_ratio"].append(float(w.norm()) / n0)
            rows["cosine"].append(float((w * w0).sum()) / max(float(w.norm()) * n0, 1e-30))
            rows["erank_ratio"].append(effective_rank(w) / ref_erank[ref[i]] if float(w.norm()) > 0 else 0.0)

    # the inputs of o_proj and down_proj in every layer, on the batch
    feats: dict[tuple[str, int], torch.Tensor] = {}
    # the effective rank of a [tokens, width] feature matrix costs an eigendecomposition of the smaller side:
    # every layer's features are read at the same `feature_tokens` positions (spread evenly), so ratios compare alike
    n_tok = tokens.numel()
    positions = torch.linspace(0, n_tok - 1, min(feature_tokens, n_tok)).long()
    hooks = []
    for short in FEATURES:
        for i in set(new) | set(ref.values()):
            mod = get_submodule(layers[i], spec.projections[short])
            hooks.append(mod.register_forward_pre_hook(
                lambda _m, args, key=(short, i): feats.__setitem__(key, args[0].detach().reshape(-1, args[0].shape[-1])[positions])))
    model.eval()
    kind = {id(p): short for i in new for short, path in spec.projections.items()
            for p in get_submodule(layers[i], path).parameters()}         # parameter -> projection (norms: none)
    params = [p for i in new for p in layers[i].parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    try:
        loss = model(input_ids=tokens, labels=tokens).loss
        grads = torch.autograd.grad(loss, params)
    finally:
        for h in hooks:
            h.remove()
    features = {}
    for short in FEATURES:
        er = {i: effective_rank(x) for (k, i), x in feats.items() if k == short}       # once per layer
        nr = [float(feats[(short, i)].norm()) / float(feats[(short, ref[i])].norm()) for i in new]
        features[short] = {"erank_ratio": float(np.median([er[i] / er[ref[i]] for i in new])),
                           "norm_ratio": float(np.median(nr)), "erank": float(np.median([er[i] for i in new]))}
    return {"new_layers": new, "reference_layers": [ref[i] for i in new], "loss": float(loss.detach()),
            "weights": {k: {m: float(np.median(v)) for m, v in per.items()} for k, per in weights.items()},
            "features": features, "grad_l1": float(sum(g.abs().sum() for g in grads)),
            "grad_l1_by_type": {short: float(sum(g.abs().sum() for p, g in zip(params, grads) if kind.get(id(p)) == short))
                                for short in spec.projections},
            "tokens": list(tokens.shape)}


def diagnose_profile(profile: str, names: list[str] | None = None, per_source: int = 1) -> dict:
    """diagnose() on the grown model of each CPT run of ``profile`` that grows new layers (the base model
    and SOLAR's stacked copies are left out; unfrozen ablations start as their frozen run does), on the
    held-out sequences of the CPT corpus (the first ``per_source`` of each source). Written to results/<profile>/beyond/."""
    from .cpt import _grower, run_names, start_seeds
    from ..train.components import heldout_sets

    prof = load_profile(profile)
    runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants"))
    # every grown start once: a run that repeats another on a new data order starts from the same weights
    names = names or [n for n, r in runs.items() if r["method"] not in ("base", "solar") and not r["ablation"]
                      and not (r["replicate"] and r["predictor_seed"] is None)]
    bad = sorted(set(names) - set(runs))
    if bad:
        raise ValueError(f"no such CPT run in profile {prof['name']!r}: {bad}; its runs: {list(runs)}")
    seq_len = prof["cpt"]["train"].get("seq_len", 256)
    # the trainer's monitoring set, the same number of sequences from each source
    held = heldout_sets(latest_corpus(fast=True if prof["name"] == "smoke" else None) / "heldout", per_source, seq_len)
    tokens = torch.as_tensor(np.concatenate(list(held.values())).astype(np.int64))
    seeds = start_seeds(prof, runs, names)      # none for the methods that predict nothing (built with 0, ignored)
    out = {"profile": prof["name"], "runs": {}}
    for n in names:
        r, seed = runs[n], seeds[n]
        print(f"[diagnose] {n}: growing ({r['method']}, predictor seed {seed}) ...", flush=True)
        model = _grower(prof, r["method"], seed or 0, r["options"])()
        out["runs"][n] = {"method": r["method"], "options": r["options"], "predictor_seed": seed,
                          **diagnose(model, tokens)}
        del model
    out["provenance"] = provenance()
    return save_diagnostics(Results(prof["name"]).beyond("init_diagnostics.json"), out)


def save_diagnostics(path: Path, out: dict) -> dict:
    """Write ``out`` over the runs it measured and keep the other runs already in ``path`` (an ``--only`` run
    adds to the file, it does not replace it); each run keeps the provenance of the call that measured it."""
    old = read_json(path) if path.exists() else {"runs": {}}
    for r in out["runs"].values():
        r.setdefault("provenance", out["provenance"])
    for r in old["runs"].values():
        r.setdefault("provenance", old.get("provenance"))
    merged = {**out, "runs": {**old["runs"], **out["runs"]}}
    write_json(path, merged)
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.study.diagnose", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--only", nargs="+", default=None, metavar="RUN", help="these CPT runs (default: every grown one)")
    ap.add_argument("--per-source", type=int, default=1, help="held-out sequences per source the features and gradient use")
    args = ap.parse_args(argv)
    out = diagnose_profile(args.profile, args.only, args.per_source)
    for n, d in out["runs"].items():
        print(f"{n:24s} loss {d['loss']:.3f}  grad L1 {d['grad_l1']:.3g}  features erank ratio "
              + "  ".join(f"{k} {v['erank_ratio']:.2f}" for k, v in d["features"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
