"""Chapter 4 (CPT cost curves): which runs each verdict on C2, C4, C6, C12a and C12b is judged on, the verdicts,
and the chapter's tables, from the committed CPT results.

    ch = cpt_chapter("cpu", "results", window=10, preferred=["cpu-long"], fallback=["gpu"])
    ch["verdicts"], ch["runs_table"], ch["vs_llama_pro"], ch["step_cost"], ch["bench_table"]

Reads results only (the CPT runs' logs and summaries, the step-cost bench, the post-training suite's WikiText
perplexity); the notebook draws the curves and writes the prose.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..claims import rules as C
from ..claims.verdict import paired_window, smooth
from ..core.flops import step_cost_ratios
from ..core.store import read_json
from ..grow.methods import label, run_title
from .results import (complete_cpt_profiles, cpt_comparison, find_results, first_seed_runs, load_cpt_runs,
                      load_eval_records, method_logs, run_seeds, runs_by_method, step_times)

# the methods (and LESA's unfrozen ablation) whose every seed the one seed rule reads
RULE_METHODS = ("lesa", "llama_pro", "solar", "lesa_raw")
# what this chapter's claims compare (C2, C6: LESA, LLaMA Pro, SOLAR; C12a: w/o SVD; C12b: LESA's unfrozen ablation),
# with the base model trained on the same tokens: the curves it draws (the variants are chapter 6's)
CLAIM_METHODS = ("base", *RULE_METHODS)


def claim_runs(runs: dict[str, dict]) -> dict[str, dict]:
    """The runs of the methods this chapter's claims compare (CLAIM_METHODS; no variant grown with plan options),
    ablations included."""
    return {n: r for n, r in runs.items() if r["method"] in CLAIM_METHODS and not r.get("options")}


def _runs_word(n: int, unit: str = "run") -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


def seed_logs(runs: dict[str, dict]) -> dict[str, list[list[dict]]]:
    """The one seed rule's inputs (lesa.claims.rules.seed_rule, chapter 6's): every finished run of each method,
    one held-out log per seed or data order, and LESA's unfrozen ablation as ``lesa_unfrozen``."""
    logs = {m: method_logs(runs, m) for m in RULE_METHODS}
    logs["lesa_unfrozen"] = method_logs(runs, "lesa", "unfrozen")
    return logs


def budget_of(lesa: dict | None, logs: dict[str, list]) -> dict:
    """What a verdict's budget says: LESA's steps and tokens and how many runs each method has."""
    if not lesa:
        return {}
    n = lambda m, unit="run": _runs_word(len(logs[m]), unit)
    last = lesa["train"][-1]
    return {"steps": last.get("step"), "tokens": last.get("tokens"),
            "CPT runs": f"LESA {n('lesa', 'predictor seed')}, LLaMA Pro {n('llama_pro', 'data order')}, "
                        f"SOLAR {n('solar')}, w/o SVD {n('lesa_raw')}, LESA unfrozen {n('lesa_unfrozen')}"}


def c12b_context(runs: dict, cpt_dir: Path | None, lesa: dict | None, unfrozen_lesa: dict | None) -> tuple[dict, dict]:
    """C12b's confound and its out-of-distribution direction: the trainable parameters of LESA's frozen and
    unfrozen runs, and their WikiText perplexity from the post-training suite (empty when it has not run)."""
    pair = [(k, r) for k, r in (("frozen", lesa), ("unfrozen", unfrozen_lesa)) if r]
    trainable = {k: r["summary"].get("trainable", {}).get("trainable_params") for k, r in pair}
    ev_dir = cpt_dir.parent / "downstream" if cpt_dir else None
    if not (ev_dir and ev_dir.is_dir()):
        return trainable, {}
    records = load_eval_records(ev_dir)
    wiki = {k: next((x["value"] for x in records if x["label"] == r["name"] and x["task"] == "ppl_wikitext"), None)
            for k, r in pair}
    return trainable, wiki


def judge_claims(runs: dict, frozen: dict, unfrozen: dict, logs: dict, window: int, budget: dict,
                 trainable: dict, wiki: dict, bench: dict | None, costs: dict) -> list:
    """The verdicts on C2, C4, C6, C12a and C12b on one profile's runs. C6 reads the step-cost bench when the
    profile has one (its CPT runs ran on different days: cpu-long), else the runs' own step times."""
    rows = lambda m, d=frozen: d[m]["train"] if m in d else None
    lesa = frozen.get("lesa")
    seed_of = lambda a, b: C.seed_rule(logs[a], logs[b])
    # the copy control in LESA's gaps (copy_scaled's run) against LESA's: placement's share of a step saving;
    # None when its steps read stored layers (no measured ratio)
    copy = costs.get("copy_scaled", {})
    placement = ({"step_ratio": copy["measured_ratio"], "flop_ratio": copy["flop_model_ratio"]}
                 if copy.get("measured_ratio") is not None else None)
    if bench:
        c6 = dict(step_s={m: r["step_s"] for m, r in bench["runs"].items()},
                  budget={"bench rounds": bench["rounds"], "steps of": f"{bench['batch']} x {bench['seq_len']} tokens"},
                  flops_per_token={m: r["flops_per_token"] for m, r in bench["runs"].items()},
                  source=f"the step-cost bench (python -m lesa.study.step_cost: the three methods' steps interleaved "
                         f"in one process, {bench['rounds']} rounds)")
    else:
        c6 = dict(step_s=step_times(runs), budget=budget, source="the CPT runs' own step times",
                  flops_per_token={m: r["summary"].get("flops_per_token") for m, r in frozen.items()
                                   if r["summary"].get("flops_per_token")})
    return [
        C.judge_c2({m: rows(m) for m in ("lesa", "llama_pro", "solar") if rows(m)}, window, budget=budget,
                   seeds={h: seed_of(h, "lesa") for h in ("llama_pro", "solar") if rows(h)} if lesa else None),
        C.judge_c4(rows("lesa"), rows("llama_pro"), window, budget=budget,
                   heldout={"lesa": lesa["eval"] if lesa else [],
                            "llama_pro": [r["eval"] for r in runs.values() if r["method"] == "llama_pro" and r["frozen"]]},
                   seeds={"llama_pro": seed_of("lesa", "llama_pro")}, history=C.C4_RULE_HISTORY),
        C.judge_c6(c6.pop("step_s"), placement_control=placement, **c6),
        C.judge_c12a(rows("lesa"), rows("lesa_raw"), rows("llama_pro"), window, budget=budget,
                     seeds={"llama_pro": seed_of("lesa_raw", "llama_pro"), "lesa": seed_of("lesa_raw", "lesa")}),
        C.judge_c12b(rows("lesa"), rows("lesa", unfrozen), window, budget=budget,
                     seeds={"frozen": seed_of("lesa_unfrozen", "lesa")}, trainable=trainable, wikitext=wiki),
    ]


def c4_on_longer_runs(profile: str, results_root: str | Path, source: str | None, preferred: tuple, window: int):
    """C4 compares LESA with LLaMA Pro only, so a longer profile judges it as soon as those two methods' runs have
    trained (cpu-long: LESA and LLaMA Pro on three data orders), before its other runs and its post-training suite;
    a page already rendered from that longer profile reads the same runs. Returns (verdict, the two methods'
    finished runs, the longer profile) or (None, {}, None) when no longer profile has them."""
    pair_src = (complete_cpt_profiles(preferred, profile, results_root, methods=("lesa", "llama_pro"), suite=False)
                if source == profile else (source,) if source in preferred else ())
    if not pair_src:
        return None, {}, None
    pair_dir, _ = find_results(profile, "cpt", (), results_root, prefer=pair_src)
    pair = {n: r for n, r in load_cpt_runs(pair_dir).items()
            if r["completed"] and r["frozen"] and r["method"] in ("lesa", "llama_pro")}
    pf = runs_by_method(pair, frozen=True, first=first_seed_runs(pair_src[0]))   # LLaMA Pro: the data order LESA saw
    lp_evals = [r["eval"] for r in pair.values() if r["method"] == "llama_pro"]
    lesa_evals = method_logs(pair, "lesa")
    last = pf["lesa"]["train"][-1]
    c4 = C.judge_c4(pf["lesa"]["train"], pf["llama_pro"]["train"], window,
                    budget={"steps": last.get("step"), "tokens": last.get("tokens"),
                            "CPT runs": f"LESA {_runs_word(len(lesa_evals), 'predictor seed')}, "
                                        f"LLaMA Pro {len(lp_evals)} data orders"},
                    heldout={"lesa": pf["lesa"]["eval"], "llama_pro": lp_evals},
                    seeds={"llama_pro": C.seed_rule(lesa_evals, lp_evals)}, history=C.C4_RULE_HISTORY)
    c4.source_profile = pair_src[0]
    return c4, pair, pair_src[0]


def runs_table(runs: dict) -> list[dict]:
    """One row per CPT run: its seeds, budget, last-step loss, the trainer's held-out perplexity, step cost."""
    return [{"run": run_title(r), **run_seeds(r), "completed": r["completed"],
             "steps": r["summary"].get("steps"), "tokens": r["summary"].get("tokens"),
             "last-step loss": r["summary"].get("final_loss"),
             "held-out PPL start": r["summary"].get("initial_heldout_ppl"),
             "held-out PPL end": r["summary"].get("final_heldout_ppl"),
             "median step s": r["summary"].get("step_s_median"),
             "GFLOP/token": (r["summary"].get("flops_per_token") or 0) / 1e9} for r in runs.values()]


def heldout_reach(r: dict, lp_eval: list[dict]):
    """Tokens at a run's first held-out evaluation at or below LLaMA Pro's final held-out perplexity."""
    if not (r["eval"] and lp_eval):
        return None
    hit = next((e for e in r["eval"] if e["heldout_ppl"] <= lp_eval[-1]["heldout_ppl"]), None)
    return hit.get("tokens", hit["step"]) if hit else "not reached"


def vs_llama_pro(runs: dict, frozen: dict, cmp: dict, window: int) -> list[dict]:
    """Every frozen run against LLaMA Pro's (the data order it saw) on the same tokens: the paired training-loss
    difference over the last ``window`` steps (mean, SE over steps), whether it is below zero by more than two SE,
    and the tokens at which it first reaches LLaMA Pro's final smoothed loss and held-out perplexity."""
    reach = cmp.get("reach_llama_pro")
    if not (reach and "llama_pro" in frozen):
        return []
    lp_rows, lp_eval = frozen["llama_pro"]["train"], frozen["llama_pro"]["eval"]
    out = []
    for key, hit in reach["runs"].items():
        r = frozen[key]
        d = paired_window(r["train"], lp_rows, "end", window)
        out.append({"run": run_title(r), **run_seeds(r),
                    f"loss (mean of last {window} steps)": cmp["final_loss"][key],
                    "loss − LLaMA Pro (end)": d["mean"] if d else None,
                    "SE": d["se"] if d else None,
                    "beats LLaMA Pro": bool(d and d["mean"] + 2 * d["se"] < 0),
                    "tokens to LLaMA Pro's final loss": hit["tokens"] if hit else "not reached",
                    "held-out PPL end": r["eval"][-1]["heldout_ppl"] if r["eval"] else None,
                    "tokens to LLaMA Pro's final held-out PPL": heldout_reach(r, lp_eval)})
    return out


def llama_pro_final_losses(runs: dict, window: int) -> list[float]:
    """LLaMA Pro's final smoothed training loss on each of its data orders (each order's own last batches)."""
    return [float(smooth([x["loss"] for x in r["train"]], window)[-1]) for r in runs.values()
            if r["method"] == "llama_pro" and r["frozen"] and r["train"]]


def step_cost_table(runs: dict, costs: dict) -> list[dict]:
    """Each run's median step time and FLOPs per token as ratios to LESA's (lesa.core.flops.step_cost_ratios)."""
    return [{"run": run_title(runs[n]), **run_seeds(runs[n]), "median step s": c["step_s"],
             "GFLOP/token": c["flops_per_token"] / 1e9, "measured ratio to LESA": c["measured_ratio"],
             "FLOP model ratio to LESA": c["flop_model_ratio"]} for n, c in costs.items()]


def bench_table(bench: dict | None) -> list[dict]:
    """The step-cost bench's methods: median step, its SE, FLOPs per token and both ratios to LESA."""
    if not bench:
        return []
    b = bench["runs"]
    return [{"method": label(m), "median step s": b[m]["step_s_median"], "SE of the median": b[m]["step_s_median_se"],
             "GFLOP/token": b[m]["flops_per_token"] / 1e9, "measured ratio to LESA": bench["measured_ratio"][m],
             "FLOP model ratio to LESA": bench["flop_model_ratio"][m]} for m in bench["methods"]]


def training_differences(runs: dict[str, dict], window: int = 10, later: float = 0.1, compute_window: int = 50,
                         columns: tuple[str, ...] = ("tokens", "flops")) -> dict:
    """Training loss of each claim run minus LLaMA Pro's, for chapter 4's loss-against-compute and loss-against-time
    figures: small multiples instead of six overlaid curves. Every run of a method (same display name) is paired with
    LLaMA Pro's run on the same data order, so both saw the same batches. One column per entry of ``columns``:
    "tokens" pairs the same step (the difference of the moving means over ``window`` steps); any other logged x
    ("flops": training compute; "elapsed_s": wall-clock seconds) pairs the same x, LLaMA Pro's moving mean interpolated
    at the x the run has reached (past LLaMA Pro's last x there is nothing to compare). At the same compute or time the
    two runs are at different steps, on different batches, whose difficulty differs by more than the methods do over
    ten steps, so that difference is of moving means over ``compute_window`` steps. A method's runs (predictor seeds)
    give the median and a band from the lowest to the highest; a run with no LLaMA Pro on its data order is paired
    with the median of LLaMA Pro's runs. ``later``: the y-range the figure fits is that of the points after this
    fraction of the steps (the first steps of a far-off start are named, not drawn to scale)."""
    columns = tuple(columns)
    out = {"window": window, "compute_window": compute_window, "later": later, "columns": list(columns)}
    lp = {run_seeds(r)["data order"]: r for r in runs.values() if r["method"] == "llama_pro" and r["frozen"] and r["train"]}
    if not lp:
        return {"panels": [], **out}
    xs_of = lambda r: {k: np.asarray([float(row.get(k) or np.nan) for row in r["train"]]) for k in columns if k != "tokens"}
    curve = lambda r, w=window: (np.asarray([row["step"] for row in r["train"]]), smooth([row["loss"] for row in r["train"]], w),
                                 xs_of(r))
    def median_of(curves: dict) -> tuple:
        n = min(len(c[0]) for c in curves.values())
        return (next(iter(curves.values()))[0][:n], np.median([c[1][:n] for c in curves.values()], axis=0),
                {k: np.median([c[2][k][:n] for c in curves.values()], axis=0) for k in columns if k != "tokens"})

    ref_of = {k: curve(r) for k, r in lp.items()}
    ref_long = {k: curve(r, compute_window) for k, r in lp.items()}
    median_ref, median_long = median_of(ref_of), median_of(ref_long)
    groups: dict[str, list[dict]] = {}
    for r in runs.values():
        if r["train"] and not (r["method"] == "llama_pro" and r["frozen"]):
            groups.setdefault(run_title(r), []).append(r)
    panels = []
    for title, group in groups.items():
        per_x: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in columns}
        paired = []
        for r in group:
            steps, y, xs = curve(r)
            order = run_seeds(r)["data order"]
            paired.append(order in ref_of)
            if "tokens" in per_x:
                rs, ry, _ = ref_of.get(order, median_ref)
                at = {int(s): i for i, s in enumerate(rs)}
                keep = [i for i, s in enumerate(steps) if int(s) in at]
                tokens = np.asarray([r["train"][i]["tokens"] for i in keep], dtype=float)
                per_x["tokens"].append((tokens, y[keep] - ry[[at[int(steps[i])] for i in keep]]))
            _, y_long, _ = curve(r, compute_window)
            _, ry_long, rx_long = ref_long.get(order, median_long)
            for k, x in xs.items():
                ok = np.isfinite(x) & (x <= np.nanmax(rx_long[k]))
                per_x[k].append((x[ok], y_long[ok] - np.interp(x[ok], rx_long[k], ry_long)))
        varies = [k for k in ("predictor seed", "data order") if len({run_seeds(r)[k] for r in group}) > 1]
        panel = {"label": title, "method": group[0]["method"], "frozen": group[0]["frozen"],
                 "options": group[0].get("options") or {}, "n": len(group), "paired": all(paired),
                 "runs": f"{len(group)} {varies[0] + 's' if len(varies) == 1 else 'runs'}"}
        for key, curves in per_x.items():
            n = min(len(x) for x, _ in curves)
            if all(np.array_equal(x[:n], curves[0][0][:n]) for x, _ in curves):   # tokens, FLOPs: the same per step
                xs, ys = np.median([x[:n] for x, _ in curves], axis=0), np.stack([d[:n] for _, d in curves])
            else:   # elapsed seconds: each run at its own pace, so each is read at the x of the one that stops first
                xs = min((x for x, _ in curves), key=lambda x: x[-1] if len(x) else -np.inf)
                ys = np.stack([np.interp(xs, x, d) if len(x) else np.full(len(xs), np.nan) for x, d in curves])
            panel[key] = {"x": xs.tolist(), "median": np.median(ys, axis=0).tolist(), "lo": ys.min(axis=0).tolist(),
                          "hi": ys.max(axis=0).tolist()}
        panels.append(panel)
    return {"panels": panels, **out, "ref_runs": len(lp)}


def cpt_chapter(profile: str, results_root: str | Path = "results", window: int = 10,
                preferred: list | tuple = ("cpu-long",), fallback: list | tuple = ("gpu",)) -> dict[str, Any]:
    """Chapter 4's data: the runs shown (a longer profile's once all of them finished, else this profile's, else
    a fallback's), the comparison written to cpt_comparison.json, the verdicts (C4 on the longer profile's LESA and
    LLaMA Pro when those have finished), the tables, and what the figures draw."""
    preferred = tuple(preferred)
    longer = complete_cpt_profiles(preferred, profile, results_root)   # a longer profile whose runs all finished
    cpt_dir, source = find_results(profile, "cpt", tuple(fallback), results_root, prefer=longer)
    runs = load_cpt_runs(cpt_dir)
    first = first_seed_runs(source)                   # each method's first seed (LESA's median predictor seed)
    frozen = runs_by_method(runs, frozen=True, first=first)   # each method's own recipe (SOLAR: every layer)
    unfrozen = runs_by_method(runs, frozen=False)     # the ablations (LESA unfrozen, SOLAR duplicated layers only)
    cmp = cpt_comparison({n: r for n, r in runs.items() if r["method"] != "base"}, window, first) if runs else {}
    logs = seed_logs(runs)
    lesa = frozen.get("lesa")
    budget = budget_of(lesa, logs)
    trainable, wiki = c12b_context(runs, cpt_dir, lesa, unfrozen.get("lesa"))
    bench = read_json(cpt_dir / "step_cost.json") if cpt_dir and (cpt_dir / "step_cost.json").exists() else None
    costs = step_cost_ratios({n: r["summary"] for n, r in runs.items() if r["summary"].get("step_s_median")
                              and r["summary"].get("flops_per_token")}, lesa["name"]) if lesa else {}
    verdicts = judge_claims(runs, frozen, unfrozen, logs, window, budget, trainable, wiki, bench, costs)
    c4, pair, pair_source = c4_on_longer_runs(profile, results_root, source, preferred, window)
    if c4:
        verdicts = [c4 if v.claim == "C4" else v for v in verdicts]
    tokens = sorted({r["summary"].get("tokens") for r in runs.values() if r["summary"].get("tokens")})
    return {"source": source, "longer": longer, "runs": runs, "claim_runs": claim_runs(runs), "frozen": frozen,
            "comparison": cmp,
            "verdicts": verdicts, "c4": c4, "pair": pair, "pair_source": pair_source,
            "pair_tokens": c4.budget.get("tokens") if c4 else None,     # LESA's tokens in the longer runs
            "tokens": tokens, "bench": bench, "costs": costs,
            "runs_table": runs_table(runs), "vs_llama_pro": vs_llama_pro(runs, frozen, cmp, window),
            "llama_pro_finals": llama_pro_final_losses(runs, window),
            "step_cost": step_cost_table(runs, costs), "bench_table": bench_table(bench)}
