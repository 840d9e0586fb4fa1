"""Evaluation benchmark: samples/s and requests/s of the benchmark suite (lm-eval) and of the perplexity
code, plus the rates implied by the recorded results runs (results/base/)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import PROJECT_ROOT
from ..core.store import provenance, read_json, write_json
from ..core.layout import Results
from ..core.models import load_model
from ..eval.evaluate import perplexity
from ..eval.harness import make_lm, run_task
from ..eval.scoring import bf16_supported


def _count_requests(lm) -> dict:
    """Wrap lm.loglikelihood to count requests and the seconds spent scoring them."""
    stats, inner = {"requests": 0, "model_s": 0.0}, lm.loglikelihood

    def loglikelihood(requests, *args, **kwargs):
        t0 = time.perf_counter()
        out = inner(requests, *args, **kwargs)
        stats["requests"] += len(requests)
        stats["model_s"] += time.perf_counter() - t0
        return out

    lm.loglikelihood = loglikelihood
    return stats


def recorded_eval_rates(root: Path | None = None) -> list[dict]:
    """samples/s implied by the committed evaluation records (n_samples / seconds of each run)."""
    rows = []
    for p in sorted((root or Results("base").dir).glob("*/*.json")):
        r = read_json(p)
        if not r.get("n_samples") or not r.get("seconds"):
            continue
        hw = (r.get("provenance") or {}).get("hardware", {})
        rows.append({"label": r.get("label"), "task": r["task"], "n_samples": r["n_samples"], "seconds": r["seconds"],
                     "samples_per_s": r["n_samples"] / r["seconds"], "batch_size": r.get("batch_size"),
                     "dtype": (r.get("model") or {}).get("dtype"), "cpus": hw.get("cpus"),
                     "threads": hw.get("torch_threads"), "gpu": hw.get("gpu"),
                     "commit": (r.get("provenance") or {}).get("commit"),
                     "file": str(p.relative_to(PROJECT_ROOT if p.is_relative_to(PROJECT_ROOT) else p.parents[2]))})
    return rows


def _wikitext_bf16(model, tok, full_limit: int | None, subset: int, batch: int) -> dict:
    """(a) WikiText word perplexity in bf16 (autocast) over ``full_limit`` documents (None: all 62),
    and bf16 against fp32 on the first ``subset`` documents (fp32 only on the subset: the full fp32
    run costs ~10 min on 2 cores). Refused, and recorded so, on a device without native bf16."""
    dev = next(model.parameters()).device
    if not bf16_supported(dev):
        print(f"[bench] eval wikitext bf16: skipped, {dev} has no native bf16 (AVX-512/AMX or a bf16 GPU)")
        return {"status": "bf16 not supported on this device"}
    run = lambda prec, lim: perplexity(model, tok, "wikitext", limit=lim, batch_size=batch, progress=False,
                                       precision=prec)
    sub = {p: run(p, subset) for p in ("fp32", "bf16")}                  # interleaved pair on the subset
    full = run("bf16", full_limit)
    rel = sub["bf16"]["value"] / sub["fp32"]["value"] - 1
    out = {"status": "ok", "full_docs": full["n_samples"], "full_bf16_s": full["seconds"],
           "full_bf16_word_ppl": full["value"], "subset_docs": subset,
           "subset_fp32_s": sub["fp32"]["seconds"], "subset_bf16_s": sub["bf16"]["seconds"],
           "subset_word_ppl": {p: r["value"] for p, r in sub.items()}, "subset_rel_diff": rel}
    print(f"[bench] eval wikitext bf16: {full['n_samples']} docs in {full['seconds']} s (word ppl {full['value']:.4f}); "
          f"first {subset} docs bf16 vs fp32: {100 * rel:+.3f} % word ppl, {sub['fp32']['seconds'] / sub['bf16']['seconds']:.2f}x faster")
    return out


def _prefix_vs_hf(model, tok, tasks: list[str], limit: int, batch: int, precision: str) -> list[dict]:
    """(b) per task, in one run and interleaved: samples/s of lesa's prefix-sharing LM and lm-eval's
    HFLM at the same precision, and the ceiling the token counts allow (tokens HFLM runs / tokens
    run with contexts shared)."""
    lms = {k: make_lm(model, tok, batch_size=batch, precision=precision, lm=k) for k in ("hf", "prefix")}
    rows = []
    for task in tasks:
        row = {"task": task, "precision": precision, "batch_size": batch}
        for k in ("hf", "prefix"):
            before = (lms["prefix"].tokens_computed, lms["prefix"].tokens_hflm)
            rec = run_task(lms[k], task, limit=limit)
            row[f"{k}_seconds"], row[f"{k}_value"] = rec["seconds"], rec["value"]
            row["n_samples"] = rec["n_samples"]
            row[f"{k}_samples_per_s"] = rec["n_samples"] / rec["seconds"]
            if k == "prefix":
                row["tokens_prefix"] = lms["prefix"].tokens_computed - before[0]
                row["tokens_hflm"] = lms["prefix"].tokens_hflm - before[1]
        row["speedup"] = row["prefix_samples_per_s"] / row["hf_samples_per_s"]
        row["ceiling"] = row["tokens_hflm"] / max(row["tokens_prefix"], 1)
        print(f"[bench] eval {task:>10} ({precision}): prefix {row['prefix_samples_per_s']:.2f} vs HFLM "
              f"{row['hf_samples_per_s']:.2f} samples/s -> x{row['speedup']:.2f} (token ceiling x{row['ceiling']:.2f}; "
              f"{row['n_samples']} samples; acc {row['prefix_value']:.4f} vs {row['hf_value']:.4f})", flush=True)
        rows.append(row)
    return rows


def bench_eval(model_name: str, *, tasks: list[str], limit: int, batch: int = 8, ppl_limit: int = 1,
               ppl_batch: int = 4, device: str = "cpu", out: Path | None = None, wikitext_docs: int | None = None,
               wikitext_subset: int = 4) -> dict:
    """lm-eval tasks through lesa.eval.evaluate (make_lm + run_task, what run_benchmarks runs per task) and
    the WikiText perplexity code on the base model (fp32 weights); prefix-sharing LM against HFLM;
    bf16 WikiText where the device has native bf16."""
    t_all = time.perf_counter()
    model, tok = load_model(model_name, device=device)
    precision = "bf16" if bf16_supported(device) else "fp32"
    lm = make_lm(model, tok, batch_size=batch, precision=precision)
    stats, rows = _count_requests(lm), []
    for task in tasks:
        r0, s0 = stats["requests"], stats["model_s"]
        rec = run_task(lm, task, limit=limit)
        req, ms = stats["requests"] - r0, stats["model_s"] - s0
        rows.append({"task": task, "n_samples": rec["n_samples"], "requests": req, "seconds": rec["seconds"],
                     "model_s": round(ms, 2), "samples_per_s": rec["n_samples"] / rec["seconds"],
                     "requests_per_s": req / ms, "batch_size": batch, "value": rec["value"]})
    ppl = perplexity(model, tok, "wikitext", limit=ppl_limit, batch_size=ppl_batch, progress=False, precision=precision)
    rows.append({"task": "ppl_wikitext", "n_samples": ppl["n_samples"], "requests": ppl["n_windows"],
                 "seconds": ppl["seconds"], "model_s": None, "samples_per_s": ppl["n_samples"] / ppl["seconds"],
                 "requests_per_s": ppl["n_windows"] / ppl["seconds"], "batch_size": ppl_batch,
                 "tokens_per_s": ppl["n_tokens"] / ppl["seconds"], "value": ppl["value"]})
    for r in rows:
        tps = f", {r['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in r else ""
        print(f"[bench] eval {r['task']:>13}: {r['n_samples']} samples, {r['requests']} requests in {r['seconds']} s "
              f"-> {r['samples_per_s']:.2f} samples/s, {r['requests_per_s']:.2f} requests/s{tps} "
              f"(batch {r['batch_size']})")
    prefix = _prefix_vs_hf(model, tok, tasks, limit, batch, precision)
    wiki = _wikitext_bf16(model, tok, wikitext_docs, wikitext_subset, ppl_batch)
    recorded = recorded_eval_rates()
    for r in recorded:
        print(f"[bench] recorded {r['task']:>13}: {r['samples_per_s']:.2f} samples/s "
              f"({r['n_samples']} in {r['seconds']} s, batch {r['batch_size']}, from {r['file']})")
    summary = {"kind": "eval", "label": model_name, "device": device, "dtype": "float32", "precision": precision,
               "limit": limit, "ppl_limit": ppl_limit, "threads": torch.get_num_threads(), "rows": rows,
               "prefix_vs_hf": prefix, "wikitext_bf16": wiki, "recorded": recorded,
               "bench_wall_s": time.perf_counter() - t_all, "provenance": provenance()}
    if out:
        write_json(out, summary)
    return summary
