"""Evaluation: fast batched perplexity, lm-eval benchmark runs on in-memory models, tidy records.

Scoring (precision, windows, batched log-likelihoods) is in lesa.eval.scoring and the lm-eval runs
in lesa.eval.harness, the only evaluation module that imports `lm_eval` (lazily, so perplexity also
runs on a machine without it); every name stays reachable as lesa.eval.evaluate.X. Every result is one tidy record per model x task, written atomically as JSON under
`<out_dir>/<label>/<task>.json`, plus `<out_dir>/summary.csv` over all records there.

    perplexity(model, tok, "wikitext" | "lambada" | "heldout" | <shard folder>)   fast, batched
    run_benchmarks(model, tok, tasks=BENCHMARKS, limit=...)                        through lm-eval
    evaluate_suite(model, tok, label=..., out_dir=...)                             both, + summary
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .scoring import _model_info, _read_jsonl, _relative, bf16_supported, check_precision, default_max_length, prefix_token_id, rolling_windows, score_continuations
from .harness import (BENCHMARKS, LM_KINDS, _reusable,
    _write_record, run_benchmarks)
from ..core.store import provenance, read_json
from ..core.models import load_model
from ..data.prepare import benchmark_dir, latest_corpus
from ..data.shards import read_meta, read_shards
from .tasks.utils import wikitext_detokenizer

PPL_SETS = ["wikitext", "lambada", "heldout"]


# ----------------------------------------------------------------------------- perplexity
def wikitext_detokenize(page: str) -> str:
    return wikitext_detokenizer({"page": page})


def perplexity(model: torch.nn.Module, tokenizer: Any, dataset: str = "wikitext", *,
               max_length: int | None = None, batch_size: int = 4, limit: int | None = None,
               progress: bool = True, precision: str = "fp32") -> dict:
    """Fast batched perplexity of an in-memory model, as a tidy record (not yet written).

    dataset: "wikitext"  word/byte perplexity and bits per byte as lm-eval's `wikitext` task
                         (62 documents, detokenised, rolling windows of max_length tokens);
             "lambada"   LAMBADA-OpenAI last-word perplexity and greedy accuracy (lm-eval's metrics);
             "heldout"   token perplexity on the held-out shards of the CPT corpus, per source;
             a folder    with shards (meta.json) or per-source shard sub-folders.
    limit: first N documents (wikitext, lambada) or sequences per source (held-out).
    precision: "fp32" (default) or "bf16": matrix products under bfloat16 autocast, weights as
    loaded, log-softmax in float32 (checked first: a device without native bf16 is refused).
    """
    precision = check_precision(precision, next(model.parameters()).device)

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    L = int(max_length or default_max_length(model, tokenizer))
    rec: dict[str, Any] = {"task": f"ppl_{dataset}" if dataset in PPL_SETS else "ppl_shards",
                           "max_length": L, "batch_size": batch_size, "limit": limit, "precision": precision}
    if dataset == "wikitext":
        pages = [r["page"] for r in _read_jsonl(benchmark_dir() / "wikitext" / "test.jsonl", limit)]
        items, owner = [], []
        for d, page in enumerate(pages):
            toks = tokenizer.encode(wikitext_detokenize(page))
            for w in rolling_windows(toks, prefix_token_id(tokenizer), L):
                items.append(w)
                owner.append(d)
        scores = score_continuations(model, items, max_length=L, batch_size=batch_size,
                                     desc="wikitext", progress=progress, precision=precision)
        ll = sum(s for s, _ in scores)
        words = sum(len(re.split(r"\s+", p)) for p in pages)
        nbytes = sum(len(p.encode("utf-8")) for p in pages)
        ntok = sum(len(c) for _, c in items)
        rec.update(metrics={"word_perplexity": math.exp(-ll / words), "byte_perplexity": math.exp(-ll / nbytes),
                            "bits_per_byte": -ll / nbytes / math.log(2), "token_perplexity": math.exp(-ll / ntok)},
                   primary_metric="word_perplexity", n_samples=len(pages), n_tokens=ntok, n_words=words,
                   n_bytes=nbytes, loglikelihood=ll, n_windows=len(items),
                   data="data/wikitext/wiki.test.raw (62 documents)")
    elif dataset == "lambada":
        docs = _read_jsonl(benchmark_dir() / "lambada_openai" / "test.jsonl", limit)
        items = []
        for doc in docs:
            words = doc["text"].split(" ")
            ctx, cont = " ".join(words[:-1]), " " + words[-1]
            whole = tokenizer.encode(ctx + cont)                   # lm-eval's _encode_pair (causal)
            ctx_enc = tokenizer.encode(ctx)
            items.append((ctx_enc, whole[len(ctx_enc):]))
        scores = score_continuations(model, items, max_length=L, batch_size=batch_size * 8,
                                     desc="lambada", progress=progress, precision=precision)
        lls = np.array([s for s, _ in scores])
        rec.update(metrics={"perplexity": float(np.exp(-lls.mean())), "acc": float(np.mean([g for _, g in scores]))},
                   primary_metric="acc", n_samples=len(docs), data="LAMBADA-OpenAI test")
    else:
        own = Path(str(getattr(tokenizer, "name_or_path", "") or "smollm2-135m")).name   # shards in this tokenizer's ids
        root = latest_corpus(tokenizer=own) / "heldout" if dataset == "heldout" else Path(dataset)
        folders = [root] if (root / "meta.json").exists() else sorted(p.parent for p in root.glob("*/meta.json"))
        if not folders:
            raise FileNotFoundError(f"no token shards under {root}: run `make data` first")
        per_source, tot_ll, tot_n = {}, 0.0, 0
        for folder in folders:
            rows = np.asarray(read_shards(folder))[:limit]                           # (N, T)
            items = [([int(r[0])], [int(x) for x in r[1:]]) for r in rows]
            scores = score_continuations(model, items, max_length=max(L, rows.shape[1]),
                                         batch_size=batch_size, desc=folder.name, progress=progress,
                                         precision=precision)
            ll, n = sum(s for s, _ in scores), rows.size - len(rows)
            per_source[read_meta(folder).get("source", folder.name)] = {
                "token_perplexity": math.exp(-ll / max(n, 1)), "n_sequences": int(len(rows)), "n_tokens": int(n)}
            tot_ll, tot_n = tot_ll + ll, tot_n + n
        rec.update(metrics={"token_perplexity": math.exp(-tot_ll / max(tot_n, 1))}, per_source=per_source,
                   primary_metric="token_perplexity", n_samples=sum(v["n_sequences"] for v in per_source.values()),
                   n_tokens=tot_n, data=_relative(root))
    rec["value"] = rec["metrics"][rec["primary_metric"]]
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    model.train(was_training)
    return rec


def evaluate_suite(model: torch.nn.Module, tokenizer: Any, *, label: str, out_dir: str | Path,
                   tasks: list[str] | tuple[str, ...] = tuple(BENCHMARKS), ppl_sets: list[str] | tuple[str, ...] = tuple(PPL_SETS),
                   limit: int | dict[str, int | None] | None = None, batch_size: int = 16,
                   ppl_max_length: int | None = None, skip_done: bool = False,
                   weights_id: Any = None, precision: str = "fp32", lm: str = "prefix") -> list[dict]:
    """Perplexity sets + benchmarks for one model; every record written under out_dir/label/
    (skip_done, weights_id, precision, lm: as in run_benchmarks)."""
    precision = check_precision(precision, next(model.parameters()).device)
    info, prov, records = _model_info(model), provenance(), []
    for name in ppl_sets:
        path = Path(out_dir) / label / f"ppl_{name}.json"
        lim = limit.get(f"ppl_{name}") if isinstance(limit, dict) else limit
        if skip_done and _reusable(path, lim, weights_id, precision):
            records.append(read_json(path))
            continue
        rec = {"label": label, **perplexity(model, tokenizer, name, max_length=ppl_max_length,
                                            batch_size=batch_size, limit=lim, precision=precision),
               "model": info, "weights_id": weights_id, "provenance": prov}
        print(f"[eval] {label} ppl_{name}: {rec['primary_metric']}={rec['value']:.4f} (n={rec['n_samples']}, "
              f"{rec['seconds']} s)")
        _write_record(rec, Path(out_dir), label)
        records.append(rec)
    records += run_benchmarks(model, tokenizer, tasks, limit=limit, batch_size=batch_size, out_dir=out_dir,
                              label=label, skip_done=skip_done, weights_id=weights_id, precision=precision, lm=lm)
    return records


# ----------------------------------------------------------------------------- the base model
# What results/base/ holds on a 2-core CPU (the first N documents of each split; None = full).
# On a GPU pass limits=None to run every split in full.
BASE_CPU_LIMITS: dict[str, int | None] = {
    "arc_easy": 500, "arc_challenge": 300, "hellaswag": 200, "piqa": 200, "boolq": 200,
    "winogrande": 300, "openbookqa": 200, "mmlu": 2, "lambada_openai": 300,
    "ppl_heldout": 2, "ppl_wikitext": 10}


def evaluate_base(model_name: str = "smollm2-135m", out_dir: str | Path = "results/base",
                  limits: dict[str, int | None] | None = BASE_CPU_LIMITS, dtype: str | None = None,
                  batch_size: int = 8, lm: str = "prefix") -> list[dict]:
    """Evaluate the unexpanded base model on every benchmark and perplexity set (resumable). ``dtype``
    None: bf16 weights where bf16 is native (a CUDA GPU, a CPU with AVX512-BF16/AMX), else fp32 (a CPU
    that emulates bf16 runs it several times slower than fp32). This is the wide benchmark sweep of the
    base model, not the book's perplexity protocol (lesa.eval.protocol), which every notebook uses."""
    if dtype is None:
        dtype = "bfloat16" if bf16_supported("cuda" if torch.cuda.is_available() else "cpu") else "float32"
    model, tok = load_model(model_name, dtype=dtype)
    # benchmarks first (lm-eval), then the held-out slices and the full WikiText test set
    records = run_benchmarks(model, tok, BENCHMARKS, limit=limits, batch_size=batch_size, out_dir=out_dir,
                             label=model_name, skip_done=True, lm=lm)
    records += evaluate_suite(model, tok, label=model_name, out_dir=out_dir, tasks=(), ppl_sets=("heldout", "wikitext"),
                              limit=limits, batch_size=4, skip_done=True)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.eval.evaluate",
                                 description="Evaluate a model (default: the base SmolLM2) on every benchmark and "
                                             "perplexity set.")
    ap.add_argument("--model", default="smollm2-135m", help="short name or local HF folder")
    ap.add_argument("--out", default="results/base", help="output folder (one JSON per task + summary.csv)")
    ap.add_argument("--full", action="store_true", help="full splits (GPU); default: the CPU limits")
    ap.add_argument("--batch-size", type=int, default=8,
                    help="lm-eval batch; 32 ran out of 24 GiB on 5-shot MMLU (full-vocab log-softmax per batch)")
    ap.add_argument("--lm", choices=LM_KINDS, default="prefix",
                    help="prefix: contexts shared by answer choices run once (default); hf: lm-eval's HFLM")
    args = ap.parse_args(argv)
    evaluate_base(args.model, args.out, limits=None if args.full else BASE_CPU_LIMITS, batch_size=args.batch_size,
                  lm=args.lm)
    return 0


if __name__ == "__main__":       # python -m lesa.eval.evaluate [--full]  (base model -> results/base/)
    import sys

    from ..core.store import run_main

    sys.exit(run_main(main))
