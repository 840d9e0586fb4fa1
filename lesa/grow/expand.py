"""apply_plan: build the grown model from a plan, with all Hugging Face bookkeeping.

Each slot kind of lesa.grow.plans is built by one registered function (layer_kind, in lesa.grow.kinds).
The costly kinds (predict: trained predictors; interp: per-layer SVDs) are computed first, once, and cached by
content and code hash (cached_costly_weights); then a model of the new depth is instantiated on the
meta device from an updated config and filled with the mapped state dict, so per-layer attributes
(layer_idx, attention types, sliding windows) come from transformers itself, not patched copies.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.arch import OUTPUT_PROJECTIONS, RELEASED_ORDER, check_model, get_layers
from ..core.codekey import code_key
# the slot kinds and the predictor training behind them
from .kinds import (_PREDICTORS, COSTLY, KIND_FNS, TypeView, _factor, _train_all, auto_workers, on_device_or_cpu, predictor_steps, worker_memory_gib, reshape_svd)
from .spec import Plan, PlanError, Slot, slot_from_row
from .predictor import PredictorConfig, train_batched
from ..core.store import cache_dir, provenance, read_json, shown, stable_hash, write_json
from ..core.models import copy_licence_files


# ---------------------------------------------------------------------------------------------
# the costly new weights, and their cache
_LAYERS: "OrderedDict[str, tuple[dict, dict]]" = OrderedDict()   # in-process memo of costly weights
# the disk cache never fills the disk: an entry is stored only if this much stays free after it (a grown
# 1.5B model's new layers are 2.6 GB; a machine has about 100 GB). Set LESA_CACHE_MIN_FREE_GIB to change it.
CACHE_MIN_FREE_GIB = float(os.environ.get("LESA_CACHE_MIN_FREE_GIB", "20"))
LAYER_MEMO_BYTES = 2 << 30                # the in-process memo keeps the most recent entries up to this size


def code_hash() -> str:
    """Hash of the code that computes the new weights (lesa.core.codekey): a change to it is a cache miss."""
    return code_key(costly_weights)


POST_CACHE = ("alpha", "spectrum", "directions")   # slot parameters applied to the cached weight, not in its key


def _core(s: Slot) -> Slot:
    """What a costly slot's cached weights depend on: its kind, sources and parameters except those applied
    after the cache (alpha, spectrum, directions: lesa_fp with any of them reuses lesa's predicted layers)."""
    return Slot(s.kind, s.src, {k: v for k, v in s.params if k not in POST_CACHE})


def _cfg_key(cfg: PredictorConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k != "device"}   # device: same numbers up to rounding


def costly_weights(model: Any, plan: Plan, cfg: PredictorConfig, progress: bool = True,
                   workers: int | None = None, weights_id: str | None = None) -> tuple[dict, dict]:
    """{core slot: {short: (d_out, d_in) weight}} for every slot of a costly kind (predict, interp),
    and stats. Weight types are done one at a time and freed in between (what a large model on one
    GPU needs), unless predictors train in ``workers`` processes (None: auto_workers), which keeps
    every type's factorisation. With ``weights_id``, trained predictors are memoised in-process."""
    spec = check_model(model)
    layers = get_layers(model, spec)
    cores = sorted({_core(s) for s in plan.slots if s.kind in COSTLY}, key=lambda c: (c.kind, c.src, c.params))
    out: dict = {c: {} for c in cores}
    stats: dict = {"svd_seconds": {}, "predictor_seconds": {}, "predictor_loss": {}, "predictor_workers": 1}
    if not cores:
        return out, stats
    code = code_hash()
    memo = (lambda t: (weights_id, t, stable_hash(_cfg_key(cfg)), code)) if weights_id else (lambda t: None)
    pre = {t: _PREDICTORS[memo(t)] for t in RELEASED_ORDER if memo(t) in _PREDICTORS}
    if pre:
        stats["predictors_reused"] = sorted(pre)
    fac: dict = {}
    todo = [t for t in RELEASED_ORDER if t not in pre]
    if any(c.kind == "predict" for c in cores) and cfg.kind == "mlp" and len(todo) > 1:
        shapes = {t: (len(layers), *layers[0].get_submodule(spec.projections[t]).weight.shape) for t in todo}
        total = sum(predictor_steps(sh, cfg) for sh in shapes.values())
        w = workers if workers is not None else auto_workers(len(todo), total, cfg.device,
                                                              memory=worker_memory_gib(shapes, cfg))
        trained = {}
        if cfg.batched:                       # one batched MLP per input width (see predictor.train_batched)
            fac = {t: _factor(layers, spec.projections[t], t, cfg, stats) for t in RELEASED_ORDER}
            trained = on_device_or_cpu(lambda d: train_batched({t: fac[t][1] for t in todo},
                                                               dataclasses.replace(cfg, device=d), progress),
                                       cfg.device, "batched predictors", stats)
            stats["predictor_batched"] = True
        elif w > 1:
            fac = {t: _factor(layers, spec.projections[t], t, cfg, stats) for t in RELEASED_ORDER}
            trained, stats["predictor_workers"] = _train_all({t: fac[t][1] for t in todo}, cfg, w, progress)
        if trained:
            for t, g in trained.items():
                pre[t] = g
                if weights_id:
                    _PREDICTORS[memo(t)] = g
    for short in tqdm(RELEASED_ORDER, desc="weight types", disable=not progress):
        ref = layers[0].get_submodule(spec.projections[short]).weight
        view = TypeView(short, spec.projections[short], layers, cfg, stats, fac.pop(short, None),
                        pre.get(short), memo(short))
        for c in cores:
            out[c][short] = KIND_FNS[c.kind](view, c).to(device=ref.device, dtype=ref.dtype)
        del view
    return out, stats


def cached_costly_weights(model: Any, plan: Plan, cfg: PredictorConfig, cache_key: str | None,
                          progress: bool = True, workers: int | None = None) -> tuple[dict, dict]:
    """costly_weights, cached by content when ``cache_key`` names the source weights: the key holds
    the weights id, the costly slots, the predictor config (seed included) and code_hash(). Kept
    in-process (never recomputed within a run) and on disk under .cache/grow/ (safetensors)."""
    if cache_key is None:
        out, stats = costly_weights(model, plan, cfg, progress, workers)
        return out, {**stats, "cache": "off", "cached": False}
    cores = sorted({_core(s) for s in plan.slots if s.kind in COSTLY}, key=lambda c: (c.kind, c.src, c.params))
    if not cores:
        return {}, {"svd_seconds": {}, "predictor_seconds": {}, "predictor_loss": {}, "cache": "not needed",
                    "cached": False}
    key = {"weights": cache_key, "slots": [c.to_row() for c in cores],
           "predictor": _cfg_key(cfg) if any(c.kind == "predict" for c in cores) else None, "code": code_hash()}
    h = stable_hash(key, 24)

    def unflat(flat):
        out: dict = {}
        for name, t in flat.items():
            row, short = name.rsplit("/", 1)
            out.setdefault(slot_from_row(json.loads(row)), {})[short] = t
        return out

    if h in _LAYERS:
        _LAYERS.move_to_end(h)
        flat, stats = _LAYERS[h]
        return unflat(flat), {**stats, "cache": "memory", "cached": True}
    from safetensors.torch import load_file, save_file

    path, meta = cache_dir("grow") / f"{h}.safetensors", cache_dir("grow") / f"{h}.json"
    if path.exists() and meta.exists():
        flat, stats = load_file(path), read_json(meta)["stats"]
        if progress:
            print(f"[lesa] reused cached new-layer weights {shown(path)}")
        _remember(h, flat, stats)
        return unflat(flat), {**stats, "cache": "disk", "cached": True}
    out, stats = costly_weights(model, plan, cfg, progress, workers, weights_id=cache_key)
    flat = {f"{json.dumps(c.to_row())}/{short}": w.detach().cpu().contiguous() for c, d in out.items()
            for short, w in d.items()}
    _remember(h, flat, stats)
    size = sum(t.numel() * t.element_size() for t in flat.values())
    free = shutil.disk_usage(path.parent).free
    if free - size < CACHE_MIN_FREE_GIB * 2**30:
        print(f"[lesa] new-layer weights not stored on disk ({size / 2**30:.1f} GiB; {free / 2**30:.1f} GiB free, "
              f"keeping {CACHE_MIN_FREE_GIB:g} GiB: LESA_CACHE_MIN_FREE_GIB); free space under {shown(path.parent)} "
              "to cache them")
        return out, {**stats, "cache": "computed, not stored (disk)", "cached": False}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(flat, str(tmp))
    tmp.replace(path)
    write_json(meta, {"key": key, "stats": stats})
    return out, {**stats, "cache": "computed", "cached": False}


def _remember(h: str, flat: dict, stats: dict) -> None:
    _LAYERS[h] = (flat, stats)
    size = lambda: sum(t.numel() * t.element_size() for f, _ in _LAYERS.values() for t in f.values())
    while len(_LAYERS) > 1 and size() > LAYER_MEMO_BYTES:
        _LAYERS.popitem(last=False)


def clear_memo() -> None:
    """Forget the in-process memo (trained predictors and new-layer weights); the disk cache stays."""
    _PREDICTORS.clear()
    _LAYERS.clear()


# ---------------------------------------------------------------------------------------------
def effective_predictor(plan: Plan, predictor: PredictorConfig | None) -> PredictorConfig:
    """The predictor config a plan runs with: the given one (or the defaults) with the plan's own
    predictor settings over it (e.g. lesa_raw: space = raw; lesa_ridge: kind = ridge)."""
    cfg = predictor or PredictorConfig()
    return dataclasses.replace(cfg, **plan.predictor) if plan.predictor else cfg


def check_predictor_plan(plan: Plan, cfg: PredictorConfig) -> None:
    """What can be wrong with a plan and its predictor config together (no model needed)."""
    missing = sorted({s.kind for s in plan.slots} - set(KIND_FNS))
    if missing:
        raise PlanError(f"no builder registered for slot kind(s) {missing} (lesa.expand.layer_kind)")  # old module path kept: this text enters cache keys (lesa.core.cachekeys)
    if cfg.space == "raw" and any(s.kind == "predict" and s.param("rank") is not None for s in plan.slots):
        raise PlanError("'rank' keeps top singular directions, which the raw-weight predictor (space: raw) "
                        "does not have; drop rank or use space: svd")


def check_plan(model: Any, plan: Plan, cfg: PredictorConfig) -> None:
    """Everything that can be wrong with (model, plan, predictor) before any weight is computed."""
    L = len(get_layers(model, check_model(model)))
    if plan.source_layers != L:
        raise PlanError(f"plan is for a {plan.source_layers}-layer model, this model has {L} layers")
    check_predictor_plan(plan, cfg)


def _template(layers, slot: Slot, plan: Plan, spec) -> dict[str, torch.Tensor]:
    """A new layer's state before its projections are filled: a one-source kind starts from its
    source layer; a two-source kind from layer 0 (released: deepcopy(layer 0)) or, with
    norm_source 'neighbours', with norms and biases averaged from its two neighbours."""
    if len(slot.src) == 1:
        return {k: v.clone() for k, v in layers[slot.src[0]].state_dict().items()}
    st = {k: v.clone() for k, v in layers[0].state_dict().items()}
    if plan.norm_source == "neighbours":
        a, b = slot.src
        sa, sb = layers[a].state_dict(), layers[b].state_dict()
        weights = {f"{p}.weight" for p in spec.projections.values()}
        for k in st:
            if k not in weights:
                st[k] = (sa[k] + sb[k]) / 2                                  # norms and biases
    return st


def apply_plan(model: Any, plan: Plan, predictor: PredictorConfig | None = None,
               copy_weights: bool = True, progress: bool = True, cache_key: str | None = None,
               workers: int | None = None) -> Any:
    """Return a new model grown by ``plan``: the one way every caller grows a model. The source
    model is left intact; with ``copy_weights=False`` the grown model shares the unchanged tensors
    with it (saves memory). ``cache_key`` (an id of the source weights, lesa.core.models.weights_key)
    caches the costly new weights (predicted, interpolated) in-process and on disk, keyed by content
    and code (cached_costly_weights). ``workers``: processes for predictor training (None:
    automatic, see auto_workers); it changes the speed, never the weights."""
    spec = check_model(model)
    layers = get_layers(model, spec)
    L = len(layers)
    cfg = effective_predictor(plan, predictor)
    check_plan(model, plan, cfg)
    t0 = time.perf_counter()
    costly, stats = cached_costly_weights(model, plan, cfg, cache_key, progress, workers)
    biased = spec.biased(model.config)
    maybe = (lambda t: t.clone()) if copy_weights else (lambda t: t)

    sd: dict[str, torch.Tensor] = {}
    prefix = spec.layers_path + "."
    for k, v in model.state_dict().items():
        if not k.startswith(prefix):
            sd[k] = maybe(v)
    views = {short: TypeView(short, path, layers, cfg, stats) for short, path in spec.projections.items()}
    for i, slot in enumerate(plan.slots):
        if slot.kind == "orig":
            st = {k: maybe(v) for k, v in layers[slot.src[0]].state_dict().items()}
        else:
            st = _template(layers, slot, plan, spec)
            alpha = slot.param("alpha")
            for short, path in spec.projections.items():
                if slot.kind in COSTLY:                      # cloned: one cached weight may fill several slots
                    W = reshape_svd(costly[_core(slot)][short].clone(), views[short], slot)
                else:
                    W = KIND_FNS[slot.kind](views[short], slot)
                if short in OUTPUT_PROJECTIONS and alpha != 1:
                    W = W * alpha
                    if short in biased:
                        st[f"{path}.bias"] = st[f"{path}.bias"] * alpha
                st[f"{path}.weight"] = W
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
                           "predictor": cfg.to_dict() if any(s.kind == "predict" for s in plan.slots) else None}

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
    licences = copy_licence_files(getattr(model.config, "_name_or_path", ""), out)
    info = dict(getattr(model.config, "lesa_growth", {}) or {})
    if licences:
        info["licence_files"] = licences
    info["stats"] = getattr(model, "lesa_report", None)
    info["provenance"] = provenance()
    info.update(extra or {})
    write_json(out / "lesa_growth.json", info)
    return out
