"""Readers of the CPT and evaluation result files (C2, C4-C6, C12a, C12b) and the verdict records written
to results/<profile>/verdicts/<notebook>.json (the rules that decide them are in lesa.claims.rules)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..claims.verdict import VERDICTS, Verdict, markdown, paired_accuracy, smooth, steps_to_reach
from ..core.flops import read_store
from ..core.store import provenance, read_json, write_json
from ..core.layout import Results
from .profiles import ProfileError, load_profile


def find_results(profile: str, sub: str, fallbacks: tuple[str, ...] = ("gpu",),
                 root: str | Path | None = None, prefer: tuple[str, ...] = ()) -> tuple[Path | None, str | None]:
    """results/<p>/<sub> of the first preferred profile that has them (e.g. cpu-long's longer runs shown
    on the cpu page), else this profile's, else the first fallback profile's (e.g. committed GPU results
    rendered on a CPU machine). Returns (path, profile it came from)."""
    for p in (*prefer, profile, *[f for f in fallbacks if f != profile]):
        d = Results(p, root).dir / sub
        if d.exists() and any(d.rglob("*.json")):
            return d, p
    return None, None


def complete_cpt_profiles(profiles: list[str] | tuple[str, ...], of: str,
                          root: str | Path | None = None, methods: tuple[str, ...] | None = None,
                          suite: bool = True) -> tuple[str, ...]:
    """Those of ``profiles`` that extend profile ``of`` (its longer budget, e.g. cpu-long of cpu) and whose
    every CPT run (lesa.study.cpt.run_names; but those marked ``cpt.optional``, lesa.study.cpt.required_runs) has finished,
    and been evaluated where the profile evaluates it (lesa.study.cpt.evaluated_runs): only a complete set of runs
    replaces a profile's own (a partial one would mix budgets in one verdict).

    ``methods``: only the runs of these plan methods on their own recipe (no ablations) must have finished,
    for a page that shows only those (chapter 6: LLaMA Pro against the variants); ``suite=False``: their
    training is enough (the page reads held-out curves, not the post-training suite)."""
    from .cpt import evaluated_runs, finished_summary, required_runs, run_names
    out = []
    for p in profiles:
        try:
            prof = load_profile(p, check_device=False)
        except ProfileError:
            continue
        if prof.get("extends") != of:
            continue
        base = Results(p, root).dir
        runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants")) if prof.get("cpt") else {}
        evaluated = set(evaluated_runs(runs, prof["cpt"])) if runs and suite else set()
        runs = required_runs(runs, prof["cpt"]) if runs else runs
        if methods is not None:
            runs = {n: r for n, r in runs.items() if r["method"] in methods and r["ablation"] is None}
        done = lambda n: (finished_summary(base, n) is not None
                          and (n not in evaluated or (base / "downstream" / n).is_dir()))
        if runs and all(done(n) for n in runs):
            out.append(p)
    return tuple(out)


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def load_cpt_runs(cpt_dir: Path | None) -> dict[str, dict]:
    """name -> {summary, train (list of rows), eval (list of rows), method, frozen (the method's own
    recipe, not an ablation: SOLAR's trains every layer), ablation}; {} when no folder is given or it does not
    exist yet (a profile before its first run)."""
    runs = {}
    if cpt_dir is None or not Path(cpt_dir).is_dir():
        return runs
    for d in sorted(p for p in Path(cpt_dir).iterdir() if p.is_dir()):
        summ = read_json(d / "summary.json") if (d / "summary.json").exists() else {}
        train, ev = _jsonl(d / "train_log.jsonl"), _jsonl(d / "eval_log.jsonl")
        if not (summ or train):
            continue
        growth = summ.get("growth") or {}
        cfg = summ.get("config") or {}
        run = summ.get("run") or {}         # lesa.study.cpt's run table; older summaries: train_all alone
        ablation = run.get("ablation") if "ablation" in run else ("unfrozen" if cfg.get("train_all") else None)
        runs[d.name] = {"summary": summ, "train": train, "eval": ev,
                        "method": growth.get("method") or d.name.split("-")[0],
                        "options": run.get("options") or {},        # a variant's plan options (alpha, rank)
                        "frozen": ablation is None, "ablation": ablation, "completed": bool(summ.get("completed")),
                        # what the run trained, as recorded (older summaries: train_all alone)
                        "trains": run.get("trains") or ("all" if cfg.get("train_all") else "new")}
    return runs


def run_seeds(run: dict) -> dict:
    """The seeds that tell a run from its replicates (which share its display name), as its summary
    records them: {"data order": the data seed, "predictor seed": the seed its new layers were predicted
    with, "–" for a method that uses none (lesa.study.cpt.SEEDLESS)}."""
    from .cpt import SEEDLESS

    s = run["summary"]
    ps = (s.get("run") or {}).get("predictor_seed")
    return {"data order": (s.get("config") or {}).get("seed", "–"),
            "predictor seed": "–" if run["method"] in SEEDLESS or ps is None else ps}


def _method_runs(runs: dict[str, dict], frozen: bool):
    """(method key, run name, run) for every frozen (or unfrozen) run that trained, in name order; the
    unexpanded 'base' control trains every layer and is never a frozen run. The one filter both
    runs_by_method and step_times use, so the two cannot drift apart."""
    for name, r in sorted(runs.items()):
        if r["frozen"] == frozen and r["train"] and not (frozen and r["method"] == "base"):
            yield run_key(name, r), name, r


def runs_by_method(runs: dict[str, dict], frozen: bool = True, first: set[str] | frozenset = frozenset()) -> dict[str, dict]:
    """method -> its frozen (or unfrozen) run with the most logged steps; on ties the profile's first seed
    (``first``: first_seed_runs, e.g. LESA's median predictor seed, lesa-p1 in cpu-long), else the first name."""
    out: dict[str, dict] = {}
    for key, name, r in _method_runs(runs, frozen):
        cur = out.get(key)
        if (cur is None or len(r["train"]) > len(cur["train"])
                or (len(r["train"]) == len(cur["train"]) and name in first and cur["name"] not in first)):
            out[key] = {**r, "name": name}
    return out


def first_seed_runs(profile: str | None) -> frozenset:
    """The names of a profile's runs that are their method's first seed (lesa.study.cpt.run_names: not a replicate;
    cpu-long: lesa-p1, the median predictor seed, and llama_pro-seed0): what a single-run display shows."""
    from .cpt import run_names
    try:
        prof = load_profile(profile, check_device=False) if profile else None
    except ProfileError:
        return frozenset()
    if not prof or not prof.get("cpt"):
        return frozenset()
    runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants"))
    return frozenset(n for n, r in runs.items() if not r["replicate"])


def method_logs(runs: dict[str, dict], method: str, ablation: str | None = None) -> list[list[dict]]:
    """The held-out evaluation logs of every finished run of ``method`` on its own recipe (``ablation`` None, no
    plan options) or of that ablation, one per seed or data order, in name order: what the one seed rule reads
    (lesa.claims.rules.seed_rule). A run still training is left out; no run gives []."""
    return [r["eval"] for _, r in sorted(runs.items()) if r["method"] == method and r.get("ablation") == ablation
            and not r.get("options") and r.get("completed") and r.get("eval")]


def step_times(runs: dict[str, dict], frozen: bool = True) -> dict[str, list[float]]:
    """method -> per-step seconds (first step, the warm-up, left out) of its run whose median step time is
    the median over the method's runs (its seeds or data orders): one run slowed by other work on a shared
    machine then does not set the method's step time, and the steps stay one run's for the SE."""
    by: dict[str, list[list[float]]] = {}
    for key, _, r in _method_runs(runs, frozen):
        # a run whose steps read the frozen-prefix store skipped layers: its times are not the method's step cost
        if len(r["train"]) > 1 and not read_store(r.get("summary") or {}):
            by.setdefault(key, []).append([x["step_s"] for x in r["train"][1:]])
    # the lower middle for an even count: a run that did happen, not an average of two
    return {k: sorted(v, key=np.median)[(len(v) - 1) // 2] for k, v in by.items()}


def run_key(name: str, r: dict) -> str:
    """A run's key in method-keyed comparisons: its method, or its run name for a variant grown with plan
    options (two settings of one method must not collide)."""
    return name if r.get("options") else r["method"]


def cpt_comparison(runs: dict[str, dict], window: int = 10, first: set[str] | frozenset = frozenset()) -> dict:
    """Frozen runs of lesa / llama_pro / solar: final smoothed loss, steps and compute for LESA to
    reach each baseline's final loss, median step time ratio (the paper's: lesa.claims.rules.PAPER_STEP_RATIO)."""
    frozen = runs_by_method(runs, frozen=True, first=first)   # one run per method: the first seed, as the paired ones use
    out: dict = {"final_loss": {m: float(smooth([x["loss"] for x in r["train"]], window)[-1])
                                for m, r in frozen.items()},
                 "step_s": {m: float(np.median(st)) for m, st in step_times(runs).items()},
                 "reach": {}, "methods": sorted(frozen)}
    if "lesa" in frozen:
        for b in ("llama_pro", "solar"):
            if b in frozen:
                hit = steps_to_reach(frozen["lesa"]["train"], out["final_loss"][b], window=window)
                total = frozen[b]["train"][-1]
                out["reach"][b] = {"lesa": hit, "baseline_total": {k: total.get(k) for k in
                                                                   ("step", "tokens", "flops", "elapsed_s")}}
        if out["step_s"].get("lesa"):
            out["step_time_ratio"] = {m: out["step_s"][m] / out["step_s"]["lesa"] for m in out["step_s"]}
    if "llama_pro" in frozen:     # every frozen run against LLaMA Pro's final loss (the variants beyond the paper)
        total = frozen["llama_pro"]["train"][-1]
        out["reach_llama_pro"] = {
            "target": out["final_loss"]["llama_pro"],
            "baseline_total": {k: total.get(k) for k in ("step", "tokens", "flops", "elapsed_s")},
            "runs": {m: steps_to_reach(r["train"], out["final_loss"]["llama_pro"], window=window)
                     for m, r in frozen.items() if m != "llama_pro"}}
    unfrozen = {r["method"]: r for r in runs.values() if r.get("ablation") == "unfrozen" and r["train"]}
    out["unfrozen"] = {m: float(smooth([x["loss"] for x in r["train"]], window)[-1]) for m, r in unfrozen.items()}
    out["unfrozen_std"] = {m: float(np.std(np.diff([x["loss"] for x in r["train"]][-50:])))
                           for m, r in unfrozen.items() if len(r["train"]) > 2}
    out["frozen_std"] = {m: float(np.std(np.diff([x["loss"] for x in r["train"]][-50:])))
                         for m, r in frozen.items() if len(r["train"]) > 2}
    return out


def recorded_eval_s(res: Results, name: str) -> float:
    """Seconds CPT run ``name``'s post-training records (a profile's results, ``res``) took, summed (0 if none)."""
    return sum(read_json(p).get("seconds") or 0.0 for p in sorted(res.downstream(name).glob("*.json")))


def load_eval_records(eval_dir: Path, run_keys: dict[str, str] | None = None,
                      stale: list[str] | None = None) -> list[dict]:
    """Tidy rows (label, task, metric, value, n) from lesa.eval.evaluate records under eval_dir/<label>/.

    ``run_keys``: label -> the run key of that CPT run's current weights (its summary.json). A record that
    names other weights (``weights_id.run_key``: an older run of that name, e.g. a task the profile no
    longer evaluates) is left out, and its path appended to ``stale`` when given, so one table never mixes
    two trainings."""
    rows = []
    for p in sorted(Path(eval_dir).glob("*/*.json")):
        r = read_json(p)
        want = (run_keys or {}).get(p.parent.name)
        have = (r.get("weights_id") or {}).get("run_key")
        if want and have and want != have:
            if stale is not None:
                stale.append(str(p))
            continue
        if "task" in r and "value" in r:
            rows.append({"label": r.get("label") or p.parent.name, "task": r["task"],
                         "metric": r.get("primary_metric"), "value": r["value"],
                         "stderr": (r.get("stderr") or {}).get(r.get("primary_metric")),
                         "n": r.get("n_samples"), "limit": r.get("limit"), "max_length": r.get("max_length"),
                         "precision": r.get("precision")})
    return rows


def load_questions(eval_dir: str | Path, label: str, task: str) -> dict[tuple, bool] | None:
    """{(subtask, doc_id): answered correctly} of one model on one task, from <label>/<task>_questions.jsonl
    (written by lesa.eval.evaluate.run_benchmarks since issue 37), judged by the record's primary metric; None when the
    questions were not saved (older records)."""
    path = Path(eval_dir) / label / f"{task}_questions.jsonl"
    rec_path = Path(eval_dir) / label / f"{task}.json"
    if not path.exists() or not rec_path.exists():
        return None
    metric = read_json(rec_path).get("primary_metric")
    return {(r.get("subtask"), r["doc_id"]): bool(r[metric]) for r in _jsonl(path) if metric in r}


def paired_questions(eval_dir: str | Path, a: str, b: str, tasks: list[str]) -> dict | None:
    """lesa.claims.rules.paired_accuracy of runs ``a`` and ``b`` over ``tasks``, on the questions both answered; None when
    either run lacks a task's per-question results."""
    by = {}
    for t in tasks:
        qa, qb = load_questions(eval_dir, a, t), load_questions(eval_dir, b, t)
        if not qa or not qb:
            return None
        ids = sorted(set(qa) & set(qb), key=str)
        by[t] = ([qa[i] for i in ids], [qb[i] for i in ids])
    return paired_accuracy(by) if by else None


def main_table(rows: list[dict]) -> dict:
    """{label: {"ppl": wikitext word perplexity or held-out ppl, "avg": mean benchmark accuracy (%),
    "n_tasks": k}} in the shape of the paper's main table."""
    by: dict = {}
    for r in rows:
        d = by.setdefault(r["label"], {"acc": {}, "ppl": None, "ppl_source": None})
        if r["task"] == "ppl_wikitext":
            d["ppl"], d["ppl_source"] = r["value"], "wikitext word ppl"
        elif r["task"] == "ppl_heldout" and d["ppl"] is None:
            d["ppl"], d["ppl_source"] = r["value"], "held-out token ppl"
        elif not r["task"].startswith("ppl_") and r["task"] != "lambada_openai":
            d["acc"][r["task"]] = (r["value"], r.get("stderr"))
    out = {}
    for k, v in by.items():
        accs = [a for a, _ in v["acc"].values()]
        ses = [se for _, se in v["acc"].values()]
        se = (100 * math.sqrt(sum(x * x for x in ses)) / len(ses)) if ses and None not in ses else None
        out[k] = {"ppl": v["ppl"], "ppl_source": v["ppl_source"], "n_tasks": len(v["acc"]),
                  "avg": 100 * float(np.mean(accs)) if accs else None, "avg_se": se,
                  "tasks": sorted(v["acc"]), "acc": v["acc"]}
    return out


def method_row(table: dict, runs: dict[str, dict], method: str, first: set[str] | frozenset = frozenset()) -> dict | None:
    """A method's row of main_table, in its own recipe: the run named after it, else its first data order or
    predictor seed (cpu-long's `llama_pro-seed0`), else its largest budget (`lesa-6k`); never an ablation (LESA
    unfrozen, SOLAR duplicated layers only) nor a variant grown with plan options. runs: load_cpt_runs's.
    ``first``: the profile's first-seed runs (first_seed_runs): among a method's seeds, the one shown (LESA's median
    predictor seed, lesa-p1 in cpu-long, not lesa-p0 by name order)."""
    if method in table:
        return table[method]
    own = [n for n in table if n in runs and runs[n]["method"] == method and runs[n]["frozen"]
           and not runs[n].get("options")]
    if not own:      # no CPT record (results copied without their cpt/ folder): read the method from the name
        own = [k for k in table if k not in runs and k.split("-")[0] == method and "seed" not in k
               and k.split("-")[-1] not in ("unfrozen", "dup")]
    budget = lambda k: int(k.split("-")[1]) if len(k.split("-")) > 1 and k.split("-")[1].isdigit() else -1
    own.sort(key=lambda k: (-budget(k), k not in first, k))   # the largest budget, then the profile's first seed
    return table[own[0]] if own else None


# ============================================================================ verdicts
def verdict(claim: str, statement: str, paper: str, ours: str, status: str, evidence: str,
            notebook: str, detail: str = "") -> dict:
    if status not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {status!r}")
    return {"claim": claim, "statement": statement, "paper": paper, "ours": ours, "verdict": status,
            "evidence": evidence, "notebook": notebook, "detail": detail}


def write_verdicts(folder: str | Path, notebook: str, rows: list, *, profile: str,
                   source_profile: str | None = None) -> Path:
    """results/<profile>/verdicts/<notebook>.json: the claims this notebook judged (lesa.claims.rules.Verdict
    objects or their records)."""
    rows = [r.record() if isinstance(r, Verdict) else r for r in rows]
    path = Path(folder) / f"{notebook}.json"
    write_json(path, {"profile": profile, "notebook": notebook, "source_profile": source_profile or profile,
                      "verdicts": rows, "provenance": provenance()})
    return path


def verdict_markdown(rows: list) -> str:
    """Markdown table of verdicts (lesa.claims.rules.Verdict objects or their records)."""
    return markdown(rows)
