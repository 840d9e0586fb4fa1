# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Continual pre-training: cost curves (claims C2, C4, C6, C12a, C12b)
#
# The loss curves of the continual pre-training (CPT) runs against tokens, floating-point operations (FLOPs) and
# elapsed time, the step cost measured and expected by the FLOP model, and the verdicts on C2, C4, C6, C12a and
# C12b; the answer comes first, below. C4 is decided on {numref}`fig-c4-longer`, C2, C12a and C12b on the paired
# differences behind {numref}`fig-loss-vs-compute`, C6 on the step-cost table at the end.
# How to run this chapter alone, how long it takes and on which profile: {doc}`../reproduce`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
smooth_window: int = 10         # moving-mean window (steps) for loss curves, "steps to reach" and paired windows
preferred_profiles: list = ["cpu-long"]  # longer versions of this profile (`extends`); their CPT results replace
                                # this one's once all their runs have finished
fallback_profiles: list = ["gpu"]  # profiles whose committed CPT results are shown when this one has none

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel without widgets
import pandas as pd
from IPython.display import display

from lesa.claims.verdict import smooth
from lesa.study.results import complete_cpt_profiles, cpt_comparison, find_results, first_seed_runs, load_cpt_runs, load_eval_records, method_logs, run_seeds, runs_by_method, step_times
from lesa.claims import beyond as B
from lesa.claims import rules as C
from lesa.claims.paper import fmt
from lesa.claims.verdict import paired_window, spread_text
from lesa.plots import figures as P
from lesa.grow.methods import label
from lesa.grow.methods import run_title
from lesa.plots.table import table
from lesa.study.cpt import run_names
from lesa.core.flops import step_cost_ratios
from lesa.book.page import Page
from lesa.core.store import commit_label, hardware_label, read_json, write_json

page = Page("04_cpt_curves", profile, results_root)
longer = complete_cpt_profiles(preferred_profiles, profile, results_root)   # a longer profile whose runs all finished
cpt_dir, source = find_results(profile, "cpt", tuple(fallback_profiles), results_root, prefer=longer)
runs = load_cpt_runs(cpt_dir) if cpt_dir else {}
first = first_seed_runs(source)                   # each method's first seed (LESA's median predictor seed)
frozen = runs_by_method(runs, frozen=True, first=first)   # each method's own recipe (SOLAR: every layer)
unfrozen = runs_by_method(runs, frozen=False)     # the ablations (LESA unfrozen, SOLAR duplicated layers only)
cmp = cpt_comparison({n: r for n, r in runs.items() if r["method"] != "base"}, smooth_window, first) if runs else {}
write_json(page.out / "cpt_comparison.json", {"source_profile": source, **cmp});
rows = lambda m, d=frozen: d[m]["train"] if m in d else None
lesa = frozen.get("lesa")
# the one seed rule (lesa.claims.rules.seed_rule, chapter 6's): every run of each method, one held-out log per seed
logs = {m: method_logs(runs, m) for m in ("lesa", "llama_pro", "solar", "lesa_raw")}
logs["lesa_unfrozen"] = method_logs(runs, "lesa", "unfrozen")
n_seeds = lambda m, unit="run": f"{len(logs[m])} {unit}{'s' if len(logs[m]) != 1 else ''}"
budget = ({"steps": lesa["train"][-1].get("step"), "tokens": lesa["train"][-1].get("tokens"),
           "CPT runs": f"LESA {n_seeds('lesa', 'predictor seed')}, LLaMA Pro {n_seeds('llama_pro', 'data order')}, "
                       f"SOLAR {n_seeds('solar')}, w/o SVD {n_seeds('lesa_raw')}, LESA unfrozen {n_seeds('lesa_unfrozen')}"}
          if lesa else {})
seed_of = lambda a, b: C.seed_rule(logs[a], logs[b])
# C12b's confound and its out-of-distribution direction: the runs' trainable parameters, their WikiText perplexity
trainable = {k: r["summary"].get("trainable", {}).get("trainable_params") for k, r in
             (("frozen", lesa), ("unfrozen", unfrozen.get("lesa"))) if r}
ev_dir = cpt_dir.parent / "downstream" if cpt_dir else None
wiki = {k: next((x["value"] for x in load_eval_records(ev_dir) if x["label"] == r["name"] and x["task"] == "ppl_wikitext"),
                None) for k, r in (("frozen", lesa), ("unfrozen", unfrozen.get("lesa"))) if r} if ev_dir and ev_dir.is_dir() else {}
# C6 from the step-cost bench when the profile has one (its CPT runs ran on different days: cpu-long), else
# from the runs' own step times
bench = read_json(cpt_dir / "step_cost.json") if cpt_dir and (cpt_dir / "step_cost.json").exists() else None
costs = step_cost_ratios({n: r["summary"] for n, r in runs.items() if r["summary"].get("step_s_median")
                          and r["summary"].get("flops_per_token")}, lesa["name"]) if lesa else {}
verdicts = [
    C.judge_c2({m: rows(m) for m in ("lesa", "llama_pro", "solar") if rows(m)}, smooth_window, budget=budget,
               seeds={h: seed_of(h, "lesa") for h in ("llama_pro", "solar") if rows(h)} if lesa else None),
    C.judge_c4(rows("lesa"), rows("llama_pro"), smooth_window, budget=budget,
               heldout={"lesa": lesa["eval"] if lesa else [],
                        "llama_pro": [r["eval"] for r in runs.values() if r["method"] == "llama_pro" and r["frozen"]]},
               seeds={"llama_pro": seed_of("lesa", "llama_pro")}, history=C.C4_RULE_HISTORY),
    C.judge_c6({m: r["step_s"] for m, r in bench["runs"].items()} if bench else step_times(runs),
               budget={"bench rounds": bench["rounds"], "steps of": f"{bench['batch']} x {bench['seq_len']} tokens"} if bench
               else budget, flops_per_token={m: r["flops_per_token"] for m, r in bench["runs"].items()} if bench else
               {m: r["summary"].get("flops_per_token") for m, r in frozen.items() if r["summary"].get("flops_per_token")},
               source=(f"the step-cost bench (python -m lesa.study.step_cost: the three methods' steps interleaved in one "
                       f"process, {bench['rounds']} rounds)" if bench else "the CPT runs' own step times"),
               # the copy control in LESA's gaps (copy_scaled's run) against LESA's run: placement's share of the saving
               placement_control={"step_ratio": costs["copy_scaled"]["measured_ratio"],
                                  "flop_ratio": costs["copy_scaled"]["flop_model_ratio"]}
               if costs.get("copy_scaled", {}).get("measured_ratio") is not None else None),   # None: its steps read stored layers
    C.judge_c12a(rows("lesa"), rows("lesa_raw"), rows("llama_pro"), smooth_window, budget=budget,
                 seeds={"llama_pro": seed_of("lesa_raw", "llama_pro"), "lesa": seed_of("lesa_raw", "lesa")}),
    C.judge_c12b(rows("lesa"), rows("lesa", unfrozen), smooth_window, budget=budget,
                 seeds={"frozen": seed_of("lesa_unfrozen", "lesa")}, trainable=trainable, wikitext=wiki),
]
# C4 compares LESA with LLaMA Pro only, so a longer profile judges it as soon as those two methods' runs have
# trained (cpu-long: LESA and LLaMA Pro on three data orders), before its other runs and its post-training suite
# (and when the longer profile is complete, the page already reads it: its held-out bands are shown from the same runs)
pair_src = (complete_cpt_profiles(preferred_profiles, profile, results_root, methods=("lesa", "llama_pro"), suite=False)
            if source == profile else (source,) if source in preferred_profiles else ())
pair = {}
if pair_src:
    pair_dir, _ = find_results(profile, "cpt", (), results_root, prefer=pair_src)
    pair = {n: r for n, r in load_cpt_runs(pair_dir).items()
            if r["completed"] and r["frozen"] and r["method"] in ("lesa", "llama_pro")}
    pf = runs_by_method(pair, frozen=True, first=first_seed_runs(pair_src[0]))   # LLaMA Pro: the data order LESA saw
    lp_evals = [r["eval"] for r in pair.values() if r["method"] == "llama_pro"]
    lesa_evals = method_logs(pair, "lesa")
    last = pf["lesa"]["train"][-1]
    c4 = C.judge_c4(pf["lesa"]["train"], pf["llama_pro"]["train"], smooth_window,
                    budget={"steps": last.get("step"), "tokens": last.get("tokens"),
                            "CPT runs": f"LESA {len(lesa_evals)} predictor seed{'s' if len(lesa_evals) != 1 else ''}, "
                                        f"LLaMA Pro {len(lp_evals)} data orders"},
                    heldout={"lesa": pf["lesa"]["eval"], "llama_pro": lp_evals},
                    seeds={"llama_pro": C.seed_rule(lesa_evals, lp_evals)}, history=C.C4_RULE_HISTORY)
    c4.source_profile = pair_src[0]
    verdicts = [c4 if v.claim == "C4" else v for v in verdicts]
if not runs:
    page.md(f"**Not yet run for profile `{profile}`**: no CPT runs under `results/{profile}/cpt/` (nor under "
            f"{', '.join(f'results/{p}/cpt/' for p in fallback_profiles)}). Run `python -m lesa.study.cpt --profile {profile}` "
            "and re-execute this notebook.")
else:
    if source in longer:
        tokens = sorted({r["summary"].get("tokens") for r in runs.values() if r["summary"].get("tokens")})
        page.md(f"**Rendered from the `{source}` profile's runs** (`{cpt_dir}`): it extends this profile with a longer "
                f"budget ({fmt(tokens[0])}{f' to {fmt(tokens[-1])}' if len(tokens) > 1 else ''} tokens per run), and every one of its runs has "
                "finished, so they replace this profile's own.")
    elif source != profile:
        page.md(f"**Rendered from committed `{source}` results** (`{cpt_dir}`): this profile has no CPT runs.")
    if pair and source == profile:
        page.md(f"**C4 is judged on the `{pair_src[0]}` profile's runs** of LESA and LLaMA Pro ({fmt(last.get('tokens'))} "
                f"tokens each, ten times this profile's budget; figure below), which have finished before that profile's "
                f"other runs; the other claims stay on this profile's runs until all of `{pair_src[0]}`'s exist.")
    page.md("**What we found.** " + " ".join(f"{v.claim}: **{v.verdict}**, reading *{v.reading}* ({v.ours})."
                                            for v in verdicts))

# %% [markdown]
# * **C2**: heuristic duplication (LLaMA Pro, SOLAR) gives a poorer start and slower convergence than LESA.
# * **C4**: LESA converges faster: the same loss as LLaMA Pro with less than half the compute.
# * **C6**: LESA's steps are cheaper than LLaMA Pro's and SOLAR's (judged on measured wall-clock, with the FLOP
#   model's expectation beside it; the copy control in LESA's gaps, LLaMA Pro's initialisation at LESA's placement,
#   says whether a saving is LESA's or its placement's).
#
# Every claim here that compares runs is judged with one seed rule, chapter 6's: a method is below or above another
# only when, at every held-out evaluation in the later half of the run, all its runs (predictor seeds, data orders)
# lie on one side of all the other's, with two runs or more on each side; otherwise the verdict is inconclusive.
# * **C12a**: LESA w/o SVD is worse than LESA but better than LLaMA Pro, after training at equal steps (at
#   step 0 LLaMA Pro is the base model itself, so the claim is not about initialisation).
# * **C12b**: training all parameters instead of only the new layers converges more slowly and noisily.
#
# This notebook reads the CPT runs of this profile (`results/<profile>/cpt/<run>/`, written by `lesa.train.trainer`); it
# does not train. Grown models train only their new layers, except SOLAR, which trains every layer as its paper
# does (SOLAR with only its duplicated layers trained is an ablation); the base model trains every layer on the
# same tokens. Every run sees the same batches in the same order, so two runs are compared step by step
# (paired differences over a window of steps, with their standard error). {numref}`fig-loss-vs-compute` shows the
# training loss against tokens and compute, {numref}`fig-loss-vs-elapsed` against wall-clock, and
# {numref}`fig-heldout-ppl` the trainer's held-out perplexity.

# %% tags=["hide-input"]
expected = run_names(page.prof["cpt"], page.prof["expansion"].get("variants")) if page.prof.get("cpt") else {}
absent = [n for n in expected if n not in runs]
if runs:
    summ = pd.DataFrame([{"run": run_title(r), **run_seeds(r), "completed": r["completed"],
                          "steps": r["summary"].get("steps"), "tokens": r["summary"].get("tokens"),
                          "last-step loss": r["summary"].get("final_loss"),
                          "held-out PPL start": r["summary"].get("initial_heldout_ppl"),
                          "held-out PPL end": r["summary"].get("final_heldout_ppl"),
                          "median step s": r["summary"].get("step_s_median"),
                          "GFLOP/token": (r["summary"].get("flops_per_token") or 0) / 1e9} for n, r in runs.items()])
    display(table(summ, csv=page.out / "cpt_runs.csv", index=False))
    page.md(f"The last-step loss is one batch's loss; the curves, verdicts and the comparison below use the mean over "
            f"{smooth_window} steps, which is lower while the loss still falls. "
            "The held-out perplexities (PPL) in this table are the trainer's monitoring during CPT (its `eval_sequences` "
            "held-out sequences), not the perplexity protocol; notebook 5 evaluates the trained models under the protocol.")
if absent and source == profile:
    page.md("Not yet run: " + ", ".join(f"`{n}` ({run_title(expected[n])})"
                                        for n in absent) + f" (`python -m lesa.study.cpt --profile {profile}`).")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of every CPT run (moving mean) against training tokens (left) and training compute with the frozen layers' backward pass counted (right). The same tokens cost each method a different compute, so the panels differ exactly where the methods' costs do.", "name": "fig-loss-vs-compute"}, "image": {"alt": "Two panels sharing the loss axis: training loss curves of each method against tokens and against FLOPs."}}
if runs:
    page.save(P.cpt_curves(runs, ("tokens", "flops"), smooth_window), "loss_vs_compute");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of every CPT run (moving mean) against elapsed wall-clock seconds on this machine: what the paper's hours compare.", "name": "fig-loss-vs-elapsed"}, "image": {"alt": "Training loss curves of each method against elapsed seconds."}}
if runs:
    page.save(P.cpt_curves(runs, "elapsed_s", smooth_window), "loss_vs_elapsed_s");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out perplexity measured by the trainer during CPT (log scale), per run.", "name": "fig-heldout-ppl"}, "image": {"alt": "Held-out perplexity of each run against training tokens, log scale."}}
if any(r["eval"] for r in runs.values()):
    page.save(P.heldout_curves(runs), "heldout_ppl");

# %% [markdown]
# ## Every run against LLaMA Pro (training loss)
# LLaMA Pro starts exactly at the base model. Each row compares a run with it on the same tokens, in the same
# order, for the same steps: the paired training-loss difference over the last `smooth_window` steps (negative =
# lower loss than LLaMA Pro; mean and standard error (SE) over those steps), and the tokens at which its smoothed
# loss first reaches LLaMA Pro's final smoothed loss. A run "beats LLaMA Pro" here when the paired difference is
# below zero by more than two SE; that SE is over steps of one run, not over seeds. Chapter 6 judges the learned
# variants (ours) on held-out loss against the spread of several predictor seeds and data orders.

# %% tags=["hide-input"]
reach = cmp.get("reach_llama_pro")
if reach and "llama_pro" in frozen:
    lp_rows = frozen["llama_pro"]["train"]
    lp_eval = frozen["llama_pro"]["eval"]

    def heldout_reach(r):
        """Tokens at the first held-out evaluation at or below LLaMA Pro's final held-out perplexity."""
        if not (r["eval"] and lp_eval):
            return None
        hit = next((e for e in r["eval"] if e["heldout_ppl"] <= lp_eval[-1]["heldout_ppl"]), None)
        return hit.get("tokens", hit["step"]) if hit else "not reached"

    beyond = []
    for key, hit in reach["runs"].items():
        r = frozen[key]
        d = paired_window(r["train"], lp_rows, "end", smooth_window)
        beyond.append({"run": run_title(r), **run_seeds(r),
                       f"loss (mean of last {smooth_window} steps)": cmp["final_loss"][key],
                       "loss − LLaMA Pro (end)": d["mean"] if d else None,
                       "SE": d["se"] if d else None,
                       "beats LLaMA Pro": bool(d and d["mean"] + 2 * d["se"] < 0),
                       "tokens to LLaMA Pro's final loss": hit["tokens"] if hit else "not reached",
                       "held-out PPL end": r["eval"][-1]["heldout_ppl"] if r["eval"] else None,
                       "tokens to LLaMA Pro's final held-out PPL": heldout_reach(r)})
    display(table(pd.DataFrame(beyond), csv=page.out / "vs_llama_pro.csv", index=False))
    wins = [b["run"] for b in beyond if b["beats LLaMA Pro"]]
    lp_all = [float(smooth([x["loss"] for x in r["train"]], smooth_window)[-1]) for r in runs.values()
              if r["method"] == "llama_pro" and r["frozen"] and r["train"]]
    page.md(f"LLaMA Pro's final smoothed training loss is {fmt(reach['target'], 4)}"
            + (f" and its final held-out perplexity {fmt(lp_eval[-1]['heldout_ppl'], 4)}" if lp_eval else "")
            + " after "
            f"{fmt(reach['baseline_total']['tokens'])} tokens"
            + (f" (over its {len(lp_all)} data orders: {spread_text(lp_all, 4, unit='data orders')}, each order's "
               "own last batches, so the spread is the batches' as much as the runs'; the held-out loss below is on "
               "the same sequences for every run; the paired comparison uses the data order every other run saw)"
               if len(lp_all) > 1 else "") + ". "
            + (f"Beating it by more than two SE at the end: {', '.join(wins)}." if wins else
               "No run ends below it by more than two SE at this budget."))
else:
    page.md("Not yet run: no LLaMA Pro run to compare against.")

# %% [markdown]
# ## Held-out loss of LESA and LLaMA Pro (C4)
# C4 compares LESA with LLaMA Pro only, so it is judged on the longest finished runs of those two methods: the
# longer profile's (ten times the `cpu` profile's tokens, LLaMA Pro on three data orders).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The longer runs C4 is judged on: held-out loss of LESA and LLaMA Pro during CPT against training tokens (left) and training compute (right); LLaMA Pro as the median over its data orders with a band from the lowest to the highest. The y-axis fits the curves after their start; a start far above them (LESA's) is named in the panel. Shown when a longer profile's LESA and LLaMA Pro runs have finished.", "name": "fig-c4-longer"}, "image": {"alt": "Two panels of held-out loss curves of LESA and LLaMA Pro in the longer profile, against tokens and against FLOPs, LLaMA Pro with a band over data orders."}}
if pair:
    page.save(P.heldout_loss_curves(pair, flops=B.flops_at), "c4_longer_heldout");

# %% tags=["hide-input"]
if not pair:
    page.md("Not yet run: no longer profile has finished its LESA and LLaMA Pro runs; C4 is judged on this profile's runs.")
else:
    h = c4.uncertainty["heldout"]
    page.md(f"Held-out loss at the end of the `{pair_src[0]}` runs ({fmt(last.get('tokens'))} tokens): LESA "
            f"{fmt(h['lesa_end'], 4)}, LLaMA Pro {spread_text(h['llama_pro_end']['values'], 4, unit='data orders')}. "
            "Held-out loss is the trainer's monitoring set (the same sequences for every run).")
    sr = c4.uncertainty.get("seed_rule", {}).get("llama_pro")
    if sr:
        page.md(f"The one seed rule on these runs: LESA ({sr['n']} predictor seed{'s' if sr['n'] != 1 else ''}) against "
                f"LLaMA Pro ({sr['n_ref']} data orders) is *{sr['result']}*: {sr['why']}. C4 reads **{c4.verdict}**, "
                f"*{c4.reading}*.")
page.md(C.C4_RULE_HISTORY)

# %% [markdown]
# ## Step cost: measured and expected
# Median seconds per step and training FLOPs per token of each run, as ratios to LESA's; the FLOP model counts
# the backward pass through frozen layers above the lowest trained one, so it is what a compute-bound trainer
# would show. That makes placement a cost: the same 15 new layers cost more per token the lower the first one
# sits, because the gradient must flow back through every frozen layer above it (LLaMA Pro's lowest new layer is
# layer 2 of the grown model, LESA's layer 15, so LLaMA Pro's step is the dearer one). Runs with another batch shape
# than LESA's are left out. A run's own step times depend on what else the machine did while it trained; when the
# profile has the step-cost bench (`python -m lesa.study.step_cost`: LESA, LLaMA Pro and SOLAR built as their runs, then
# stepped in turn in one process, so a slow period of the machine falls on all three), C6 is judged on the bench, and
# its table follows the runs'.

# %% tags=["hide-input"]
if costs:
    display(table(pd.DataFrame([{"run": run_title(runs[n]), **run_seeds(runs[n]),
                                   "median step s": c["step_s"], "GFLOP/token": c["flops_per_token"] / 1e9,
                                   "measured ratio to LESA": c["measured_ratio"], "FLOP model ratio to LESA": c["flop_model_ratio"]}
                                  for n, c in costs.items()]), csv=page.out / "step_cost.csv", index=False))
else:
    page.md("Not yet run: no LESA run with step times and FLOPs per token to compare against.")
if bench:
    b = bench["runs"]
    display(table(pd.DataFrame([{"method": label(m), "median step s": b[m]["step_s_median"],
                                   "SE of the median": b[m]["step_s_median_se"], "GFLOP/token": b[m]["flops_per_token"] / 1e9,
                                   "measured ratio to LESA": bench["measured_ratio"][m],
                                   "FLOP model ratio to LESA": bench["flop_model_ratio"][m]} for m in bench["methods"]]),
                    csv=page.out / "step_cost_bench.csv", index=False))
    page.md(f"The step-cost bench: {bench['rounds']} rounds (after {bench['warmup_rounds']} warm-up) of one step of each "
            f"method, batch {bench['batch']} × {bench['seq_len']} tokens in {bench['precision']}, on "
            f"{bench['threads']} CPU threads ({hardware_label(bench['provenance'].get('hardware'))}), at commit "
            f"{commit_label(bench['provenance'])}.")

# %% tags=["hide-input"]
page.finish(verdicts, source_profile=source)
