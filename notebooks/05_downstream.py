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
# # 5. Downstream evaluation (claims C5, C10, C11)
#
# After continual pre-training (CPT), does LESA have a lower perplexity (PPL) and a higher benchmark average than
# LLaMA Pro and SOLAR (claim C5)? The answer, computed from the evaluations, is the paragraph right below;
# {numref}`fig-main-table` decides it, beside the paper's and an independent rerun's numbers. Claims C10 (after
# supervised fine-tuning, SFT) and C11 (code CPT) need data and compute that are not available offline. Which runs,
# sets and budgets: the end of this page and {doc}`../reproduce`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
preferred_profiles: list = ["cpu-long"]  # longer versions of this profile (`extends`); their CPT results replace
                                # this one's once all their runs have finished
fallback_profiles: list = ["gpu"]  # profiles whose committed results are shown when this one has none

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel without widgets
from pathlib import Path

import pandas as pd
from IPython.display import display

from lesa.study.results import complete_cpt_profiles, find_results, first_seed_runs, load_cpt_runs, load_eval_records, main_table, method_logs, method_row, paired_questions
from lesa.claims import rules as C
from lesa.claims.paper import OPT_DEUS_CPT, PAPER_MAIN, and_list, fmt
from lesa.claims.verdict import compare_ranges, spread_text
from lesa.grow.methods import label
from lesa.plots import figures as P
from lesa.grow.methods import display_name, run_title
from lesa.plots.table import table
from lesa.book.page import Page, quiet
from lesa.study.profiles import load_profile, load_profile_model
from lesa.eval.protocol import measure_cached, ppl_protocol
from lesa.core.models import profile_label
from lesa.core.store import write_json

page = Page("05_downstream", profile, results_root, announce=False)
longer = complete_cpt_profiles(preferred_profiles, profile, results_root)   # a longer profile whose runs all finished
ev_dir, source = find_results(profile, "downstream", tuple(fallback_profiles), results_root, prefer=longer)
cpt_dir, cpt_source = find_results(profile, "cpt", tuple(fallback_profiles), results_root, prefer=longer)
cpt_runs = load_cpt_runs(cpt_dir)
# the perplexity protocol of the profile whose evaluations this page shows (a longer profile's sets are larger)
proto = ppl_protocol(load_profile(source)) if source in longer else page.protocol
stale: list[str] = []          # records of an older training of a run (its weights changed since): left out
records = load_eval_records(ev_dir, {n: r["summary"].get("run_key") for n, r in cpt_runs.items()}, stale) if ev_dir else []
ours = main_table(records)
if not ours and cpt_dir:          # fall back to the CPT runs' final held-out perplexity
    for n, r in cpt_runs.items():
        if r["summary"].get("final_heldout_ppl"):
            ours[n] = {"ppl": r["summary"]["final_heldout_ppl"], "ppl_source": "held-out token ppl (CPT log)",
                       "avg": None, "avg_se": None, "n_tasks": 0, "acc": {}}
    source = cpt_source if ours else source


def name_of(n: str) -> str:
    """A run's one display name from what it trained (as in chapter 4), with its predictor seed or data order when
    several evaluated runs share that name (LESA's evaluated predictor seeds)."""
    if n not in cpt_runs:
        return display_name(n)
    title = run_title(cpt_runs[n])
    same = [m for m in ours if m in cpt_runs and run_title(cpt_runs[m]) == title]
    if len(same) < 2:
        return title
    seed = lambda m, k: (cpt_runs[m]["summary"].get("run") if k == "predictor seed" else
                         cpt_runs[m]["summary"].get("config") or {}).get("predictor_seed" if k == "predictor seed" else "seed")
    what = next((k for k in ("predictor seed", "data order") if len({seed(m, k) for m in same}) > 1), None)
    return f"{title}, {what} {seed(n, what)}" if what else title


first = first_seed_runs(cpt_source)        # each method's first seed: LESA's median predictor seed (lesa-p1)
got = {m: method_row(ours, cpt_runs, m, first) for m in ("lesa", "llama_pro", "solar", "base")}
lesa = got["lesa"] or {}
tasks = lesa.get("tasks") or []
# the one seed rule: every evaluated LESA seed's perplexity, and every finished run's held-out curve
lesa_seeds = sorted(n for n in ours if n in cpt_runs and cpt_runs[n]["method"] == "lesa" and cpt_runs[n]["frozen"]
                    and not cpt_runs[n].get("options") and ours[n].get("ppl_source") == lesa.get("ppl_source"))
ppl_of = {m: g["ppl"] for m, g in got.items() if g and g.get("ppl") is not None}
if "lesa" in ppl_of and lesa_seeds:
    ppl_of["lesa"] = [ours[n]["ppl"] for n in lesa_seeds]
logs = {m: method_logs(cpt_runs, m) for m in ("lesa", "llama_pro", "solar")}
# C5's accuracies paired per question where the suite saved each question's result (since issue 37), else unpaired:
# every evaluated LESA seed that has them against each baseline, a call only where every such seed makes it
row_name = {id(v): k for k, v in ours.items()}
paired = {b: [{**r, "run": name_of(n)} for n in (lesa_seeds or [row_name[id(got["lesa"])]])
              if (r := paired_questions(ev_dir, n, row_name[id(got[b])], tasks))]
          for b in ("llama_pro", "solar") if got["lesa"] and got[b] and ev_dir and tasks}
paired = {b: v for b, v in paired.items() if v}
budget = {"tasks": ", ".join(tasks) or "none",
          "questions": sorted({r["n"] for r in records if r["task"] in tasks and r.get("n")}) or "-",
          "CPT runs": f"LESA {len(lesa_seeds) or 1} predictor seed{'s' if len(lesa_seeds) > 1 else ''} evaluated "
                      f"({len(logs['lesa'])} with held-out curves), LLaMA Pro {len(logs['llama_pro'])} data orders (one "
                      f"evaluated), SOLAR {len(logs['solar'])}"}
verdicts = [
    C.judge_c5(ppl_of,
               {m: {t: tuple(v) for t, v in g["acc"].items()} for m, g in got.items() if g and g.get("acc")},
               lesa.get("ppl_source") or "perplexity", budget=budget, paired=paired or None,
               seeds={b: C.seed_rule(logs["lesa"], logs[b]) for b in ("llama_pro", "solar")} if logs["lesa"] else None),
    C.not_testable("C10", "SFT not run", "No instruction data and SFT budget offline."),
    C.not_testable("C11", "code CPT not run", "No BigCode data, no code-execution harness offline."),
]

# the base model, not trained, under the same protocol (only where this profile's own evaluations are shown)
base_row = None
if ours and source == profile:
    model, tok, model_key = load_profile_model(page.prof)
    with quiet():
        base_ppl = measure_cached(model, tok, proto, model_key, "base")
    pick_set = next((k for k in ("wikitext", "heldout") if base_ppl.get(k, {}).get("status") == "ok"), None)
    if pick_set:
        base_row = {"ppl": base_ppl[pick_set]["value"], "ppl_source": f"{pick_set} (protocol)"}
    del model
rows = [{"source": "paper (main table)", "model": k, "ppl": v["ppl"], "avg": v["avg"], "avg SE": None}
        for k, v in PAPER_MAIN.items()]
rows += [{"source": "OpT-DeUS rerun (Llama3.1-8B)", "model": k, "ppl": v["ppl"], "avg": v["avg"], "avg SE": None}
         for k, v in OPT_DEUS_CPT.items()]
rows += [{"source": f"ours ({source})", "model": name_of(k), "ppl": v["ppl"], "avg": v["avg"], "avg SE": v.get("avg_se")}
         for k, v in ours.items()]
if base_row:
    rows.append({"source": f"ours ({profile})", "model": "base, not trained", "ppl": base_row["ppl"], "avg": None,
                 "avg SE": None})
write_json(page.out / "main_table.json", {"source_profile": source, "ours": ours, "rows": rows});

# the answer: C5 in words, every number from the evaluations and the verdict
ppl_name = lambda s: s.replace("wikitext", "WikiText").replace("ppl", "perplexity")
v5 = verdicts[0]
if not ours:
    page.md("**Not yet run for this profile**: no downstream evaluations and no CPT runs to read a perplexity from.")
elif all(ppl_of.get(m) is not None for m in ("lesa", "llama_pro", "solar")):
    tokens = next((r["summary"].get("tokens") for r in cpt_runs.values() if r["method"] == "lesa"), None)
    side = lambda b: {"lower": "below", "higher": "above", "overlap": "within the range of"}[compare_ranges(ppl_of["lesa"], ppl_of[b])]
    found = [(f"After {fmt(tokens)} training tokens per run, " if tokens else "After CPT, ")
             + f"LESA's {ppl_name(lesa['ppl_source'])} is {spread_text(ppl_of['lesa'], 4)}, {side('llama_pro')} LLaMA "
             f"Pro's {spread_text(ppl_of['llama_pro'], 4)} and {side('solar')} SOLAR's {spread_text(ppl_of['solar'], 4)} "
             "(lower is better)."]
    acc, u = v5.uncertainty.get("acc_avg", {}), v5.uncertainty
    if "lesa" in acc and u.get("calls"):
        # the differences the verdict calls: paired per question where both sides saved their questions (every LESA
        # seed that did), else the headline run's unpaired gap
        signed = lambda x: ("+" if x >= 0 else "−") + fmt(abs(x), 3)
        found.append(f"The benchmark average is {fmt(100 * acc['lesa']['mean'], 3)} ± {fmt(100 * acc['lesa']['se'], 2)}% "
                     f"for {name_of(row_name[id(got['lesa'])])}.")
        runs = list(dict.fromkeys(p["run"] for b in u["calls"] if b in paired for p in paired[b]))
        diffs = [f"minus {label(b)}'s{' is' if i == 0 else ''} " + and_list([signed(100 * p["diff"]) for p in paired[b]])
                 for i, b in enumerate(b for b in u["calls"] if b in paired)]
        if diffs:
            found.append("Paired per question, LESA's average " + "; ".join(diffs)
                         + f" points (on {'; '.join(runs)}{', in that order' if len(runs) > 1 else ''}).")
        gaps = [f"{signed(100 * (acc['lesa']['mean'] - acc[b]['mean']))} points against {label(b)}'s"
                for b in u["calls"] if b not in paired]
        if gaps:
            found.append("Unpaired (no per-question results), it differs by " + " and ".join(gaps) + ".")
        smallest = u["smallest_callable_points"]
        can = " and ".join(f"{fmt(smallest[b], 3)} points against {label(b)}" for b in u["calls"])
        if all(c == "within noise" for c in u["calls"].values()):
            n_diffs = sum(len(paired[b]) if b in paired else 1 for b in u["calls"])
            found.append(f"{'Every one is' if n_diffs > 1 else 'It is'} within the noise: the smallest differences "
                         f"these comparisons could call are {can}.")
        else:
            word = {"higher": "clearly above", "lower": "clearly below", "within noise": "within the noise of"}
            found.append("LESA is " + " and ".join(f"{word[c]} {label(b)}" for b, c in u["calls"].items())
                         + f" (the smallest differences these comparisons could call: {can}).")
    found.append(f"C5 is **{v5.verdict}** (*{v5.reading}*); C10 and C11 are not testable offline.")
    page.md("**What we found.** " + " ".join(found))
else:
    page.md(f"**What we found.** C5 (quality after CPT): **{v5.verdict}** ({v5.ours}). C10 and C11 are not testable offline.")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Perplexity and benchmark average after CPT: the paper's main table, the OpT-DeUS rerun and our runs, each labelled with its source. Scales differ between sources; only orderings within one source compare.", "name": "fig-main-table"}, "image": {"alt": "Bar charts of perplexity and average accuracy per model, one row of panels per source: paper, OpT-DeUS rerun, ours."}}
page.save(P.main_table_plot(rows), "main_table");      # the paper's and the rerun's rows even before ours exist

# %% [markdown]
# ## The claims, and how we test them
#
# * **C5**: after CPT, LESA beats the baselines: perplexity and benchmark average, even with half the steps.
# * **C10**: the gains persist after supervised fine-tuning (SFT). **C11**: they hold for code CPT (HumanEval).
#
# {numref}`fig-main-table` and Table 1 set the paper's main table, the independent OpT-DeUS rerun of the official
# code (a different base, data and benchmark set) and our runs side by side, **each labelled with its source**;
# their scales do not compare across sources, only orderings within one source do. Accuracies carry their
# standard errors (SE); a difference within about two standard errors is not called. C5 is judged on each method's
# first seed (LESA's median predictor seed) for the accuracies and on every evaluated LESA predictor seed for the
# perplexity; the one seed rule of chapter 6 reads the held-out curves of every run.

# %% tags=["hide-input"]
if rows:
    cap = page.caption("Perplexity and benchmark average (%) after CPT by source, with the average's SE for our runs "
                       "(the numbers of the figure at the top of this page).")
    shown = pd.DataFrame(rows).rename(columns={"ppl": "perplexity", "avg": "benchmark average (%)", "avg SE": "SE"})
    display(table(shown, csv=page.out / "main_table.csv", index=False, digits=4, caption=cap,
                  collapsed=f"{cap.split('.')[0]}: perplexity and benchmark average by source, {len(rows)} rows (open)"))

# %% tags=["hide-input"]
if ours:
    # C5's power: the accuracies are compared unpaired unless the per-question results were saved
    saved = sorted({p.parent.name for p in ev_dir.glob("*/*_questions.jsonl")}) if ev_dir else []
    unpaired = [label(b) for b in ("llama_pro", "solar") if got.get(b) and b not in paired]
    pair_text = "; ".join(
        f"against {label(b)}: " + "; ".join(f"{p['run']}, {fmt(100 * p['diff'], 3)} points (smallest callable "
                                            f"{fmt(100 * p['mdd'], 3)})" for p in prs) for b, prs in paired.items())
    page.md("**Power of the accuracy comparison.** " + (
        f"Per-question results are saved for {'; '.join(name_of(n) for n in saved)}. "
        + (f"LESA's accuracy is paired per question (an exact McNemar test per task, a paired standard error over the "
           f"tasks) on every LESA run that has them. {pair_text[0].upper() + pair_text[1:]}. A difference counts only when every LESA run's "
           "paired test calls it the same way. " if paired else "No comparison has both sides' per-question results. ")
        + (f"{' and '.join(unpaired)} {'is' if len(unpaired) == 1 else 'are'} compared unpaired (no per-question "
           "results saved): the smallest difference such a comparison could call is printed beside it in the verdict."
           if unpaired else "")
        if saved else
        "The evaluation records hold each task's accuracy and standard error, not which questions each model answered "
        "correctly, so the accuracies are compared unpaired: the smallest difference each comparison could call is "
        "printed beside it in the verdict. A paired comparison (an exact McNemar test per task) needs the per-question "
        "results, which the evaluation suite saves since; the committed evaluations predate it and would have to be "
        "run again."))
# C12b (freezing helps) is judged on the training curves (chapter 4); after training, what the frozen layers keep
# shows out of the CPT corpus's distribution: WikiText and the benchmarks
unfrozen = sorted(n for n in ours if n in cpt_runs and cpt_runs[n]["method"] == "lesa" and not cpt_runs[n]["frozen"])
if lesa.get("ppl") is not None and unfrozen and ours[unfrozen[0]].get("ppl_source") == lesa.get("ppl_source"):
    u = ours[unfrozen[0]]
    avg = lambda g: f"{fmt(g['avg'], 3)} ± {fmt(g['avg_se'], 2)}" if g.get("avg") is not None else "n/a"
    page.md(f"**Freezing, after training.** C12b (freezing the original layers helps) is judged on the training curves "
            f"in chapter 4. After training, LESA with its original layers frozen has {ppl_name(lesa['ppl_source'])} "
            f"**{fmt(lesa['ppl'], 4)}** against **{fmt(u['ppl'], 4)}** with every layer trained (lower is better), "
            f"and a benchmark average (%) of {avg(lesa)} against {avg(u)}.")

# %% [markdown]
# ## The perplexity protocol, and the base model under it

# %% tags=["hide-input"]
page.md(proto.sentence())
off: dict[str, list[str]] = {}         # how a set was measured differently -> the runs measured so
for r in records:
    if r["task"].startswith("ppl_") and proto.mismatch(r):
        off.setdefault(f"{r['task']}: {proto.mismatch(r)}", []).append(name_of(r["label"]))
if off:
    page.md("**Measured differently from the protocol** (the profile's evaluation settings after CPT differ; compare "
            "these rows with care):\n\n"
            + "\n".join(f"- {k}: {'every run' if len(v) == len(ours) else ', '.join(v)}" for k, v in off.items()))
elif records:
    page.md("Every perplexity record after CPT was measured under this protocol.")
if base_row:
    page.md(f"Base model, not trained, under the protocol: {base_row['ppl_source'].split(' ')[0]} perplexity "
            f"**{fmt(base_row['ppl'], 4)}**.")

# %% [markdown]
# ## How this was run
# This chapter reads the evaluations of the CPT runs; it neither trains nor evaluates (the base model's perplexity
# excepted, measured once and cached).

# %% tags=["hide-input"]
if ours and source in longer:
    page.md(f"**Rendered from {profile_label(source)}'s evaluations**: it extends this profile with a longer "
            "training budget and larger evaluation sets, and every one of its runs has finished, so they replace this "
            "profile's own.")
elif ours and source != profile:
    page.md(f"**Rendered from {profile_label(source)}'s committed results**: this profile has none of its own.")
if stale:
    page.md(f"{len(stale)} evaluation record(s) of an earlier training of the same runs were left out (their weights "
            "are not the runs' current ones): " + ", ".join(sorted({name_of(Path(s).parent.name) for s in stale})) + ".")
page.profile_note()

# %% tags=["hide-input"]
page.finish(verdicts, source_profile=source)
