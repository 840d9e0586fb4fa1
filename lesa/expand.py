"""apply_plan: build the grown model from a plan, with all Hugging Face bookkeeping.

New weights are computed from the source model first (predictions, averages, random draws), then
a model of the new depth is instantiated on the meta device from an updated config and filled with
the mapped state dict, so per-layer attributes (layer_idx, attention types, sliding windows) come
from transformers itself, not from patched copies.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .arch import OUTPUT_PROJECTIONS, RELEASED_ORDER, check_model, get_layers
from .plans import PAIR_KINDS, Plan, PlanError
from .predictor import PredictorConfig, TrainedPredictor, make_mlp, train_batched, train_predictor
from .store import provenance, write_json
from .svd import factorize

def _stack(layers, path: str) -> torch.Tensor:
    return torch.stack([layer.get_submodule(path).weight.detach() for layer in layers])  # (L, d_out, d_in)


def _train_one(short: str, blocks: torch.Tensor, cfg: PredictorConfig) -> tuple[str, dict, list, float, int]:
    """One weight type's predictor (a worker-process entry point: plain tensors in and out)."""
    g = train_predictor(blocks, cfg, desc=f"G_{short}", progress=False)
    return short, {k: v.detach().cpu() for k, v in g.mlp.state_dict().items()}, g.history, g.seconds, g.n_samples


def auto_workers(n_types: int, total_steps: int, device: str) -> int:
    """Processes for predictor training: one per core on CPU when the job is big enough to repay
    starting them (about 2 s each), else 1. Each process trains whole weight types with one thread,
    so results equal the sequential run's; separate processes degrade gracefully when another job
    shares the cores, unlike several threads in one process (see PredictorConfig.threads)."""
    if not str(device).startswith("cpu") or total_steps < 5000:
        return 1
    return max(1, min(n_types, os.cpu_count() or 1, 4))


def _train_all(blocks: dict[str, torch.Tensor], cfg: PredictorConfig, workers: int,
               progress: bool) -> tuple[dict[str, TrainedPredictor], int]:
    """Every weight type's predictor, trained in ``workers`` spawned processes, biggest job first
    (results identical to training them one after the other: each type has its own seeded init and
    permutation). Returns the predictors and the number of processes used. (Factorising in the
    parent while the first predictors train was tried: no faster on 2 cores, 49.9 vs 48.2 s.)"""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from concurrent.futures.process import BrokenProcessPool

    order = sorted(blocks, key=lambda t: -predictor_cost(tuple(blocks[t].shape), cfg))
    out: dict[str, TrainedPredictor] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_train_one, t, blocks[t].cpu(), cfg) for t in order]
            for fut in tqdm(as_completed(futs), total=len(futs), desc=f"predictors ({workers} processes)",
                            disable=not progress):
                short, state, history, secs, n = fut.result()
                mlp = make_mlp(blocks[short].shape[-1], cfg)
                mlp.load_state_dict(state)
                out[short] = TrainedPredictor(mlp.to(device=cfg.device, dtype=getattr(torch, cfg.dtype)).eval(),
                                              history, secs, n)
    except BrokenProcessPool:      # e.g. a script read from stdin, which spawned workers cannot re-import
        print("[lesa] worker processes could not start here; training the predictors one by one", flush=True)
        out = {t: train_predictor(blocks[t], cfg, desc=f"G_{t}", progress=progress) for t in order}
        workers = 1
    return out, workers


def on_device_or_cpu(fn, device: str, what: str, stats: dict | None = None):
    """fn(device), or fn("cpu") when the accelerator runs out of memory: slower, same numbers up to
    float rounding. The fallback is printed and recorded in stats["cpu_fallback"]."""
    try:
        return fn(device)
    except torch.OutOfMemoryError:
        if str(device).startswith("cpu"):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(f"[lesa] {what}: out of memory on {device}; doing it on the CPU instead", flush=True)
        if stats is not None:
            stats.setdefault("cpu_fallback", []).append(what)
        return fn("cpu")


def predictor_steps(shape: tuple[int, int, int], cfg: PredictorConfig) -> int:
    """Optimizer steps to train one weight type's predictor on an (L, d_out, d_in) stack (or on its
    (L, r, d_in) coefficient blocks: the same count)."""
    L, d_out, d_in = shape
    rows = min(d_out, L * d_in) if cfg.space == "svd" else d_out             # thin-SVD rank or weight rows
    return cfg.epochs * -(-(L - 2 * cfg.train_distance) * rows // cfg.batch_size)


def predictor_cost(shape: tuple[int, int, int], cfg: PredictorConfig) -> int:
    """Relative cost of one weight type's predictor training: steps x MLP weights (FLOPs per sample
    are proportional to the weights), used to hand out the biggest jobs first."""
    d_in = shape[2]
    weights = 2 * d_in * cfg.hidden + (cfg.depth - 1) * cfg.hidden ** 2 + cfg.hidden * d_in
    return predictor_steps(shape, cfg) * weights


def pair_weights(model: Any, plan: Plan, predictor: PredictorConfig | None = None,
                 progress: bool = True, workers: int | None = None) -> tuple[dict, dict]:
    """Weights for every pair-kind slot: {(kind, a, b): {short: (d_out, d_in) tensor}}, and stats.

    workers: processes for predictor training (None: auto_workers). With 1, weight types are done
    one at a time and freed in between (what a large model on one GPU needs); with more, every
    type's factorisation is kept while the predictors train in parallel.
    """
    spec = check_model(model)
    layers = get_layers(model, spec)
    cfg = predictor or PredictorConfig()
    pairs = sorted({(s.kind, *s.src) for s in plan.slots if s.kind in PAIR_KINDS})
    out: dict = {p: {} for p in pairs}
    stats: dict = {"svd_seconds": {}, "predictor_seconds": {}, "predictor_loss": {}}
    if not pairs:
        return out, stats
    need = [p for p in pairs if p[0] == "predict"]
    dtype = getattr(torch, cfg.dtype)

    def factor(short):
        t0 = time.perf_counter()
        Ws = _stack(layers, spec.projections[short])                         # (L, d_out, d_in)
        if cfg.space == "svd":
            F = on_device_or_cpu(lambda d: factorize(Ws, device=d, dtype=dtype, method=cfg.svd_method),
                                 cfg.device, f"SVD of {short}", stats)
            blocks = F.V                                                     # (L, r, d_in)
        else:
            F, blocks = None, Ws.to(device=cfg.device, dtype=dtype)
        stats["svd_seconds"][short] = round(time.perf_counter() - t0, 3)
        return F, blocks

    def fill(short, F, blocks, g):
        stats["predictor_seconds"][short] = round(g.seconds, 3)
        stats["predictor_loss"][short] = g.history
        ref = layers[0].get_submodule(spec.projections[short]).weight
        for p in need:
            coeffs = g.predict(blocks[p[1]], blocks[p[2]])                   # (r, d_in)
            W = F.reconstruct(coeffs=coeffs) if F is not None else coeffs
            out[p][short] = W.to(device=ref.device, dtype=ref.dtype)

    if need:
        shapes = {t: (len(layers), *layers[0].get_submodule(spec.projections[t]).weight.shape) for t in RELEASED_ORDER}
        total = sum(predictor_steps(sh, cfg) for sh in shapes.values())
        w = workers if workers is not None else auto_workers(len(shapes), total, cfg.device)
        stats["predictor_workers"] = 1
        if cfg.batched:                                   # all factorisations kept; one batched MLP per width
            fac = {short: factor(short) for short in RELEASED_ORDER}
            trained = on_device_or_cpu(lambda d: train_batched({t: fb[1] for t, fb in fac.items()},
                                                               dataclasses.replace(cfg, device=d), progress),
                                       cfg.device, "batched predictors", stats)
            stats["predictor_batched"] = True
            for short in RELEASED_ORDER:
                fill(short, *fac[short], trained[short])
            del fac, trained
        elif w <= 1:                                      # one weight type at a time, freed in between
            for short in tqdm(RELEASED_ORDER, desc="weight types", disable=not progress):
                F, blocks = factor(short)
                g = on_device_or_cpu(lambda d: train_predictor(blocks, dataclasses.replace(cfg, device=d),
                                                               desc=f"G_{short}", progress=progress),
                                     cfg.device, f"predictor of {short}", stats)
                fill(short, F, blocks, g)
                del F, blocks
        else:                                             # all factorisations kept; predictors in parallel
            fac = {short: factor(short) for short in RELEASED_ORDER}
            trained, stats["predictor_workers"] = _train_all({t: fb[1] for t, fb in fac.items()}, cfg, w, progress)
            for short in RELEASED_ORDER:
                fill(short, *fac[short], trained[short])
            del fac, trained
    gen = torch.Generator().manual_seed(cfg.seed)
    for short in RELEASED_ORDER:
        path = spec.projections[short]
        for p in pairs:
            a, b = layers[p[1]].get_submodule(path).weight.detach(), layers[p[2]].get_submodule(path).weight.detach()
            if p[0] == "average":
                out[p][short] = (a + b) / 2
            elif p[0] == "random":
                std = torch.cat([a.flatten(), b.flatten()]).float().std()
                out[p][short] = (torch.randn(a.shape, generator=gen) * std).to(a.dtype)
    return out, stats


def cached_pair_weights(model: Any, plan: Plan, cfg: PredictorConfig, cache_key: str | None,
                        progress: bool = True, workers: int | None = None) -> tuple[dict, dict]:
    """pair_weights, stored under .cache/pairs/ by a hash of (model key, plan, predictor config) when
    ``cache_key`` names the source model's weights, so a rerun skips SVD and predictor training."""
    if cache_key is None:
        return pair_weights(model, plan, cfg, progress, workers)
    from safetensors.torch import load_file, save_file

    from .store import cache_dir, read_json, stable_hash

    cfg_key = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    h = stable_hash({"model": cache_key, "plan": plan.to_dict(), "predictor": cfg_key})
    path, meta = cache_dir("pairs") / f"{h}.safetensors", cache_dir("pairs") / f"{h}.json"
    if path.exists() and meta.exists():
        flat = load_file(path)
        out: dict = {}
        for name, t in flat.items():
            kind, a, b, short = name.split(".")
            out.setdefault((kind, int(a), int(b)), {})[short] = t
        if progress:
            print(f"[lesa] reused cached new-layer weights {path.name}")
        return out, {**read_json(meta), "cached": True}
    out, stats = pair_weights(model, plan, cfg, progress, workers)
    flat = {f"{k[0]}.{k[1]}.{k[2]}.{short}": w.contiguous() for k, d in out.items() for short, w in d.items()}
    tmp = path.with_suffix(".tmp")
    save_file(flat, str(tmp))
    tmp.replace(path)
    write_json(meta, stats)
    return out, stats


def apply_plan(model: Any, plan: Plan, predictor: PredictorConfig | None = None,
               copy_weights: bool = True, progress: bool = True, cache_key: str | None = None,
               workers: int | None = None) -> Any:
    """Return a new model grown by ``plan``. The source model is left intact; with
    ``copy_weights=False`` the grown model shares the unchanged tensors with it (saves memory).
    ``cache_key`` (an id of the source weights) caches the computed new-layer weights on disk.
    ``workers``: processes for predictor training (None: automatic, see auto_workers); it changes
    the speed, never the weights."""
    spec = check_model(model)
    layers = get_layers(model, spec)
    L = len(layers)
    if plan.source_layers != L:
        raise PlanError(f"plan is for a {plan.source_layers}-layer model, this model has {L} layers")
    cfg = predictor or PredictorConfig()
    if plan.method == "lesa_raw":                      # the "w/o SVD" ablation is a predictor setting
        cfg = dataclasses.replace(cfg, space="raw")
    t0 = time.perf_counter()
    new_w, stats = cached_pair_weights(model, plan, cfg, cache_key, progress, workers)
    biased = spec.biased(model.config)
    maybe = (lambda t: t.clone()) if copy_weights else (lambda t: t)

    sd: dict[str, torch.Tensor] = {}
    prefix = spec.layers_path + "."
    for k, v in model.state_dict().items():
        if not k.startswith(prefix):
            sd[k] = maybe(v)
    for i, slot in enumerate(plan.slots):
        j = slot.src[0]
        if slot.kind == "orig":
            st = {k: maybe(v) for k, v in layers[j].state_dict().items()}
        elif slot.kind in ("copy", "identity"):
            st = {k: v.clone() for k, v in layers[j].state_dict().items()}
            if slot.kind == "identity":
                for short in OUTPUT_PROJECTIONS:
                    path = spec.projections[short]
                    st[f"{path}.weight"].zero_()
                    if short in biased:
                        st[f"{path}.bias"].zero_()
        else:                                                        # predict / average / random
            a, b = slot.src
            st = {k: v.clone() for k, v in layers[0].state_dict().items()}   # released: deepcopy(layer 0)
            if plan.norm_source == "neighbours":
                sa, sb = layers[a].state_dict(), layers[b].state_dict()
                for k in st:
                    if not any(k == f"{spec.projections[s]}.weight" for s in spec.projections):
                        st[k] = (sa[k] + sb[k]) / 2                  # norms and biases
            for short, path in spec.projections.items():
                st[f"{path}.weight"] = new_w[(slot.kind, a, b)][short].clone()
        for k, v in st.items():
            sd[f"{prefix}{i}.{k}"] = v

    new_cfg = copy.deepcopy(model.config)
    setattr(new_cfg, spec.depth_key, plan.target_layers)
    for key in spec.per_layer_lists:
        old = getattr(new_cfg, key, None)
        if isinstance(old, (list, tuple)) and len(old) == L:
            setattr(new_cfg, key, [old[s.src[0]] for s in plan.slots])
    new_cfg.lesa_growth = {"method": plan.method, "source_layers": L, "target_layers": plan.target_layers,
                           "new_layers": plan.new_layers, "plan": plan.to_dict(),
                           "predictor": cfg.to_dict() if "predict" in {s.kind for s in plan.slots} else None}

    with torch.device("meta"):
        grown = type(model)(new_cfg)
    missing, unexpected = grown.load_state_dict(sd, strict=False, assign=True)
    tied = {"lm_head.weight"} if getattr(new_cfg, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {sorted(set(missing) - tied)[:5]}, "
                           f"unexpected {sorted(unexpected)[:5]}")
    _restore_buffers(grown, model, plan, spec.layers_path)
    grown.tie_weights()
    grown.generation_config = copy.deepcopy(model.generation_config)
    grown.eval()
    stats["total_seconds"] = round(time.perf_counter() - t0, 3)
    grown.lesa_report = stats
    check_model(grown)
    return grown


def _restore_buffers(grown: Any, source: Any, plan: Plan, layers_path: str) -> None:
    """Non-persistent buffers (e.g. rotary inv_freq) are not in the state dict: copy them over."""
    src_buffers = dict(source.named_buffers())
    prefix = layers_path + "."
    for name, buf in list(grown.named_buffers()):
        if not buf.is_meta:
            continue
        src_name = name
        if name.startswith(prefix):
            i, rest = name[len(prefix):].split(".", 1)
            src_name = f"{prefix}{plan.slots[int(i)].src[0]}.{rest}"
        if src_name not in src_buffers:
            raise RuntimeError(f"cannot restore buffer {name}: no {src_name} in the source model")
        owner_name, _, attr = name.rpartition(".")
        owner = grown.get_submodule(owner_name) if owner_name else grown
        owner._buffers[attr] = src_buffers[src_name].clone()
    for mod_name, mod in grown.named_modules():                     # tensors kept as plain attributes
        for attr, val in list(vars(mod).items()):
            if isinstance(val, torch.Tensor) and val.is_meta:
                src_mod = source.get_submodule(mod_name) if mod_name else source
                setattr(mod, attr, getattr(src_mod, attr).clone())


def save_grown(model: Any, out_dir: str | Path, tokenizer: Any = None, extra: dict | None = None) -> Path:
    """save_pretrained (safetensors) + tokenizer + lesa_growth.json (plan, new layers, stats, provenance)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    info = dict(getattr(model.config, "lesa_growth", {}) or {})
    info["stats"] = getattr(model, "lesa_report", None)
    info["provenance"] = provenance()
    info.update(extra or {})
    write_json(out / "lesa_growth.json", info)
    return out
