"""lm-eval benchmark runs on in-memory models: the task configs (lesa/tasks, filled with the exported
data's folder), the lm-eval model (prefix-sharing or HFLM), one tidy JSON record per model x task and the
summary.csv over them. This module and lesa.eval.prefix_lm are the only ones that import `lm_eval` (lazily)."""
from __future__ import annotations

import copy
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from .scoring import _model_info, check_precision
from ..core.store import atomic_write_text, provenance, read_json, write_json
from ..data.prepare import benchmark_dir

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
BENCHMARKS = ["arc_easy", "arc_challenge", "hellaswag", "piqa", "boolq", "winogrande", "openbookqa",
              "mmlu", "lambada_openai"]
PRIMARY = {"arc_easy": "acc_norm", "arc_challenge": "acc_norm", "hellaswag": "acc_norm", "piqa": "acc_norm",
           "openbookqa": "acc_norm", "boolq": "acc", "winogrande": "acc", "mmlu": "acc",
           "lambada_openai": "acc", "wikitext": "word_perplexity"}
CHANCE = {"arc_easy": 0.25, "arc_challenge": 0.25, "hellaswag": 0.25, "piqa": 0.5, "openbookqa": 0.25,
          "boolq": 0.5, "winogrande": 0.5, "mmlu": 0.25}


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
                raise FileNotFoundError(f"{f} is missing: run `make data` (lesa.data.export_benchmarks())")  # old module path kept: this text enters cache keys (lesa.core.cachekeys)
    return cfgs


LM_KINDS = ("prefix", "hf")


def make_lm(model: torch.nn.Module, tokenizer: Any, batch_size: int = 16, max_length: int | None = None,
            precision: str = "fp32", lm: str = "prefix"):
    """An lm-eval model around an in-memory model (no save needed); log-softmax in float32.

    lm: "prefix" (default) lesa.eval.prefix_lm.PrefixLM, which runs a context shared by several answer
        choices once and scores every choice on its key/value cache (same log-likelihoods as HFLM
        up to float rounding, tested); "hf" lm-eval's own HFLM, every (context, choice) in full.
    precision: "fp32" or "bf16" (autocast, weights as loaded; refused without native bf16).
    batch_size: HFLM's requests per forward pass; PrefixLM packs batch_size x 256 padded tokens.
    """
    from lm_eval.models.huggingface import HFLM

    if lm not in LM_KINDS:
        raise ValueError(f"lm must be one of {LM_KINDS}, got {lm!r}")
    precision = check_precision(precision, next(model.parameters()).device)
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
             bootstrap_iters: int = 1000, questions: bool = False) -> dict:
    """One benchmark through lm-eval's simple_evaluate; returns the tidy record (without model info).
    ``questions``: also each question's id and metrics, under "_questions" (run_benchmarks writes them beside the
    record, for paired comparisons of two models on the same questions)."""
    import lm_eval
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    cfgs = task_configs(task, data_dir)
    out = simple_evaluate(model=lm, tasks=cfgs, task_manager=TaskManager(include_defaults=False), limit=limit,
                          log_samples=questions, bootstrap_iters=bootstrap_iters, random_seed=seed,
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
    # per question (issue 37: paired comparisons of two models on the same questions): its id and its metrics
    per_question = [{"doc_id": s["doc_id"], **({"subtask": name} if len(names) > 1 else {}),
                  **{m: s[m] for m in s.get("metrics", []) if isinstance(s.get(m), (int, float, bool))}}
                 for name in names for s in (out.get("samples") or {}).get(name, [])]
    return {"task": task, **({"_questions": per_question} if questions else {}), "metrics": metrics, "stderr": stderr, "primary_metric": PRIMARY[task],
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


def write_questions(path: Path, rows: list[dict]) -> Path:
    """One line per question: {doc_id, [subtask], the task's metrics for it} (what lesa.study.analysis.load_questions reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


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
    return atomic_write_text(out_dir / "summary.csv", buf.getvalue())


def same_weights(recorded: Any, now: Any) -> bool:
    """Whether a record's weights_id names these weights. A trained run's id is its run key and step and, since
    checkpoints record it, the fingerprint of the weights it started from (init_key: the same config retrained
    from a model grown again is other weights). init_key is compared only when both sides have one: a record
    written before it existed cannot be checked on it (`--force` re-evaluates such runs)."""
    if not (isinstance(recorded, dict) and isinstance(now, dict)):
        return recorded == now
    keys = set(recorded) | set(now)
    if not ("init_key" in recorded and "init_key" in now):
        keys.discard("init_key")
    return all(recorded.get(k) == now.get(k) for k in keys)


def _reusable(path: Path, limit: Any, weights_id: Any, precision: str = "fp32") -> bool:
    if not path.exists():
        return False
    rec = read_json(path)
    return (rec.get("limit") == limit and same_weights(rec.get("weights_id"), weights_id)
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
    precision = check_precision(precision, next(model.parameters()).device)   # "auto" resolved: records say which
    lm = make_lm(model, tokenizer, batch_size=batch_size, max_length=max_length, precision=precision, lm=lm_kind)
    info, prov = _model_info(model), provenance()
    records = []
    for task in tasks:
        lim = limit.get(task) if isinstance(limit, dict) else limit
        path = Path(out_dir) / label / f"{task}.json" if out_dir else None
        if skip_done and path and _reusable(path, lim, weights_id, precision):
            records.append(read_json(path))
            continue
        rec = {"label": label, **run_task(lm, task, limit=lim, seed=seed, questions=True,
                                          data_dir=Path(data_dir) if data_dir else None),
               "batch_size": batch_size, "max_length": lm.max_length, "precision": precision, "lm": lm_kind,
               "model": info, "weights_id": weights_id, "provenance": prov}
        questions = rec.pop("_questions", None)
        print(f"[eval] {label} {task}: {rec['primary_metric']}={rec['value']:.4f} "
              f"(n={rec['n_samples']}/{rec['n_total']}, {rec['seconds']} s)")
        if out_dir:
            if questions:          # beside the record: <label>/<task>_questions.jsonl (not a record: no .json)
                write_questions(Path(out_dir) / label / f"{task}_questions.jsonl", questions)
            _write_record(rec, Path(out_dir), label)
        records.append(rec)
    return records
