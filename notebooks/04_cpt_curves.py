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
# Does LESA's initialisation make continual pre-training (CPT) converge faster and cost less than heuristic
# growth? The answer, computed from the runs, is the paragraph right below. C4 is decided on the held-out loss
# of {numref}`fig-c4-longer`, right after it; C2, C12a and C12b on the paired training-loss differences behind
# {numref}`fig-loss-vs-compute` (Table 1); C6 on the step-cost tables at the end. Which runs, budgets and machine:
# the end of this page and {doc}`../reproduce`.

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

from lesa.book.page import Page
from lesa.claims import beyond as B
from lesa.claims import rules as C
from lesa.claims.paper import fmt
from lesa.claims.verdict import spread_text
from lesa.core.models import profile_label
from lesa.core.store import hardware_label, write_json
from lesa.grow.methods import run_title
from lesa.plots import figures as P
from lesa.plots.table import table
from lesa.study.cpt import run_names
from lesa.study.curves import cpt_chapter, training_differences
from lesa.study.variants import difference_curves

page = Page("04_cpt_curves", profile, results_root, announce=False)
ch = cpt_chapter(profile, results_root, smooth_window, preferred_profiles, fallback_profiles)
runs, frozen, source, verdicts, c4 = ch["runs"], ch["frozen"], ch["source"], ch["verdicts"], ch["c4"]
write_json(page.out / "cpt_comparison.json", {"source_profile": source, **ch["comparison"]});
if not runs:
    page.md(f"**Not yet run for profile `{profile}`**: no CPT runs for this profile (nor for "
            f"{', '.join(fallback_profiles)}). Run `python -m lesa.study.cpt --profile {profile}` and re-execute this notebook.")
else:
    found, by_verdict = [], {}
    for v in verdicts:
        by_verdict.setdefault(v.verdict, []).append(v.claim)
    h = c4.uncertainty.get("heldout") if c4 else None
    sr = (c4.uncertainty.get("seed_rule") or {}).get("llama_pro") if c4 else None
    if h:
        found.append(f"After {fmt(ch['pair_tokens'])} training tokens per run, LESA's held-out loss ends at "
                     f"{fmt(h['lesa_end'], 4)} against LLaMA Pro's {spread_text(h['llama_pro_end']['values'], 4, unit='data orders')}"
                     + (f": {sr['why']}, on {sr['n']} predictor seed{'s' if sr['n'] != 1 else ''} against {sr['n_ref']} "
                        "data orders" if sr else "") + ".")
    found.append("Of the claims judged here, " + "; ".join(
        f"{' and '.join(cs)} {'is' if len(cs) == 1 else 'are'} **{verdict}**" for verdict, cs in by_verdict.items()) + ".")
    c6 = next((v for v in verdicts if v.claim == "C6" and v.uncertainty.get("median_s")), None)
    if c6:
        t, pc = c6.uncertainty["median_s"], c6.uncertainty.get("placement_control") or {}
        found.append(f"A training step of LESA, LLaMA Pro and SOLAR costs "
                     f"{' : '.join(fmt(t[m] / t['lesa'], 3) for m in ('lesa', 'llama_pro', 'solar'))} (C6)"
                     + (f", but a copy of the layer below in LESA's places costs {fmt(pc['step_ratio'], 3)}× LESA's step: "
                        "the saving comes from where the new layers sit, not from LESA's initialisation"
                        if c6.reading == "holds, from placement" and pc.get("step_ratio") else "") + ".")
    page.md("**What we found.** " + " ".join(found))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The longer runs C4 is judged on: held-out loss of LESA and LLaMA Pro during CPT against training tokens (left) and training compute (right); LLaMA Pro as the median over its data orders with a band from the lowest to the highest. The y-axis fits the curves after their start; a start far above them (LESA's) is named in the panel.", "name": "fig-c4-longer"}, "image": {"alt": "Two panels of held-out loss curves of LESA and LLaMA Pro in the longer profile, against tokens and against FLOPs, LLaMA Pro with a band over data orders."}}
if ch["pair"]:
    page.save(P.heldout_loss_curves(ch["pair"], flops=B.flops_at), "c4_longer_heldout");

# %% [markdown]
# ## The claims, and how we test them
#
# * **C2**: heuristic duplication (LLaMA Pro, SOLAR) gives a poorer start and slower convergence than LESA.
# * **C4**: LESA converges faster: the same loss as LLaMA Pro with less than half the compute.
# * **C6**: LESA's steps are cheaper than LLaMA Pro's and SOLAR's (judged on measured wall-clock, with the FLOP
#   model's expectation beside it; the copy control in LESA's gaps, LLaMA Pro's initialisation at LESA's placement,
#   says whether a saving is LESA's or its placement's).
# * **C12a**: LESA w/o SVD is worse than LESA but better than LLaMA Pro, after training at equal steps (at
#   step 0 LLaMA Pro is the base model itself, so the claim is not about initialisation).
# * **C12b**: training all parameters instead of only the new layers converges more slowly and noisily.
#
# Every claim here that compares runs is judged with one seed rule, chapter 6's: a method is below or above another
# only when, at every held-out evaluation in the later half of the run, all its runs (predictor seeds, data orders)
# lie on one side of all the other's, with two runs or more on each side; otherwise the verdict is inconclusive.
# Each claim's verdict, with the numbers it is judged on:

# %% tags=["hide-input"]
if runs:
    page.md("\n".join(f"- **{v.claim}**: **{v.verdict}**, reading *{v.reading}* ({v.ours})." for v in verdicts))

# %% [markdown]
# ## Held-out loss of LESA and LLaMA Pro (C4)
# C4 compares LESA with LLaMA Pro only, so it is judged on the longest finished runs of those two methods: the
# longer profile's (ten times the shorter profile's tokens, LLaMA Pro on three data orders), shown in
# {numref}`fig-c4-longer` at the top of this page.

# %% tags=["hide-input"]
if not c4:
    page.md("Not yet run: no longer profile has finished its LESA and LLaMA Pro runs; C4 is judged on this profile's runs.")
else:
    h, sr = c4.uncertainty["heldout"], c4.uncertainty.get("seed_rule", {}).get("llama_pro")
    page.md(f"Held-out loss at the end of the longer runs ({fmt(ch['pair_tokens'])} tokens): LESA "
            f"{fmt(h['lesa_end'], 4)}, LLaMA Pro {spread_text(h['llama_pro_end']['values'], 4, unit='data orders')}. "
            "Held-out loss is the trainer's monitoring set (the same sequences for every run).")
    if sr:
        page.md(f"The one seed rule on these runs: LESA ({sr['n']} predictor seed{'s' if sr['n'] != 1 else ''}) against "
                f"LLaMA Pro ({sr['n_ref']} data orders) is *{sr['result']}*: {sr['why']}. C4 reads **{c4.verdict}**, "
                f"*{c4.reading}*.")
page.md(C.C4_RULE_HISTORY)

# %% [markdown]
# ## Every run against LLaMA Pro
# This chapter reads the CPT runs; it does not train. Grown models train only their new layers, except SOLAR, which
# trains every layer as its paper does (SOLAR with only its duplicated layers trained is an ablation); the base
# model trains every layer on the same tokens. Every run sees the same batches in the same order, so two runs are
# compared step by step: paired differences over a window of steps, with their standard error (SE).
# {numref}`fig-loss-vs-compute` shows each run's training loss minus LLaMA Pro's at the same tokens and at the same
# compute, {numref}`fig-loss-vs-elapsed` the same difference at the same wall-clock seconds, and {numref}`fig-heldout-ppl` each
# run's held-out loss minus LLaMA Pro's.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of each run this chapter's claims compare (the base model trained on the same tokens, LESA, LESA with all layers trained, LESA w/o SVD and SOLAR) minus LLaMA Pro's run on the same data order, one row per method: at the same tokens (left; the same batches, moving means over 10 steps) and at the same training compute, with the frozen layers' backward pass counted (right; moving means over 50 steps, since the two runs are then on different batches). The line is the median over a method's runs, the band spans them. Above 0: higher loss than LLaMA Pro. The same tokens cost each method a different compute, so the two columns differ exactly where the methods' costs do. Chapter 6 shows the variants.", "name": "fig-loss-vs-compute"}, "image": {"alt": "Small multiples, one row per method and two columns: training loss minus LLaMA Pro's against training tokens and against training compute, with a zero line and seed bands."}}
if runs and any(r["method"] == "llama_pro" and r["frozen"] for r in ch["claim_runs"].values()):
    page.save(P.paired_loss_panels(training_differences(ch["claim_runs"], smooth_window)), "loss_vs_compute");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out loss during CPT of every run minus LLaMA Pro's median at the same tokens (paired: the same held-out sequences, the same batches), one panel per run; a band spans a method's seeds, the grey band LLaMA Pro's own data orders around their median. Below 0: lower than LLaMA Pro. The starts (tokens 0) are left out: LLaMA Pro starts at the base model.", "name": "fig-heldout-ppl"}, "image": {"alt": "Small multiples, one per run: held-out loss minus LLaMA Pro's median against training tokens, with a zero line and LLaMA Pro's band."}}
lp_names = [n for n, r in runs.items() if r["method"] == "llama_pro" and r["frozen"] and r["eval"]]
if lp_names:
    named = {}
    for n, r in runs.items():
        if r["eval"] and not (r["method"] == "llama_pro" and r["frozen"]):
            named.setdefault(run_title(r), []).append(n)
    page.save(P.difference_panels(difference_curves(runs, named, lp_names)), "heldout_ppl");

# %% tags=["hide-input"]
reach = ch["comparison"].get("reach_llama_pro")
if ch["vs_llama_pro"]:
    cap = page.caption(
        f"Every run against LLaMA Pro on the same tokens: the paired training-loss difference over the last "
        f"{smooth_window} steps (negative: lower than LLaMA Pro; mean and SE over those steps, not over seeds), and the "
        "tokens at which its smoothed loss first reaches LLaMA Pro's final loss and held-out perplexity (the CSV adds "
        "each run's data order and end perplexity).")
    display(table(pd.DataFrame(ch["vs_llama_pro"]), csv=page.out / "vs_llama_pro.csv", index=False, caption=cap,
                  show=[c for c in ch["vs_llama_pro"][0] if c not in ("data order", "held-out PPL end")],
                  collapsed=f"{cap.split('.')[0]}: every run's training loss against LLaMA Pro's, "
                            f"{len(ch['vs_llama_pro'])} runs (open)"))
    wins, lp_all, lp_eval = ([b["run"] for b in ch["vs_llama_pro"] if b["beats LLaMA Pro"]], ch["llama_pro_finals"],
                             frozen["llama_pro"]["eval"])
    page.md(f"LLaMA Pro's final smoothed training loss is {fmt(reach['target'], 4)}"
            + (f" and its final held-out perplexity {fmt(lp_eval[-1]['heldout_ppl'], 4)}" if lp_eval else "")
            + f" after {fmt(reach['baseline_total']['tokens'])} tokens"
            + (f" (over its {len(lp_all)} data orders: {spread_text(lp_all, 4, unit='data orders')}, each order's "
               "own last batches, so the spread is the batches' as much as the runs'; the held-out loss is on "
               "the same sequences for every run; the paired comparison uses the data order every other run saw)"
               if len(lp_all) > 1 else "") + ". "
            + (f"Beating it by more than two SE at the end: {', '.join(wins)}." if wins else
               "No run ends below it by more than two SE at this budget."))
else:
    page.md("Not yet run: no LLaMA Pro run to compare against.")

# %% [markdown]
# ## Step cost: measured and expected
# Median seconds per step and training FLOPs per token of each run, as ratios to LESA's; the FLOP model counts
# the backward pass through frozen layers above the lowest trained one, so it is what a compute-bound trainer
# would show. That makes placement a cost: the same 15 new layers cost more per token the lower the first one
# sits, because the gradient must flow back through every frozen layer above it (LLaMA Pro's lowest new layer is
# layer 2 of the grown model, LESA's layer 15, so LLaMA Pro's step is the dearer one). Runs with another batch shape
# than LESA's are left out. A run's own step times depend on what else the machine did while it trained; when the
# profile has the step-cost bench (LESA, LLaMA Pro and SOLAR built as their runs, then stepped in turn in one
# process, so a slow period of the machine falls on all three), C6 is judged on the bench, and its table follows the
# runs'. {numref}`fig-loss-vs-elapsed` shows what the step costs add up to.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of each run this chapter's claims compare minus LLaMA Pro's run on the same data order at the same elapsed wall-clock seconds on this machine (what the paper's hours compare), one row per method: moving means over 50 steps, since at the same second the two runs are on different batches. The line is the median over a method's runs, the band spans them, each run read at the seconds of the one that finished first; a row ends where LLaMA Pro's run or the method's fastest run stops. Above 0: higher loss than LLaMA Pro after the same time. A run's seconds include whatever else the machine was doing while it trained, so this figure shows what the runs cost here, not what the methods cost in general (the step-cost table below compares their steps).", "name": "fig-loss-vs-elapsed"}, "image": {"alt": "Small multiples, one row per method: training loss minus LLaMA Pro's against elapsed wall-clock seconds, with a zero line and seed bands."}}
if runs and any(r["method"] == "llama_pro" and r["frozen"] for r in ch["claim_runs"].values()):
    page.save(P.paired_loss_panels(training_differences(ch["claim_runs"], smooth_window, columns=("elapsed_s",)),
                                   row_h=1.1), "loss_vs_elapsed_s");

# %% tags=["hide-input"]
if ch["step_cost"]:
    cap = page.caption("Each run's median step time and FLOPs per token, and both as ratios to LESA's.")
    display(table(pd.DataFrame(ch["step_cost"]), csv=page.out / "step_cost.csv", index=False, caption=cap,
                  collapsed=f"{cap.split('.')[0]}: every run's step time and FLOPs per token, "
                            f"{len(ch['step_cost'])} runs (open)"))
else:
    page.md("Not yet run: no LESA run with step times and FLOPs per token to compare against.")
if ch["bench"]:
    bench = ch["bench"]
    display(table(pd.DataFrame(ch["bench_table"]), csv=page.out / "step_cost_bench.csv", index=False, caption=page.caption(
        f"The step-cost bench C6 is judged on: {bench['rounds']} rounds (after {bench['warmup_rounds']} warm-up) of one "
        f"step of each method, batch {bench['batch']} × {bench['seq_len']} tokens in {bench['precision']}, on "
        f"{bench['threads']} CPU threads ({hardware_label(bench['provenance'].get('hardware'))}).")))

# %% [markdown]
# ## The runs
# Every CPT run of the profile this page shows, with its budget and its trainer's monitoring: the last-step loss is
# one batch's loss (the curves, verdicts and comparisons use the mean over the smoothing window, which is lower while
# the loss still falls), and the held-out perplexities (PPL) are the trainer's monitoring set, not the perplexity
# protocol (chapter 5 evaluates the trained models under the protocol).

# %% tags=["hide-input"]
if runs:
    cap = page.caption("The CPT runs: seeds, tokens, last-step loss and held-out perplexity (the CSV has their steps, "
                       "whether each finished, and their step cost, as in the step-cost table).")
    display(table(pd.DataFrame(ch["runs_table"]), csv=page.out / "cpt_runs.csv", index=False, caption=cap,
                  show=("run", "data order", "predictor seed", "tokens", "last-step loss", "held-out PPL start",
                        "held-out PPL end"),
                  collapsed=f"{cap.split('.')[0]}: the {len(ch['runs_table'])} CPT runs (open)"))
expected = run_names(page.prof["cpt"], page.prof["expansion"].get("variants")) if page.prof.get("cpt") else {}
absent = [n for n in expected if n not in runs]
if absent and source == profile:
    page.md("Not yet run: " + ", ".join(run_title(expected[n]) for n in absent) + ".")
if source in ch["longer"]:
    tokens = ch["tokens"]
    page.md(f"**Shown from {profile_label(source)}'s runs**: it extends this profile with a longer budget "
            f"({fmt(tokens[0])}{f' to {fmt(tokens[-1])}' if len(tokens) > 1 else ''} tokens per run), and every one of "
            "its runs has finished, so they replace this profile's own.")
elif source and source != profile:
    page.md(f"**Shown from {profile_label(source)}'s committed results**: this profile has no CPT runs.")
elif c4:
    page.md(f"**C4 is judged on {profile_label(ch['pair_source'])}'s runs** of LESA and LLaMA Pro, which finished before "
            "that profile's other runs; the other claims stay on this profile's runs until all of them exist.")
if ch["bench"]:
    page.md("The step-cost bench was run on its own, in one process, while the training runs were under way; its "
            "code version is recorded with its results.")
page.profile_note()

# %% tags=["hide-input"]
page.finish(verdicts, source_profile=source)
