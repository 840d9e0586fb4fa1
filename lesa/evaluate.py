"""Evaluation: fast batched perplexity, lm-eval benchmark runs on in-memory models, tidy records.

This is the only module that imports `lm_eval` (lazily, so perplexity also runs on a machine
without it). Every result is one tidy record per model x task, written atomically as JSON under
`<out_dir>/<label>/<task>.json`, plus `<out_dir>/summary.csv` over all records there.

    perplexity(model, tok, "wikitext" | "lambada" | "heldout" | <shard folder>)   fast, batched
    run_benchmarks(model, tok, tasks=BENCHMARKS, limit=...)                        through lm-eval
    evaluate_suite(model, tok, label=..., out_dir=...)                             both, + summary
"""
from __future__ import annotations

import copy
import csv
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .store import provenance, read_json, write_json

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
BENCHMARKS = ["arc_easy", "arc_challenge", "hellaswag", "piqa", "boolq", "winogrande", "openbookqa",
              "mmlu", "lambada_openai"]
PRIMARY = {"arc_easy": "acc_norm", "arc_challenge": "acc_norm", "hellaswag": "acc_norm", "piqa": "acc_norm",
           "openbookqa": "acc_norm", "boolq": "acc", "winogrande": "acc", "mmlu": "acc",
           "lambada_openai": "acc", "wikitext": "word_perplexity"}
CHANCE = {"arc_easy": 0.25, "arc_challenge": 0.25, "hellaswag": 0.25, "piqa": 0.5, "openbookqa": 0.25,
          "boolq": 0.5, "winogrande": 0.5, "mmlu": 0.25}
PPL_SETS = ["wikitext", "lambada", "heldout"]
# Logits (rows x vocabulary) computed at once when scoring: 2**26 fp32 = 256 MB, i.e. 1365 rows of
# SmolLM2's 49k vocabulary (its 1k-token windows are one chunk) or 256 rows of Gemma 3's 262k.
MAX_LOGITS = 2 ** 26


# ----------------------------------------------------------------------------- helpers
PRECISIONS = ("fp32", "bf16")


def bf16_supported(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively: CUDA with bf16, or a CPU that
    oneDNN runs bf16 on (AVX-512 or AMX). Elsewhere torch emulates bf16, which is slower than fp32
    (on a 2-core AVX2 EPYC: 4.7 vs 20.7 GFLOP/s for a SmolLM2-sized linear layer)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def check_precision(precision: str, device: str | torch.device) -> None:
    """A clear early error for an unknown precision or bf16 on a device without native bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"precision='bf16' was requested on {device}, which has no native bfloat16 matrix "
                         "units (CPU without AVX-512/AMX, or a GPU without bf16): torch would emulate it, slower "
                         "than fp32. Use precision='fp32' (protocol.precision: fp32 in the profile).")


def precision_context(precision: str, device: str | torch.device):
    """Autocast for evaluation: "bf16" runs matrix products in bfloat16 while the weights stay as
    loaded; "fp32" changes nothing. Log-softmax is always taken in float32 by the callers."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _model_info(model: torch.nn.Module) -> dict:
    cfg = model.config
    return {"class": type(model).__name__, "name_or_path": Path(str(getattr(cfg, "_name_or_path", ""))).name,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "n_layers": getattr(cfg, "num_hidden_layers", None),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(next(model.parameters()).device)}


def default_max_length(model: torch.nn.Module, tokenizer: Any) -> int:
    """The context length lm-eval's HFLM would use (model config, then tokenizer, then 2048)."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        v = getattr(model.config, attr, None)
        if v:
            return int(v)
    v = getattr(tokenizer, "model_max_length", None)
    return int(v) if v and v < 1e9 else 2048


def prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's prefix token for the first rolling window: BOS, or EOS when there is no BOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's get_rolling_token_windows(context_len=1) + make_disjoint_window: (context, targets).

    Windows predict disjoint spans of up to `max_len` tokens; the first is conditioned on `prefix`,
    later ones on the `max_len` tokens before their last target (so the last window keeps context).
    """
    out = []
    if not tokens:
        return out
    first = min(max_len, len(tokens))
    out.append(([prefix], tokens[:first]))
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        ctx = tokens[max(end - max_len - 1, 0):end - 1]
        out.append((ctx[:len(ctx) - (n - 1)], tokens[end - n:end]))
        done = end
    return out


@torch.inference_mode()
def score_continuations(model: torch.nn.Module, items: list[tuple[list[int], list[int]]], *,
                        max_length: int, batch_size: int = 8, desc: str = "score",
                        progress: bool = True, max_logits: int = MAX_LOGITS,
                        precision: str = "fp32") -> list[tuple[float, bool]]:
    """Sum log p(continuation | context) and greedy-match for each (context, continuation) pair.

    As lm-eval: the sequence (context + continuation) keeps its last max_length + 1 tokens; the
    model sees all but the last. Batched by length (right-padded), log-softmax in float32 on the
    continuation positions only, so a 49k vocabulary never materialises (B, T, V) logits; those
    positions go through the head in chunks of at most ``max_logits`` logits (Gemma's 262k vocabulary
    would otherwise take 1 GB per 1k-token window, twice with the log-softmax).
    precision: "fp32" or "bf16" (autocast; see precision_context).
    """
    device = next(model.parameters()).device
    check_precision(precision, device)
    amp = lambda: precision_context(precision, device)
    seqs = [(ctx + cont)[-(max_length + 1):] for ctx, cont in items]
    order = sorted(range(len(items)), key=lambda i: -len(seqs[i]))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(items)
    base, head = getattr(model, "base_model", None), model.get_output_embeddings()
    # hidden states @ head equals the model's logits unless the model post-processes them (Gemma 2's
    # final logit soft-capping): then the full logits are taken from the model.
    use_hidden = (base is not None and base is not model and head is not None
                  and getattr(model.config, "final_logit_softcapping", None) is None)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", disable=not progress,
                      leave=False):
        idx = order[start:start + batch_size]
        T = len(seqs[idx[0]]) - 1
        inp = torch.zeros((len(idx), T), dtype=torch.long)                     # (B, T) right-padded
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for b, i in enumerate(idx):
            s = seqs[i][:-1]
            inp[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = 1
        inp, mask = inp.to(device), mask.to(device)
        with amp():
            if use_hidden:
                hidden = base(input_ids=inp, attention_mask=mask).last_hidden_state  # (B, T, H)
            else:
                logits_all = model(input_ids=inp, attention_mask=mask).logits      # (B, T, V)
        for b, i in enumerate(idx):
            n_in, n_cont = len(seqs[i]) - 1, len(items[i][1])
            pos = torch.arange(n_in - n_cont, n_in, device=device)             # (C,) positions
            target = torch.tensor(seqs[i][-n_cont:], device=device)
            vocab = head.weight.shape[0] if use_hidden else logits_all.shape[-1]
            rows = max(1, max_logits // vocab)
            ll, greedy = 0.0, True
            for c in range(0, n_cont, rows):                                   # one chunk unless C*V > max_logits
                p = pos[c:c + rows]
                with amp():
                    logits = head(hidden[b, p]) if use_hidden else logits_all[b, p]   # (c, V)
                logp = F.log_softmax(logits.float(), dim=-1)
                ll += logp.gather(-1, target[c:c + rows, None]).sum().item()
                greedy = greedy and bool((logp.argmax(-1) == target[c:c + rows]).all())
            results[i] = (ll, greedy)
    return results


def _relative(path: Path) -> str:
    """A path for records: relative to the checkout when inside it (no absolute paths committed)."""
    from .store import PROJECT_ROOT
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return Path(path).name


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    return rows[:limit] if limit else rows


# ----------------------------------------------------------------------------- perplexity
def wikitext_detokenize(page: str) -> str:
    from .tasks.utils import wikitext_detokenizer          # the verbatim lm-eval function

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
    from .data import benchmark_dir, latest_corpus

    check_precision(precision, next(model.parameters()).device)

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
        from .shards import read_meta, read_shards

        root = latest_corpus() / "heldout" if dataset == "heldout" else Path(dataset)
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


# ----------------------------------------------------------------------------- lm-eval
def _load_yaml(path: Path) -> dict:
    try:
        from lm_eval.tasks._yaml_loader import load_yaml          # lm-eval >= 0.4.10
        return load_yaml(path, resolve_func=True)
    except ImportError:                                            # older lm-eval
        from lm_eval.utils import load_yaml_config
        return load_yaml_config(str(path))


def mmlu_subjects(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "mmlu").iterdir() if p.is_dir())


def _fill(obj: Any, subs: dict[str, str]) -> Any:
    if isinstance(obj, str):
        for k in sorted(subs, key=len, reverse=True):       # SUBJECT_NAME before SUBJECT
            obj = obj.replace(k, subs[k])
        return obj
    if isinstance(obj, dict):
        return {k: _fill(v, subs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, subs) for v in obj]
    return obj


def task_configs(task: str, data_dir: str | Path | None = None) -> list[dict]:
    """Resolved lm-eval task dicts for one task (57 for "mmlu"): committed YAML + data folder."""
    from .data import benchmark_dir

    data_dir = Path(data_dir) if data_dir else benchmark_dir()
    path = TASKS_DIR / f"{task}.yaml"
    if not path.exists():
        raise KeyError(f"no task config {path.name} in {TASKS_DIR}; known: {BENCHMARKS + ['wikitext']}")
    template = _load_yaml(path)
    if task == "mmlu":
        cfgs = [_fill(copy.copy(template), {"SUBJECT_NAME": s.replace("_", " "), "SUBJECT": s})
                for s in mmlu_subjects(data_dir)]
    else:
        cfgs = [template]
    for cfg in cfgs:
        files = cfg["dataset_kwargs"]["data_files"]
        cfg["dataset_kwargs"] = {**cfg["dataset_kwargs"],
                                 "data_files": {k: str(data_dir / v) for k, v in files.items()}}
        for f in cfg["dataset_kwargs"]["data_files"].values():
            if not Path(f).exists():
                raise FileNotFoundError(f"{f} is missing: run `make data` (lesa.data.export_benchmarks())")
    return cfgs


LM_KINDS = ("prefix", "hf")


def make_lm(model: torch.nn.Module, tokenizer: Any, batch_size: int = 16, max_length: int | None = None,
            precision: str = "fp32", lm: str = "prefix"):
    """An lm-eval model around an in-memory model (no save needed); log-softmax in float32.

    lm: "prefix" (default) lesa.prefix_lm.PrefixLM, which runs a context shared by several answer
        choices once and scores every choice on its key/value cache (same log-likelihoods as HFLM
        up to float rounding, tested); "hf" lm-eval's own HFLM, every (context, choice) in full.
    precision: "fp32" or "bf16" (autocast, weights as loaded; refused without native bf16).
    batch_size: HFLM's requests per forward pass; PrefixLM packs batch_size x 256 padded tokens.
    """
    from lm_eval.models.huggingface import HFLM

    if lm not in LM_KINDS:
        raise ValueError(f"lm must be one of {LM_KINDS}, got {lm!r}")
    check_precision(precision, next(model.parameters()).device)
    kw = dict(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
              softmax_dtype=torch.float32)
    if lm == "hf":
        return HFLM(**kw, mixed_precision_dtype=torch.bfloat16 if precision == "bf16" else None)
    from .prefix_lm import PrefixLM

    return PrefixLM(**kw, precision=precision, token_budget=batch_size * 256)


def _split_metrics(res: dict) -> tuple[dict, dict]:
    metrics, stderr = {}, {}
    for k, v in res.items():
        if "," not in k or not isinstance(v, (int, float)):
            continue
        name = k.split(",")[0]
        if name.endswith("_stderr"):
            stderr[name[:-7]] = v
        else:
            metrics[name] = v
    return metrics, stderr


def run_task(lm: Any, task: str, *, limit: int | None = None, seed: int = 1234, data_dir: Path | None = None,
             bootstrap_iters: int = 1000) -> dict:
    """One benchmark through lm-eval's simple_evaluate; returns the tidy record (without model info)."""
    import lm_eval
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    cfgs = task_configs(task, data_dir)
    out = simple_evaluate(model=lm, tasks=cfgs, task_manager=TaskManager(include_defaults=False), limit=limit,
                          log_samples=False, bootstrap_iters=bootstrap_iters, random_seed=seed,
                          numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    names = [c["task"] for c in cfgs]
    n = {t: out["n-samples"][t]["effective"] for t in names}
    n_total = {t: out["n-samples"][t]["original"] for t in names}
    if task == "mmlu":       # lm-eval's `mmlu` group: size-weighted mean over the 57 subjects
        accs = {t: out["results"][t]["acc,none"] for t in names}
        acc = sum(accs[t] * n[t] for t in names) / sum(n.values())
        metrics = {"acc": acc}
        p = acc
        stderr = {"acc": math.sqrt(p * (1 - p) / max(sum(n.values()) - 1, 1))}
        extra = {"subtasks": {t[5:]: {"acc": accs[t], "n": n[t]} for t in names}}
    else:
        metrics, stderr = _split_metrics(out["results"][task])
        extra = {}
    t = names[0]
    return {"task": task, "metrics": metrics, "stderr": stderr, "primary_metric": PRIMARY[task],
            "value": metrics[PRIMARY[task]], "chance": CHANCE.get(task), "n_samples": sum(n.values()),
            "n_total": sum(n_total.values()), "limit": limit, "num_fewshot": out["n-shot"][t],
            "task_version": out["versions"][t], "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__")
            else _pkg_version("lm_eval"), "seed": seed, "split": cfgs[0].get("test_split") or cfgs[0].get("validation_split"),
            "seconds": round(time.perf_counter() - t0, 1), **extra}


def _pkg_version(name: str) -> str | None:
    import importlib.metadata as md
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _write_record(rec: dict, out_dir: Path, label: str) -> Path:
    path = out_dir / label / f"{rec['task']}.json"
    write_json(path, rec)
    write_summary(out_dir)
    return path


def write_summary(out_dir: str | Path) -> Path:
    """summary.csv: one row per model x task over every record under out_dir."""
    out_dir = Path(out_dir)
    rows = []
    for p in sorted(out_dir.glob("*/*.json")):
        r = read_json(p)
        if "task" not in r or "value" not in r:
            continue
        rows.append({"label": r.get("label"), "task": r["task"], "metric": r.get("primary_metric"),
                     "value": r["value"], "stderr": (r.get("stderr") or {}).get(r.get("primary_metric")),
                     "n_samples": r.get("n_samples"), "n_total": r.get("n_total"), "limit": r.get("limit"),
                     "num_fewshot": r.get("num_fewshot"), "dtype": (r.get("model") or {}).get("dtype"),
                     "batch_size": r.get("batch_size"), "max_length": r.get("max_length"),
                     "seconds": r.get("seconds")})
    import io
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from .store import atomic_write_text
    return atomic_write_text(out_dir / "summary.csv", buf.getvalue())


def _reusable(path: Path, limit: Any, weights_id: Any, precision: str = "fp32") -> bool:
    if not path.exists():
        return False
    rec = read_json(path)
    return (rec.get("limit") == limit and rec.get("weights_id") == weights_id
            and rec.get("precision", "fp32") == precision)


def run_benchmarks(model: torch.nn.Module, tokenizer: Any, tasks: list[str] | tuple[str, ...] = tuple(BENCHMARKS), *,
                   limit: int | dict[str, int | None] | None = None, batch_size: int = 16,
                   out_dir: str | Path | None = None, label: str = "model", max_length: int | None = None,
                   seed: int = 1234, data_dir: str | Path | None = None, skip_done: bool = False,
                   weights_id: Any = None, precision: str = "fp32", lm: str = "prefix") -> list[dict]:
    """Evaluate an in-memory model on lm-eval tasks (the committed configs, offline data).

    limit: None (full splits), an int for every task (smoke runs; per subject for MMLU), or a
    dict task -> limit. Writes <out_dir>/<label>/<task>.json and <out_dir>/summary.csv when
    out_dir is given. skip_done=True reuses a record that already exists with the same limit and
    the same weights_id (an identity of the weights, e.g. a training run's key and step, stored in
    every record), so records of other weights are never mistaken for this model's.
    precision, lm: see make_lm (recorded in every record).
    """
    lm_kind = lm
    lm = make_lm(model, tokenizer, batch_size=batch_size, max_length=max_length, precision=precision, lm=lm_kind)
    info, prov = _model_info(model), provenance()
    records = []
    for task in tasks:
        lim = limit.get(task) if isinstance(limit, dict) else limit
        path = Path(out_dir) / label / f"{task}.json" if out_dir else None
        if skip_done and path and _reusable(path, lim, weights_id, precision):
            records.append(read_json(path))
            continue
        rec = {"label": label, **run_task(lm, task, limit=lim, seed=seed,
                                          data_dir=Path(data_dir) if data_dir else None),
               "batch_size": batch_size, "max_length": lm.max_length, "precision": precision, "lm": lm_kind,
               "model": info, "weights_id": weights_id, "provenance": prov}
        print(f"[eval] {label} {task}: {rec['primary_metric']}={rec['value']:.4f} "
              f"(n={rec['n_samples']}/{rec['n_total']}, {rec['seconds']} s)")
        if out_dir:
            _write_record(rec, Path(out_dir), label)
        records.append(rec)
    return records


def evaluate_suite(model: torch.nn.Module, tokenizer: Any, *, label: str, out_dir: str | Path,
                   tasks: list[str] | tuple[str, ...] = tuple(BENCHMARKS), ppl_sets: list[str] | tuple[str, ...] = tuple(PPL_SETS),
                   limit: int | dict[str, int | None] | None = None, batch_size: int = 16,
                   ppl_max_length: int | None = None, skip_done: bool = False,
                   weights_id: Any = None, precision: str = "fp32", lm: str = "prefix") -> list[dict]:
    """Perplexity sets + benchmarks for one model; every record written under out_dir/label/
    (skip_done, weights_id, precision, lm: as in run_benchmarks)."""
    check_precision(precision, next(model.parameters()).device)
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
    base model, not the book's perplexity protocol (lesa.protocol), which every notebook uses."""
    from .models import load_model

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
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lesa.evaluate",
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


if __name__ == "__main__":       # python -m lesa.evaluate [--full]  (base model -> results/base/)
    import sys

    from .store import run_main

    sys.exit(run_main(main))
