"""Run profiles (configs/<name>.yaml): sizes and budgets only, never code paths.

    load_profile("smoke")          -> validated dict
    resolve_profile("auto")        -> "gpu" when CUDA is available, else "cpu"
    load_profile_model(profile)    -> (model, tokenizer, model_key) for the profile's model
    python -m lesa.profiles check paper   # dry run: validate + print every plan, no weights loaded
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

from .arch import PROJECTIONS
from .store import PROJECT_ROOT, stable_hash

CONFIG_DIR = PROJECT_ROOT / "configs"
PROFILES = ("smoke", "cpu", "gpu", "paper")
TINY_MODEL = "tiny-random-llama"

# key -> (type, required); nested sections are validated below
SCHEMA: dict[str, dict[str, tuple[type | tuple, bool]]] = {
    "": {"name": (str, True), "description": (str, True), "requires_cuda": (bool, True),
         "device": (str, True), "model": (dict, True), "svd": (dict, True), "predictor": (dict, True),
         "expansion": (dict, True), "cpt": (dict, False)},
    "model": {"name": (str, True), "tiny": (dict, False), "source_layers": (int, False),
              "target_layers": (int, False)},
    "svd": {"weight_types": (list, True), "n_shuffles": (int, True), "n_gaussian": (int, True),
            "tsne_perplexity": ((int, float), True)},
    "predictor": {"epochs": (int, True), "weight_types": (list, True), "loo_weight_types": (list, True),
                  "loo_layers": (int, True), "lambda_weight_types": (list, True), "lambdas": (list, True)},
    "expansion": {"methods": (list, True), "ppl_sets": (list, True), "ppl_limits": (dict, True),
                  "ppl_max_length": (int, True), "bench_tasks": (list, True),
                  "bench_limit": ((int, type(None)), True), "residual_tokens": (int, True),
                  "family_demo": (list, True), "eval_precision": (str, False)},
    "cpt": {"paper_step_labels": (dict, False), "methods": (list, False), "train": (dict, False),
            "budgets": (list, False), "seeds": (list, False), "unfrozen": (list, False),
            "eval": (dict, False)},
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
    from .plans import BUILDERS

    bad = [m for m in prof["expansion"]["methods"] if m not in BUILDERS]
    if bad:
        raise ProfileError(f"{where}: unknown methods {bad}; known: {sorted(BUILDERS)}")
    if prof["model"]["name"] == TINY_MODEL and "tiny" not in prof["model"]:
        raise ProfileError(f"{where}: model {TINY_MODEL!r} needs a model.tiny config")
    from .evaluate import PRECISIONS

    for sec, d, key in (("expansion", prof["expansion"], "eval_precision"),
                        ("cpt.eval", (prof.get("cpt") or {}).get("eval") or {}, "precision")):
        if key in d and d[key] not in PRECISIONS:
            raise ProfileError(f"{where}: {sec}.{key} must be one of {list(PRECISIONS)}, got {d[key]!r}")
    if prof["device"] not in ("cpu", "cuda"):
        raise ProfileError(f"{where}: device must be cpu or cuda, got {prof['device']!r}")
    return prof


def load_profile(name: str = "auto", *, check_device: bool = True) -> dict:
    """Load and validate configs/<name>.yaml ("auto" picks gpu or cpu). With ``check_device``, a
    profile that needs CUDA fails clearly on a machine without it."""
    import yaml

    name = resolve_profile(name)
    path = profile_path(name)
    if not path.exists():
        raise ProfileError(f"no profile {name!r} ({path}); available: "
                           f"{', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))}")
    prof = validate(yaml.safe_load(path.read_text()), str(path))
    if check_device and prof["requires_cuda"] and not cuda_available():
        raise ProfileError(
            f"profile {prof['name']!r} needs a CUDA GPU and none is visible (torch.cuda.is_available() "
            "is False). Use --profile cpu (or auto), or render from committed GPU results with "
            "`python -m lesa.book build --profile gpu`.")
    return copy.deepcopy(prof)


def tiny_config(prof: dict, family: str = "llama", vocab_size: int | None = None):
    """HF config of the profile's tiny random model (other families for the code-path demo)."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    t = dict(prof["model"].get("tiny") or {"hidden_size": 64, "intermediate_size": 128,
                                            "num_hidden_layers": 8, "num_attention_heads": 4,
                                            "num_key_value_heads": 2, "max_position_embeddings": 512})
    t.pop("seed", None)
    t["vocab_size"] = vocab_size or 256
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[family]
    return cls(tie_word_embeddings=(family == "llama"), **t)


def build_tiny(prof: dict, family: str = "llama", vocab_size: int | None = None, seed: int | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(prof, family, vocab_size)
    torch.manual_seed((prof["model"].get("tiny") or {}).get("seed", 0) if seed is None else seed)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    if family == "qwen2":                    # visible (non-zero) q/k/v biases
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.1)
    return model


def load_profile_model(prof: dict, tokenizer: bool = True):
    """(model, tokenizer, model_key). The tiny random model uses SmolLM2's tokenizer so every
    evaluation path (WikiText, LAMBADA, held-out shards) is the same as for the real model."""
    from transformers import AutoTokenizer

    from .models import DEFAULT_MODEL, load_model, resolve, weights_key

    name = prof["model"]["name"]
    if name == TINY_MODEL:
        tok = AutoTokenizer.from_pretrained(resolve(DEFAULT_MODEL))
        model = build_tiny(prof, "llama", vocab_size=len(tok))
        key = stable_hash({"tiny": prof["model"]["tiny"], "vocab": len(tok)})
        return model, (tok if tokenizer else None), f"tiny-{key}"
    model, tok = load_model(name, device=prof["device"] if prof["device"] == "cpu" else "cpu")
    return model, tok, weights_key(name)


def dry_run(name: str) -> str:
    """Validate a profile and build every plan it names, without loading weights."""
    from .plans import build_plan, default_target

    prof = load_profile(name, check_device=False)
    m = prof["model"]
    if "source_layers" in m:
        L = m["source_layers"]
    elif m["name"] == TINY_MODEL:
        L = m["tiny"]["num_hidden_layers"]
    else:
        from .models import load_config

        L = load_config(m["name"]).num_hidden_layers
    target = m.get("target_layers") or default_target(L)
    lines = [f"profile {prof['name']}: {prof['description']}", f"model {m['name']}: {L} -> {target} layers"]
    for method in prof["expansion"]["methods"]:
        plan = build_plan(method, L, target)
        lines.append(f"  {method:10s} new layers at {plan.new_layers}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.profiles")
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
    from .store import run_main

    sys.exit(run_main(main))
