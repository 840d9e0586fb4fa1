"""The scale ladder (ours): the claims that need no training, measured the same way on every model of a
profile's ``scale`` section (SmolLM2-135M, Gemma-3-270M, Qwen2.5-Coder-0.5B and -1.5B in `configs/scale.yaml`),
so that a reader can see whether LESA's premise strengthens with size.

Per model, four parts, each written to results/<profile>/scale/<model>.json as soon as it is measured (an
interrupted run resumes at the next missing item; an item whose inputs or code changed is measured again):

    c1         continuity of every weight type (C1) with its controls (shuffled layer order, a Gaussian draw),
               for the concatenated-SVD rows (the paper's quantity), per-layer SVDs and the raw weights
    predictor  per predictor seed: in-sample fit of every type (C7a), leave-one-layer-out R^2 and cosine against
               the trivial predictors (C7b), training seconds (C8)
    init       per method and predictor seed: perplexity before training under the profile's scale protocol
               (C3, C9; w/o SVD: C12a's start; lambda = 0 and the paper's 5e-5: C12c), with each stage's seconds
               and the peak memory
    code       the same grown models on the code set (the coder models only; C11 before training, ours)

    python -m lesa.study.scale --profile scale --list                 # what is measured, what is missing
    python -m lesa.study.scale --profile scale --model qwen2.5-coder-0.5b --parts c1 predictor init code
    python -m lesa.study.scale --profile scale --model smollm2-135m+requant     # the quantisation control
    python -m lesa.study.scale --profile scale --model qwen2.5-coder-1.5b --parts predictor --seeds 2   # one seed
    python -m lesa.study.scale --profile scale --model qwen2.5-coder-1.5b --parts c1 --types gate        # one type
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import analysis as A
from .common import forget_factors, stack_weights
from .growth import new_layer_stats
from .predictor import predictor_study
from ..core.arch import PROJECTIONS, check_model, get_layers
from ..grow.expand import apply_plan
from ..grow.plans import BUILDERS, build_plan
from ..grow.predictor import PredictorConfig
from .profiles import TINY_MODELS, ProfileError, load_profile, load_profile_model
from .results import load_cpt_runs
from ..eval.protocol import PplProtocol, measure_cached
from ..claims.paper import and_list, fmt
from ..core.ledger import headline_value, load_results, results_path
from ..core.models import check_memory, load_config, model_label, resolve, weights_key
from ..grow.quantise import requantise
from ..core.store import peak_rss_gib, provenance, read_json, run_main, stable_hash, write_json
from ..claims.rules import judge_c12c
from ..core.arch import spec_for
from ..core.layout import Results

PARTS = ("c1", "predictor", "init", "code")
REQUANT = "+requant"          # suffix of a ladder model quantised once more (lesa.grow.quantise): the quantisation control
REPRESENTATIONS = ("concat_svd_top1", "raw_weights", "per_layer_svd_top1")


# ---------------------------------------------------------------------------------------------- settings
def settings(prof: dict) -> dict:
    """The profile's scale section, checked: every model is one of the profile's models, every method a plan
    method (or a lambda variant of one), every seeded method among the methods."""
    S = prof.get("scale")
    if not isinstance(S, dict):
        raise ProfileError(f"profile {prof['name']!r} has no `scale` section; run the scale profile: --profile scale")
    known = {m["name"] for m in [prof["model"], *prof.get("extra_models", [])]}
    missing = [m for m in S["models"] + (S.get("quantisation") or {}).get("models", []) if m not in known]
    if missing:
        raise ProfileError(f"scale.models {missing} are not the profile's model or extra_models ({sorted(known)})")
    bad = [n for n, m in S["methods"].items() if m.get("method", n) not in BUILDERS]
    bad += [n for n in S["seeded"] if n not in S["methods"]]
    if bad:
        raise ProfileError(f"scale.methods/seeded name unknown methods {bad}; plan methods: {sorted(BUILDERS)}")
    return S


def protocol(S: dict, sets: tuple[str, ...] | None = None) -> PplProtocol:
    p = S["protocol"]
    return PplProtocol(sets=tuple(sets or p["sets"]), limits=dict(p.get("limits") or {}), max_length=p["max_length"],
                       precision=p.get("precision", "fp32"), batch_size=p.get("batch_size", 1))


# ---------------------------------------------------------------------------------------------- the ledger
class Ledger:
    """One model's results file: items keyed by part and name, each with the hash of what it was computed
    from; ``get`` returns a stored item only when that hash matches, ``put`` rewrites the file atomically."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.data = read_json(path) if path.exists() else {}
        self.data.update(header)

    def get(self, part: str, name: str, key: Any) -> dict | None:
        item = self.data.get(part, {}).get(name)
        return item if item and item.get("key") == stable_hash(key) else None

    def put(self, part: str, name: str, key: Any, value: dict) -> dict:
        item = {**value, "key": stable_hash(key)}
        self.data.setdefault(part, {})[name] = item
        self.data["provenance"] = provenance()
        write_json(self.path, self.data)
        return item


def timed(fn: Callable[[], dict]) -> dict:
    """fn()'s record with its wall-clock seconds and the peak memory so far (this process, largest child)."""
    t0 = time.perf_counter()
    out = fn()
    return {**out, "seconds": round(time.perf_counter() - t0, 1), "peak_gib": peak_rss_gib()}


# ---------------------------------------------------------------------------------------------- the parts
def c1_summary(ev: dict) -> dict:
    """lesa.study.analysis.svd_evidence of one weight type reduced to its continuity tests (no spectra, embeddings
    or samples): {representation: {gap, nn_adjacent, shows_continuity}, num_layers}."""
    keep = ("observed", "shuffled_q95", "p_shuffled", "gaussian_max")
    (r,) = ev["weight_types"].values()
    return {"num_layers": ev["num_layers"],
            **{rep: {"gap": {k: r["tests"][rep]["gap"][k] for k in keep},
                     "nn_adjacent": {k: r["tests"][rep]["nn_adjacent"][k] for k in keep},
                     "shows_continuity": r["tests"][rep]["shows_continuity"]} for rep in REPRESENTATIONS}}


def c1_types(record: dict) -> dict[str, dict]:
    """weight type -> its C1 item (c1_summary) of a ladder model's results record."""
    return {t: v for t, v in (record.get("c1") or {}).items() if isinstance(v, dict) and "concat_svd_top1" in v}


def predictor_summary(st: dict) -> dict:
    """lesa.study.analysis.predictor_study reduced to what the scale chapter plots: in-sample fit per type, and
    per left-out layer the predictor's and the trivial predictors' R^2 and cosine."""
    return {"full": {t: {"in_sample": r["in_sample"], "seconds": r["seconds"],
                         "final_loss_over_mean_sq": r["final_loss_over_mean_sq"],
                         "inference_norm_ratio": r["inference_norm_ratio"]} for t, r in st["full"].items()},
            "loo": {t: [{"layer": r["layer"], "test_over_train": r["test_over_train"],
                         "metrics": {k: {"r2": m["r2"], "cosine": m["cosine"]} for k, m in r["metrics"].items()}}
                        for r in rows] for t, rows in st["loo"].items()}}


C1_MEMORY_FACTOR = 11      # svd_evidence's peak for one weight type, in units of that type's float32 stack: the
                           # concatenated SVD through the float64 Gram (about 8: a float64 copy, U^T W and its
                           # division by S), the stack itself, a Gaussian twin and the kept top rows; per-layer SVDs
                           # and raw-weight cosines are computed layer by layer / in chunks (lesa.study.analysis)


def c1_memory_gib(shapes: dict[str, tuple[int, ...]]) -> float:
    """Free memory (GiB) the C1 part needs for its largest weight type, from the stacks' shapes
    (type -> (L, d_out, d_in)); the model's weights are not held meanwhile (c1_stacks)."""
    return C1_MEMORY_FACTOR * max(int(np.prod(s)) for s in shapes.values()) * 4 / 2**30


PREDICTOR_MEMORY_FACTOR = 10.5   # the predictor study's peak for one weight type beyond the loaded model, in units
                                 # of that type's float32 stack, as measured: Qwen2.5-Coder-1.5B's up type (a 1.43
                                 # GiB stack) held 20.75 GiB with the 5.75 GiB model (one thread, AMD EPYC host) when
                                 # the kernel stopped it beside an evaluation, so at least that: the stack, its
                                 # factorisation and the predictor's float32 training pairs with their copies. Alone,
                                 # the same model peaked at 20.3 GiB in one thread and 22.1 GiB in two (factor 10.2
                                 # and 11.4): a bound for one thread, the documented way to run it


def predictor_memory_gib(model: Any, weight_types: list[str]) -> float:
    """Free memory (GiB) the predictor part needs beyond the loaded model, for its largest weight type, from
    the first layer's weight shapes (no stack is built to find out)."""
    spec = check_model(model)
    first = get_layers(model, spec)[0]
    sizes = [first.get_submodule(spec.projections[t]).weight.numel() for t in weight_types]
    return PREDICTOR_MEMORY_FACTOR * max(sizes) * model.config.num_hidden_layers * 4 / 2**30


def c1_stacks(name: str, weight_types: list[str], model: Any = None):
    """(type -> shape, type -> stack loader) for the C1 part. A model in memory (a tiny one, a quantisation
    control) is read as it is; a converted real model is read type by type from its safetensors file, so a
    1.5B model's weights (6 GiB) are not held beside the factorisations."""
    if model is not None:
        stacks = {t: (lambda t=t: stack_weights(model, t)) for t in weight_types}
        return {t: tuple(stack_weights(model, t).shape) for t in weight_types}, stacks
    from safetensors import safe_open

    cfg = load_config(name)
    folder = Path(resolve(name))
    spec = spec_for(cfg)
    files = sorted(folder.glob("*.safetensors"))
    where = {}
    for f in files:
        with safe_open(str(f), "pt") as h:
            where.update({k: (f, h.get_slice(k).get_shape()) for k in h.keys()})
    names = {t: [f"{spec.layers_path}.{i}.{spec.projections[t]}.weight" for i in range(cfg.num_hidden_layers)]
             for t in weight_types}
    missing = [n for ns in names.values() for n in ns if n not in where]
    if missing:
        raise ProfileError(f"{folder} lacks weights the C1 part reads ({missing[:3]} ...): convert the model again "
                           f"(`lesa model {name}`)")

    def load(t: str) -> torch.Tensor:
        out = []
        for n in names[t]:
            with safe_open(str(where[n][0]), "pt") as h:
                out.append(h.get_tensor(n).float())
        return torch.stack(out)
    shapes = {t: (cfg.num_hidden_layers, *where[names[t][0]][1]) for t in weight_types}
    return shapes, {t: (lambda t=t: load(t)) for t in weight_types}


def run_c1(led: "Ledger", name: str, key: str, C1: dict, model: Any = None, log: Callable[[str], None] = print) -> None:
    """C1 on every weight type of the profile, one ledger item per type (resumable type by type)."""
    conf = {k: v for k, v in C1.items() if k != "weight_types"}
    todo = [t for t in C1["weight_types"] if not led.get("c1", t, {"model": key, "c1": conf, "type": t})]
    if not todo:
        return
    shapes, stacks = c1_stacks(name, todo, model)
    check_memory(name, c1_memory_gib(shapes), "the C1 part (lesa.study.analysis.svd_evidence)")
    for t in todo:
        log(f"[scale] {name}: C1 continuity, {t} {shapes[t]} ({C1['n_shuffles']} shuffles)")
        led.put("c1", t, {"model": key, "c1": conf, "type": t}, timed(lambda t=t: c1_summary(A.svd_evidence(
            None, [t], C1["n_shuffles"], C1["n_gaussian"], C1.get("tsne_perplexity", 8.0), 0, stack=lambda _: stacks[t]()))))
        gc.collect()


def split_c1_all(led: "Ledger", key: str, C1: dict) -> None:
    """Results written before C1 was measured type by type kept one item, 'all', for every type (each type's
    numbers never depended on the others'): split it into per-type items under the per-type keys."""
    old = (led.data.get("c1") or {}).get("all")
    if not old or old.get("key") != stable_hash({"model": key, "c1": C1}):
        return
    conf = {k: v for k, v in C1.items() if k != "weight_types"}
    for t, rec in old["types"].items():
        led.data["c1"][t] = {"num_layers": old["num_layers"], **rec, "seconds": None, "peak_gib": old.get("peak_gib"),
                             "measured_with": f"all {len(old['types'])} types in one call ({old.get('seconds')} s)",
                             "key": stable_hash({"model": key, "c1": conf, "type": t})}
    del led.data["c1"]["all"]
    write_json(led.path, led.data)


def predictor_types(P: dict) -> list[str]:
    """The weight types the predictor part touches (its full-fit and leave-one-out types), in layer order."""
    return sorted(set(P["weight_types"]) | set(P["loo_weight_types"]), key=list(PROJECTIONS).index)


def predictor_by_type(model: Any, cfg: PredictorConfig, P: dict, key: str) -> dict:
    """predictor_study on P's weight types one type at a time, dropping each type's factorisation before the
    next (common.forget_factors): held together, a 1.5B model's seven factorisations reach a 19 GiB peak, which
    a training run beside it on a 24 GiB machine cannot afford. The same cached units (their keys name the
    type, never the others), so the same result as one call over every type."""
    out: dict = {}
    for t in predictor_types(P):
        part = predictor_study(model, cfg, [t] if t in P["weight_types"] else [],
                               [t] if t in P["loo_weight_types"] else [], P["loo_layers"], [], [], key)
        forget_factors(model)
        for k, v in part.items():
            if isinstance(v, dict) and k != "config":
                out.setdefault(k, {}).update(v)
            else:
                out[k] = v
    return out


def grown_models(S: dict, L: int) -> list[tuple[str, int | None, Any, PredictorConfig]]:
    """(name, predictor seed or None, plan, predictor config) of every grown model the init part measures."""
    out = []
    for name, m in S["methods"].items():
        opts = {k: v for k, v in m.items() if k not in ("method", "lam")}
        plan = build_plan(m.get("method", name), L, **opts)
        for seed in (S["seeds"] if name in S["seeded"] else [None]):
            cfg = PredictorConfig(epochs=S["predictor"]["epochs"], seed=seed or 0)
            if "lam" in m:
                cfg = dataclasses.replace(cfg, lam=float(m["lam"]))
            out.append((name, seed, plan, cfg))
    return out


def _known(option: str, asked: tuple[str, ...], known, where: str) -> None:
    """A clear error, before any work, when a command-line selection names something the profile does not have."""
    bad = sorted(set(asked) - set(known))
    if bad:
        raise ProfileError(f"{option} {bad} are not in {where} {list(known)}")


def run_model(prof: dict, name: str, parts: tuple[str, ...] = PARTS, log: Callable[[str], None] = print,
              root: Path | None = None, methods: tuple[str, ...] | None = None,
              types: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None) -> dict:
    """Measure every missing item of ``parts`` for one model; returns the model's results record.
    ``methods`` (names of scale.methods) limits the init and code parts to those grown models, and ``types``
    (of scale.c1.weight_types) the C1 part to those weight types, so that a long rung can measure what matters
    first (gate: the type the chapter plots), and ``seeds`` (of scale.seeds) the predictor study and the seeded
    grown models to those predictor seeds; the others stay missing for a later run."""
    S = settings(prof)
    if types is not None:
        _known("--types", types, S["c1"]["weight_types"], "scale.c1.weight_types")
        S = {**S, "c1": {**S["c1"], "weight_types": list(types)}}     # in the order asked for
    if seeds is not None:
        _known("--seeds", seeds, S["seeds"], "scale.seeds")
        S = {**S, "seeds": list(seeds)}
    if methods is not None:
        _known("--methods", methods, S["methods"], "scale.methods")
        S = {**S, "methods": {k: v for k, v in S["methods"].items() if k in methods}}
    if name not in all_models(S):
        raise ProfileError(f"{name!r} is not in scale.models {S['models']} nor a quantisation control "
                           f"({[m + REQUANT for m in (S.get('quantisation') or {}).get('models', [])]})")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose from {PARTS}")
    C1, P = S["c1"], S["predictor"]
    model = tok = None
    on_disk = "c1" in parts and name not in TINY_MODELS and not name.endswith(REQUANT)
    if on_disk:             # a converted real model: C1 reads its weights type by type, before the model is loaded
        key = weights_key(name)
        led = Ledger(results_path(prof["name"], name, root), {"model": name, "model_key": key,
                                                                "layers": load_config(name).num_hidden_layers})
    else:
        model, tok, key, led = _load(prof, name, root)
    if "c1" in parts:
        split_c1_all(led, key, C1)
        run_c1(led, name, key, C1, model, log)
        if set(parts) == {"c1"}:
            return led.data
    if on_disk:
        model, tok, key, led = _load(prof, name, root)
    if "predictor" in parts:
        cfgs = {seed: PredictorConfig(epochs=P["epochs"], seed=seed) for seed in S["seeds"]}
        keys = {seed: {"model": key, "predictor": P, "cfg": c.to_dict()} for seed, c in cfgs.items()}
        todo = [seed for seed in S["seeds"] if not led.get("predictor", str(seed), keys[seed])]
        if todo:            # before an hour of work, not at its largest type (a 1.5B model's needs ~15 GiB more)
            check_memory(name, predictor_memory_gib(model, predictor_types(P)),
                         "the predictor part (lesa.study.predictor.predictor_study)")
        for seed in todo:
            log(f"[scale] {name}: predictor study, seed {seed}")
            led.put("predictor", str(seed), keys[seed], timed(lambda cfg=cfgs[seed]: predictor_summary(
                predictor_by_type(model, cfg, P, key))))
    code = "code" in parts and name in (S.get("code") or {}).get("models", [])
    if "init" in parts or code:
        _init_and_code(S, model, tok, key, led, "init" in parts, code, log)
    return led.data


def _load(prof: dict, name: str, root: Path | None) -> tuple[Any, Any, str, Ledger]:
    """(model, tokenizer, weights key, results ledger) of one ladder model; a quantisation control is the model
    quantised once more, keyed by what that changed."""
    t0 = time.perf_counter()
    model, tok, key = load_profile_model(prof, model=name.removesuffix(REQUANT))
    header = {}
    if name.endswith(REQUANT):                      # the control: the same model quantised once more
        model, header["requantised"] = requantise(model, name.removesuffix(REQUANT))
        key = f"{key}{REQUANT}-{stable_hash(header['requantised'], 8)}"
    led = Ledger(results_path(prof["name"], name, root), {
        **header, "model": name, "model_key": key, "layers": model.config.num_hidden_layers,
        "load_s": round(time.perf_counter() - t0, 1), "parameters": sum(p.numel() for p in model.parameters()),
        "non_embedding_parameters": sum(p.numel() for n, p in model.named_parameters() if "embed" not in n
                                        and "lm_head" not in n)})
    return model, tok, key, led


def _init_and_code(S: dict, model: Any, tok: Any, key: str, led: Ledger, init: bool, code: bool, log) -> None:
    """Grow each model of the init part once and measure it on what is missing: the scale protocol (init)
    and, for the coder models, the code set. A growth that leaves the logits exactly equal to the base
    model's (LLaMA Pro's identity) takes the base model's numbers."""
    proto = protocol(S)
    code_proto = protocol(S, ("code",)) if code else None
    if code_proto:
        code_proto = dataclasses.replace(code_proto, limits={"code": S["code"].get("files")})
    ids = torch.arange(100, 164).unsqueeze(0)                    # 64 tokens for the identity check
    with torch.no_grad():
        base_logits = model(ids).logits

    def measure(m, p, label, growth=None):
        r = measure_cached(m, tok, p, key, label, growth)
        return {s: {k: v for k, v in rec.items() if k in ("value", "primary_metric", "n_tokens", "limit", "status",
                                                           "seconds", "precision", "n_words")} for s, rec in r.items()}

    jobs = [("init", proto, init), ("code", code_proto, code)]
    base = {}
    for part, p, on in jobs:
        if on:
            k = {"model": key, "protocol": p.key(), "name": "base"}
            base[part] = led.get(part, "base", k) or led.put(part, "base", k, timed(lambda p=p: {"ppl": measure(model, p, "base")}))
    for gname, seed, plan, cfg in grown_models(S, model.config.num_hidden_layers):
        label = gname if seed is None else f"{gname}-p{seed}"
        todo = [(part, p, {"model": key, "protocol": p.key(), "plan": plan.to_dict(), "predictor": cfg.to_dict()})
                for part, p, on in jobs if on and (part == "init" or gname in S["code"].get("methods", []))]
        # items measured before the new layers' norms were recorded get them from a growth (cached on disk)
        norms_missing = [(part, p, k) for part, p, k in todo if (it := led.get(part, label, k)) and "norm_ratio" not in it]
        todo = [(part, p, k) for part, p, k in todo if not led.get(part, label, k)]
        if not todo and not norms_missing:
            continue
        log(f"[scale] growing {label} ({plan.source_layers} -> {plan.target_layers} layers)")
        t0 = time.perf_counter()
        grown = apply_plan(model, plan, cfg, copy_weights=False, progress=False, cache_key=key)
        grow = {"grow_s": round(time.perf_counter() - t0, 1), "peak_gib_after_growth": peak_rss_gib(),
                **{k: grown.lesa_report.get(k) for k in ("svd_seconds", "predictor_seconds", "predictor_workers", "cache")}}
        norm = norm_ratio(model, grown, plan)
        for part, p, k in norms_missing:
            led.put(part, label, k, {**led.get(part, label, k), "norm_ratio": norm})
        with torch.no_grad():
            identity = bool(torch.equal(grown(ids).logits, base_logits)) if todo else False
        for part, p, k in todo:
            rec = (({"ppl": base[part]["ppl"], "seconds": 0.0}) if identity else
                   timed(lambda p=p, g=grown: {"ppl": measure(g, p, label, g.config.lesa_growth)}))
            led.put(part, label, k, {**rec, "identity": identity, "method": gname, "seed": seed,
                                     "layers": plan.target_layers, "growth": grow, "norm_ratio": norm})
        del grown
        gc.collect()


def norm_ratio(model: Any, grown: Any, plan) -> float:
    """Mean over new layers and weight types of ||W_new|| / mean ||W_source||: C12c's shrinkage measure (chapter 3's)."""
    return float(np.mean([r["norm_ratio"] for r in new_layer_stats(model, grown, plan)]))


# ---------------------------------------------------------------------------------------------- reading
def ladder(results: dict[str, dict], S: dict) -> list[dict]:
    """One row per model, in parameter order: the quantities the scale chapter plots, each over the predictor
    seeds as (median, min, max): C1's adjacent-minus-distant gap minus its shuffled 95th percentile (gate,
    the paper's type) and the number of types that show continuity (SVD rows and raw weights), C7b's held-out
    R^2 and cosine (gate), and each grown model's perplexity before training relative to the base model's."""
    rows = []
    for name, r in sorted(results.items(), key=lambda kv: (kv[1].get("parameters", 0), kv[0])):
        row: dict = {"model": name, "parameters": r.get("parameters"), "layers": r.get("layers"),
                     "quantisation_control": name.endswith(REQUANT)}
        c1 = c1_types(r)
        if c1:
            g = c1.get("gate", {}).get("concat_svd_top1")
            row["c1_gate_margin"] = g["gap"]["observed"] - g["gap"]["shuffled_q95"] if g else None
            for rep in ("concat_svd_top1", "raw_weights"):
                row[f"c1_types_{rep}"] = sum(t[rep]["shows_continuity"] for t in c1.values())
            row["c1_types"] = len(c1)
        pred = r.get("predictor") or {}
        if pred:
            def loo(metric, who="predictor"):
                vals = [float(np.mean([x["metrics"][who][metric] for rows_ in p["loo"].values() for x in rows_]))
                        for p in pred.values() if p.get("loo")]
                return spread(vals)
            row["c7b_r2"], row["c7b_cosine"] = loo("r2"), loo("cosine")
            row["c7b_r2_neighbour_average"] = loo("r2", "neighbour_average")
            row["c7a_in_sample_r2"] = spread([float(np.mean([t["in_sample"]["r2"] for t in p["full"].values()]))
                                              for p in pred.values()])
            row["c8_seconds"] = spread([sum(t["seconds"] for t in p["full"].values()) for p in pred.values()])
        for part in ("init", "code"):
            items = r.get(part) or {}
            b = headline_value(items.get("base"), "wikitext" if part == "init" else "code")
            if b is None:
                continue
            row[f"{part}_base"] = b
            for m in S["methods"]:
                vals = [headline_value(v, "wikitext" if part == "init" else "code") for k, v in items.items()
                        if v.get("method") == m]
                vals = [v / b for v in vals if v is not None]
                if vals:
                    row[f"{part}_{m}_rel"] = spread(vals)
                norms = [v["norm_ratio"] for v in items.values() if v.get("method") == m and "norm_ratio" in v]
                if part == "init" and norms:
                    row[f"norm_{m}"] = spread(norms)
        rows.append(row)
    return rows


def spread(vals: list[float]) -> dict | None:
    return {"median": float(np.median(vals)), "min": float(min(vals)), "max": float(max(vals)), "n": len(vals),
            "values": sorted(float(v) for v in vals)} if vals else None


def c12c_on_ladder(row: dict, lam: float) -> dict | None:
    """C12c's rule (lesa.claims.judge_c12c) on one ladder model, with lambda = ``lam`` as the norm term's
    weight: do the new layers shrink at lambda = 0, and does the norm term lower the perplexity before training
    (relative to the base model)? None until both variants are measured."""
    name = {5e-4: "lesa", 5e-5: "lesa-lambda5e-5"}[lam]
    need = ["norm_lesa-lambda0", f"norm_{name}", "init_lesa-lambda0_rel", f"init_{name}_rel"]
    if any(row.get(k) is None for k in need):
        return None
    v = judge_c12c({0.0: row["norm_lesa-lambda0"]["values"], lam: row[f"norm_{name}"]["values"]},
                   {0.0: row["init_lesa-lambda0_rel"]["values"], lam: row[f"init_{name}_rel"]["values"]},
                   "perplexity / base", lam_code=lam)
    return {"verdict": v.verdict, "notes": v.notes}


# ---------------------------------------------------------------------------------------------- the chapter
def model_name(name: str) -> str:
    """A ladder model's display name (a quantisation control: the model's, 'quantised once more')."""
    shown = model_label(name.removesuffix(REQUANT))
    return f"{shown}, quantised once more" if name.endswith(REQUANT) else shown


PAPER_SIZED = "qwen2.5-coder-1.5b"          # the ladder's model of the size the paper names (Qwen2.5-1.5B, 28 -> 42)


def beside_paper(rows: list[dict], model: str = PAPER_SIZED) -> str:
    """Our result at the paper's Qwen2.5-1.5B size beside its statement (C9: LESA's perplexity below SOLAR's at
    1.5x depth, read as before training), in words from the ladder row; says what is missing while it is."""
    r = next((r for r in rows if r["model"] == model), None)
    lesa, solar = (r or {}).get("init_lesa_rel"), (r or {}).get("init_solar_rel")
    if not (lesa and solar):
        return f"{model_label(model)} has no perplexity before training of both LESA and SOLAR yet."
    below, n = sum(v < solar["median"] for v in lesa["values"]), lesa["n"]
    where = ("below SOLAR on every seed" if below == n else "above SOLAR on every seed" if below == 0 else
             f"above SOLAR on {n - below} of {n} seeds")
    return (f"At the paper's Qwen2.5-1.5B size, on {model_label(model)} grown from {r['layers']} to "
            f"{r['layers'] * 3 // 2} layers, LESA's perplexity before training is {fmt(lesa['min'])} to "
            f"{fmt(lesa['max'])} times the base model's over {n} predictor seeds (median {fmt(lesa['median'])}), "
            f"SOLAR's {fmt(solar['median'])} times: LESA starts {where} ({below} of {n} below). The paper states that "
            "LESA's perplexity is below SOLAR's on Qwen2.5-1.5B (C9, read as before training; its values are not "
            "published), for the base model rather than a quantised coder-instruct checkpoint.")


def size_label(parameters: float) -> str:
    """A model's size as the chapter names it: 135M, 1.5B."""
    return f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.0f}M"


def _trend(values: list[float]) -> str:
    """How a quantity moves over the ladder's sizes, smallest first: a steady rise or fall, or neither."""
    if len(values) < 2 or len(set(values)) == 1:
        return "flat"
    pairs = list(zip(values, values[1:]))
    return "up" if all(b >= a for a, b in pairs) else "down" if all(b <= a for a, b in pairs) else "mixed"


def answer(rows: list[dict], n_models: int) -> list[str]:
    """What the ladder says, in two or three sentences from its rows (the quantisation control left out): the
    predictor's held-out fit (C7b), LESA's start against SOLAR (C9) and the gate weights' continuity margin (C1),
    each with how many of the ladder's ``n_models`` models it is measured on, so the sentences read true while a
    model is only partly measured."""
    rows = [r for r in rows if not r.get("quantisation_control")]
    med = lambda v: v["median"] if isinstance(v, dict) else v
    have = lambda k: [r for r in rows if r.get(k) is not None]
    on = lambda rs: f"measured on {len(rs)} of {n_models} models"
    out = []
    if rs := have("c7b_r2"):
        lo = min(r["c7b_r2"]["min"] if isinstance(r["c7b_r2"], dict) else r["c7b_r2"] for r in rs)
        hi = max(r["c7b_r2"]["max"] if isinstance(r["c7b_r2"], dict) else r["c7b_r2"] for r in rs)
        if hi < 0:
            out.append("The predictor that LESA's new layers come from does worse on a left-out gate layer than predicting "
                       f"zeros on every model and seed: its held-out R² lies between {fmt(lo)} and {fmt(hi)} ({on(rs)}, "
                       f"{size_label(rs[0]['parameters'])} to {size_label(rs[-1]['parameters'])}).")
        else:
            up = [size_label(r["parameters"]) for r in rs
                  if (r["c7b_r2"]["max"] if isinstance(r["c7b_r2"], dict) else r["c7b_r2"]) >= 0]
            out.append(f"The predictor's held-out R² on a left-out gate layer reaches {fmt(hi)}, above predicting zeros "
                       f"(R² = 0) at {and_list(up)} ({on(rs)}).")
    if both := [r for r in have("init_lesa_rel") if r.get("init_solar_rel")]:
        below = [sum(v < med(r["init_solar_rel"]) for v in r["init_lesa_rel"]["values"]) / r["init_lesa_rel"]["n"]
                 for r in both]
        how = {"flat": "the same at every size", "up": "more often the larger the model",
               "down": "less often the larger the model", "mixed": "with no steady trend in size"}[_trend(below)]
        out.append("Before training, LESA's perplexity is below SOLAR's on " + and_list(
            [f"{sum(v < med(r['init_solar_rel']) for v in r['init_lesa_rel']['values'])} of {r['init_lesa_rel']['n']}"
             f"{' predictor seeds' if i == 0 else ''} at {size_label(r['parameters'])}" for i, r in enumerate(both)])
            + f" ({on(both)}): {how}.")
    if rs := have("c1_gate_margin"):
        margins = [med(r["c1_gate_margin"]) for r in rs]
        what = ("continuity at every size measured" if min(margins) > 0 else "no continuity at any size measured"
                if max(margins) <= 0 else "continuity at some sizes only")
        how = {"up": ", stronger the larger the model", "down": ", weaker the larger the model"}.get(_trend(margins), "")
        out.append("The gate weights' continuity margin over the shuffled order (C1) is " + and_list(
            [f"{fmt(m)} at {size_label(r['parameters'])}" for m, r in zip(margins, rs)]) + f" ({on(rs)}): {what}{how}.")
    return out


def ladder_notes(rows: list[dict]) -> dict[str, str]:
    """claim -> one sentence of what the scale ladder (chapter 7) measured for it, from the rows (the quantisation
    control left out): what a reader of a not-reproduced verdict at 135M asks first, whether it changes with size."""
    rows = [r for r in rows if not r.get("quantisation_control")]
    med = lambda v: v["median"] if isinstance(v, dict) else v
    size = lambda r: f"{r['parameters'] / 1e9:.1f}B" if r["parameters"] >= 1e9 else f"{r['parameters'] / 1e6:.0f}M"
    have = lambda k: [r for r in rows if r.get(k) is not None]
    span = lambda k: f"{size(have(k)[0])} to {size(have(k)[-1])}"
    out = {}
    if len(rs := have("c1_gate_margin")) > 1:
        out["C1"] = ("On the scale ladder (chapter 7) the gate weights' continuity margin goes "
                     + ", ".join(f"{fmt(med(r['c1_gate_margin']))} ({size(r)})" for r in rs) + ".")
    if len(rs := have("c7b_r2")) > 1:
        worst = max(r["c7b_r2"]["max"] if isinstance(r["c7b_r2"], dict) else r["c7b_r2"] for r in rs)
        text = (f"On the scale ladder (chapter 7, {span('c7b_r2')}) the predictor's held-out R² on a left-out gate layer "
                + ("stays below 0 (predicting zeros) at every size and seed" if worst < 0 else f"reaches {fmt(worst)}")
                + f" (highest {fmt(worst)}).")
        out["C3"] = out["C7a"] = out["C7b"] = text
    both = [r for r in have("init_lesa_rel") if r.get("init_solar_rel")]
    if len(both) > 1:
        out["C9"] = ("On the scale ladder (chapter 7) LESA starts below SOLAR on " + ", ".join(
            f"{sum(v < med(r['init_solar_rel']) for v in r['init_lesa_rel']['values'])} of {r['init_lesa_rel']['n']} "
            f"seeds at {size(r)}" for r in both) + ".")
    judged = [(r, c) for r in rows if (c := c12c_on_ladder(r, 5e-5))]
    if judged:
        out["C12c"] = ("With the paper's λ = 5e-5 on the scale ladder (chapter 7), C12c's rule reads " + "; ".join(
            f"{c['verdict']} at {size(r)}" for r, c in judged) + ".")
    return out


def scale_profile_of(book_profile: str) -> str:
    """The profile whose ladder a book shows: the book's own when it has a scale section (smoke), else `scale`."""
    return book_profile if "scale" in load_profile(book_profile) else "scale"


def chapter(book_profile: str, root: Path | None = None) -> dict:
    """What the scale chapter shows: the ladder rows, the quantisation bound, what is measured and what is
    missing. A ladder of tiny random models (the smoke profile) is measured here first (a minute); a real one
    never is (hours: `python -m lesa.study.scale`), it is read as it stands."""
    prof = load_profile(scale_profile_of(book_profile))
    S = settings(prof)
    if all(m in TINY_MODELS for m in S["models"]):
        for name in all_models(S):
            run_model(prof, name, log=lambda s: None, root=root)
    rows = ladder(load_results(prof["name"], root), S)
    return {"profile": prof["name"], "settings": S, "protocol": protocol(S).sentence(), "status": status(prof, root),
            "rows": [r for r in rows if not r["quantisation_control"]], "bound": quantisation_bound(rows),
            "missing": [m for m in all_models(S) if m not in {r["model"] for r in rows}],
            "training": training_rung(root) if prof["name"] == "scale" else {"runs": {}, "rows": []}}


TRAINING_RUNG = "qwen05-cpt"        # the ladder's one training rung (configs/qwen05-cpt.yaml)


def training_rung(root: Path | None = None, profile: str = TRAINING_RUNG) -> dict:
    """The training rung's finished CPT runs (lesa.study.results.load_cpt_runs) and one row per run: its held-out
    loss at the start and at the end, the tokens, precision and training time as its summary records them."""
    runs = {n: r for n, r in load_cpt_runs(Results(profile, root).cpt()).items() if r["completed"]}
    rows = []
    for n, r in runs.items():
        ev, s = [e for e in r["eval"] if "heldout_loss" in e], r["summary"]
        rows.append({"run": n, "method": r["method"], "trains": r["trains"], "tokens": s.get("tokens"),
                     "steps": s.get("steps"), "precision": s.get("precision"),
                     "start": ev[0]["heldout_loss"] if ev and ev[0].get("step") == 0 else None,
                     "end": ev[-1]["heldout_loss"] if ev else None, "train_min": (s.get("elapsed_s") or 0) / 60,
                     # the highest held-out loss after the start and its step: a run that first gets worse
                     "peak": max(((e["heldout_loss"], e["step"]) for e in ev[1:]), default=None),
                     "predictor_seed": (s.get("run") or {}).get("predictor_seed") if r["method"] == "lesa" else None})
    return {"profile": profile, "runs": runs, "rows": rows, "order_spread": order_spread(root)}


def order_spread(root: Path | None = None, profile: str = "cpu-long", method: str = "llama_pro") -> dict | None:
    """The run-to-run noise the training rung cannot measure (one run per method), as the book's longer profile
    measured it: ``method``'s final held-out loss over its data orders (the spread, max - min, in nats), or None."""
    ends = [r["eval"][-1]["heldout_loss"] for r in load_cpt_runs(Results(profile, root).cpt()).values()
            if r["method"] == method and r["frozen"] and r["completed"] and r["eval"]]
    return {"profile": profile, "n": len(ends), "spread": max(ends) - min(ends)} if len(ends) > 1 else None


# ---------------------------------------------------------------------------------------------- CLI
def all_models(S: dict) -> list[str]:
    """The ladder's models, then their quantisation controls."""
    return S["models"] + [m + REQUANT for m in (S.get("quantisation") or {}).get("models", [])]


def quantisation_bound(rows: list[dict]) -> dict[str, dict]:
    """model -> {quantity: the control's value - the model's} for each ladder quantity both have (medians
    over seeds): how far one more round of quantisation moves it."""
    by = {r["model"]: r for r in rows}
    med = lambda v: v["median"] if isinstance(v, dict) else v
    out = {}
    for name, r in by.items():
        base = by.get(name.removesuffix(REQUANT)) if name.endswith(REQUANT) else None
        if base:
            out[base["model"]] = {k: med(v) - med(base[k]) for k, v in r.items()
                                  if k not in ("model", "parameters", "layers", "quantisation_control") and v is not None
                                  and base.get(k) is not None and not isinstance(v, str)}
    return out


def planned(S: dict, name: str) -> dict[str, int]:
    """Items each part measures for model ``name``: the base model and every grown model (init, code)."""
    grown = [(g, seed) for g in S["methods"] for seed in (S["seeds"] if g in S["seeded"] else [None])]
    code = name in (S.get("code") or {}).get("models", [])
    return {"c1": len(S["c1"]["weight_types"]), "predictor": len(S["seeds"]), "init": 1 + len(grown),
            "code": (1 + sum(g in S["code"].get("methods", []) for g, _ in grown)) if code else 0}


def status(prof: dict, root: Path | None = None) -> list[str]:
    """One line per model: items measured / items planned, per part."""
    S, res = settings(prof), load_results(prof["name"], root)
    return [f"{name:22s} " + "  ".join(f"{p} {len(res.get(name, {}).get(p, {}))}/{n}" for p, n in planned(S, name).items())
            for name in all_models(S)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.study.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="scale")
    ap.add_argument("--model", nargs="+", default=None, help="models of scale.models (default: all, smallest first)")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    ap.add_argument("--methods", nargs="+", default=None,
                    help="grow only these of scale.methods in the init and code parts (default: all)")
    ap.add_argument("--types", nargs="+", default=None,
                    help="measure only these of scale.c1.weight_types in the C1 part, in this order (default: all)")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="only these of scale.seeds in the predictor study and the seeded grown models (default: all)")
    ap.add_argument("--list", action="store_true", help="say what is measured and what is missing, then exit")
    args = ap.parse_args(argv)
    prof = load_profile(args.profile)
    S = settings(prof)
    if args.list:
        print("\n".join(status(prof)))
        return 0
    for name in args.model or all_models(S):
        run_model(prof, name, tuple(args.parts), methods=tuple(args.methods) if args.methods else None,
                  types=tuple(args.types) if args.types else None, seeds=tuple(args.seeds) if args.seeds else None)
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, user_errors=(ProfileError,)))
