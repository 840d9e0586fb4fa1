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
# Our variants of LESA that start at (or next to) the base model, against LLaMA Pro, whose new layers are identity
# blocks: perplexity before training over three predictor seeds ({numref}`fig-beyond-init`), held-out loss during
# continual pre-training (CPT) with seed bands ({numref}`fig-beyond-heldout`), what the new layers offer training at
# step 0, a controlled test of why the predictions train slower ({numref}`fig-beyond-spectrum`), and the trained
# models' perplexity and benchmarks; the plain answer comes first, below. Nothing here is a claim of the paper.
# How to run this chapter alone, how long it takes and on which profile: {doc}`../reproduce`.

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

from lesa.study.results import find_results, first_seed_runs, run_seeds
from lesa.claims import beyond as B
from lesa.claims.paper import fmt
from lesa.claims.verdict import permutation_p, spread_text
from lesa.plots import figures as P
from lesa.grow.methods import run_label, run_title
from lesa.book.page import Page
from lesa.study.variants import variants_vs_llama_pro
from lesa.grow.methods import CONTROLS, LEARNED   # the method table: which methods learn, which are controls
from lesa.core.store import read_json, write_json

page = Page("06_beyond", profile, results_root)
d = variants_vs_llama_pro(page.prof, profile, results_root, fallback_profiles, preferred_profiles, later)
(VARIANTS, SHOWN, init_rows, base_init, init_source, main_model, screen_set, runs, groups, test_groups, source, lp_key,
 lp_final, rows, fp_key, test_by, spec_pos, after) = (d[k] for k in (
    "VARIANTS", "SHOWN", "init_rows", "base_init", "init_source", "main_model", "screen_set", "runs", "groups",
    "test_groups", "source", "lp_key", "lp_final", "rows", "fp_key", "test_by", "spec_pos", "after"))
label_of = lambda k: run_label(k[0], True, options=dict(k[1]))
write_json(page.out / "beyond.json", {"init_source_profile": init_source, "cpt_source_profile": source, "later": later,
                                      "init": init_rows, "vs_llama_pro": [{k: v for k, v in r.items() if k != "_key"} for r in rows]});

# %% tags=["hide-input"]
learned = [r for r in rows if r["_key"][0] in LEARNED]
by_how_much = lambda r: f"{r['run']} ({r['− LLaMA Pro (median, end)']:+.3f} nats per token at the end)"
wins = [by_how_much(r) for r in learned if r["_result"] == "lower"]
losses = [by_how_much(r) for r in learned if r["_result"] == "higher"]
undecided = [r["run"] for r in learned if r["_result"] in ("single seed", "overlap", "no common evaluations")]
found = []
if init_rows and base_init is not None:
    starts = {}
    for r in init_rows:
        if r["name"] in VARIANTS and r["method"] in LEARNED:
            starts.setdefault(r["label"], []).append(r["ppl"])
    at_base = [k for k, v in starts.items() if max(v) <= base_init * 1.01]
    found.append(f"Before training, {len(at_base)} of the {len(starts)} learned variants start within 1% of the base "
                 f"model's perplexity ({fmt(base_init, 4)}, which LLaMA Pro equals), against "
                 f"{spread_text([r['ppl'] for r in init_rows if r['name'] == 'lesa'], 4)} for LESA as released.")
if rows:
    budget = runs[groups[lp_key][0]]["summary"].get("tokens")
    found.append(f"After {fmt(budget)} training tokens per run ({source} profile), "
                 + (f"{'; '.join(wins)} beat{'s' if len(wins) == 1 else ''} LLaMA Pro beyond the seed spread. " if wins else
                    "no learned variant beats LLaMA Pro beyond the seed spread. ")
                 + (f"Worse than LLaMA Pro beyond the spread: {'; '.join(losses)}. " if losses else "")
                 + (f"Not decided (one seed, or the seed ranges overlap): {'; '.join(undecided)}." if undecided else ""))
    # the controls with the variants' start (o/down zeroed) and placement (LESA's gaps): what differs is q, k, v,
    # gate and up. copy_scaled is LLaMA Pro's initialisation moved to the variants' placement, so it separates
    # placement from initialisation; random_zero_out asks whether the predictions beat random features
    logs_of = lambda key: [runs[n]["eval"] for n in groups[key]]
    top_placed = [r for r in learned if dict(r["_key"][1]).get("gaps") is None]   # the controls sit in LESA's gaps
    if top_placed:
        for ctrl in (k for k in groups if k[0] in CONTROLS):
            ctrl_logs = logs_of(ctrl)
            vs = [(r["run"], B.heldout_vs_reference(logs_of(r["_key"]), ctrl_logs, later)) for r in top_placed]
            found.append(f"Against the control {label_of(ctrl)} ({CONTROLS[ctrl[0]]}, the same start; {len(ctrl_logs)} "
                         f"seed{'s' if len(ctrl_logs) > 1 else ''}), the median held-out loss at the end is "
                         + "; ".join(f"{v['end_diff']:+.3f} nats per token for {run}" for run, v in vs if v["end_diff"] is not None)
                         + " (negative: below the control).")
    # a variant moved to LLaMA Pro's placement (gaps="spread") against itself in LESA's gaps: what placement alone does
    for r in learned:
        opts = dict(r["_key"][1])
        if opts.get("gaps") != "spread":
            continue
        twin = B.seed_group_key(r["_key"][0], {k: v for k, v in opts.items() if k != "gaps"}, r["_key"][2])
        if twin in groups:
            v = B.heldout_vs_reference(logs_of(r["_key"]), logs_of(twin), later)
            found.append(f"Placement alone: {label_of(twin)} with its new layers spread through the whole stack, as "
                         f"LLaMA Pro's are, ends {v['end_diff']:+.3f} nats per token from the same variant in LESA's gaps "
                         f"(median over {len(groups[r['_key']])} and {len(groups[twin])} predictor seeds; negative: lower), "
                         f"and {r['− LLaMA Pro (median, end)']:+.3f} from LLaMA Pro.")
    if spec_pos:
        found.append("The spectrum test (ours, below): "
                     + "; ".join((f"the runs with {what} ({len(test_by[o])} predictor seeds) lie " if len(test_by[o]) > 1 else
                                  f"the run with {what} (one predictor seed) lies ")
                                 + f"{spec_pos[o]} the o/down-scaled variant's seed range in the later half" for o, what in (("spectrum", "the predicted directions and the neighbours' singular values"),
                                                              ("directions", "the predicted singular values on random directions"))
                                 if spec_pos.get(o)) + ".")
else:
    found.append("No CPT runs with held-out evaluations of LLaMA Pro exist for this profile yet "
                 f"(`python -m lesa.study.cpt --profile {profile}`).")
page.md("**What we found.** " + " ".join(found))

# %% [markdown]
# LLaMA Pro's new layers copy their neighbours with the attention output and MLP down projections (`o_proj`,
# `down_proj`) zeroed: the grown model is exactly the base model, and training starts from there. LESA's released
# recipe predicts full-norm new layers that start far worse at this scale (chapter 3). The variants below (ours,
# defined in `lesa.grow.plans`) keep a start at or next to the base model but fill the new layers with what the
# neighbours suggest:
#
# * **LESA, o/down scaled (α)**: LESA's predicted q, k, v, gate and up; `o_proj` and `down_proj` scaled by α (α = 0
#   starts exactly at the base model, like LLaMA Pro, but every new weight is informative and receives gradient).
# * **LESA, low rank (k)**: new layers rebuilt from the top-k singular directions only.
# * **Ridge predictor**: a closed-form linear map in place of the MLP; **per-layer SVD interpolation**: the
#   neighbours' per-layer singular vectors matched and interpolated.
# * Controls: a **copy** and a **random** layer with `o_proj`/`down_proj` zeroed.
# * **Placement**: the variants and controls fill LESA's gaps (the upper half) unless their label says
#   "placement = spread": new layers spread through the whole stack, as LLaMA Pro's are (`cpu-long` only).
#
# **How a variant is judged.** Same tokens in the same order as LLaMA Pro, same steps. LLaMA Pro runs on several
# data orders and a variant on several predictor seeds; a variant *beats* LLaMA Pro only if, at every held-out
# evaluation in the later half of the run, all its seeds' held-out losses are below all of LLaMA Pro's. With one
# seed on a side there is no spread to beat and the comparison is reported, not decided.

# %% [markdown]
# ## Before training

# %% mystnb={"figure": {"caption": "Perplexity before training of the learned variants (ours) and their controls, in percent above the base model's (the dashed line at 0, which LLaMA Pro equals exactly); one dot per predictor seed and the bar at the median. LESA as released starts far higher (table below, chapter 3).", "name": "fig-beyond-init"}, "image": {"alt": "Dots and bars of each variant's perplexity in percent above the base model's, with a dashed line at zero."}} tags=["hide-input"]
if init_rows:
    show = [r for r in init_rows if r["name"] in VARIANTS]      # LESA as released is 5-15x higher: chapter 3
    page.save(P.seed_points([{"method": r["label"], "value": 100 * (r["ppl"] / base_init - 1)} for r in show], "value",
                            ylabel=f"{screen_set} perplexity before\ntraining, % above the base model", ref={None: 0.0}),
              "beyond_init");
else:
    page.md("Not yet run: notebook 3 has no results for this profile.")

# %% tags=["hide-input"]
if init_rows:
    page.md(f"Perplexity on {screen_set} under notebook 3's screening protocol ({init_source} profile, {main_model}); "
            "each variant once per predictor seed of the profile's `expansion.seeded`, the others once.")
    page.seed_table(pd.DataFrame([{"method": r["label"], "seed": "–" if r["seed"] is None else r["seed"],
                                   "exactly the base model": r["identity"], "perplexity": r["ppl"]}
                                  for r in init_rows if r["name"] in ("base", "llama_pro", *SHOWN)]),
                    ["method"], ["perplexity"], csv="init.csv", digits=4)

# %% [markdown]
# ## During training

# %% mystnb={"figure": {"caption": "Held-out loss during CPT against training tokens (left) and training compute, with the frozen layers' backward pass counted (right): the median over seeds and a band from the lowest to the highest seed. Every run sees the same tokens in the same order (LLaMA Pro's seeds vary the data order). The y-axis fits the curves after their start; starts far above them (LESA's, w/o SVD's) are named in the panel. A variant in LLaMA Pro's placement (placement = spread) keeps its method's colour and is drawn dotted with square markers.", "name": "fig-beyond-heldout"}, "image": {"alt": "Two panels of held-out loss curves with seed bands for LLaMA Pro and each learned variant, against tokens and against FLOPs."}} tags=["hide-input"]
if rows:
    shown = {n: runs[n] for k in groups for n in groups[k]}
    page.save(P.heldout_loss_curves(shown, flops=B.flops_at), "beyond_heldout");

# %% tags=["hide-input"]
if rows:
    n_lp = len(groups[lp_key])
    page.md(f"LLaMA Pro's final held-out loss ({f'median of its {n_lp} data orders' if n_lp > 1 else 'one data order'}): {fmt(lp_final, 4)} "
            f"(perplexity {fmt(math.exp(lp_final), 4)}). Held-out loss: the trainer's monitoring set (its "
            "`eval_sequences` per source), the same for every run. Ranges are over the seeds listed.")
    page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]), csv="vs_llama_pro.csv",
               index=False, digits=4)

# %% [markdown]
# ## What the new layers offer training at step 0 (ours)
# With `o_proj` and `down_proj` at zero a new layer writes nothing into the residual stream, so at step 0 only
# those two projections receive a gradient, built from the features they read: the attention output (`o_proj`'s
# input) and act(gate) · up (`down_proj`'s input). `python -m lesa.study.diagnose` measures, before training, the new
# layers' weights against the original layer below each (norm, cosine, effective rank: the exponential of the
# entropy of the normalised singular values), the effective rank of those features on held-out tokens, and the
# first gradient's L1 norm (Adam's first update is the learning rate times the gradient's sign, so to first order it
# lowers the loss by the learning rate times that norm). Each is a median over the new layers, then over seeds. In
# the table, "÷ below" is the ratio to the original layer below, the weight columns (norm, cosine, eff. rank: effective
# rank) are medians over q, k, v, gate and up, the two feature columns are `o_proj`'s input (attention) and `down_proj`'s (MLP hidden), and
# "end loss" is the held-out loss at the end of training.

# %% tags=["hide-input"]
diag_dir, _ = find_results(source or profile, "beyond", (), results_root)
diag = read_json(diag_dir / "init_diagnostics.json") if diag_dir and (diag_dir / "init_diagnostics.json").exists() else None
diag_rows = []
if diag and rows:
    end_of = {r["_key"]: r for r in rows}
    med = lambda xs: float(pd.Series(xs).median())
    for key, names in groups.items():
        ds = [diag["runs"][n] for n in names if n in diag["runs"]]
        if not ds:
            continue
        read = ("q", "k", "v", "gate", "up")        # the projections o/down read from (o/down themselves may be zero)
        runs_end = [runs[n]["eval"][-1]["heldout_loss"] for n in names]
        diag_rows.append({
            "run": label_of(key) + (f" ({len(ds)} seeds)" if len(ds) > 1 else ""),
            "norm ÷ below": med([med([d["weights"][t]["norm_ratio"] for t in read]) for d in ds]),
            "cosine with below": med([med([d["weights"][t]["cosine"] for t in read]) for d in ds]),
            "eff. rank ÷ below": med([med([d["weights"][t]["erank_ratio"] for t in read]) for d in ds]),
            "attention: eff. rank ÷ below": med([d["features"]["o"]["erank_ratio"] for d in ds]),
            "MLP hidden: eff. rank ÷ below": med([d["features"]["down"]["erank_ratio"] for d in ds]),
            "first gradient (L1)": med([d["grad_l1"] for d in ds]),
            "end loss": f"{med(runs_end):.3f}", "_key": key})     # three decimals: the runs differ in the second
    page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in diag_rows]),
               csv="init_diagnostics.csv", index=False, digits=2)
    # every start at the base model's loss (within 0.01 nats on the diagnostic's tokens) in LESA's gaps: one
    # placement, one start, so what differs is what the new layers hold
    lp_name = next((n for n in groups.get(lp_key, []) if n in diag["runs"]), None)
    at_base = [(n, d) for key, names in groups.items() if dict(key[1]).get("gaps") in (None, "top") and key[0] != "llama_pro"
               for n in names if (d := diag["runs"].get(n)) and lp_name and abs(d["loss"] - diag["runs"][lp_name]["loss"]) < 0.01]
    if len(at_base) >= 4:
        pts = pd.DataFrame([{"run": n, "grad": d["grad_l1"], "end": runs[n]["eval"][-1]["heldout_loss"]} for n, d in at_base])
        rho = pts["grad"].rank().corr(pts["end"].rank())           # Spearman: Pearson on ranks
        lesa_row = next((r for r in diag_rows if r["_key"][0] == "lesa"), None)
        # each method's plain row: LESA's gaps (the spectrum test's runs are not in groups: they are below)
        by = {r["_key"][0]: r for r in diag_rows if dict(r["_key"][1]).get("gaps") in (None, "top")}
        fp, cp, rnd = by.get("lesa_fp"), by.get("copy_scaled"), by.get("random_zero_out")
        text = []
        if lesa_row:
            text.append(f"LESA's predicted q, k, v, gate and up have about the norm of the layer below "
                        f"({fmt(lesa_row['norm ÷ below'], 2)}×) but {fmt(100 * lesa_row['eff. rank ÷ below'], 2)}% "
                        f"of its effective rank and almost no overlap with it (cosine {fmt(lesa_row['cosine with below'], 2)}): "
                        "the predictor's outputs use few directions. The attention output they produce has "
                        f"{fmt(100 * lesa_row['attention: eff. rank ÷ below'], 2)}% of the layer below's effective rank, "
                        "a few directions per layer.")
        if fp and cp and rnd:
            text.append(f"With o/down zeroed, the first gradient (L1) of the o/down-scaled variant is {fmt(fp['first gradient (L1)'], 3)}, "
                        f"against {fmt(cp['first gradient (L1)'], 3)} for the copy and {fmt(rnd['first gradient (L1)'], 3)} for random "
                        "weights in the same places.")
        text.append(f"Across the {len(pts)} runs that start at the base model in LESA's gaps, the first gradient's size and the "
                    f"held-out loss at the end have a Spearman correlation of {rho:+.2f}"
                    + (": the starts that give o/down the larger first gradient end lower." if rho <= -0.5 else
                       ": the starts that give o/down the larger first gradient end higher." if rho >= 0.5 else
                       ", no clear relation.")
                    + f" This is an association over {len(pts)} runs on one data order (ours), not a "
                    "controlled test of the cause.")
        page.md("**What this suggests.** " + " ".join(text))
else:
    page.md(f"Not yet run: no step-0 diagnostics for the {source or profile} profile (`python -m lesa.study.diagnose --profile "
            f"{source or profile}`).")

# %% [markdown]
# ## Is it the spectrum? A controlled test (ours)
# The table above shows what sets LESA's predicted q, k, v, gate and up apart from the layer below: about its norm,
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
# predictor seeds at every held-out evaluation in the later half of the run, and each against the variant's run on
# the same seed. Two runs against three can only point: an exact permutation test of their end losses has ten
# splits, so its p-value is never below 0.1, and the text below gives it.

# %% mystnb={"figure": {"caption": "The spectrum test: held-out loss during CPT of the o/down-scaled variant (\u03b1 = 0; median and range of its predictor seeds), the same variant with its predicted weights' singular values replaced by the neighbours' (dash-dot, triangles) or its singular vectors replaced by random ones (dotted, crosses; each median and range of two predictor seeds), the two controls in the same places, and LLaMA Pro (range of its data orders), against training tokens and training compute.", "name": "fig-beyond-spectrum"}, "image": {"alt": "Held-out loss curves of the o/down-scaled variant, its two reshaped versions, the copy and random controls and LLaMA Pro, against tokens and FLOPs."}} tags=["hide-input"]
spec_rows = []
if test_groups and fp_key and lp_key:
    ctrl_keys = [k for k in groups if k[0] in ("copy_scaled", "random_zero_out")]
    shown = {n: runs[n] for k in (fp_key, *test_groups, *ctrl_keys, lp_key) for n in groups.get(k) or test_groups[k]}
    page.save(P.heldout_loss_curves(shown, flops=B.flops_at), "beyond_spectrum");
    seed_of = lambda n: runs[n]["summary"]["run"].get("predictor_seed")
    fp_logs = [runs[n]["eval"] for n in groups[fp_key]]
    rnd_key = next((k for k in ctrl_keys if k[0] == "random_zero_out"), None)
    for key in (fp_key, *test_groups, *ctrl_keys):
        for n in (groups.get(key) or test_groups[key]):
            twin = next((m for m in groups[fp_key] if seed_of(m) == seed_of(n)), None) if key in test_groups else None
            d = (diag or {}).get("runs", {}).get(n)
            read = ("q", "k", "v", "gate", "up")
            cmp = B.heldout_vs_reference([runs[n]["eval"]], fp_logs, later) if key != fp_key else None
            same = runs[n]["eval"][-1]["heldout_loss"] - runs[twin]["eval"][-1]["heldout_loss"] if twin else None
            # the variant and its test runs are named as the section names them (its full name would wrap every row
            # to five lines in this nine-column table, wider than the page)
            change = next((f"{o} = {dict(key[1])[o]}" for o in ("spectrum", "directions") if o in dict(key[1])), None)
            spec_rows.append({       # the controls have no predictor (random_zero_out's seed draws its weights)
                "run": change or ("the variant" if key == fp_key else label_of(key)),
                "seed": seed_of(n) if key[0] == "lesa_fp" else "–",
                "weights: eff. rank ÷ below": float(pd.Series([d["weights"][t]["erank_ratio"] for t in read]).median()) if d else None,
                "attention: eff. rank ÷ below": d["features"]["o"]["erank_ratio"] if d else None,
                "first gradient (L1)": d["grad_l1"] if d else None,
                "end loss": f"{runs[n]['eval'][-1]['heldout_loss']:.3f}",
                "− variant (end)": (f"{cmp['end_diff']:+.3f}" if cmp else "–")
                                                               + (f"; {same:+.3f}" if same is not None else ""),
                "later half": B.against_range(cmp) if cmp else "–",
                "_key": key, "_name": n, "_twin": twin, "_same": same})

# %% tags=["hide-input"]
if not spec_rows:         # said here, not in the figure's cell: an output there would become the figure
    page.md("Not yet run: the spectrum test's two runs (`lesa_fp-0-spec`, `lesa_fp-0-randdir` in the `cpu-long` "
            "profile), or the variant and LLaMA Pro they are read against, have not trained on the "
            f"{source or profile} profile.")
else:
    page.md(f"In the table, the variant is {label_of(fp_key)}, one row per predictor seed (\"seed\"); the weight, "
            "attention and gradient columns are the step-0 diagnostics of the section above; \"− variant (end)\" is the "
            "held-out loss at the end minus the variant's median over its seeds, then minus its run on the same "
            "predictor seed; \"later half\" says where a run lies against the variant's seed range at every evaluation "
            "in the later half of the run.")
    page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in spec_rows]),
               csv="spectrum_test.csv", index=False, digits=3)
    test = {o: [r for r in spec_rows if o in dict(r["_key"][1])] for o in ("spectrum", "directions")}
    end = lambda n: runs[n]["eval"][-1]["heldout_loss"]
    rnd = next((r for r in spec_rows if r["_key"][0] == "random_zero_out"), None)
    n_fp = len(groups[fp_key])
    fp_end = float(pd.Series([end(n) for n in groups[fp_key]]).median())
    pos = spec_pos
    text, shares, perms = [], {}, {}
    for o, what in (("spectrum", "With its neighbours' singular values, the predicted layers"),
                    ("directions", "The predicted singular values on random directions")):
        rs = test[o]
        if not rs:
            continue
        many = len(rs) > 1
        where = {"below": f"{'every run' if many else 'the run'} below all {n_fp} of its seeds at every evaluation in the later half",
                 "above": f"{'every run' if many else 'the run'} above all {n_fp} of its seeds at every evaluation in the later half",
                 "within": f"inside its {n_fp} seeds' range at one or more evaluations in the later half"}
        diffs = ", ".join(f"{end(r['_name']) - fp_end:+.3f}" for r in rs)
        same = ", ".join(f"{r['_same']:+.3f}" for r in rs if r["_same"] is not None)
        closed = ""
        if rnd and end(rnd["_name"]) < fp_end:    # the share of the variant's gap to random weights that the change closes
            gap = fp_end - end(rnd["_name"])
            shares[o] = 100 * (fp_end - float(pd.Series([end(r["_name"]) for r in rs]).median())) / gap
            closed = (f"; {'the median run' if many else 'it'} closes {fmt(shares[o], 2)}% of the variant's {gap:.3f} gap "
                      "to random weights of full rank in the same places")
        # an exact permutation test of the end losses, in the direction the runs lie (2 runs against 3: 10 splits,
        # so p is never below 0.1 whatever the data)
        perm = permutation_p([end(r["_name"]) for r in rs], [end(n) for n in groups[fp_key]],
                               "greater" if pos[o] == "above" else "less")
        perms[o] = perm
        text.append(f"{what} end {diffs} nats per token from the variant's median "
                    f"({'predictor seeds ' if many else 'predictor seed '}{', '.join(str(r['seed']) for r in rs)}"
                    + (f"; {same} from the variant's run on the same seed" if same else "")
                    + f"), {where[pos[o]]}{closed}; an exact permutation test of the end losses ({len(rs)} runs against "
                      f"{n_fp}, one-sided in the direction the runs lie) gives p = {fmt(perm['p'], 2)}, and "
                      f"{fmt(perm['smallest_p'], 2)} is the smallest p these run counts allow.")
    # what the runs show, worded no stronger than a few runs allow: a pattern consistent with a cause, not the cause
    read_spec = {"below": "The runs with the neighbours' spectrum ended below the variant, as they would if the collapsed "
                          "spectrum were part of what holds the predictions back; with these run counts that is a lead, "
                          "not a shown cause.",
                 "within": "Restoring the spectrum does not take the curve out of the variant's seed range: these runs give "
                           "no sign that the collapsed spectrum alone explains why the predictions train slower than "
                           "random weights.",
                 "above": "The runs with the neighbours' spectrum ended above the variant; with these run counts that is a "
                          "lead, not a shown effect."}
    read_dir = {"within": "Random directions with the predicted spectrum stay inside the variant's range: these runs give no "
                          "sign that the predicted directions matter to training beyond their spectrum.",
                "below": "Random directions with the predicted spectrum ended below the predictions, as they would if the "
                         "predicted directions themselves were a handicap; with these run counts that is a lead, not a "
                         "shown cause.",
                "above": "Random directions with the predicted spectrum ended above the predictions, as they would if the "
                         "predicted directions carried something training uses; with these run counts that is a lead."}
    text += [read_spec[pos["spectrum"]]] if pos.get("spectrum") else []
    text += [read_dir[pos["directions"]]] if pos.get("directions") else []
    if shares and max(shares.values()) < 50:
        text.append("Neither change closes half of the gap to random weights: if either is a cause, it is a small part "
                    "of why the predictions train slower than random weights.")
    n_test = sorted({len(v) for v in test_by.values()})
    text.append(f"Each test run has {' or '.join(map(str, n_test))} predictor seed{'s' if n_test[-1] > 1 else ''} and one "
                f"data order (ours); the variant's range is over {n_fp} predictor seeds.")
    page.md("**What the test says.** " + " ".join(text))

# %% [markdown]
# ## After training
# Word perplexity on WikiText and the benchmark average of the trained models (each method's first seed), from
# chapter 5's evaluation; accuracies carry their standard error (SE).

# %% tags=["hide-input"]
# each seed group's evaluated run: its first seed that chapter 5 evaluated (the spread variant's is seed 1, the
# profile's median seed, not the first in name order)
first = first_seed_runs(source)
keep = {n: after[n] for n in (next((m for m in sorted(names, key=lambda m: m not in first) if m in after), None)
                              for names in groups.values()) if n}
if keep:
    table = pd.DataFrame([{"run": run_title(runs[n]), **run_seeds(runs[n]),
                           "WikiText word PPL": v.get("ppl"), "benchmark average (%)": v.get("avg"), "SE": v.get("avg_se"),
                           "tasks": ", ".join(v.get("tasks") or [])} for n, v in keep.items()])
    if table["tasks"].nunique() == 1:    # the same tasks in every row: said once, not repeated down a column
        page.md(f"The benchmark average is over {table['tasks'].iloc[0]}.")
        table = table.drop(columns="tasks")
    page.table(table, csv="after_training.csv", index=False, digits=4)
else:
    page.md(f"Not yet run: chapter 5 has no evaluation of these runs for the {source or profile} profile.")

# %% [markdown]
# ## What this can and cannot show
# A variant that starts exactly at the base model cannot lose at step 0; the question is only what training does
# with it. At this scale (135 million parameters, CPU budgets) LLaMA Pro's zeroed projections receive gradients
# from the first step too, so at the same placement a variant's advantage could only come from its informative q,
# k, v, gate and up weights; where the new layers sit matters as well (below). The
# verdict needs seeds on both sides: the `cpu` profile trains one of each (a first look); the longer `cpu-long`
# profile trains LLaMA Pro on three data orders and the two variants that start at the base model on three predictor
# seeds each, and this chapter shows those runs.
#
# LLaMA Pro and the variants differ in two ways, not one: what the new layers hold, and where they sit. LLaMA Pro
# spreads its new layers through the whole stack (one after every second original layer; the lowest is layer 2 of
# the grown model's 0-44); LESA and the variants fill the gaps of the upper half, as the released code does (the
# lowest is layer 15). Two
# controls with the variants' start and placement separate the two: a copy of the lower neighbour with
# `o_proj`/`down_proj` zeroed (LLaMA Pro's initialisation in the variants' places) and a random layer with them
# zeroed. A variant that trains no faster than the copy gains nothing from LESA's predictions over LLaMA Pro's
# rule; if the copy trains like the variants, the placement, not the initialisation, is what LLaMA Pro wins by.
# The converse experiment (ours, `cpu-long`) moves the o/down-scaled variant to LLaMA Pro's placement (`gaps:
# spread`: after original layers 0, 2, ..., 28, one grown layer below LLaMA Pro's blocks, which follow layers 1,
# 3, ..., 29; a gap needs an upper neighbour): against LLaMA Pro it differs only in what the new layers hold.

# %% tags=["hide-input"]
verdicts = []                   # no claim of the paper is judged here (the variants are ours)
page.finish(verdicts, source_profile=source)
