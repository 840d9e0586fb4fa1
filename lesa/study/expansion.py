"""Chapter 3 (growth before training): grow each of a profile's methods and variants and measure it.

    out = run_expansion(prof, seeds, proto, screen, extra_screen)
    out["res"][name][seed]     # screen and whole-protocol perplexities, benchmarks, residual stream, layer stats

Every costly value is cached (the grown weights by lesa.grow.expand, perplexities by lesa.eval.protocol, the
benchmarks and the residual stream here, keyed by the code of the two functions that compute them), so a rerun
only reads. Notebook 3 draws the result and writes the prose.
"""
from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any

import torch

from ..eval.protocol import PplProtocol, measure_cached
from ..eval.shared_prefix import SharedPrefix
from ..grow.expand import apply_plan
from ..grow.plans import build_plan
from ..grow.predictor import PredictorConfig
from . import norms as N
from .common import cached_by_code
from .growth import fixture_ids, new_layer_stats, quick_benchmarks, residual_effect
from .profiles import load_profile_model, profile_models

FULL = ("base", "lesa", "llama_pro", "solar")    # C3's models: also measured under the whole protocol
CODE = (quick_benchmarks, residual_effect)       # what computes a cached evaluation: its cache key is their code


def spec(name: str, variants: dict) -> tuple[str, dict, float | None]:
    """(method, plan options, predictor lambda or None for the default) of a grown model's name."""
    if name == "lesa-lambda0":
        return "lesa", {}, 0.0
    if name in variants:
        v = dict(variants[name])
        return v.pop("method"), v, None
    return name, {}, None


def grow_and_measure(model, tok, key, names, screen_proto, ids, deep, *, prof, seeds, proto):
    """name -> seed -> record. Every model is measured under `screen_proto` and its new layers' statistics
    are taken. A model whose logits equal the base model's on `ids` (an identity at initialisation) is not
    evaluated again: it gets the base model's numbers. `deep` (the profile's model): C3's models also under
    the whole protocol, and benchmarks and the residual stream of every model but the variants."""
    L = model.config.num_hidden_layers
    E = prof["expansion"]
    SEEDED = set(E["seeded"])                    # grown once per predictor seed; the rest with the first seed
    VARIANTS = {n: dict(v) for n, v in E["variants"].items()}
    # the quick benchmarks run in the protocol's precision too; an fp32 entry keeps the key it had before they did
    bench_prec = {} if proto.precision == "fp32" else {"precision": proto.precision}
    t0 = time.perf_counter()
    base = {"screen": measure_cached(model, tok, screen_proto, key, "base")}
    if deep:                                     # the whole protocol: the profile's model only (C3 is judged on it)
        base["ppl"] = measure_cached(model, tok, proto, key, "base")
    base["eval_s"] = round(time.perf_counter() - t0, 1)
    with torch.no_grad():
        base_logits = model(ids).logits
    if deep:
        base.update(cached_by_code("expansion_eval", {"model": key, "name": "base", "growth": None, **bench_prec,
                                                     "bench": [E["bench_tasks"], E["bench_limit"]], "tokens": E["residual_tokens"]},
                                  CODE, lambda: {"bench": quick_benchmarks(model, tok, E["bench_tasks"], E["bench_limit"],
                                                                     precision=proto.precision),
                                           "residual": residual_effect(model, ids)}))
    res, plans = {"base": {None: base}}, {}
    shared = SharedPrefix(model)                 # bottom layers shared with the base: computed once, bitwise the same
    for name in names:
        method, opts, lam = spec(name, VARIANTS)
        for s in (seeds if name in SEEDED else seeds[:1]):
            cfg = PredictorConfig(epochs=prof["predictor"]["epochs"], seed=s, device=prof["device"])
            cfg = cfg if lam is None else dataclasses.replace(cfg, lam=lam)
            plan = build_plan(method, L, **opts)
            t0 = time.perf_counter()
            grown = apply_plan(model, plan, cfg, copy_weights=False, progress=False, cache_key=key)
            rec = {"grow_s": round(time.perf_counter() - t0, 1), "cache": grown.lesa_report.get("cache"), "lambda": cfg.lam}
            with torch.no_grad():
                rec["identity"] = bool(torch.allclose(grown(ids).logits, base_logits, rtol=0, atol=1e-5))
            growth = grown.config.lesa_growth
            t0 = time.perf_counter()
            if rec["identity"]:
                rec["screen"] = base["screen"]
                if name in FULL and deep:
                    rec["ppl"] = base["ppl"]
            else:
                with shared.attach(grown):
                    rec["screen"] = measure_cached(grown, tok, screen_proto, key, name, growth)
                    if name in FULL and deep:
                        rec["ppl"] = measure_cached(grown, tok, proto, key, name, growth)
            rec["layer_stats"] = new_layer_stats(model, grown, plan)     # cheap: weights only
            if deep and name not in VARIANTS:
                # a seeded growth without a predictor (random init) records no seed in its growth metadata: the key
                # carries it, else every seed would read the first seed's entry
                seed = {"seed": s} if name in SEEDED and not growth.get("predictor") else {}
                rec.update(cached_by_code("expansion_eval", {"model": key, "name": name, "growth": growth, **seed, **bench_prec,
                                                            "bench": [E["bench_tasks"], E["bench_limit"]], "tokens": E["residual_tokens"]},
                                         CODE, lambda g=grown: {"bench": quick_benchmarks(g, tok, E["bench_tasks"], E["bench_limit"],
                                                                                    precision=proto.precision),
                                                          "residual": residual_effect(g, ids)}))
            rec["eval_s"] = round(time.perf_counter() - t0, 1)
            res.setdefault(name, {})[s if name in SEEDED else None] = rec
            plans[name] = plan.to_dict()
            del grown
            gc.collect()
    return res, plans


def run_expansion(prof: dict, seeds: list[int], proto: PplProtocol, screen: PplProtocol,
                  extra_screen: PplProtocol) -> dict[str, Any]:
    """Grow and measure the profile's model (the paper's methods and controls, the norm-term ablation, the
    variants), then the extra models (another family: C3's models and the controls, their own screen)."""
    E = prof["expansion"]
    VARIANTS = {n: dict(v) for n, v in E["variants"].items()}
    # ---- the profile's model: the paper's methods and controls, the norm-term ablation, the variants
    models = [m["name"] for m in profile_models(prof)]
    model, tok, model_key = load_profile_model(prof)
    ids = fixture_ids(tok, E["residual_tokens"])
    main_names = list(E["methods"]) + (["lesa-lambda0"] if "lesa" in E["methods"] else [])
    res, plans = grow_and_measure(model, tok, model_key, main_names + [v for v in VARIANTS if v not in main_names],
                                  screen, ids, deep=True, prof=prof, seeds=seeds,
                                  proto=proto)
    L = model.config.num_hidden_layers
    lesa_plan = build_plan("lesa", L)
    norm_study = {"gains": N.gain_summary(model, lesa_plan)}
    cfg0 = PredictorConfig(epochs=prof["predictor"]["epochs"], seed=seeds[0], device=prof["device"])
    nb = apply_plan(model, build_plan("lesa", L, norm_source="neighbours"), cfg0, copy_weights=False, progress=False,
                    cache_key=model_key)
    norm_study["neighbours_screen"] = measure_cached(nb, tok, screen, model_key, "lesa-neighbour-norms", nb.config.lesa_growth)
    del nb
    gc.collect()
    by_model = {models[0]: {"res": res, "screen": screen}}

    # ---- the extra models (another family): C3's models and the controls, under their own screening protocol
    for section in profile_models(prof)[1:]:
        del model
        gc.collect()
        model, xtok, xkey = load_profile_model(prof, model=section)
        xres, _ = grow_and_measure(model, xtok, xkey, list(E["extra_methods"]), extra_screen,
                                   fixture_ids(xtok, E["residual_tokens"]), deep=False, prof=prof,
                                   seeds=seeds, proto=proto)
        by_model[section["name"]] = {"res": xres, "screen": extra_screen}
    return {"res": res, "plans": plans, "norm_study": norm_study, "by_model": by_model, "model_key": model_key,
            "models": models}
