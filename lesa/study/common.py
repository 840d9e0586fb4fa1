"""What every measurement shares: result folders, the JSON cache keyed by the code that computed it, and a
weight type's stack and its factorisation (computed once per model and type)."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..core.arch import check_model, get_layers
from ..core.codekey import Keyed, code_key
from ..core.store import cache_dir, read_json, stable_hash, write_json
from ..grow.svd import factorize


def cached_json(name: str, key: Any, fn: Callable[[], Any]) -> Any:
    """Return fn()'s JSON-able result, cached under .cache/analysis/<name>/<hash(key, code)>.json; code: the
    lesa code fn reaches (lesa.core.codekey). Its body is part of the predictor study's cache key (that study
    calls it): cached_by_code is written on top of it, not the other way round, so that key stays."""
    path = cache_dir("analysis", name) / f"{stable_hash([key, code_key(fn)])}.json"
    if path.exists():
        return read_json(path)
    out = fn()
    write_json(path, out)
    return out


def cached_by_code(name: str, key: Any, code: tuple, fn: Callable[[], Any]) -> Any:
    """cached_json keyed by the code of the lesa functions in ``code`` instead of fn's: for a lambda inside a
    larger lesa function (whose own code would otherwise enter the key) that only calls these."""
    if not isinstance(code, tuple) or not code or not all(callable(c) for c in code):
        # swapped arguments once keyed every entry by the code alone, so all models shared one entry
        raise TypeError(f"cached_by_code({name!r}, key, code, fn): code must be a tuple of lesa functions, "
                        f"got {type(code).__name__}")
    return cached_json(name, key, Keyed(fn, *code))


def stack_weights(model: Any, short: str) -> torch.Tensor:
    """(L, d_out, d_in) float32 stack of one weight type over all decoder layers."""
    spec = check_model(model)
    path = spec.projections[short]
    return torch.stack([l.get_submodule(path).weight.detach().float() for l in get_layers(model, spec)])


_FACTORS: dict[tuple, tuple] = {}


def factorize_type(model: Any, short: str, method: str = "auto"):
    """lesa.grow.svd.factorize of one weight type's float32 stack, computed once per model, weight type
    and method in this process (every control and study reuses it; the weights are not expected to
    change in between: analysis models are frozen). Kept only while the model lives."""
    import weakref

    key = (id(model), short, method)
    hit = _FACTORS.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    F = factorize(stack_weights(model, short), method=method)
    ref = weakref.ref(model, lambda _r, k=key: _FACTORS.pop(k, None))
    _FACTORS[key] = (ref, F)
    return F


def forget_factors(model: Any) -> None:
    """Drop factorize_type's factors of ``model`` (a caller that is done with a weight type frees them:
    a 1.5B model's seven types hold about 6 GiB)."""
    for k in [k for k in _FACTORS if k[0] == id(model)]:
        _FACTORS.pop(k, None)
