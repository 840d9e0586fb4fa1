"""Run profiles (configs/<name>.yaml): sizes and budgets only, never code paths.

    load_profile("smoke")          -> validated dict
    resolve_profile("auto")        -> "gpu" when CUDA is available, else "cpu"
    load_profile_model(profile)    -> (model, tokenizer, model_key) for the profile's model
    profile_models(profile)        -> [model, *extra_models]: the models the per-model claims run on
    python -m lesa.study.profiles check paper   # dry run: validate + print every plan, no weights loaded
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

from ..core.arch import PROJECTIONS
from .. import PROJECT_ROOT
from ..core.store import stable_hash
import torch
import yaml
from ..core.models import load_config, load_model, resolve, weights_key
from ..core.precision import PRECISIONS
from ..eval.protocol import ProtocolError, ppl_protocol
from ..grow.plans import BUILDERS, build_plan, default_target

CONFIG_DIR = PROJECT_ROOT / "configs"
PROFILES = ("smoke", "cpu", "gpu", "paper")
TINY_MODEL = "tiny-random-llama"
# Tiny random models built in-process: name -> (family for tiny_config, short name whose tokenizer
# they use, so every evaluation path is the same as for that real model).
TINY_MODELS = {TINY_MODEL: ("llama", "smollm2-135m"), "tiny-random-gemma3": ("gemma3", "gemma3-270m")}

# key -> (type, required); nested sections are validated below
SCHEMA: dict[str, dict[str, tuple[type | tuple, bool]]] = {
    "": {"name": (str, True), "description": (str, True), "requires_cuda": (bool, True),
         "device": (str, True), "model": (dict, True), "svd": (dict, True), "predictor": (dict, True),
         "protocol": (dict, True), "expansion": (dict, True), "cpt": (dict, False), "extra_models": (list, False),
         "extends": (str, False), "scale": (dict, False)},
    "model": {"name": (str, True), "tiny": (dict, False), "source_layers": (int, False),
              "target_layers": (int, False)},
    "scale": {"models": (list, True), "seeds": (list, True), "c1": (dict, True), "predictor": (dict, True),
              "methods": (dict, True), "seeded": (list, True), "protocol": (dict, True), "code": (dict, False),
              "quantisation": (dict, False)},
    "svd": {"weight_types": (list, True), "n_shuffles": (int, True), "n_gaussian": (int, True),
            "tsne_perplexity": ((int, float), True)},
    "predictor": {"epochs": (int, True), "weight_types": (list, True), "loo_weight_types": (list, True),
                  "loo_layers": (int, True), "lambda_weight_types": (list, True), "lambdas": (list, True),
                  "seeds": (list, True)},
    "protocol": {"precision": (str, True), "max_length": (int, True), "batch_size": (int, True),
                 "sets": (list, True), "limits": (dict, True)},
    "expansion": {"methods": (list, True), "bench_tasks": (list, True),
                  "bench_limit": ((int, type(None)), True), "residual_tokens": (int, True),
                  "family_demo": (list, True), "seeded": (list, False), "screen": (dict, False),
                  "variants": (dict, False), "extra_methods": (list, False), "extra_screen": (dict, False)},
    "cpt": {"paper_step_labels": (dict, False), "methods": (list, False), "train": (dict, False),
            "lesa_seed": ((int, str), False), "data_seeds": (dict, False), "predictor_seeds": (dict, False),
            "budgets": (list, False), "seeds": (list, False), "unfrozen": (list, False),
            "dup_only": (list, False), "eval": (dict, False), "eval_replicates": ((bool, list), False),
            "curves_only": (list, False), "optional": (list, False), "optional_replicates": (list, False)},
}


class ProfileError(ValueError):
    pass


def profile_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    return CONFIG_DIR / f"{name}.yaml"


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def resolve_profile(name: str = "auto") -> str:
    """"auto" -> gpu with CUDA, else cpu; any other name is returned unchanged (checked on load)."""
    if name == "auto":
        return "gpu" if cuda_available() else "cpu"
    return name


def validate(prof: dict, where: str = "profile") -> dict:
    if not isinstance(prof, dict):
        raise ProfileError(f"{where}: expected a mapping at the top level, got {type(prof).__name__}")
    for section, fields in SCHEMA.items():
        d = prof if section == "" else prof.get(section, {})
        if section and section not in prof:
            if SCHEMA[""][section][1]:
                raise ProfileError(f"{where}: missing section {section!r}")
            continue
        for key, (typ, required) in fields.items():
            if key not in d:
                if required:
                    raise ProfileError(f"{where}: {section + '.' if section else ''}{key} is required")
                continue
            if not isinstance(d[key], typ) or (typ is int and isinstance(d[key], bool)):
                raise ProfileError(f"{where}: {section + '.' if section else ''}{key} must be "
                                   f"{getattr(typ, '__name__', typ)}, got {d[key]!r}")
        unknown = set(d) - set(fields)
        if unknown:
            raise ProfileError(f"{where}: unknown keys {sorted(unknown)} in {section or 'top level'}; "
                               f"known: {sorted(fields)} (profiles hold sizes only)")
    for sec, key in (("svd", "weight_types"), ("predictor", "weight_types"),
                     ("predictor", "loo_weight_types"), ("predictor", "lambda_weight_types")):
        bad = [w for w in prof[sec][key] if w not in PROJECTIONS]
        if bad:
            raise ProfileError(f"{where}: {sec}.{key} has unknown weight types {bad}; use {list(PROJECTIONS)}")
    seeds = prof["predictor"]["seeds"]
    if not seeds or any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in seeds) or len(set(seeds)) < len(seeds):
        raise ProfileError(f"{where}: predictor.seeds must be a non-empty list of distinct non-negative integers, "
                           f"got {seeds!r}")
    try:
        ppl_protocol(prof)
    except ProtocolError as e:
        raise ProfileError(f"{where}: {e}") from None
    bad = [m for m in prof["expansion"]["methods"] if m not in BUILDERS]
    if bad:
        raise ProfileError(f"{where}: unknown methods {bad}; known: {sorted(BUILDERS)}")
    for i, m in enumerate(prof.get("extra_models", [])):      # same keys as `model`, one entry per model
        _validate_model(m, f"{where}: extra_models[{i}]")
    for m in profile_models(prof):
        if m["name"] in TINY_MODELS and "tiny" not in m:
            raise ProfileError(f"{where}: model {m['name']!r} needs a `tiny` config")
    names = [m["name"] for m in profile_models(prof)]
    if len(set(names)) != len(names):
        raise ProfileError(f"{where}: a model is named twice in model/extra_models: {names}")
    for sec, d, key in (("protocol", prof.get("protocol") or {}, "precision"),
                        ("cpt.eval", (prof.get("cpt") or {}).get("eval") or {}, "precision")):
        if key in d and d[key] not in PRECISIONS:
            raise ProfileError(f"{where}: {sec}.{key} must be one of {list(PRECISIONS)}, got {d[key]!r}")
    if prof["device"] not in ("cpu", "cuda"):
        raise ProfileError(f"{where}: device must be cpu or cuda, got {prof['device']!r}")
    return prof


def _validate_model(m: Any, where: str) -> None:
    if not isinstance(m, dict):
        raise ProfileError(f"{where}: expected a mapping like the `model` section, got {m!r}")
    for key, (typ, required) in SCHEMA["model"].items():
        if key not in m:
            if required:
                raise ProfileError(f"{where}: {key} is required")
        elif not isinstance(m[key], typ) or (typ is int and isinstance(m[key], bool)):
            raise ProfileError(f"{where}: {key} must be {getattr(typ, '__name__', typ)}, got {m[key]!r}")
    unknown = set(m) - set(SCHEMA["model"])
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(SCHEMA['model'])}")


def tokenizer_of(name: str) -> str:
    """The model whose tokenizer a profile model uses: itself, or for a tiny random model the real one it
    stands for (TINY_MODELS); corpora are built per tokenizer (lesa.data.prepare.corpus_for)."""
    return TINY_MODELS.get(name, (None, name))[1]


def profile_models(prof: dict) -> list[dict]:
    """The profile's model sections: ``model`` first (the one CPT and every claim use), then
    ``extra_models`` (the per-model claims C1-C3, C7, C8, C12c also run on these)."""
    return [prof["model"], *prof.get("extra_models", [])]


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_profile_yaml(path: Path, seen: tuple = ()) -> dict:
    """A profile file, with ``extends: <parent>`` resolved: the parent's sections, overridden key by key
    by this file's (a profile that changes only sizes states only them). ``extends`` is kept as a record."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    parent = raw["extends"]
    if not isinstance(parent, str) or parent in seen or parent == path.stem:
        raise ProfileError(f"{path}: extends {parent!r} is not a profile name, or the chain loops ({seen})")
    ppath = profile_path(parent)
    if not ppath.exists():
        raise ProfileError(f"{path}: extends {parent!r}, but {ppath} does not exist")
    return merge(read_profile_yaml(ppath, seen + (path.stem,)), raw)


# Every precision a profile sets (evaluation, CPT training and its evaluation, the scale ladder's protocol), and
# the environment variable that replaces them all for one run: `LESA_PRECISION=bf16 make replicate` runs the
# whole profile in bf16 (results record the precision they ran in and caches key on it, so nothing mixes), and
# tests/test_precision_verdicts.py runs the smoke profile's notebooks in fp32 and in bf16 with it.
PRECISION_ENV = "LESA_PRECISION"
PRECISION_KEYS = (("protocol",), ("cpt", "train"), ("cpt", "eval"), ("scale", "protocol"))


def override_precision(prof: dict, precision: str) -> dict:
    """``prof`` with every precision it sets (PRECISION_KEYS) replaced by ``precision`` (fp32 | bf16 | auto)."""
    if precision not in PRECISIONS:
        raise ProfileError(f"{PRECISION_ENV}={precision!r}: expected one of {list(PRECISIONS)}")
    prof = copy.deepcopy(prof)
    for path in PRECISION_KEYS:
        d = prof
        for k in path:
            d = d.get(k) if isinstance(d, dict) else None
        if isinstance(d, dict):
            d["precision"] = precision
    return prof


def load_profile(name: str = "auto", *, check_device: bool = True) -> dict:
    """Load and validate configs/<name>.yaml ("auto" picks gpu or cpu). With ``check_device``, a
    profile that needs CUDA fails clearly on a machine without it. ``$LESA_PRECISION`` (when set)
    replaces every precision the profile sets (override_precision)."""
    name = resolve_profile(name)
    path = profile_path(name)
    if not path.exists():
        raise ProfileError(f"no profile {name!r} ({path}); available: "
                           f"{', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))}")
    prof = validate(read_profile_yaml(path), str(path))
    if os.environ.get(PRECISION_ENV):
        prof = override_precision(prof, os.environ[PRECISION_ENV])
    if check_device and prof["requires_cuda"] and not cuda_available():
        raise ProfileError(
            f"profile {prof['name']!r} needs a CUDA GPU and none is visible (torch.cuda.is_available() "
            "is False). Use --profile cpu (or auto), or render from committed GPU results with "
            "`python -m lesa.book build --profile gpu`.")
    return copy.deepcopy(prof)


def longer_profiles(names: list[str] | tuple[str, ...], of: str) -> tuple[str, ...]:
    """Those of ``names`` that extend profile ``of`` (cpu-long of cpu: the same code and model with larger
    budgets), in order; unknown names are skipped."""
    out = []
    for n in names:
        try:
            parent = read_profile_yaml(profile_path(n)).get("extends")
        except (ProfileError, OSError):
            continue
        if parent == of:
            out.append(n)
    return tuple(out)


def tiny_config(prof: dict, family: str = "llama", vocab_size: int | None = None, model: dict | None = None):
    """HF config of a tiny random model: ``model`` (a model section, default the profile's ``model``)
    gives the sizes; ``family`` the architecture (other families for the code-path demo)."""
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config

    t = dict((model or prof["model"]).get("tiny") or {"hidden_size": 64, "intermediate_size": 128,
                                                      "num_hidden_layers": 8, "num_attention_heads": 4,
                                                      "num_key_value_heads": 2, "max_position_embeddings": 512})
    t.pop("seed", None)
    t["vocab_size"] = vocab_size or 256
    if family == "gemma3":
        # Gemma's defaults are 270M-sized (head_dim 256, window 4096); scale them to the tiny model and
        # put a full-attention layer every 3rd so both attention types lie inside any growth range.
        t.setdefault("head_dim", t["hidden_size"] // t["num_attention_heads"])
        t.setdefault("query_pre_attn_scalar", t["head_dim"])
        t.setdefault("sliding_window", 16)
        t.setdefault("sliding_window_pattern", 3)
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig, "gemma3": Gemma3TextConfig}[family]
    return cls(tie_word_embeddings=(family in ("llama", "gemma3")), **t)


def build_tiny(prof: dict, family: str = "llama", vocab_size: int | None = None, seed: int | None = None,
               model: dict | None = None):
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(prof, family, vocab_size, model)
    torch.manual_seed(((model or prof["model"]).get("tiny") or {}).get("seed", 0) if seed is None else seed)
    built = AutoModelForCausalLM.from_config(cfg).eval()
    if family == "qwen2":                    # visible (non-zero) q/k/v biases
        with torch.no_grad():
            for layer in built.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.1)
    if family == "gemma3":                   # HF initialises Gemma norms to 0 (unit gain): make them visible
        with torch.no_grad():
            for name, p in built.named_parameters():
                if "norm" in name:
                    p.normal_(0, 0.1)
    return built


def load_profile_model(prof: dict, tokenizer: bool = True, model: dict | str | None = None):
    """(model, tokenizer, model_key) for ``model``: a section from profile_models(prof) or its name
    (default: the profile's ``model``). A tiny random model uses the tokenizer of the real model its
    family stands for (TINY_MODELS), so every evaluation path (WikiText, LAMBADA, held-out shards) is
    the same as for that model."""
    from transformers import AutoTokenizer

    sections = {m["name"]: m for m in profile_models(prof)}
    if model is None:
        section = prof["model"]
    elif isinstance(model, dict):
        section = model
    elif model in sections:
        section = sections[model]
    else:
        raise ProfileError(f"model {model!r} is not in profile {prof['name']!r}; its models: {sorted(sections)}")
    name = section["name"]
    if name in TINY_MODELS:
        family, tok_source = TINY_MODELS[name]
        tok = AutoTokenizer.from_pretrained(resolve(tok_source))
        m = build_tiny(prof, family, vocab_size=len(tok), model=section)
        key = stable_hash({"tiny": section["tiny"], "vocab": len(tok)} if name == TINY_MODEL else
                          {"tiny": section["tiny"], "vocab": len(tok), "name": name})
        return m, (tok if tokenizer else None), f"tiny-{key}"
    m, tok = load_model(name, device=prof["device"] if prof["device"] == "cpu" else "cpu")
    return m, tok, weights_key(name)


def dry_run(name: str) -> str:
    """Validate a profile and build every plan it names, without loading weights."""
    prof = load_profile(name, check_device=False)
    lines = [f"profile {prof['name']}: {prof['description']}"]
    for m in profile_models(prof):
        if "source_layers" in m:
            L = m["source_layers"]
        elif m["name"] in TINY_MODELS:
            L = m["tiny"]["num_hidden_layers"]
        else:
            L = load_config(m["name"]).num_hidden_layers
        target = m.get("target_layers") or default_target(L)
        lines.append(f"model {m['name']}: {L} -> {target} layers")
        for method in prof["expansion"]["methods"]:
            plan = build_plan(method, L, target)
            lines.append(f"  {method:10s} new layers at {plan.new_layers}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.study.profiles")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="validate profile(s) and dry-run their plans")
    c.add_argument("names", nargs="*", default=list(PROFILES))
    s = sub.add_parser("resolve", help="print the profile 'auto' resolves to")
    s.add_argument("name", nargs="?", default="auto")
    a = ap.parse_args(argv)
    if a.cmd == "resolve":
        print(resolve_profile(a.name))
        return 0
    for n in a.names:
        print(dry_run(n))
    return 0


if __name__ == "__main__":
    from ..core.store import run_main

    sys.exit(run_main(main))
