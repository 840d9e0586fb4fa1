"""apply_plan: build the grown model from a plan, with all Hugging Face bookkeeping.

Each slot kind of lesa.plans is built by one registered function (layer_kind). The costly kinds
(predict: trained predictors; interp: per-layer SVDs) are computed first, once, and cached by
content and code hash (cached_costly_weights); then a model of the new depth is instantiated on the
meta device from an updated config and filled with the mapped state dict, so per-layer attributes
(layer_idx, attention types, sliding windows) come from transformers itself, not patched copies.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .arch import OUTPUT_PROJECTIONS, RELEASED_ORDER, check_model, get_layers
from .plans import KINDS, Plan, PlanError, Slot, slot_from_row
from .predictor import PredictorConfig, TrainedPredictor, make_mlp, train_batched, train_predictor
from .ridge import fit_ridge
from .store import cache_dir, file_hash, provenance, read_json, shown, stable_hash, write_json
from .svd import factorize, interpolate_svd, layer_svd

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


# ---------------------------------------------------------------------------------------------
# slot kinds: one small registered function per kind builds one projection's weight of a new layer
# (mergekit style). The layer's norms and biases come from its template (see _template), and every
# kind's o_proj/down_proj is then multiplied by the slot's alpha (identity: 0).
KIND_FNS: dict[str, Callable[["TypeView", Slot], torch.Tensor]] = {}
COSTLY: set[str] = set()        # kinds whose weights take seconds to minutes: computed once, cached


def layer_kind(name: str, costly: bool = False):
    """Register fn(view, slot) -> (d_out, d_in) weight as the builder of slot kind ``name``."""
    if name not in KINDS:
        raise ValueError(f"slot kind {name!r} is not declared in lesa.plans.KINDS")

    def deco(fn):
        KIND_FNS[name] = fn
        if costly:
            COSTLY.add(name)
        return fn
    return deco


class TypeView:
    """One weight type of the source model, as the kind functions see it: the layers' weights, and
    (computed on first use, once per type) the concatenated SVD, the trained predictor and each
    layer's own SVD."""

    def __init__(self, short: str, path: str, layers, cfg: PredictorConfig, stats: dict,
                 factored: tuple | None = None, predictor: Any = None, memo_key: tuple | None = None):
        self.short, self.path, self.layers, self.cfg, self.stats = short, path, layers, cfg, stats
        self._factored, self._predictor, self._memo_key = factored, predictor, memo_key
        self._layer_svd: dict[int, tuple] = {}

    def weight(self, i: int) -> torch.Tensor:
        return self.layers[i].get_submodule(self.path).weight.detach()

    @property
    def factored(self) -> tuple:
        """(Factors or None in raw space, (L, r, d_in) blocks) on cfg.device."""
        if self._factored is None:
            self._factored = _factor(self.layers, self.path, self.short, self.cfg, self.stats)
        return self._factored

    @property
    def predictor(self):
        if self._predictor is None:
            F, blocks = self.factored
            cfg = self.cfg
            if cfg.kind == "ridge":
                g = fit_ridge(blocks, cfg)
            else:
                g = on_device_or_cpu(lambda d: train_predictor(blocks, dataclasses.replace(cfg, device=d),
                                                               desc=f"G_{self.short}", progress=False),
                                     cfg.device, f"predictor of {self.short}", self.stats)
            self._predictor = g
            if self._memo_key is not None:
                _PREDICTORS[self._memo_key] = g
        g = self._predictor
        self.stats["predictor_seconds"][self.short] = round(g.seconds, 3)
        self.stats["predictor_loss"][self.short] = g.history
        return g

    def layer_svd(self, i: int) -> tuple:
        if i not in self._layer_svd:
            self._layer_svd[i] = layer_svd(self.weight(i).to(self.cfg.device))
        return self._layer_svd[i]


def _factor(layers, path: str, short: str, cfg: PredictorConfig, stats: dict) -> tuple:
    t0 = time.perf_counter()
    dtype = getattr(torch, cfg.dtype)
    Ws = _stack(layers, path)                                                # (L, d_out, d_in)
    if cfg.space == "svd":
        F = on_device_or_cpu(lambda d: factorize(Ws, device=d, dtype=dtype, method=cfg.svd_method),
                             cfg.device, f"SVD of {short}", stats)
        out = (F, F.V)                                                       # V: (L, r, d_in)
    else:
        out = (None, Ws.to(device=cfg.device, dtype=dtype))                 # raw rows ("w/o SVD")
    stats["svd_seconds"][short] = round(time.perf_counter() - t0, 3)
    return out


@layer_kind("orig")
def _orig(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0])


@layer_kind("copy")
def _copy(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0]).clone()


@layer_kind("identity")
def _identity(v: TypeView, s: Slot) -> torch.Tensor:
    return v.weight(s.src[0]).clone()                # o_proj/down_proj zeroed by the kind's alpha = 0


@layer_kind("average")
def _average(v: TypeView, s: Slot) -> torch.Tensor:
    return (v.weight(s.src[0]) + v.weight(s.src[1])) / 2


@layer_kind("random")
def _random(v: TypeView, s: Slot) -> torch.Tensor:
    a, b = v.weight(s.src[0]), v.weight(s.src[1])
    std = torch.cat([a.flatten(), b.flatten()]).float().std()
    # one generator per (seed, slot, type): a slot's draw does not depend on the rest of the plan
    gen = torch.Generator().manual_seed(int(stable_hash([v.cfg.seed, list(s.src), v.short]), 16) % 2**63)
    return (torch.randn(a.shape, generator=gen) * std).to(a.dtype)


@layer_kind("predict", costly=True)
def _predict(v: TypeView, s: Slot) -> torch.Tensor:
    """LESA: U Sigma G([V_a, V_b]) (top-``rank`` directions only when set), or G's raw rows."""
    F, blocks = v.factored
    a, b = s.src
    coeffs = v.predictor.predict(blocks[a], blocks[b])                       # (r, d_in)
    return coeffs if F is None else F.reconstruct(coeffs=coeffs, rank=s.param("rank"))


@layer_kind("interp", costly=True)
def _interp(v: TypeView, s: Slot) -> torch.Tensor:
    """Ours: the neighbours' own SVDs, singular pairs matched and interpolated (lesa.svd.interpolate_svd)."""
    a, b = s.src
    return interpolate_svd(v.layer_svd(a), v.layer_svd(b), t=s.param("t"), rank=s.param("rank"))


# ---------------------------------------------------------------------------------------------
# the costly new weights, and their cache
_PREDICTORS: dict[tuple, Any] = {}        # in-process memo: (weights, type, predictor config, code) -> predictor
_LAYERS: "OrderedDict[str, tuple[dict, dict]]" = OrderedDict()   # in-process memo of costly weights
LAYER_MEMO_BYTES = 2 << 30                # the in-process memo keeps the most recent entries up to this size
CODE_FILES = ("expand.py", "plans.py", "plans_spec.py", "predictor.py", "ridge.py", "svd.py", "arch.py")


def code_hash() -> str:
    """Hash of the source files that decide the new weights: a code change is a cache miss."""
    here = Path(__file__).resolve().parent
    return stable_hash([(f, file_hash(here / f)) for f in CODE_FILES])


def _core(s: Slot) -> Slot:
    """What a costly slot's cached weights depend on: its kind, sources and parameters except alpha
    (applied after the cache, so lesa_fp with any alpha reuses lesa's predicted layers)."""
    return Slot(s.kind, s.src, {k: v for k, v in s.params if k != "alpha"})


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
        w = workers if workers is not None else auto_workers(len(todo), total, cfg.device)
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
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(flat, str(tmp))
    tmp.replace(path)
    write_json(meta, {"key": key, "stats": stats})
    _remember(h, flat, stats)
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
        raise PlanError(f"no builder registered for slot kind(s) {missing} (lesa.expand.layer_kind)")
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
    with it (saves memory). ``cache_key`` (an id of the source weights, lesa.models.weights_key)
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
                    W = costly[_core(slot)][short].clone()
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
    from .models import copy_licence_files          # e.g. the Gemma terms go with weights derived from Gemma

    licences = copy_licence_files(getattr(model.config, "_name_or_path", ""), out)
    info = dict(getattr(model.config, "lesa_growth", {}) or {})
    if licences:
        info["licence_files"] = licences
    info["stats"] = getattr(model, "lesa_report", None)
    info["provenance"] = provenance()
    info.update(extra or {})
    write_json(out / "lesa_growth.json", info)
    return out
