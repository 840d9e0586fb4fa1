"""Where the scale ladder's results live and how an item is read: results/<profile>/scale/<model>.json, one file
per model, parts -> items (lesa.study.scale writes them; lesa.study.cpt reads LESA's median predictor seed from them). No
torch and no other lesa module beyond the store, so any layer may read results."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .store import read_json
from .layout import Results


def results_path(profile: str, model: str, root: Path | None = None) -> Path:
    """results/<profile>/scale/<model>.json (``root``: another results folder, for tests)."""
    return Results(profile, root).scale(model)


def load_results(profile: str, root: Path | None = None) -> dict[str, dict]:
    """model -> its results record, for every model with a results file (any part measured)."""
    d = Results(profile, root).scale()
    return {p.stem: read_json(p) for p in sorted(d.glob("*.json"))} if d.exists() else {}


def headline_value(item: dict | None, s: str = "wikitext") -> float | None:
    """An init/code item's perplexity on set ``s`` (None when missing or not measured)."""
    rec = (item or {}).get("ppl", {}).get(s) or {}
    return rec.get("value") if rec.get("status", "ok") == "ok" else None


def median_seed(model: str, method: str = "lesa", profile: str = "scale", root: Path | None = None) -> tuple[int, Any]:
    """(the predictor seed whose grown ``method`` model has the median perplexity before training on the ladder,
    {seed: perplexity}); an even count takes the lower middle. FileNotFoundError/ValueError say what to run."""
    path = results_path(profile, model, root)
    if not path.exists():
        raise FileNotFoundError(f"no scale results for {model} ({path}): run `python -m lesa.study.scale --profile {profile} "
                                f"--model {model} --parts init` first, or set cpt.lesa_seed to an int")
    vals = {it["seed"]: v for it in read_json(path).get("init", {}).values()
            if it.get("method") == method and it.get("seed") is not None and (v := headline_value(it)) is not None}
    if not vals:
        raise ValueError(f"{path} holds no {method} perplexity before training yet: measure its init part first")
    order = sorted(vals, key=lambda s: (vals[s], s))
    return order[(len(order) - 1) // 2], vals
