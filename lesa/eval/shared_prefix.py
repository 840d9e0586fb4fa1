"""Never compute the same layers twice: grown models that keep the base model's bottom layers see the same
hidden states up to their first new or changed layer, so those are computed once per input batch.

LESA's and SOLAR's top-gap growths, LESA without SVD, the λ variants and every predictor seed insert their
new layers above the middle of the model: a 30 -> 45 SmolLM2 growth shares its first 15-16 layers with the
base model, a third of every grown model's forward pass. Measuring ten grown models under one protocol
therefore computes those layers once instead of eleven times.

    shared = SharedPrefix(base)
    with shared.attach(grown):                    # grown's decoder starts from the base's cached states
        measure(grown, tok, proto)                # any code that calls grown(...) or grown.model(...)

Exact, not approximate: the cached states come from the same layer weights (checked tensor by tensor, not by
index), the same input batch, the same masks and rotary embeddings (same config apart from the depth) and the
same autocast state, so the grown model's outputs are bitwise those of its full forward
(tests/test_shared_prefix.py checks torch.equal on Llama, Qwen2, whose sliding-window layers take
their masks by layer type, and Gemma 3). Only evaluation: gradients, KV caches and dropout are not supported.
CPT's counterpart (the frozen layers under a run's lowest trained layer, per batch, kept on disk for every run
and evaluation on the same tokens) is lesa.prefix_store.
"""
from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from typing import Any

import torch

from ..core.arch import check_model, get_layers

# config entries that may differ between a base model and a model grown from it without changing its bottom layers
GROWTH_KEYS = {"num_hidden_layers", "layer_types", "lesa_growth", "_name_or_path", "max_window_layers"}


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                        and torch.equal(a[k], b[k]) for k in a)


def shared_depth(base: Any, grown: Any) -> int:
    """How many bottom decoder layers ``grown`` shares exactly with ``base``: same embedding and rotary
    buffers, same config apart from the depth, and layer by layer the same tensors, attention type and
    sliding window. 0 when anything below the layers differs."""
    if base.training or grown.training:
        return 0
    cb, cg = base.config.to_dict(), grown.config.to_dict()
    if {k: v for k, v in cb.items() if k not in GROWTH_KEYS} != {k: v for k, v in cg.items() if k not in GROWTH_KEYS}:
        return 0
    if getattr(base.config, "_attn_implementation", None) != getattr(grown.config, "_attn_implementation", None):
        return 0
    db, dg = base.get_decoder(), grown.get_decoder()
    below = lambda d: {n: t for n, t in [*d.named_parameters(), *d.named_buffers()]
                       if not n.startswith(("layers.", "norm."))}             # embeddings, rotary inv_freq
    if not _same_tensors(below(db), below(dg)):
        return 0
    lb, lg = get_layers(base, check_model(base)), get_layers(grown, check_model(grown))
    types_b, types_g = getattr(base.config, "layer_types", None), getattr(grown.config, "layer_types", None)
    k = 0
    for i, (a, b) in enumerate(zip(lb, lg)):
        if types_b is not None and (types_g is None or types_b[i] != types_g[i]):
            break
        if getattr(a, "attention_type", None) != getattr(b, "attention_type", None):
            break
        if getattr(getattr(a, "self_attn", None), "sliding_window", None) != \
                getattr(getattr(b, "self_attn", None), "sliding_window", None):
            break
        if not _same_tensors(dict(a.named_parameters()) | dict(a.named_buffers()),
                             dict(b.named_parameters()) | dict(b.named_buffers())):
            break
        k = i + 1
    return min(k, len(lg) - 1)          # the grown model keeps at least its last layer to run


class _Stop(Exception):
    pass


def prefix_hidden(model: Any, depth: int, **inputs) -> torch.Tensor:
    """The hidden states entering decoder layer ``depth`` (the output of layers 0..depth-1) for ``inputs``
    (input_ids, attention_mask, ...), computed by ``model``'s own decoder, which stops there."""
    dec = model.get_decoder()
    layers = get_layers(model, check_model(model))
    target = layers[depth] if depth < len(layers) else dec.norm
    got = {}

    def grab(_mod, args, kwargs):
        got["h"] = args[0] if args else kwargs["hidden_states"]
        raise _Stop

    handle = target.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():                      # not inference_mode: callers may run outside it
            dec(**{**inputs, "use_cache": False})
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["h"]


class _Feed(torch.nn.Module):
    """Stands in for a shared bottom layer during one forward: returns the cached output of the shared prefix."""

    def __init__(self, layer: torch.nn.Module, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden
        if hasattr(layer, "attention_type"):              # the decoder may look masks up by it (Gemma 3)
            self.attention_type = layer.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        return self.hidden


class SharedPrefix:
    """The base model's bottom-layer hidden states, computed once per (depth, input batch, autocast state) and
    kept in memory up to ``max_bytes`` (least recently used dropped first; a dropped entry is recomputed,
    never approximated). ``hits``/``misses`` count reuses and computations. The base model's weights must not
    change while the cache lives (grown models built with copy_weights=False share them: train none of them)."""

    def __init__(self, base: Any, max_bytes: int = 1 << 30):
        self.base, self.max_bytes = base, max_bytes
        self.cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.hits = self.misses = 0

    def _key(self, depth: int, inputs: dict) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{depth}|{torch.is_autocast_enabled('cpu')}|{torch.get_autocast_dtype('cpu')}".encode())
        dev = next(self.base.parameters()).device.type
        if dev != "cpu":
            h.update(f"{torch.is_autocast_enabled(dev)}|{torch.get_autocast_dtype(dev)}".encode())
        for name in sorted(inputs):
            v = inputs[name]
            if isinstance(v, torch.Tensor):
                t = v.detach().contiguous().cpu()
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
            elif v is not None:
                h.update(f"{name}|{v!r}".encode())
        return h.hexdigest()

    def hidden(self, depth: int, inputs: dict) -> torch.Tensor:
        key = self._key(depth, inputs)
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        self.misses += 1
        h = prefix_hidden(self.base, depth, **inputs)
        self.cache[key] = h
        while len(self.cache) > 1 and sum(t.numel() * t.element_size() for t in self.cache.values()) > self.max_bytes:
            self.cache.popitem(last=False)
        return h

    @contextlib.contextmanager
    def attach(self, grown: Any, depth: int | None = None):
        """Within the block every forward of ``grown`` (eval, no KV cache) takes its first ``depth`` layers'
        output from the cache (default: shared_depth; nothing changes when it is 0). Yields the depth."""
        depth = shared_depth(self.base, grown) if depth is None else depth
        if depth <= 0:
            yield 0
            return
        dec = grown.get_decoder()
        layers = get_layers(grown, check_model(grown))
        saved = [layers[i] for i in range(depth)]

        def before(_mod, args, kwargs):
            inputs = dict(kwargs)
            if args:
                inputs["input_ids"] = args[0]
            used = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")}
            other = {k: v for k, v in inputs.items() if k not in used and k != "use_cache" and v not in (None, False)}
            if other or used.get("input_ids") is None or torch.is_grad_enabled():
                return None          # a KV cache, embeddings, hidden-state outputs, gradients...: run every layer
            h = self.hidden(depth, used)
            for i in range(depth):
                layers[i] = _Feed(saved[i], h)
            return None

        def after(_mod, _args, _kwargs, _out):
            for i in range(depth):
                layers[i] = saved[i]

        h1 = dec.register_forward_pre_hook(before, with_kwargs=True)
        h2 = dec.register_forward_hook(after, with_kwargs=True, always_call=True)
        try:
            yield depth
        finally:
            h1.remove()
            h2.remove()
            for i in range(depth):
                layers[i] = saved[i]
