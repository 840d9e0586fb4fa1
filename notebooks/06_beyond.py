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
# # 6. Beyond the paper: can a learned initialisation beat identity blocks? (ours)
#
# Can LESA's predicted layers, started at (or next to) the base model, train faster than LLaMA Pro's identity
# blocks? The answer, computed from the runs, is the paragraph right below; {numref}`fig-beyond-heldout` decides it:
# each variant's held-out loss minus LLaMA Pro's during continual pre-training (CPT), with seed bands. Nothing here
# is a claim of the paper. Which runs, budgets and machine: the end of this page and {doc}`../reproduce`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
later: float = 0.5              # the part of the run a variant must beat LLaMA Pro in: evaluations after this
                                # fraction of the tokens (issue 15: "the later half of the run")
preferred_profiles: list = ["cpu-long"]  # longer versions of this profile (`extends`); their CPT results replace
                                # this one's once all their runs have finished
fallback_profiles: list = ["gpu"]  # profiles whose committed results are shown when this one has none

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel without widgets
import math

import pandas as pd

from lesa.book.page import Page
from lesa.claims.paper import fmt
from lesa.claims.verdict import spread_text
from lesa.core.models import profile_label
from lesa.core.store import write_json
from lesa.plots import figures as P
from lesa.study import variants as V

page = Page("06_beyond", profile, results_root, announce=False)
d = V.variants_vs_llama_pro(page.prof, profile, results_root, fallback_profiles, preferred_profiles, later)
runs, groups, rows, source, lp_key, fp_key = (d[k] for k in ("runs", "groups", "rows", "source", "lp_key", "fp_key"))
write_json(page.out / "beyond.json", {"init_source_profile": d["init_source"], "cpt_source_profile": source, "later": later,
                                      "init": d["init_rows"], "vs_llama_pro": [{k: v for k, v in r.items() if k != "_key"} for r in rows]});
diag = V.load_diagnostics(d, profile, results_root)
diag_rows, spec_rows = V.diagnostics_rows(d, diag), V.spectrum_rows(d, diag)
found, more, start, res = [], [], V.start_counts(d), V.learned_results(d)    # the answer; what the controls add
by_how_much = lambda r: f"{r['run']} ({r['− LLaMA Pro (median, end)']:+.3f} nats per token at the end)"
if start:
    found.append(f"Before training, {start['at_base']} of the {start['of']} learned variants start within 1% of the base "
                 f"model's perplexity ({fmt(start['base'], 4)}, which LLaMA Pro equals), against "
                 f"{spread_text(start['lesa'], 4)} for LESA as released.")
if rows:
    wins, losses = [by_how_much(r) for r in res["wins"]], [by_how_much(r) for r in res["losses"]]
    found.append(f"After {fmt(runs[groups[lp_key][0]]['summary'].get('tokens'))} training tokens per run, "
                 + (f"{'; '.join(wins)} beat{'s' if len(wins) == 1 else ''} LLaMA Pro beyond the seed spread. " if wins else
                    "no learned variant beats LLaMA Pro beyond the seed spread. ")
                 + (f"Worse than LLaMA Pro beyond the spread: {'; '.join(losses)}. " if losses else "")
                 + (f"Not decided (one seed, or the seed ranges overlap): {'; '.join(r['run'] for r in res['undecided'])}."
                    if res["undecided"] else ""))
    for c in V.controls_vs_variants(d):
        more.append(f"Against the control {c['control']} ({c['what']}, the same start; {c['seeds']} "
                     f"seed{'s' if c['seeds'] > 1 else ''}), the median held-out loss at the end is "
                     + "; ".join(f"{x:+.3f} nats per token for {run}" for run, x in c["end_diff"]) + " (negative: below the control).")
    for p in V.placement_pairs(d):
        more.append(f"Placement alone: {p['twin']} with its new layers spread through the whole stack, as LLaMA Pro's are, "
                     f"ends {p['end_diff']:+.3f} nats per token from the same variant in LESA's gaps (median over "
                     f"{p['seeds']} and {p['twin_seeds']} predictor seeds; negative: lower), and {p['vs_llama_pro']:+.3f} from LLaMA Pro.")
else:
    found.append("No CPT runs with held-out evaluations of LLaMA Pro exist for this profile yet.")
page.md("**What we found.** " + " ".join(found))

# %% mystnb={"figure": {"caption": "Held-out loss during CPT of each variant and control minus LLaMA Pro's median at the same tokens (the same held-out sequences; every run sees the same tokens in the same order, LLaMA Pro's runs vary the data order), one panel per method on one y-axis: the line is the median over its predictor seeds, the band spans them, the grey band spans LLaMA Pro's data orders around their median. Below 0: lower than LLaMA Pro. Starts (tokens 0) are left out (Figure before training below). A dotted line: the method in LLaMA Pro's placement (placement = spread).", "name": "fig-beyond-heldout"}, "image": {"alt": "Small multiples, one per variant and control: held-out loss minus LLaMA Pro's median against training tokens, with seed bands and LLaMA Pro's band around zero."}} tags=["hide-input"]
if rows:
    named = {V.group_label(k): names for k, names in groups.items() if k != lp_key}
    page.save(P.difference_panels(V.difference_curves(runs, named, groups[lp_key])), "beyond_heldout");

# %% tags=["hide-input"]
if rows:
    n_lp, table = len(groups[lp_key]), pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    table.to_csv(page.out / "vs_llama_pro.csv", index=False)      # with the run names, which the page leaves out
    page.table(table.drop(columns="runs"), index=False, digits=4, caption=page.caption(
        f"Each variant against LLaMA Pro, whose final held-out loss is {fmt(d['lp_final'], 4)} (perplexity "
        f"{fmt(math.exp(d['lp_final']), 4)}; {f'median of its {n_lp} data orders' if n_lp > 1 else 'one data order'}). "
        "Held-out loss: the trainer's monitoring set, the same for every run; ranges are over the seeds."))
    if more:
        page.md("**Controls and placement.** " + " ".join(more))

# %% [markdown]
# **The variants.** LLaMA Pro's new layers copy their neighbours with the attention output and MLP down projections
# (o and down below) zeroed: the grown model is exactly the base model, and training starts from there. LESA's
# released recipe predicts full-norm new layers that start far worse at this scale (chapter 3). The variants (ours)
# keep a start at or next to the base model but fill the new layers with what the neighbours suggest:
#
# * **LESA, o/down scaled (α)**: LESA's predicted q, k, v, gate and up; o and down scaled by α (α = 0 starts
#   exactly at the base model, like LLaMA Pro, but every new weight is informative and receives gradient).
# * **LESA, low rank (k)**: new layers rebuilt from the top-k singular directions only.
# * **Ridge predictor**: a closed-form linear map in place of the MLP; **per-layer SVD interpolation**: the
#   neighbours' per-layer singular vectors matched and interpolated.
# * Controls: a **copy** and a **random** layer with o and down zeroed.
# * **Placement**: the variants and controls fill LESA's gaps (the upper half) unless their label says
#   "placement = spread": new layers spread through the whole stack, as LLaMA Pro's are (longer profile only).
#
# **How a variant is judged.** Same tokens in the same order as LLaMA Pro, same steps. LLaMA Pro runs on several
# data orders and a variant on several predictor seeds; a variant *beats* LLaMA Pro only if, at every held-out
# evaluation in the later half of the run, all its seeds' held-out losses are below all of LLaMA Pro's. With one
# seed on a side there is no spread to beat and the comparison is reported, not decided.
#
# ## Before training
# {numref}`fig-beyond-init` shows where each variant starts: one dot per predictor seed.

# %% mystnb={"figure": {"caption": "Perplexity before training of the learned variants (ours) and their controls, in percent above the base model's (the dashed line at 0, which LLaMA Pro equals exactly); one dot per predictor seed and the bar at the median. LESA as released starts far higher (table below, chapter 3).", "name": "fig-beyond-init"}, "image": {"alt": "Dots and bars of each variant's perplexity in percent above the base model's, with a dashed line at zero."}} tags=["hide-input"]
if d["init_rows"]:
    show = [r for r in d["init_rows"] if r["name"] in d["VARIANTS"]]      # LESA as released is 5-15x higher: chapter 3
    page.save(P.seed_points([{"method": r["label"], "value": 100 * (r["ppl"] / d["base_init"] - 1)} for r in show], "value",
                            ylabel=f"{d['screen_set']} perplexity before\ntraining, % above the base model", ref={None: 0.0}),
              "beyond_init");
else:
    page.md("Not yet run: notebook 3 has no results for this profile.")

# %% tags=["hide-input"]
if d["init_rows"]:
    page.seed_table(pd.DataFrame([{"method": r["label"], "seed": "–" if r["seed"] is None else r["seed"],
                                   "exactly the base model": r["identity"], "perplexity": r["ppl"]}
                                  for r in d["init_rows"] if r["name"] in ("base", "llama_pro", *d["SHOWN"])]),
                    ["method"], ["perplexity"], csv="init.csv", digits=4, caption=page.caption(
                        f"Perplexity before training on {d['screen_set']} under chapter 3's screening protocol "
                        f"({d['main_model']}): each variant once per predictor seed, the others once."))

# %% [markdown]
# ## What the new layers offer training at step 0 (ours)
# With o and down at zero a new layer writes nothing into the residual stream, so at step 0 only those two
# projections receive a gradient, built from the features they read: the attention output (o's input) and
# act(gate) · up (down's input). Before training we measure the new layers' weights against the original layer
# below each (norm, cosine, effective rank: the exponential of the entropy of the normalised singular values), the
# effective rank of those features on held-out tokens, and the first gradient's L1 norm (Adam's first update is the
# learning rate times the gradient's sign, so to first order it lowers the loss by the learning rate times that
# norm). Each is a median over the new layers, then over seeds. In Table 3, "÷ below" is the ratio to the original
# layer below, the weight columns are medians over q, k, v, gate and up, the two feature columns are o's input
# (attention) and down's (MLP hidden), and "end loss" is the held-out loss at the end of training.

# %% tags=["hide-input"]
if diag_rows:
    page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in diag_rows]),
               csv="init_diagnostics.csv", index=False, digits=2,
               caption=page.caption("The new layers at step 0 against the original layer below, and the end loss."))
    a, text = V.gradient_association(d, diag, diag_rows), []
    if a and a["lesa"]:
        text.append(f"LESA's predicted q, k, v, gate and up have about the norm of the layer below "
                    f"({fmt(a['lesa']['norm ÷ below'], 2)}×) but {fmt(100 * a['lesa']['eff. rank ÷ below'], 2)}% "
                    f"of its effective rank and almost no overlap with it (cosine {fmt(a['lesa']['cosine with below'], 2)}): "
                    "the predictor's outputs use few directions. The attention output they produce has "
                    f"{fmt(100 * a['lesa']['attention: eff. rank ÷ below'], 2)}% of the layer below's effective rank, "
                    "a few directions per layer.")
    if a and a["variant"] and a["copy"] and a["random"]:
        g = lambda r: fmt(r["first gradient (L1)"], 3)
        text.append(f"With o/down zeroed, the first gradient (L1) of the o/down-scaled variant is {g(a['variant'])}, "
                    f"against {g(a['copy'])} for the copy and {g(a['random'])} for random weights in the same places.")
    if a:
        text.append(f"Across the {a['n']} runs that start at the base model in LESA's gaps, the first gradient's size and "
                    f"the held-out loss at the end have a Spearman correlation of {a['rho']:+.2f}"
                    + (": the starts that give o/down the larger first gradient end lower." if a["rho"] <= -0.5 else
                       ": the starts that give o/down the larger first gradient end higher." if a["rho"] >= 0.5 else
                       ", no clear relation.")
                    + f" This is an association over {a['n']} runs on one data order (ours), not a controlled test of the cause.")
        page.md("**What this suggests.** " + " ".join(text))
else:
    page.md(f"Not yet run: no step-0 diagnostics for the {source or profile} profile.")

# %% [markdown]
# ## Is it the spectrum? A controlled test (ours)
# Table 3 shows what sets LESA's predicted q, k, v, gate and up apart from the layer below: about its norm,
# but a small part of its effective rank. Random weights of full rank in the same places (the control) train
# faster than the predictions. A predicted weight carries two things, its singular values (the spectrum, which
# sets the effective rank) and its singular vectors (the directions); two reshaped versions of the o/down-scaled
# variant (α = 0, LESA's gaps, the same tokens; "the variant" below) change one each (ours):
#
# * **spectrum = neighbours**: the predicted singular vectors with the singular values of its two neighbours
#   (their mean, sorted): the prediction's directions at the neighbours' effective rank;
# * **directions = random**: the predicted singular values on random orthonormal singular vectors: the collapsed
#   spectrum without the prediction's directions.
#
# If the first trained faster than the variant and the second like it, that would point to the collapsed spectrum
# as what holds the predictions back; if the first trains like the variant, it would point away from it. Each test
# runs on two predictor seeds (the median seed, 1, and seed 0), read against the range of the variant's three
# predictor seeds at every held-out evaluation in the later half of the run ({numref}`fig-beyond-spectrum`), and
# each against the variant's run on the same seed. Two runs against three can only point: an exact permutation test
# of their end losses has ten splits, so its p-value is never below 0.1, and the text below gives it.

# %% mystnb={"figure": {"caption": "The spectrum test: held-out loss during CPT minus the o/down-scaled variant's median (\u03b1 = 0; the grey band spans its predictor seeds) of the same variant with its predicted weights' singular values replaced by the neighbours' (dash-dot) or its singular vectors replaced by random ones (dotted; each median and range of two predictor seeds), the two controls in the same places, and LLaMA Pro (range of its data orders), against training tokens. Below 0: lower than the variant.", "name": "fig-beyond-spectrum"}, "image": {"alt": "Small multiples: held-out loss minus the o/down-scaled variant's median for its two reshaped versions, the copy and random controls and LLaMA Pro, against training tokens."}} tags=["hide-input"]
if spec_rows:
    shown = {**{V.group_label(k): names for k, names in d["test_groups"].items()},
             **{V.group_label(k): groups[k] for k in groups if k[0] in ("copy_scaled", "random_zero_out", "llama_pro")}}
    page.save(P.difference_panels(V.difference_curves(runs, shown, groups[fp_key]), ref_label="the variant"),
              "beyond_spectrum");

# %% tags=["hide-input"]
if not spec_rows:         # said here, not in the figure's cell: an output there would become the figure
    page.md("Not yet run: the spectrum test's two runs (longer profile), or the variant and LLaMA Pro they are read "
            f"against, have not trained on the {source or profile} profile.")
else:
    page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in spec_rows]),
               csv="spectrum_test.csv", index=False, digits=3, caption=page.caption(
                   f"The spectrum test: the variant ({V.group_label(fp_key)}) one row per predictor seed, its reshaped "
                   "versions and the controls. The weight, attention and gradient columns are Table 3's step-0 "
                   "diagnostics; \"− variant (end)\" is the held-out loss at the end minus the variant's median over its "
                   "seeds, then minus its run on the same predictor seed; \"later half\" says where a run lies against the "
                   "variant's seed range at every evaluation in the later half of the run."))
    st, text = V.spectrum_tests(d, spec_rows), []
    n_fp = st["n_variant"]
    for o, what in (("spectrum", "With its neighbours' singular values, the predicted layers"),
                    ("directions", "The predicted singular values on random directions")):
        if o not in st["tests"]:
            continue
        t = st["tests"][o]
        many, same = len(t["seeds"]) > 1, ", ".join(f"{x:+.3f}" for x in t["same"])
        closed = (f"; {'the median run' if many else 'it'} closes {fmt(t['share'], 2)}% of the variant's {t['gap']:.3f} gap "
                  "to random weights of full rank in the same places") if t["share"] is not None else ""
        text.append(f"{what} end {', '.join(f'{x:+.3f}' for x in t['diffs'])} nats per token from the variant's median "
                    f"({'predictor seeds ' if many else 'predictor seed '}{', '.join(str(x) for x in t['seeds'])}"
                    + (f"; {same} from the variant's run on the same seed" if same else "")
                    + f"), {V.position_text(t['position'], many, n_fp)}{closed}; an exact permutation test of the end losses "
                      f"({len(t['seeds'])} runs against {n_fp}, one-sided in the direction the runs lie) gives p = "
                      f"{fmt(t['perm']['p'], 2)}, and {fmt(t['perm']['smallest_p'], 2)} is the smallest p these run counts allow.")
    text += V.spectrum_readings(d, st)     # worded no stronger than a few runs allow
    text.append(f"Each test run has {' or '.join(map(str, st['n_test']))} predictor seed{'s' if st['n_test'][-1] > 1 else ''} "
                f"and one data order (ours); the variant's range is over {n_fp} predictor seeds.")
    page.md("**What the test says.** " + " ".join(text))

# %% [markdown]
# ## After training
# Word perplexity on WikiText and the benchmark average of the trained models (each method's first seed), from
# chapter 5's evaluation; accuracies carry their standard error (SE).

# %% tags=["hide-input"]
after, tasks = V.after_training_rows(d)
if after:
    if tasks:
        page.md(f"The benchmark average is over {tasks}.")
    page.table(pd.DataFrame(after), csv="after_training.csv", index=False, digits=4,
               caption=page.caption("The trained models on chapter 5's evaluation."))
else:
    page.md(f"Not yet run: chapter 5 has no evaluation of these runs for the {source or profile} profile.")

# %% [markdown]
# ## What this can and cannot show
# A variant that starts exactly at the base model cannot lose at step 0; the question is only what training does
# with it. At this scale (135 million parameters, CPU budgets) LLaMA Pro's zeroed projections receive gradients
# from the first step too, so at the same placement a variant's advantage could only come from its informative q,
# k, v, gate and up weights; where the new layers sit matters as well (below). The verdict needs seeds on both
# sides: the shorter profile trains one of each (a first look); the longer profile trains LLaMA Pro on three data
# orders and the two variants that start at the base model on three predictor seeds each, and this chapter shows
# those runs.
#
# LLaMA Pro and the variants differ in two ways, not one: what the new layers hold, and where they sit. LLaMA Pro
# spreads its new layers through the whole stack (one after every second original layer; the lowest is layer 2 of
# the grown model's 0-44); LESA and the variants fill the gaps of the upper half, as the released code does (the
# lowest is layer 15). Two controls with the variants' start and placement separate the two: a copy of the lower
# neighbour with o and down zeroed (LLaMA Pro's initialisation in the variants' places) and a random layer with
# them zeroed. A variant that trains no faster than the copy gains nothing from LESA's predictions over LLaMA Pro's
# rule; if the copy trains like the variants, the placement, not the initialisation, is what LLaMA Pro wins by.
# The converse experiment (ours, longer profile) moves the o/down-scaled variant to LLaMA Pro's placement (after
# original layers 0, 2, ..., 28, one grown layer below LLaMA Pro's blocks, which follow layers 1, 3, ..., 29; a gap
# needs an upper neighbour): against LLaMA Pro it differs only in what the new layers hold.

# %% tags=["hide-input"]
if d["init_rows"]:
    page.md(f"Before training: chapter 3's screen on {profile_label(d['init_source'])}. During and after training: "
            f"{profile_label(source)}'s CPT runs.")
page.profile_note()
verdicts = []                   # no claim of the paper is judged here (the variants are ours)
page.finish(verdicts, source_profile=source)
